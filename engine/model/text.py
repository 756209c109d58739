"""Chart text (YAML or JSON) to a plain mapping, refusing what would be silently lost.

YAML and JSON both let a repeated key overwrite the first one without a
word; in a chart that would drop a state or a transition's field, so a
repeated key is an error naming its path and line.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from engine.errors import ChartError

__all__ = ["parse_text"]


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys."""


def _mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise _Duplicate(key, key_node.start_mark.line + 1, seen[key])
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


class _Duplicate(Exception):
    def __init__(self, key: Any, line: int, first: int) -> None:
        self.key, self.line, self.first = key, line, first


def _json_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Duplicate(key, 0, 0)
        out[key] = value
    return out


def parse_text(text: str, *, source: str | None = None) -> Any:
    """The mapping a YAML or JSON chart text holds (JSON is tried when it starts with ``{``).

    Raises ChartError for a syntax error or a repeated key, with its line.
    """
    stripped = text.lstrip()
    try:
        if stripped.startswith("{"):
            try:
                return json.loads(text, object_pairs_hook=_json_pairs)
            except json.JSONDecodeError:
                pass  # YAML flow style also starts with '{'
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except _Duplicate as dup:
        where = f"line {dup.line}: " if dup.line else ""
        first = f" (first at line {dup.first})" if dup.first else ""
        raise ChartError(
            [("", f"{where}duplicate key {dup.key!r}{first}")], source=source
        ) from None
    except yaml.YAMLError as exc:
        raise ChartError([("", f"not valid YAML: {exc}")], source=source) from None
