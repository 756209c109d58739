"""A batch committed to PostgreSQL in one flight: one round trip, COMMIT included.

The usual batch (fires: each unit a version-checked update of its entity,
with its journal entry and outbox event) is sent as BEGIN, the updates, the
journal and outbox rows (:mod:`engine.store.numbering`) and the COMMIT, in
one pipeline: one round trip. Each update checks its version on the
server: ``WITH u AS (UPDATE ... WHERE id = .. AND version = .. RETURNING 1)
SELECT 1 / count(*) FROM u`` divides by zero when the version does not
match, which aborts the transaction: the server skips the rest, the
COMMIT included, and a ROLLBACK ends it (a round trip more, on the rare
path: a COMMIT after a sync of its own would end it in the same flight,
but the server answers each sync at once, so the client was woken while
its transaction still held the locks of a commit, and on two shared cores a
woken client could take the core of the server that held them). The unit whose
check failed gets its VersionConflict and the others are applied again
without it, as the careful way (each unit's update waited for, losers
skipped: :class:`engine.store.writes.JournalWrites`) would have done.

A flight lost with its connection may have committed or not: its COMMIT
went out with the rest. The batch is then settled on a new connection, in
a transaction that first locks the batch's entities: the lost transaction,
should the server still be running it, updated them first and holds their
locks to its end, so once they are held its journal entry is there or it
will never be. There: the batch committed. Not there: it is applied in
that transaction (the lost one, if it ever gets the locks, fails its
version checks). Only batches with an entity to lock and a journal entry to
look for fly this way; the others go the careful way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from engine.ports import Write
from engine.store.rows import entity_changes
from engine.store.statements import Prepared, WriteStatements
from engine.store.wire import Queue

__all__ = ["FlightStatements", "Plan", "plan"]


@dataclass(frozen=True, slots=True)
class FlightStatements:
    """The statements of a flight beside the store's own (PostgreSQL)."""

    update_entity: Prepared
    update_entity_values: Prepared
    begin: Prepared
    commit: Prepared
    journaled: Prepared
    """Whether a journal entry (``id``) is recorded: a lost flight's, after it."""

    @classmethod
    def prepare(cls, writes: WriteStatements) -> FlightStatements:
        """The checked updates made from ``writes``' updates of an entity."""

        def checked(update: Prepared) -> Prepared:
            return Prepared(
                f"WITH checked AS ({update.sql} RETURNING 1) SELECT 1 / count(*) FROM checked",
                update.names,
            )

        return cls(
            update_entity=checked(writes.update_entity),
            update_entity_values=checked(writes.update_entity_values),
            begin=Prepared("BEGIN", None),
            commit=Prepared("COMMIT", None),
            journaled=Prepared("SELECT 1 FROM transitions WHERE id = %(id)s", None),
        )


@dataclass(slots=True)
class Plan:
    """A batch's flight: its queue, where its version checks are, what settles it."""

    queue: Queue
    checks: dict[int, int]
    """The version-checked updates: their places in the queue -> their units' in the batch."""
    locks: list[str]
    """The ids of the entities it updates, in the order it locks them."""
    marker: str
    """The id of one of its new journal entries: there once it committed."""


def plan(statements: FlightStatements, batch: Sequence[Write]) -> Plan | None:
    """The start of ``batch``'s flight (BEGIN, its updates), or None if it cannot fly.

    It flies if every unit's entity, if any, is version-checked (none is
    created), no entity is written twice, and there is an entity to lock and
    a journal entry to look for (see the module's doc).
    """
    units: list[tuple[int, Write]] = []
    marker = None
    for at, unit in enumerate(batch):
        if unit.entity is not None:
            if unit.expect_version is None:
                return None
            units.append((at, unit))
        if marker is None and unit.transitions:
            marker = unit.transitions[0].id
    if marker is None or not units:
        return None
    # In id order: two batches that share entities lock them in one order, never in turn.
    units.sort(key=lambda u: u[1].entity.id)  # type: ignore[union-attr]
    locks = [u.entity.id for _, u in units]  # type: ignore[union-attr]
    if len(set(locks)) != len(locks):
        return None
    queue = Queue()
    queue.execute(statements.begin.sql, {})
    checks = {}
    for at, unit in units:
        checks[len(queue.items)] = at
        row = unit.entity
        assert row is not None
        keys = unit.keys_changed
        update = statements.update_entity if keys else statements.update_entity_values
        params = {"b_id": row.id, "b_expect": unit.expect_version}
        params.update(entity_changes(row, keys=keys))
        queue.execute(update.sql, params)
    return Plan(queue, checks, locks, marker)
