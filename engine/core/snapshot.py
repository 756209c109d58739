"""Snapshot: where one entity is, as a value that round-trips through JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.errors import InvalidParameter

__all__ = ["Snapshot"]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The state of one entity: its configuration, its data and its version.

    ``configuration`` holds the active states as dotted paths, ancestors
    included, in document order: ``('running', 'running.paused')``.
    ``history`` maps a history state's path to the states it recorded the
    last time its parent was exited. ``version`` counts committed changes.

    Snapshots are values: two are equal when every field is, and
    ``Snapshot.from_json(s.to_json()) == s``. ``data`` must be JSON-able.
    """

    configuration: tuple[str, ...]
    data: Mapping[str, Any] = field(default_factory=dict)
    version: int = 0
    history: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def in_state(self, path: str) -> bool:
        """Whether the state ``path`` (or one of its descendants) is active."""
        return path in self.configuration

    def to_json(self) -> str:
        """A compact, key-sorted JSON text of this snapshot."""
        return json.dumps(
            {
                "configuration": list(self.configuration),
                "data": self.data,
                "version": self.version,
                "history": {k: list(v) for k, v in self.history.items()},
            },
            sort_keys=True,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Snapshot:
        """The snapshot that :meth:`to_json` wrote; InvalidParameter names what is wrong."""
        try:
            raw = json.loads(text)
        except ValueError as exc:
            raise InvalidParameter(f"snapshot is not valid JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise InvalidParameter("snapshot JSON must be an object")
        unknown = set(raw) - {"configuration", "data", "version", "history"}
        if unknown:
            raise InvalidParameter(f"snapshot JSON has unknown keys: {sorted(unknown)}")
        configuration = raw.get("configuration")
        if not isinstance(configuration, list) or not all(
            isinstance(s, str) for s in configuration
        ):
            raise InvalidParameter("snapshot 'configuration' must be a list of state paths")
        data = raw.get("data", {})
        if not isinstance(data, dict):
            raise InvalidParameter("snapshot 'data' must be an object")
        version = raw.get("version", 0)
        if not isinstance(version, int) or isinstance(version, bool) or version < 0:
            raise InvalidParameter("snapshot 'version' must be a non-negative integer")
        history = raw.get("history", {})
        if not isinstance(history, dict) or not all(
            isinstance(v, list) and all(isinstance(s, str) for s in v) for v in history.values()
        ):
            raise InvalidParameter("snapshot 'history' must map state paths to lists of paths")
        return cls(
            configuration=tuple(configuration),
            data=data,
            version=version,
            history={k: tuple(v) for k, v in history.items()},
        )
