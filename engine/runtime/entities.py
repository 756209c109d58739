"""Entities: created in their chart's initial state, read, listed, and their journals read."""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Mapping
from typing import Any

from engine.errors import Conflict, InvalidParameter
from engine.ports import EntityRow, EventRow, Write
from engine.runtime.journal import json_value
from engine.runtime.records import Entity, Page, TransitionRecord
from engine.runtime.shared import Shared

__all__ = ["Entities"]

# Entities has a method named `list`; this keeps annotations in its body unambiguous.
_Records = list[TransitionRecord]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$")


class Entities:
    """Creates and reads one engine's entities."""

    def __init__(self, shared: Shared) -> None:
        self._s = shared
        # One create at a time in this engine: the name check and the commit go together.
        self._create_lock = threading.Lock()

    def create(self, chart: str, name: str, data: Mapping[str, Any] | None) -> Entity:
        """See :meth:`engine.Engine.create`."""
        s = self._s
        s.check_open()
        reg = s.registry[chart]
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidParameter(
                f"invalid name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed, "
                "at most 253 characters"
            )
        data = json_value(dict(data or {}), "entity data")
        snapshot = reg.chart.initial_snapshot(data, conditions=reg.bindings.conditions)
        now = s.clock.now()
        row = EntityRow(
            id=secrets.token_hex(32),
            chart=chart,
            name=name,
            configuration=snapshot.configuration,
            data=dict(snapshot.data),
            history=dict(snapshot.history),
            version=0,
            created_at=now,
            updated_at=now,
        )
        event = EventRow(row.id, name, chart, "create", {}, None, now)
        with self._create_lock:
            taken = s.store.entity(name, chart)
            if taken is not None and taken.name == name and taken.live:
                raise Conflict(
                    f"the name {name!r} is already in use by {chart} {taken.id[:12]}: "
                    "remove or rename it to reuse the name"
                )
            try:
                s.commit.commit(Write(entity=row, events=[event]))
            except Conflict as exc:  # the name was taken by another process meanwhile
                raise Conflict(f"the name {name!r} is already in use in chart {chart!r}") from exc
        stored = s.store.entity(row.id)
        assert stored is not None
        s.cache[row.id] = stored
        return Entity.from_row(stored)

    def list(self, chart: str | None, status: str | None, after: int, limit: int) -> Page[Entity]:
        """See :meth:`engine.Engine.list`."""
        self._s.check_open()
        if not 1 <= limit <= 1000:
            raise InvalidParameter(f"limit must be between 1 and 1000, got {limit}")
        rows = self._s.store.entities(chart=chart, state=status, after=after, limit=limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(
            tuple(Entity.from_row(r) for r in rows), rows[-1].seq if more and rows else None
        )

    def history(self, entity: str | Entity) -> _Records:
        """See :meth:`engine.Engine.history`."""
        s = self._s
        s.check_open()
        row = s.row(entity)
        return [TransitionRecord.from_row(t) for t in s.store.transitions(row.id)]
