"""Timers: the due ones the scheduler claims and fires, and each entity's.

Writing timers (setting, cancelling, firing) is part of a batch's commit, in
:mod:`engine.store.writes`; claiming due ones is a transaction of its own.
The reads and the claim run statements compiled once
(:mod:`engine.store.queries`), driven by the (status, due_at) index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.ports import TimerRow
from engine.store import schema as t
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

    def claim_timers(
        self,
        owner: str,
        now: float,
        until: float,
        limit: int = 100,
        *,
        charts: Sequence[str] | None = None,
        node: str | None = None,
    ) -> list[TimerRow]:
        """See :meth:`engine.ports.Store.claim_timers`."""
        if charts is not None and not charts:
            return []
        params = _charts(charts, node)
        params.update(owner=owner, now=now, until=until, limit=limit)
        query = self._reads.claim_timers(charts, node=node is not None)
        with self._db.writing() as conn:
            cursor = self._db.run(conn, query, params)
            try:
                fetched = cursor.fetchall()  # first: a pipelined write describes its rows then
                names = [d[0] for d in cursor.description]
                rows = [dict(zip(names, row, strict=True)) for row in fetched]
            finally:
                cursor.close()
        return sorted((to_timer(r) for r in rows), key=lambda tm: (tm.due_at, tm.id))

    def release_timers(self, owner: str, ids: Sequence[str]) -> None:
        """See :meth:`engine.ports.Store.release_timers` (a rare path: compiled per call)."""
        tm = t.timers.c
        release = (
            t.timers.update()
            .where(tm.id.in_(list(ids)), tm.claimed_by == owner, tm.status == "pending")
            .values(claimed_by=None, claimed_until=None)
        )
        with self._db.writing() as conn:
            self._db.run_statement(conn, release)

    def timers(self, entity_id: str) -> list[TimerRow]:
        """Every timer of an entity, whatever its status, by due time."""
        with self._db.querying() as conn:
            rows = self._db.query(conn, self._reads.timers_of, {"entity": entity_id})
        return [to_timer(r) for r in rows]

    def next_timer(
        self,
        *,
        charts: Sequence[str] | None = None,
        now: float | None = None,
        node: str | None = None,
    ) -> float | None:
        """When the earliest pending timer (of ``charts``, if given) is due, or None.

        Given ``now``, timers another engine's claim holds past ``now`` are left
        out; given ``node``, timers of entities bound to another node.
        """
        if charts is not None and not charts:
            return None
        params = _charts(charts, node)
        if now is not None:
            params["now"] = now
        query = self._reads.next_timer(charts, unclaimed=now is not None, node=node is not None)
        with self._db.querying() as conn:
            rows = self._db.query(conn, query, params)
        return float(rows[0]["due_at"]) if rows else None


def _charts(charts: Sequence[str] | None, node: str | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {f"chart{i}": name for i, name in enumerate(charts or ())}
    if node is not None:
        params["node"] = node
    return params
