"""Reading timers: the due ones the scheduler fires, and each entity's.

Writing timers (setting, cancelling) is part of a batch's commit, in
:mod:`engine.store.writes`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from engine.ports import TimerRow
from engine.store import schema as t
from engine.store.database import Database
from engine.store.rows import to_timer

__all__ = ["TimerReads"]


class TimerReads:
    """The Store port's reads of timers, on :class:`Database`."""

    _db: Database

    def due_timers(
        self, now: float, limit: int = 100, *, charts: Sequence[str] | None = None
    ) -> list[TimerRow]:
        """Pending timers due at or before ``now``, earliest first; only of ``charts`` if given."""
        query = _pending(t.timers.select(), charts).where(t.timers.c.due_at <= now)
        query = query.order_by(t.timers.c.due_at).limit(limit)
        with self._db.reading() as conn:
            return [to_timer(r._mapping) for r in conn.execute(query)]

    def timers(self, entity_id: str) -> list[TimerRow]:
        """Every timer of an entity, whatever its status, by due time."""
        query = (
            t.timers.select().where(t.timers.c.entity_id == entity_id).order_by(t.timers.c.due_at)
        )
        with self._db.reading() as conn:
            return [to_timer(r._mapping) for r in conn.execute(query)]

    def next_timer(self, *, charts: Sequence[str] | None = None) -> float | None:
        """When the earliest pending timer (of ``charts``, if given) is due, or None."""
        query = _pending(sa.select(sa.func.min(t.timers.c.due_at)), charts)
        with self._db.reading() as conn:
            value = conn.execute(query).scalar()
        return None if value is None else float(value)


def _pending(query: Any, charts: Sequence[str] | None) -> Any:
    """``query`` narrowed to pending timers, of entities of ``charts`` if given."""
    query = query.where(t.timers.c.status == "pending")
    if charts is not None:
        owned = sa.select(t.entities.c.id).where(t.entities.c.chart.in_(list(charts)))
        query = query.where(t.timers.c.entity_id.in_(owned))
    return query
