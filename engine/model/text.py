"""Chart text (YAML or JSON) to a plain mapping, refusing what would be silently lost.

YAML and JSON both let a repeated key overwrite the first one without a
word; in a chart that would drop a state or a transition's field, so a
repeated key is an error naming its path and line.

Plain YAML scalars are read as YAML 1.2's core schema reads them, not as
PyYAML's YAML 1.1: ``on``, ``off``, ``yes``, ``no``, ``y`` and ``n`` are
strings (a toggle's states are ``on`` and ``off``), only ``true`` and
``false`` are booleans, ``010`` is ten, and dates are strings.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from engine.errors import ChartError

__all__ = ["parse_text"]


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core scalars that refuses duplicate mapping keys."""


# YAML 1.1's implicit booleans, integers, floats and timestamps out; YAML 1.2 core's in.
_CORE_11 = {"tag:yaml.org,2002:" + t for t in ("bool", "int", "float", "timestamp")}
_UniqueKeyLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _CORE_11]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _tag, _regexp, _first in (
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    (
        "float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+.0123456789",
    ),
):
    _UniqueKeyLoader.add_implicit_resolver(
        "tag:yaml.org,2002:" + _tag, re.compile(_regexp), list(_first)
    )


def _core_int(loader: _UniqueKeyLoader, node: yaml.ScalarNode) -> int:
    text = loader.construct_scalar(node)
    if text.startswith(("0o", "0x")):
        return int(text[2:], 8 if text[1] == "o" else 16)
    return int(text, 10)


_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:int", _core_int)


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
        for mark in (getattr(exc, "context_mark", None), getattr(exc, "problem_mark", None)):
            if mark is not None and source is not None:
                mark.name = source  # not "<unicode string>": the file the text came from
        raise ChartError([("", f"not valid YAML: {exc}")], source=source) from None
