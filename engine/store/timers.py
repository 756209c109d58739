"""Reading timers: the due ones the scheduler fires, and each entity's.

Writing timers (setting, cancelling) is part of a batch's commit, in
:mod:`engine.store.writes`. The reads run statements compiled once
(:mod:`engine.store.queries`), driven by the (status, due_at) index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.ports import TimerRow
from engine.store.database import Database
from engine.store.queries import ReadStatements
from engine.store.rows import to_timer

__all__ = ["TimerReads"]


class TimerReads:
    """The Store port's reads of timers, on :class:`Database`."""

    _db: Database
    _reads: ReadStatements

    def due_timers(
        self, now: float, limit: int = 100, *, charts: Sequence[str] | None = None
    ) -> list[TimerRow]:
        """Pending timers due at or before ``now``, earliest first; only of ``charts`` if given."""
        if charts is not None and not charts:
            return []
        params = _charts(charts)
        params.update(now=now, limit=limit)
        with self._db.querying() as conn:
            rows = self._db.query(conn, self._reads.due_timers(charts), params)
        return [to_timer(r) for r in rows]

    def timers(self, entity_id: str) -> list[TimerRow]:
        """Every timer of an entity, whatever its status, by due time."""
        with self._db.querying() as conn:
            rows = self._db.query(conn, self._reads.timers_of, {"entity": entity_id})
        return [to_timer(r) for r in rows]

    def next_timer(self, *, charts: Sequence[str] | None = None) -> float | None:
        """When the earliest pending timer (of ``charts``, if given) is due, or None."""
        if charts is not None and not charts:
            return None
        with self._db.querying() as conn:
            rows = self._db.query(conn, self._reads.next_timer(charts), _charts(charts))
        return float(rows[0]["due_at"]) if rows else None


def _charts(charts: Sequence[str] | None) -> dict[str, Any]:
    return {f"chart{i}": name for i, name in enumerate(charts or ())}
