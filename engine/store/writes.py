"""The write path: committing batches of Write units, and engines' heartbeats.

A batch is one transaction. Its units are checked and applied in order, each
kind of row written by one prepared statement for the whole batch, so that a
commit shared by many fires costs about as many statements as one. On
PostgreSQL the usual batch goes in one flight (:mod:`engine.store.flight`),
and the careful way here only if a version check fails in it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from engine.errors import Conflict, Unavailable
from engine.ports import EntityRow, EventRow, TransitionRow, VersionConflict, Write
from engine.store import flight, postgres, wire
from engine.store import schema as t
from engine.store.database import Database
from engine.store.numbering import ServerNumbered
from engine.store.queries import ReadStatements
from engine.store.rows import (
    entity_changes,
    entity_values,
    event_values,
    step_values,
    timer_values,
    transition_changes,
    transition_values,
)
from engine.store.sequencer import Sequencer
from engine.store.statements import Prepared, WriteStatements

__all__ = ["JournalWrites"]

# Row locks of a batch's entities, taken in id order before any is updated: two
# processes committing batches that share entities in different orders would
# otherwise each hold one the other waits for (PostgreSQL's deadlock detector
# then fails one of the commits).
_LOCK_ENTITIES = Prepared(
    "SELECT id FROM entities WHERE id = ANY(%(ids)s) ORDER BY id FOR UPDATE", None
)


class JournalWrites:
    """The Store port's writes, on :class:`Database` with its prepared statements."""

    _db: Database
    _statements: WriteStatements
    _reads: ReadStatements
    _numbered: ServerNumbered | None
    """PostgreSQL's: the journal and outbox written without a counter (see numbering)."""
    _sequencer: Sequencer | None
    """PostgreSQL's: numbers the outbox's events after their commits (see sequencer)."""
    _flights: flight.FlightStatements | None
    """PostgreSQL's: the statements of a batch sent in one flight (see flight)."""

    def apply(self, batch: Sequence[Write]) -> list[Exception | None]:
        """Commit ``batch`` in one transaction; see :meth:`engine.ports.Store.apply`.

        A unit that breaks a unique constraint (a name taken, an idempotency
        key used) gets a Conflict; alone, the Conflict is raised.
        """
        results = self._apply_batch(batch)
        if self._sequencer is not None and any(unit.events for unit in batch):
            self._sequencer.soon()
        return results

    def _apply_batch(self, batch: Sequence[Write]) -> list[Exception | None]:
        try:
            if self._flights is not None:
                flown = self._fly(self._flights, batch)
                if flown is not None:
                    return flown
            return self._db.transact(lambda conn: self._apply(conn, batch))
        except sa.exc.IntegrityError as exc:
            if len(batch) == 1:
                raise _conflict(exc) from exc
            # One unit broke a constraint (e.g. a name taken by another process):
            # commit the others, each alone, so only the offender fails. From here on
            # earlier units may be committed, so a later unit's failure (the database
            # going away too) is that unit's entry, never raised for the whole batch.
            results: list[Exception | None] = []
            for unit in batch:
                try:
                    results.extend(self._apply_batch([unit]))
                except (Conflict, Unavailable) as failure:
                    results.append(failure)
            return results

    def _fly(
        self, statements: flight.FlightStatements, batch: Sequence[Write]
    ) -> list[Exception | None] | None:
        """Commit ``batch`` in one flight; None if it goes the careful way (see flight).

        A unit whose version check fails in the flight gets its
        VersionConflict, and the others are applied again without it. Any
        other failure sends the batch the careful way, which raises or
        reports it as it always did.
        """
        planned = flight.plan(statements, batch)
        if planned is None:
            return None
        self._append_numbered(planned.queue, list(batch))
        planned.queue.execute(statements.commit.sql, {})
        try:
            self._db.fly(planned.queue.items)
        except wire.Unsendable:  # found before anything was sent
            return None
        except wire.FlightFailed as failed:
            loser = planned.checks.get(failed.index)
            if loser is None:
                return None
            return self._without(batch, loser)
        except postgres.Lost:
            return self._settle(statements, batch, planned)
        return [None] * len(batch)

    def _without(self, batch: Sequence[Write], loser: int) -> list[Exception | None]:
        """``batch`` applied without unit ``loser``, whose version check failed."""
        unit = batch[loser]
        assert unit.entity is not None
        rest = [u for at, u in enumerate(batch) if at != loser]
        try:
            results = self._apply_batch(rest) if rest else []
        except Conflict as exc:  # raised for a lone unit; one of a batch, reported
            results = [exc]
        results.insert(loser, VersionConflict(unit.entity.id, unit.expect_version))
        return results

    def _settle(
        self, statements: flight.FlightStatements, batch: Sequence[Write], lost: flight.Plan
    ) -> list[Exception | None]:
        """The outcome of ``batch``, whose flight ``lost`` was lost: committed, or now."""

        def settle(conn: Any) -> list[Exception | None]:
            # Held, the entities' locks outlast the lost transaction (see flight).
            self._db.run(conn, _LOCK_ENTITIES, {"ids": lost.locks}).close()
            cursor = self._db.run(conn, statements.journaled, {"id": lost.marker})
            committed = bool(cursor.fetchall())
            cursor.close()
            return [None] * len(batch) if committed else self._apply(conn, batch)

        return self._db.transact(settle)

    def purge_finished(self, before: float, limit: int) -> int:
        """Delete finished entities, their journals and timers; see the Store port."""
        db = self._db
        with db.writing() as conn:
            cursor = db.run(conn, self._reads.finished_before(), {"before": before, "limit": limit})
            ids = [row[0] for row in cursor.fetchall()]
            cursor.close()
            if not ids:
                return 0
            tr, tm, e = t.transitions.c, t.timers.c, t.entities.c
            journal = sa.select(tr.id).where(tr.entity_id.in_(ids))
            db.run_statement(conn, t.steps.delete().where(t.steps.c.transition_id.in_(journal)))
            db.run_statement(conn, t.transitions.delete().where(tr.entity_id.in_(ids)))
            db.run_statement(conn, t.timers.delete().where(tm.entity_id.in_(ids)))
            # Finished stays finished; the test is the rule, should anything ever revive one.
            db.run_statement(conn, t.entities.delete().where(e.id.in_(ids), e.live.is_(False)))
        return len(ids)

    def heartbeat(self, owner: str, pid: int, host: str, now: float) -> None:
        """Record that engine ``owner`` is alive at ``now``."""
        with self._db.writing() as conn:
            self._db.run_many(
                conn,
                self._statements.upsert_owner,
                [{"owner": owner, "pid": pid, "host": host, "beat_at": now}],
            )

    def _apply(self, conn: Any, batch: Sequence[Write]) -> list[Exception | None]:
        results, passed = self._write_entities(conn, batch)
        if self._numbered is not None:
            self._append_numbered(conn, passed)
        else:
            self._append(conn, passed)
        return results

    def _append(self, conn: Any, passed: list[Write]) -> None:
        """The rest of the batch, its journal and outbox rows numbered here (SQLite)."""
        transitions, events = _journal_and_outbox(passed)
        first = self._allocate(conn, transitions=len(transitions), events=len(events))
        if transitions:
            self._insert_transitions(conn, transitions, first["transitions"])
        self._write_journal_changes(conn, passed)
        if events:
            seq = first["events"]
            self._db.run_many(
                conn,
                self._statements.insert_event,
                (event_values(e, seq + i) for i, e in enumerate(events)),
            )

    def _append_numbered(self, conn: Any, passed: list[Write]) -> None:
        """The rest of the batch (PostgreSQL): the journal numbered by a sequence, the
        outbox's events written unnumbered, no counter locked (see numbering).
        """
        db, numbered = self._db, self._numbered
        assert numbered is not None
        transitions, events = _journal_and_outbox(passed)
        if transitions:
            db.run_many(conn, numbered.insert_transition, map(transition_values, transitions))
        self._write_journal_changes(conn, passed)
        if events:
            # Not notified here: a NOTIFY takes a lock that PostgreSQL holds to the end
            # of the commit, fsync included, as the counters' did. The sequencer that
            # numbers these events notifies (see sequencer).
            db.run_many(conn, numbered.insert_pending, (event_values(e, 0) for e in events))

    def _write_journal_changes(self, conn: Any, passed: list[Write]) -> None:
        """The journal's updates, the steps and the timers of the units that passed."""
        db, s = self._db, self._statements
        updates = [tr for unit in passed for tr in unit.transition_updates]
        if updates:
            db.run_many(conn, s.update_transition, [transition_changes(tr) for tr in updates])
        step_rows = [step_values(step) for unit in passed for step in unit.steps]
        if step_rows:
            db.run_many(conn, s.upsert_step, step_rows)
        self._write_timers(conn, passed)

    # -- entities ----------------------------------------------------------------------------

    def _write_entities(
        self, conn: Any, batch: Sequence[Write]
    ) -> tuple[list[Exception | None], list[Write]]:
        """Write each unit's entity; return each unit's result, and the units that passed.

        A unit whose entity is not at its expected version fails with a
        VersionConflict, and nothing else of it is written.
        """
        results: list[Exception | None] = []
        passed: list[Write] = []
        new_entities: list[EntityRow] = []
        self._lock_entities(conn, batch)
        checked = self._update_all(conn, batch)
        for unit in batch:
            row = unit.entity
            if checked and row is not None and unit.expect_version is not None:
                pass  # updated, every version matched, by _update_all
            elif row is not None and unit.expect_version is not None:
                if any(r.id == row.id for r in new_entities):
                    # Created earlier in this batch: insert it before checking its version.
                    self._insert_entities(conn, new_entities)
                    new_entities = []
                if not self._update_entity(conn, unit):
                    results.append(VersionConflict(row.id, unit.expect_version))
                    continue
            elif row is not None:
                new_entities.append(row)
            results.append(None)
            passed.append(unit)
        if new_entities:
            self._insert_entities(conn, new_entities)
        return results, passed

    def _lock_entities(self, conn: Any, batch: Sequence[Write]) -> None:
        """On PostgreSQL, lock the rows the batch updates, in id order (see _LOCK_ENTITIES)."""
        if self._db.dialect != "postgresql":
            return  # SQLite: one writer at a time already
        ids = {u.entity.id for u in batch if u.entity is not None and u.expect_version is not None}
        if len(ids) > 1:
            self._db.run(conn, _LOCK_ENTITIES, {"ids": sorted(ids)}).close()

    def _update_entity(self, conn: Any, unit: Write) -> bool:
        """Write the unit's entity if it is stored at the version expected; say whether it was."""
        row = unit.entity
        assert row is not None
        s, keys = self._statements, unit.keys_changed
        done = self._db.run(
            conn,
            s.update_entity if keys else s.update_entity_values,
            {"b_id": row.id, "b_expect": unit.expect_version, **entity_changes(row, keys=keys)},
        )
        changed = self._db.counted(conn, done)
        done.close()
        return changed == 1

    def _update_all(self, conn: Any, batch: Sequence[Write]) -> bool:
        """Try every version-checked entity update of the batch in one statement.

        True if each matched its version (the common case: no race). Else it
        undoes them (to a savepoint) and the caller checks unit by unit, so
        that only the losers are skipped. Only on SQLite, whose driver counts
        the rows of an executemany; only when no entity is created or
        updated twice in the batch, where order would matter.
        """
        units = [
            (u.entity, u.expect_version)
            for u in batch
            if u.entity is not None and u.expect_version is not None
        ]
        if self._db.dialect != "sqlite" or len(units) < 2:
            return False
        ids = {row.id for row, _ in units}
        created = {u.entity.id for u in batch if u.entity is not None and u.expect_version is None}
        if len(ids) != len(units) or created & ids:
            return False
        # One statement for all: the narrow one only if no unit renames or finishes.
        keys = any(u.keys_changed for u in batch if u.entity is not None)
        rows = [
            {"b_id": row.id, "b_expect": expect, **entity_changes(row, keys=keys)}
            for row, expect in units
        ]
        update = self._statements.update_entity if keys else self._statements.update_entity_values
        self._db.run_sql(conn, "SAVEPOINT chartd_updates")
        matched = self._db.run_many(conn, update, rows) == len(units)
        if not matched:
            self._db.run_sql(conn, "ROLLBACK TO SAVEPOINT chartd_updates")
        self._db.run_sql(conn, "RELEASE SAVEPOINT chartd_updates")
        return matched

    def _insert_entities(self, conn: Any, rows: list[EntityRow]) -> None:
        first = self._allocate(conn, entities=len(rows))["entities"]
        self._db.run_many(
            conn,
            self._statements.insert_entity,
            (entity_values(r, first + i) for i, r in enumerate(rows)),
        )

    # -- the journal and timers ------------------------------------------------------------

    def _insert_transitions(self, conn: Any, transitions: list[TransitionRow], first: int) -> None:
        """Append ``transitions`` to the journal, numbered from ``first``."""
        rows = [transition_values(tr) for tr in transitions]
        for i, values in enumerate(rows):
            values["seq"] = first + i
        self._db.run_many(conn, self._statements.insert_transition, rows)

    def _write_timers(self, conn: Any, passed: list[Write]) -> None:
        # Units apply in batch order: a unit's cancel_timers also cancels the timers
        # that earlier units of the batch set, and never those it or later ones set.
        s = self._statements
        upsert = s.upsert_timer
        timer_rows: list[dict[str, Any]] = []
        for unit in passed:
            if unit.cancel_timers is not None:
                if timer_rows:
                    self._db.run_many(conn, upsert, timer_rows)
                    timer_rows = []
                entity_id, names = unit.cancel_timers
                if names is None:
                    self._db.run(conn, s.cancel_timers, {"b_entity": entity_id}).close()
                else:
                    rows = [{"b_entity": entity_id, "b_event": n} for n in sorted(names)]
                    self._db.run_many(conn, s.cancel_timer_event, rows)
            timer_rows.extend(timer_values(tm) for tm in unit.timers)
        if timer_rows:
            self._db.run_many(conn, upsert, timer_rows)

    def _allocate(self, conn: Any, **counts: int) -> dict[str, int]:
        """Reserve consecutive numbers of each named sequence; return the first of each."""
        first: dict[str, int] = {}
        for cursor in self._reserve(conn, self._statements.allocators, **counts):
            for name, value in cursor.fetchall():
                first[name] = int(value) - counts[name] + 1
            cursor.close()
        return first

    def _reserve(self, conn: Any, allocators: dict[int, Prepared], **counts: int) -> list[Any]:
        """Reserve consecutive numbers of each named sequence; the cursors that say which.

        ``allocators`` reserve numbers of one or of two sequences, by that width.

        One atomic upsert: an UPDATE-then-INSERT lets two first writers on a
        fresh PostgreSQL database both find no row and both insert.
        """
        wanted = {name: n for name, n in counts.items() if n}
        names = sorted(wanted)  # a fixed order, so two writers never lock in turn
        cursors = []
        for i in range(0, len(names), 2):
            chunk = names[i : i + 2]
            params: dict[str, Any] = {}
            for j, name in enumerate(chunk):
                params[f"name{j}"], params[f"n{j}"] = name, wanted[name]
            cursors.append(self._db.run(conn, allocators[len(chunk)], params))
        return cursors


def _journal_and_outbox(passed: list[Write]) -> tuple[list[TransitionRow], list[EventRow]]:
    """The new journal entries and outbox events of the units that passed, in order."""
    return (
        [tr for unit in passed for tr in unit.transitions],
        [e for unit in passed for e in unit.events],
    )


def _conflict(exc: sa.exc.IntegrityError) -> Conflict:
    return Conflict(f"the write breaks a uniqueness rule of the journal: {exc.orig or exc}")
