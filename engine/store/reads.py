"""Reading entities, the journal, the outbox and the engines' heartbeats.

Each read runs statements compiled once (:mod:`engine.store.queries`) on a
pooled driver connection; a journal and its steps are read in one read
transaction, so they agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.ports import Census, EntityRow, EventRow, StepRow, TransitionRow
from engine.store.database import Database
from engine.store.queries import ReadStatements
from engine.store.rows import loads, to_entity, to_event, to_step, to_transition
from engine.store.sequencer import Sequencer

__all__ = ["JournalReads"]

# Names per query of live_names: well under every driver's limit of parameters.
_NAMES_AT_ONCE = 500


def _like(text: str) -> str:
    """``text`` as a LIKE pattern that matches it literally (escape character ``\\``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class JournalReads:
    """The Store port's reads of entities, journal, outbox and owners, on :class:`Database`."""

    _db: Database
    _reads: ReadStatements
    _sequencer: Sequencer | None

    def entity(
        self, id_or_name: str, chart: str | None = None, *, by_id: bool = True
    ) -> EntityRow | None:
        """The entity with this id, or this name (within ``chart`` if given).

        ``by_id`` False: only the lookup by name is made (the key cannot be an id).
        """
        db, q = self._db, self._reads
        params = {"key": id_or_name} if chart is None else {"key": id_or_name, "chart": chart}
        named = q.entity_by_name if chart is None else q.entity_by_name_in_chart
        with db.querying() as conn:
            if db.dialect == "postgresql":
                # Both lookups in one statement: the server is a round trip away.
                both = q.entity_by_key if chart is None else q.entity_by_key_in_chart
                rows = db.fetch(conn, both if by_id else named, params)
            else:
                # In process the lookup by id alone is the cheaper one, and the usual.
                rows = (
                    [{**r, "by_id": 1} for r in db.query(conn, q.entity_by_id, params)]
                    if by_id
                    else []
                )
                if not rows or (chart is not None and rows[0]["chart"] != chart):
                    rows = db.query(conn, named, params)
        if rows and rows[0].get("by_id") and (chart is None or rows[0]["chart"] == chart):
            return to_entity(rows[0])
        # A name names its live entity; a name shared by live entities of
        # several charts names none of them. With no live one, the name
        # names the latest finished entity that had it (for its history).
        rows = [r for r in rows if not r.get("by_id")]
        live = [r for r in rows if r["live"]]
        row = (live[0] if len(live) == 1 else None) if live else (rows[0] if rows else None)
        return None if row is None else to_entity(row)

    def live_names(self, chart: str, names: Sequence[str]) -> set[str]:
        """Those of ``names`` that a live entity of ``chart`` holds."""
        db, taken = self._db, set()
        with db.querying() as conn:
            for start in range(0, len(names), _NAMES_AT_ONCE):
                chunk = names[start : start + _NAMES_AT_ONCE]
                params = {f"name{i}": name for i, name in enumerate(chunk)}
                params["chart"] = chart
                for row in db.query(conn, self._reads.live_names(len(chunk)), params):
                    taken.add(row["name"])
        return taken

    def entities(
        self,
        *,
        chart: str | None = None,
        state: str | None = None,
        after: int = 0,
        limit: int = 100,
        live: bool = False,
    ) -> list[EntityRow]:
        """Entities in creation order after ``after``, optionally in one chart or state, live."""
        params: dict[str, Any] = {"after": after, "limit": limit}
        if chart is not None:
            params["chart"] = chart
        if state is not None:
            params["pattern"] = f"%|{_like(state)}|%"
        query = self._reads.entities_page(
            chart=chart is not None, state=state is not None, live=live
        )
        with self._db.querying() as conn:
            rows = self._db.query(conn, query, params)
        return [to_entity(r) for r in rows]

    def transition(self, entity_id: str, idempotency_key: str) -> TransitionRow | None:
        """The transition recorded for this idempotency key on this entity."""
        q = self._reads
        found = self._journal(q.keyed, q.keyed_steps, {"entity": entity_id, "key": idempotency_key})
        return found[0] if found else None

    def transitions(self, entity_id: str) -> list[TransitionRow]:
        """The entity's journal, oldest first, with its steps."""
        q = self._reads
        return self._journal(q.journal, q.journal_steps, {"entity": entity_id})

    def transition_by_id(self, transition_id: str) -> TransitionRow | None:
        """The journal entry with this id, with its steps; None if there is none."""
        q = self._reads
        found = self._journal(q.transition_by_id, q.transition_by_id_steps, {"id": transition_id})
        return found[0] if found else None

    def unfinished(self) -> list[TransitionRow]:
        """Transitions left running or compensating, with their steps, oldest first."""
        q = self._reads
        return self._journal(q.unfinished, q.unfinished_steps, {})

    def events(self, *, after: int = 0, limit: int = 1000) -> list[EventRow]:
        """Outbox events with seq greater than ``after``, in seq order."""
        if self._sequencer is not None:
            self._sequencer.number()  # every event committed before this read
        with self._db.querying() as conn:
            rows = self._db.query(conn, self._reads.events, {"after": after, "limit": limit})
        return [to_event(r) for r in rows]

    def last_event(self) -> int:
        """The seq of the newest outbox event (0 when there is none)."""
        if self._sequencer is not None:
            self._sequencer.number()
        with self._db.querying() as conn:
            rows = self._db.query(conn, self._reads.last_event, {})
        value = next(iter(rows[0].values())) if rows else None
        return int(value or 0)

    def census(self) -> Census:
        """How many live entities are in each (chart, configuration); how many timers pend."""
        q = self._reads
        with self._db.querying(snapshot=True) as conn:
            groups = self._db.query(conn, q.census_entities, {})
            timers = self._db.query(conn, q.census_timers, {})
        entities: dict[tuple[str, tuple[str, ...]], int] = {}
        for r in groups:
            key = (r["chart"], tuple(loads(r["configuration"])))
            entities[key] = entities.get(key, 0) + int(r["n"])
        return Census(entities, int(timers[0]["n"]) if timers else 0)

    def owners(self) -> dict[str, tuple[int, str, float]]:
        """Every engine that ever beat: owner -> (pid, host, last beat)."""
        with self._db.querying() as conn:
            rows = self._db.query(conn, self._reads.owners, {})
        return {r["owner"]: (r["pid"], r["host"], r["beat_at"]) for r in rows}

    def _journal(self, query: Any, steps: Any, params: dict[str, Any]) -> list[TransitionRow]:
        """The transitions ``query`` selects, each with the steps ``steps`` selects of them."""
        db = self._db
        with db.querying(snapshot=True) as conn:
            rows = db.query(conn, query, params)
            found = db.query(conn, steps, params) if rows else []
        by_transition: dict[str, list[StepRow]] = {r["id"]: [] for r in rows}
        for s in found:
            kept = by_transition.get(s["transition_id"])
            if kept is not None:  # a step of a transition that committed after the read
                kept.append(to_step(s))
        return [to_transition(r, tuple(by_transition[r["id"]])) for r in rows]
