"""The checks at rest, between actions: the stored entities, the journal, the outbox.

Each entity's stored snapshot is the one the harness expects and rests in
no transient state; its journal only grows, every entry finished, versions
chained; journal sequence numbers increase (and on a database of the kit's
own are 1..N with no gap); the outbox only grows, without gaps, with one
``transition`` or ``transition.failed`` event per finished transition and
exactly the events the steps of committed transitions emitted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

import engine
from engine.core import Chart, Snapshot
from engine.runtime import Entity, TransitionRecord
from engine.store import SqlStore, schema
from engine.testing.expectations import FINISHED

__all__ = ["check_entity", "check_entity_events", "check_journal_sequence", "check_outbox"]


def check_entity(
    chart: Chart,
    stored: Entity,
    expected: Snapshot,
    records: Sequence[TransitionRecord],
    seen: Sequence[TransitionRecord],
) -> None:
    """``stored`` is as expected, and its journal ``records`` extend the ``seen`` ones, chained."""
    assert stored.snapshot == expected, (
        f"entity {stored.name} is stored as {stored.snapshot}, expected {expected}"
    )
    assert not any(chart.state(s).transient for s in stored.configuration), (
        f"entity {stored.name} rests in a transient state: {stored.configuration}"
    )
    assert records[: len(seen)] == seen, (
        f"the journal of {stored.name} changed: an entry seen before is different"
    )
    version = 0
    last_seq = 0
    for r in records:
        assert r.status in FINISHED, f"{stored.name}: {r.event!r} is left {r.status}"
        assert r.version_from == version and r.version_to is not None, (
            f"{stored.name}: {r.event!r} goes from version {r.version_from} to "
            f"{r.version_to}, the one before ended at {version}"
        )
        assert r.version_to > version
        assert r.seq > last_seq, f"{stored.name}: journal sequence {r.seq} after {last_seq}"
        version, last_seq = r.version_to, r.seq
    assert stored.version == version, (
        f"{stored.name} is at version {stored.version}, its journal ends at {version}"
    )


def check_journal_sequence(sql: SqlStore) -> None:
    """The journal's sequence numbers in ``sql`` are 1..N, with no gap and no repeat."""
    seq = schema.transitions.c.seq
    # 1..N is: as many distinct numbers as entries, from 1 to the number of entries.
    query = sa.select(
        sa.func.count(), sa.func.count(sa.distinct(seq)), sa.func.min(seq), sa.func.max(seq)
    )
    with sql.engine.connect() as conn:
        count, distinct, low, high = conn.execute(query).one()
    count, distinct, high = int(count), int(distinct), int(high or 0)
    assert count == distinct == high and low in (1, None), (
        f"journal sequence numbers are not 1..N: {count} entries, {distinct} distinct "
        f"numbers from {low} to {high}"
    )


def check_outbox(events: Sequence[engine.Event], first: int, seen: Sequence[engine.Event]) -> None:
    """The outbox after event ``first`` is ``events``: no gap, and the ``seen`` ones unchanged."""
    assert [e.seq for e in events] == list(range(first + 1, first + 1 + len(events))), (
        f"the outbox sequence has gaps: {[e.seq for e in events]}"
    )
    assert events[: len(seen)] == seen, "an outbox event seen before changed"


def check_entity_events(
    entity_id: str,
    name: str,
    events: Sequence[engine.Event],
    journal: Sequence[TransitionRecord],
    emitted: Mapping[str, list[tuple[str, dict[str, Any]]]],
) -> None:
    """The entity's ``events`` match its ``journal`` and what its steps ``emitted``."""
    mine = [e for e in events if e.entity_id == entity_id]
    assert mine and mine[0].type == "create", f"{entity_id[:12]}: no create event first"
    assert [e.type for e in mine].count("create") == 1
    outcomes = [
        (e.transition_id, e.type) for e in mine if e.type in ("transition", "transition.failed")
    ]
    expected = [
        (r.id, "transition" if r.status == "committed" else "transition.failed") for r in journal
    ]
    assert outcomes == expected, (
        f"{name}: outbox outcomes {outcomes} do not match the journal {expected}"
    )
    committed = {r.id for r in journal if r.status == "committed"}
    steps: dict[str | None, list[tuple[str, dict[str, Any]]]] = {}
    for e in mine:
        if e.type not in ("create", "transition", "transition.failed"):
            assert e.transition_id in committed, (
                f"{name}: event {e.type!r} of a transition that did not commit"
            )
            steps.setdefault(e.transition_id, []).append((e.type, dict(e.attributes)))
    for tid in committed:
        # Exactly what its steps emitted, once each, in order: also when recovery
        # committed it from the journal after a crash.
        made = emitted.get(tid, [])
        assert steps.get(tid, []) == made, (
            f"{name}: the outbox holds the step events {steps.get(tid, [])} of transition "
            f"{tid[:12]}, its steps emitted {made}"
        )
