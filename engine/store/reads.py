"""Reading entities, the journal, the outbox and the engines' heartbeats.

Each read is one read transaction on a pooled connection, built with
SQLAlchemy Core: reads are not the hot path, and Core keeps them portable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from engine.ports import EntityRow, EventRow, StepRow, TransitionRow
from engine.store import schema as t
from engine.store.database import Database
from engine.store.rows import to_entity, to_event, to_step, to_transition

__all__ = ["JournalReads"]


class JournalReads:
    """The Store port's reads of entities, journal, outbox and owners, on :class:`Database`."""

    _db: Database

    def entity(self, id_or_name: str, chart: str | None = None) -> EntityRow | None:
        """The entity with this id, or this name (within ``chart`` if given)."""
        by_id = t.entities.select().where(t.entities.c.id == id_or_name)
        by_name = t.entities.select().where(t.entities.c.name == id_or_name)
        if chart is not None:
            by_id = by_id.where(t.entities.c.chart == chart)
            by_name = by_name.where(t.entities.c.chart == chart)
        with self._db.reading() as conn:
            row = conn.execute(by_id).first()
            if row is None:
                # A name names its live entity; a name shared by live entities of
                # several charts names none of them. With no live one, the name
                # names the latest finished entity that had it (for its history).
                rows = conn.execute(
                    by_name.order_by(t.entities.c.live.desc(), t.entities.c.seq.desc()).limit(2)
                ).all()
                live = [r for r in rows if r.live]
                row = (live[0] if len(live) == 1 else None) if live else (rows[0] if rows else None)
        return None if row is None else to_entity(row._mapping)

    def entities(
        self,
        *,
        chart: str | None = None,
        state: str | None = None,
        after: int = 0,
        limit: int = 100,
    ) -> list[EntityRow]:
        """Entities in creation order after ``after``, optionally in one chart or state."""
        query = t.entities.select().where(t.entities.c.seq > after)
        if chart is not None:
            query = query.where(t.entities.c.chart == chart)
        if state is not None:
            query = query.where(t.entities.c.states.contains(f"|{state}|", autoescape=True))
        query = query.order_by(t.entities.c.seq).limit(limit)
        with self._db.reading() as conn:
            return [to_entity(r._mapping) for r in conn.execute(query)]

    def transition(self, entity_id: str, idempotency_key: str) -> TransitionRow | None:
        """The transition recorded for this idempotency key on this entity."""
        query = t.transitions.select().where(
            t.transitions.c.entity_id == entity_id,
            t.transitions.c.idempotency_key == idempotency_key,
        )
        with self._db.reading() as conn:
            rows = _with_steps(conn, conn.execute(query).all())
        return rows[0] if rows else None

    def transitions(self, entity_id: str) -> list[TransitionRow]:
        """The entity's journal, oldest first, with its steps."""
        query = (
            t.transitions.select()
            .where(t.transitions.c.entity_id == entity_id)
            .order_by(t.transitions.c.seq)
        )
        with self._db.reading() as conn:
            return _with_steps(conn, conn.execute(query).all())

    def unfinished(self) -> list[TransitionRow]:
        """Transitions left running or compensating, with their steps, oldest first."""
        query = (
            t.transitions.select()
            .where(t.transitions.c.status.in_(("running", "compensating")))
            .order_by(t.transitions.c.seq)
        )
        with self._db.reading() as conn:
            return _with_steps(conn, conn.execute(query).all())

    def events(self, *, after: int = 0, limit: int = 1000) -> list[EventRow]:
        """Outbox events with seq greater than ``after``, in seq order."""
        query = (
            t.events.select().where(t.events.c.seq > after).order_by(t.events.c.seq).limit(limit)
        )
        with self._db.reading() as conn:
            return [to_event(r) for r in conn.execute(query)]

    def last_event(self) -> int:
        """The seq of the newest outbox event (0 when there is none)."""
        with self._db.reading() as conn:
            value = conn.execute(sa.select(sa.func.max(t.events.c.seq))).scalar()
        return int(value or 0)

    def owners(self) -> dict[str, tuple[int, str, float]]:
        """Every engine that ever beat: owner -> (pid, host, last beat)."""
        with self._db.reading() as conn:
            return {r.owner: (r.pid, r.host, r.beat_at) for r in conn.execute(t.owners.select())}


def _with_steps(conn: sa.Connection, rows: Sequence[sa.Row[Any]]) -> list[TransitionRow]:
    if not rows:
        return []
    ids = [r.id for r in rows]
    by_transition: dict[str, list[StepRow]] = {i: [] for i in ids}
    query = (
        t.steps.select()
        .where(t.steps.c.transition_id.in_(ids))
        .order_by(t.steps.c.transition_id, t.steps.c.index)
    )
    for s in conn.execute(query):
        by_transition[s.transition_id].append(to_step(s._mapping))
    return [to_transition(r._mapping, tuple(by_transition[r.id])) for r in rows]
