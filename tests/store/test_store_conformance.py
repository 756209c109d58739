"""The Store conformance suite: every backend keeps the same promises.

Each test runs on an in-memory SQLite database, a SQLite file and PostgreSQL
(see ``store_url`` in tests/conftest.py), through the public methods of the
store only. The promises are those of :class:`engine.ports.Store`: a unit
of a batch is all-or-nothing and version-checked, a batch is one commit,
sequence numbers are gap-free, and a failing database surfaces as a chartd
error, never as a driver's exception.
"""

from __future__ import annotations

import dataclasses
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from engine.errors import Conflict, InvalidParameter, Unavailable
from engine.ports import (
    Census,
    EntityRow,
    EventRow,
    SpanRef,
    StepRow,
    Store,
    TimerRow,
    TransitionRow,
    VersionConflict,
    Write,
)
from engine.store import SqlStore, open_store

# -- records built by hand -----------------------------------------------------------


def entity(
    id: str,
    *,
    chart: str = "container",
    name: str | None = None,
    configuration: tuple[str, ...] = ("created",),
    version: int = 1,
    data: dict[str, Any] | None = None,
    history: dict[str, tuple[str, ...]] | None = None,
) -> EntityRow:
    return EntityRow(
        id=id,
        chart=chart,
        name=name if name is not None else f"/{id}",
        configuration=configuration,
        data=data if data is not None else {"id": id},
        history=history if history is not None else {},
        version=version,
        created_at=100.0,
        updated_at=100.0 + version,
    )


def moved(row: EntityRow, *configuration: str, **data: Any) -> EntityRow:
    """``row`` one version later, in ``configuration``, with ``data`` merged in."""
    return dataclasses.replace(
        row,
        configuration=configuration or row.configuration,
        data={**row.data, **data},
        version=row.version + 1,
        updated_at=row.updated_at + 1,
    )


def transition(
    id: str,
    entity_id: str,
    *,
    event: str = "start",
    status: str = "running",
    key: str | None = None,
) -> TransitionRow:
    return TransitionRow(
        id=id,
        entity_id=entity_id,
        event=event,
        params={"detach": True},
        status=status,
        version_from=1,
        version_to=None,
        plan={"steps": ["mount", "start"], "to": ["running", "running.active"]},
        owner="engine-a",
        idempotency_key=key,
        started_at=200.0,
    )


def step(transition_id: str, index: int, status: str = "pending", **fields: Any) -> StepRow:
    return StepRow(transition_id, index, f"step{index}", status, **fields)


def event(entity_id: str, type: str, transition_id: str | None = None) -> EventRow:
    return EventRow(
        entity_id=entity_id,
        entity_name=f"/{entity_id}",
        chart="container",
        type=type,
        attributes={"name": f"/{entity_id}", "exitCode": "0"},
        transition_id=transition_id,
        created_at=300.0,
    )


def timer(id: str, entity_id: str, due_at: float, event: str = "kill", **fields: Any) -> TimerRow:
    return TimerRow(id, entity_id, event, {"signal": "SIGKILL"}, due_at, None, **fields)


def stored(row: Any, like: Any) -> Any:
    """``row`` with the seq the store gave ``like``: what a read should return."""
    return dataclasses.replace(row, seq=like.seq)


def create(store: Store, *rows: EntityRow) -> list[EntityRow]:
    assert store.apply([Write(entity=r) for r in rows]) == [None] * len(rows)
    return [store.entity(r.id) for r in rows]  # type: ignore[misc]


# -- the port ------------------------------------------------------------------------


def test_sql_store_is_a_store(store: SqlStore) -> None:
    assert isinstance(store, Store)


# -- entities ------------------------------------------------------------------------


def test_a_new_entity_reads_back_by_id_and_by_name(store: SqlStore) -> None:
    row = entity("4f1c", name="/web")
    assert store.apply([Write(entity=row, expect_version=None)]) == [None]

    got = store.entity("4f1c")
    assert got == stored(row, got)
    assert got.seq >= 1
    assert store.entity("/web") == got
    assert store.entity("/web", chart="container") == got
    assert store.entity("4f1c", chart="container") == got
    assert store.entity("/web", chart="volume") is None
    assert store.entity("4f1c", chart="volume") is None
    assert store.entity("missing") is None


def test_a_lookup_by_name_alone_never_finds_an_id(store: SqlStore) -> None:
    web, named = create(store, entity("4f1c", name="/web"), entity("a2", name="4f1c"))
    assert store.entity("4f1c") == web  # the id first
    assert store.entity("4f1c", by_id=False) == named
    assert store.entity("4f1c", chart="container", by_id=False) == named
    assert store.entity("a2", by_id=False) is None
    assert store.entity("/web", by_id=False) == web
    assert store.entity("/web", chart="volume", by_id=False) is None


def test_a_name_used_in_two_charts_needs_the_chart(store: SqlStore) -> None:
    web, vol = create(
        store, entity("c1", name="shared"), entity("v1", name="shared", chart="volume")
    )
    assert store.entity("shared", chart="container") == web
    assert store.entity("shared", chart="volume") == vol
    assert store.entity("shared") is None  # ambiguous: names neither


def test_json_fields_round_trip(store: SqlStore) -> None:
    data = {
        "name": "/wéb-☃",
        "labels": {"com.example.tier": "front", "empty": ""},
        "exit": None,
        "restarts": 3,
        "ratio": 0.25,
        "paused": False,
        "ports": [80, 443, {"proto": "udp"}],
        "quote": 'a "quoted" \\ back\nslash',
    }
    history = {"running": ("running.paused",), "root": ("running", "running.active")}
    row = entity("e1", configuration=("running", "running.paused"), data=data, history=history)
    tr = dataclasses.replace(
        transition("t1", "e1", key="k-☃"),
        params={"signal": "SIGTERM", "timeout": 10, "nested": {"list": [1, None, "x"]}},
        compensation_errors=("undo mount: busy", "undo net: gone"),
    )
    st = step("t1", 0, "done", payload={"pid": 4242, "argv": ["sh", "-c", "exit 0"]})
    st_effects = step("t1", 1, "done", payload=None, effects={"data": {"pid": 1}, "events": []})
    ev = dataclasses.replace(event("e1", "start", "t1"), attributes={"é": "☃", "n": [1, 2]})
    tm = dataclasses.replace(timer("tm1", "e1", 50.0), params={"signal": 9, "why": None})
    unit = Write(entity=row, transitions=[tr], steps=[st, st_effects], events=[ev], timers=[tm])
    assert store.apply([unit]) == [None]

    got = store.entity("e1")
    assert got == stored(row, got)
    assert got.configuration == ("running", "running.paused")
    assert got.history == history
    [journal] = store.transitions("e1")
    assert journal == dataclasses.replace(tr, seq=journal.seq, steps=(st, st_effects))
    assert store.events() == [stored(ev, store.events()[0])]
    assert store.timers("e1") == [tm]


def test_entities_are_listed_in_creation_order_a_page_at_a_time(store: SqlStore) -> None:
    create(store, entity("a"))
    create(store, entity("b"), entity("c"))
    create(store, entity("d"))
    create(store, entity("e"))

    every = store.entities()
    assert [r.id for r in every] == ["a", "b", "c", "d", "e"]
    seqs = [r.seq for r in every]
    assert seqs == sorted(set(seqs))

    first = store.entities(limit=2)
    assert [r.id for r in first] == ["a", "b"]
    second = store.entities(after=first[-1].seq, limit=2)
    assert [r.id for r in second] == ["c", "d"]
    third = store.entities(after=second[-1].seq, limit=2)
    assert [r.id for r in third] == ["e"]
    assert store.entities(after=third[-1].seq) == []


def test_entities_filter_by_chart_and_by_any_active_state(store: SqlStore) -> None:
    create(
        store,
        entity("paused", configuration=("running", "running.paused")),
        entity("active", configuration=("running", "running.active")),
        entity("run", configuration=("run",)),
        entity("created", configuration=("created",)),
        entity("under", configuration=("a_b",)),
        entity("axb", configuration=("axb",)),
        entity("pct", configuration=("100%",)),
        entity("vol", chart="volume", configuration=("running",)),
    )

    def ids(**filters: Any) -> list[str]:
        return [r.id for r in store.entities(**filters)]

    # An ancestor state matches every entity inside it.
    assert ids(state="running") == ["paused", "active", "vol"]
    assert ids(state="running", chart="container") == ["paused", "active"]
    assert ids(state="running.paused") == ["paused"]
    # Whole state paths only: a prefix, a leaf's bare name or a suffix match nothing.
    assert ids(state="run") == ["run"]
    assert ids(state="runn") == []
    assert ids(state="paused") == []
    assert ids(state="running.") == []
    # LIKE wildcards in a state name are literal.
    assert ids(state="a_b") == ["under"]
    assert ids(state="100%") == ["pct"]
    assert ids(state="%") == []
    assert ids(chart="volume") == ["vol"]
    assert ids(chart="nope") == []


def test_a_version_checked_update_replaces_the_snapshot(store: SqlStore) -> None:
    [row] = create(store, entity("e1", configuration=("created",)))
    new = moved(row, "running", "running.active", pid=42)
    assert store.apply([Write(entity=new, expect_version=1)]) == [None]

    got = store.entity("e1")
    assert got == new  # seq kept from creation
    assert got.version == 2
    assert [r.id for r in store.entities(state="running.active")] == ["e1"]
    assert store.entities(state="created") == []


def test_a_stale_unit_writes_nothing_and_the_rest_of_the_batch_commits(store: SqlStore) -> None:
    a, b = create(store, entity("a"), entity("b"))
    old = transition("tb0", "b", key="before")
    assert store.apply(
        [
            Write(
                transitions=[old],
                steps=[step("tb0", 0)],
                timers=[timer("tmb0", "b", 10.0)],
                events=[event("b", "create")],
            )
        ]
    ) == [None]
    b_journal = store.transitions("b")
    b_timers = store.timers("b")

    fresh = Write(
        entity=moved(a, "running"),
        expect_version=1,
        transitions=[transition("ta", "a")],
        steps=[step("ta", 0, "done")],
        events=[event("a", "start", "ta")],
        timers=[timer("tma", "a", 20.0)],
    )
    stale = Write(
        entity=moved(b, "running"),
        expect_version=7,
        transitions=[transition("tb", "b", key="after")],
        transition_updates=[dataclasses.replace(old, status="committed", version_to=2)],
        steps=[step("tb", 0, "done"), step("tb0", 0, "done")],
        events=[event("b", "start", "tb")],
        timers=[timer("tmb", "b", 5.0), timer("tmb0", "b", 10.0, status="fired")],
        cancel_timers=("b", None),
    )
    bare = Write(events=[event("a", "note")])
    results = store.apply([fresh, stale, bare])

    assert results[0] is None
    assert isinstance(results[1], VersionConflict)
    assert (results[1].entity_id, results[1].expected) == ("b", 7)
    assert results[2] is None
    # Nothing of the stale unit is there ...
    assert store.entity("b") == b
    assert store.transitions("b") == b_journal
    assert store.transition("b", "after") is None
    assert store.timers("b") == b_timers
    # ... and the others committed, with gap-free event seqs.
    assert store.entity("a").configuration == ("running",)  # type: ignore[union-attr]
    assert [t.id for t in store.transitions("a")] == ["ta"]
    assert [tm.id for tm in store.timers("a")] == ["tma"]
    assert [(e.seq, e.type) for e in store.events()] == [(1, "create"), (2, "start"), (3, "note")]


def test_stale_units_among_fires_of_one_batch_each_conflict_and_the_rest_commit(
    store: SqlStore,
) -> None:
    # A group commit of fires, each a version-checked move with its journal entry and
    # event (on PostgreSQL one flight: a failed check rolls it back, and the others
    # are applied again without the loser, then without the next).
    rows = create(store, *(entity(f"e{i}") for i in range(5)))
    stale = {1, 3}
    batch = [
        Write(
            entity=moved(row, "running"),
            expect_version=7 if i in stale else 1,
            transitions=[transition(f"t{i}", row.id)],
            events=[event(row.id, "start", f"t{i}")],
        )
        for i, row in enumerate(rows)
    ]
    results = store.apply(list(reversed(batch)))[::-1]
    for i, result in enumerate(results):
        if i in stale:
            assert isinstance(result, VersionConflict)
            assert (result.entity_id, result.expected) == (f"e{i}", 7)
        else:
            assert result is None
    for i, row in enumerate(rows):
        assert store.entity(row.id) == (row if i in stale else moved(row, "running"))
        assert [t.id for t in store.transitions(row.id)] == ([] if i in stale else [f"t{i}"])
    # Numbered in the order the units came (the batch was given last one first).
    assert [(e.seq, e.entity_id) for e in store.events()] == [(1, "e4"), (2, "e2"), (3, "e0")]


def test_two_units_from_the_same_version_in_one_batch_one_conflicts(store: SqlStore) -> None:
    [row] = create(store, entity("e1"))
    first = Write(entity=moved(row, "running"), expect_version=1, events=[event("e1", "start")])
    second = Write(entity=moved(row, "removing"), expect_version=1, events=[event("e1", "rm")])
    results = store.apply([first, second])
    assert results[0] is None
    assert isinstance(results[1], VersionConflict)
    assert store.entity("e1").configuration == ("running",)  # type: ignore[union-attr]
    assert [e.type for e in store.events()] == ["start"]


# A group commit is the units applied one after another, in batch order.


def test_an_entity_created_in_a_batch_can_be_moved_by_a_later_unit(store: SqlStore) -> None:
    row = entity("e1")
    one, two = moved(row, "running"), moved(moved(row, "running"), "paused")
    results = store.apply(
        [
            Write(entity=row, events=[event("e1", "create")]),
            Write(entity=one, expect_version=1, events=[event("e1", "start")]),
            Write(entity=two, expect_version=2, events=[event("e1", "pause")]),
        ]
    )
    assert results == [None, None, None]
    got = store.entity("e1")
    assert got == stored(two, got)
    assert [e.type for e in store.events()] == ["create", "start", "pause"]


def test_a_unit_cancels_the_timers_earlier_units_of_its_batch_set(store: SqlStore) -> None:
    create(store, entity("e1"))
    results = store.apply(
        [
            Write(timers=[timer("stop", "e1", 10.0)]),
            Write(cancel_timers=("e1", frozenset({"kill"})), timers=[timer("next", "e1", 20.0)]),
            Write(timers=[timer("late", "e1", 30.0)]),
        ]
    )
    assert results == [None, None, None]
    assert {tm.id: tm.status for tm in store.timers("e1")} == {
        "stop": "cancelled",
        "next": "pending",
        "late": "pending",
    }


# -- the journal ---------------------------------------------------------------------


def test_transitions_are_journaled_with_their_steps_in_index_order(store: SqlStore) -> None:
    create(store, entity("e1"), entity("e2"))
    tr = transition("t1", "e1")
    # Steps given out of order come back by index.
    assert store.apply([Write(transitions=[tr], steps=[step("t1", 1), step("t1", 0)])]) == [None]
    [got] = store.transitions("e1")
    assert got == dataclasses.replace(tr, seq=got.seq, steps=(step("t1", 0), step("t1", 1)))

    # A step is replaced by (transition, index), and a transition_update sets the outcome.
    done = step("t1", 0, "done", payload={"mount": "/x"}, started_at=1.0, finished_at=2.0)
    failed = step("t1", 1, "failed", error="boom", started_at=2.0, finished_at=3.0)
    outcome = dataclasses.replace(
        tr,
        status="failed",
        version_to=None,
        error_category="system",
        error_message="step1: boom",
        compensation_errors=("undo step0: busy",),
        finished_at=4.0,
    )
    assert store.apply([Write(steps=[done, failed], transition_updates=[outcome])]) == [None]
    [got] = store.transitions("e1")
    assert got == dataclasses.replace(outcome, seq=got.seq, steps=(done, failed))

    undone = dataclasses.replace(done, status="compensated", compensated_at=5.0)
    assert store.apply([Write(steps=[undone])]) == [None]
    assert store.transitions("e1")[0].steps == (undone, failed)

    # The journal is per entity, oldest first, a batch in its order.
    assert store.apply([Write(transitions=[transition("t2", "e1")])]) == [None]
    assert store.apply([Write(transitions=[transition("t3", "e2"), transition("t4", "e1")])]) == [
        None
    ]
    journal = store.transitions("e1")
    assert [t.id for t in journal] == ["t1", "t2", "t4"]
    assert [t.seq for t in journal] == sorted({t.seq for t in journal})
    assert [t.id for t in store.transitions("e2")] == ["t3"]
    assert store.transitions("missing") == []


def test_a_transition_update_keeps_what_the_fire_was(store: SqlStore) -> None:
    create(store, entity("e1"))
    tr = transition("t1", "e1")
    assert store.apply([Write(transitions=[tr])]) == [None]
    rewritten = dataclasses.replace(
        tr, event="kill", params={"other": 1}, owner="engine-b", status="committed", version_to=2
    )
    assert store.apply([Write(transition_updates=[rewritten])]) == [None]
    [got] = store.transitions("e1")
    assert (got.status, got.version_to) == ("committed", 2)
    assert (got.event, got.params) == (tr.event, tr.params)
    # The owner moves: an engine that recovers a dead engine's transition claims it.
    assert got.owner == "engine-b"


def test_a_transition_keeps_its_trace_and_its_cause_and_reads_back_by_id(
    store: SqlStore,
) -> None:
    create(store, entity("e1"))
    span = SpanRef("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
    first = dataclasses.replace(transition("t1", "e1"), trace=span)
    caused = dataclasses.replace(transition("t2", "e1"), caused_by="t1")
    steps = [step("t1", 1), step("t1", 0)]
    assert store.apply([Write(transitions=[first, caused], steps=steps)]) == [None]
    got = store.transition_by_id("t1")
    assert got == dataclasses.replace(first, seq=got.seq, steps=(step("t1", 0), step("t1", 1)))
    assert (got.trace, got.caused_by) == (span, None)
    later = store.transition_by_id("t2")
    assert later is not None and (later.trace, later.caused_by) == (None, "t1")
    # An update (the outcome) leaves both as the fire wrote them.
    assert store.apply([Write(transition_updates=[dataclasses.replace(first, trace=None)])]) == [
        None
    ]
    assert store.transitions("e1")[0].trace == span
    assert store.transition_by_id("missing") is None


def test_a_census_counts_live_entities_by_configuration_and_pending_timers(
    store: SqlStore,
) -> None:
    assert store.census() == Census({}, 0)
    running = ("running", "running.active")
    rows = [
        entity("e1", configuration=running),
        entity("e2", configuration=running),
        entity("e3", chart="job", configuration=("idle",)),
        dataclasses.replace(entity("e4", configuration=("removed",)), live=False),
    ]
    create(store, *rows)
    timers = [timer("k1", "e1", 10.0), timer("k2", "e2", 20.0, status="fired")]
    assert store.apply([Write(timers=timers)]) == [None]
    assert store.census() == Census({("container", running): 2, ("job", ("idle",)): 1}, 1)


def test_an_idempotency_key_finds_its_transition(store: SqlStore) -> None:
    create(store, entity("e1"), entity("e2"))
    tr = transition("t1", "e1", key="req-1")
    assert store.apply([Write(transitions=[tr], steps=[step("t1", 0)])]) == [None]

    got = store.transition("e1", "req-1")
    assert got == dataclasses.replace(tr, seq=got.seq, steps=(step("t1", 0),))  # type: ignore[union-attr]
    assert store.transition("e1", "req-2") is None
    assert store.transition("e2", "req-1") is None
    # The same key on another entity is another request.
    assert store.apply([Write(transitions=[transition("t2", "e2", key="req-1")])]) == [None]
    assert store.transition("e2", "req-1").id == "t2"  # type: ignore[union-attr]


def test_a_key_used_twice_on_one_entity_is_refused_and_writes_nothing(store: SqlStore) -> None:
    create(store, entity("e1"))
    assert store.apply([Write(transitions=[transition("t1", "e1", key="req-1")])]) == [None]
    again = Write(transitions=[transition("t2", "e1", key="req-1")], events=[event("e1", "x")])
    with pytest.raises(Conflict, match="uniqueness"):
        store.apply([again])
    assert [t.id for t in store.transitions("e1")] == ["t1"]
    assert store.events() == []


def test_unfinished_lists_running_and_compensating_transitions(store: SqlStore) -> None:
    create(store, entity("e1"), entity("e2"))
    statuses = ["running", "committed", "compensating", "failed", "compensation_failed"]
    rows = [transition(f"t{i}", f"e{1 + i % 2}", status=s) for i, s in enumerate(statuses)]
    assert store.apply(
        [Write(transitions=rows, steps=[step("t2", 1, "compensating"), step("t2", 0, "done")])]
    ) == [None]

    unfinished = store.unfinished()
    assert [(t.id, t.status) for t in unfinished] == [("t0", "running"), ("t2", "compensating")]
    assert [s.index for s in unfinished[1].steps] == [0, 1]

    done = dataclasses.replace(rows[0], status="committed", version_to=2, finished_at=9.0)
    assert store.apply([Write(transition_updates=[done])]) == [None]
    assert [t.id for t in store.unfinished()] == ["t2"]


# -- the outbox ----------------------------------------------------------------------


def test_event_seqs_are_gap_free_in_batch_order(store: SqlStore) -> None:
    a, b = create(store, entity("a"), entity("b"))
    assert store.apply([Write(events=[event("a", "create"), event("b", "create")])]) == [None]
    assert store.apply([Write(entity=moved(a), expect_version=1)]) == [None]  # no events
    stale = Write(entity=moved(b), expect_version=5, events=[event("b", "lost")])
    results = store.apply(
        [
            Write(events=[event("a", "start"), event("a", "die")]),
            stale,
            Write(events=[event("b", "start")]),
        ]
    )
    assert [r is None for r in results] == [True, False, True]
    assert store.apply([Write(events=[event("a", "destroy")])]) == [None]

    every = store.events()
    assert [e.seq for e in every] == [1, 2, 3, 4, 5, 6]
    assert [(e.entity_id, e.type) for e in every] == [
        ("a", "create"),
        ("b", "create"),
        ("a", "start"),
        ("a", "die"),
        ("b", "start"),
        ("a", "destroy"),
    ]
    assert [e.seq for e in store.events(after=2, limit=2)] == [3, 4]
    assert [e.seq for e in store.events(after=4)] == [5, 6]
    assert store.events(after=6) == []
    assert store.events(limit=1) == every[:1]


def test_a_taken_name_fails_only_its_unit(store: SqlStore) -> None:
    create(store, entity("web", name="/web"))
    results = store.apply(
        [
            Write(entity=entity("db", name="/db"), events=[event("db", "create")]),
            Write(
                entity=entity("web2", name="/web"),
                transitions=[transition("t", "web2")],
                events=[event("web2", "create")],
            ),
            Write(entity=entity("vol", name="/web", chart="volume"), events=[event("vol", "c")]),
            Write(entity=entity("db2", name="/db"), events=[event("db2", "create")]),
        ]
    )
    assert results[0] is None
    assert isinstance(results[1], Conflict)
    assert results[2] is None
    assert isinstance(results[3], Conflict)  # the name the first unit just took
    assert store.entity("web2") is None
    assert store.entity("db2") is None
    assert store.transitions("web2") == []
    assert [r.id for r in store.entities()] == ["web", "db", "vol"]
    assert [(e.seq, e.entity_id) for e in store.events()] == [(1, "db"), (2, "vol")]


def test_a_taken_name_alone_is_refused_and_writes_nothing(store: SqlStore) -> None:
    create(store, entity("web", name="/web"))
    with pytest.raises(Conflict, match="uniqueness"):
        store.apply([Write(entity=entity("web2", name="/web"), events=[event("web2", "c")])])
    assert store.entity("web2") is None
    assert store.events() == []
    create(store, entity("web3", name="/web3"))  # and the store still works


# -- timers --------------------------------------------------------------------------


def test_timers_come_due_earliest_first(store: SqlStore) -> None:
    create(store, entity("e1"), entity("e2"))
    assert store.next_timer() is None
    assert store.due_timers(1e12) == []
    late, early = timer("late", "e1", 30.0), timer("early", "e1", 10.0)
    mid = timer("mid", "e2", 20.0)
    assert store.apply([Write(timers=[late, early]), Write(timers=[mid])]) == [None, None]

    assert store.next_timer() == 10.0
    assert store.due_timers(9.9) == []
    assert store.due_timers(10.0) == [early]
    assert store.due_timers(25.0) == [early, mid]
    assert store.due_timers(1e12, limit=2) == [early, mid]
    assert store.timers("e1") == [early, late]
    assert store.timers("e2") == [mid]
    assert store.timers("missing") == []


def test_cancelling_timers_by_event_and_all(store: SqlStore) -> None:
    create(store, entity("e1"), entity("e2"))
    fired = timer("fired", "e1", 1.0, status="fired", fired_transition="t0")
    rows = [
        fired,
        timer("kill", "e1", 10.0, "kill"),
        timer("restart", "e1", 20.0, "restart"),
        timer("health", "e1", 30.0, "healthcheck"),
        timer("other", "e2", 15.0, "kill"),
    ]
    assert store.apply([Write(timers=rows)]) == [None]

    assert store.apply([Write(cancel_timers=("e1", frozenset({"kill", "restart"})))]) == [None]
    status = {tm.id: tm.status for tm in store.timers("e1") + store.timers("e2")}
    assert status == {
        "fired": "fired",
        "kill": "cancelled",
        "restart": "cancelled",
        "health": "pending",
        "other": "pending",
    }
    assert [tm.id for tm in store.due_timers(1e12)] == ["other", "health"]

    assert store.apply([Write(cancel_timers=("e1", None))]) == [None]
    assert {tm.id: tm.status for tm in store.timers("e1")} == {
        "fired": "fired",
        "kill": "cancelled",
        "restart": "cancelled",
        "health": "cancelled",
    }
    assert [tm.id for tm in store.due_timers(1e12)] == ["other"]
    assert store.next_timer() == 15.0


def test_a_unit_can_cancel_a_timer_and_set_its_successor(store: SqlStore) -> None:
    create(store, entity("e1"))
    assert store.apply([Write(timers=[timer("kill-1", "e1", 10.0)])]) == [None]
    assert store.apply(
        [Write(cancel_timers=("e1", frozenset({"kill"})), timers=[timer("kill-2", "e1", 20.0)])]
    ) == [None]
    assert {tm.id: tm.status for tm in store.timers("e1")} == {
        "kill-1": "cancelled",
        "kill-2": "pending",
    }


def test_a_timer_is_replaced_by_id_when_it_fires(store: SqlStore) -> None:
    create(store, entity("e1"))
    pending = timer("stop", "e1", 10.0)
    assert store.apply([Write(timers=[pending])]) == [None]
    fired = dataclasses.replace(pending, status="fired", fired_transition="t9", error="refused")
    assert store.apply([Write(timers=[fired])]) == [None]
    assert store.timers("e1") == [fired]
    assert store.due_timers(1e12) == []
    assert store.next_timer() is None


# -- owners --------------------------------------------------------------------------


def test_heartbeats_record_each_owner_s_last_beat(store: SqlStore) -> None:
    assert store.owners() == {}
    store.heartbeat("engine-a", 100, "host-1", 1.0)
    store.heartbeat("engine-b", 200, "host-2", 2.0)
    store.heartbeat("engine-a", 101, "host-1b", 3.0)
    assert store.owners() == {"engine-a": (101, "host-1b", 3.0), "engine-b": (200, "host-2", 2.0)}


# -- several writers -----------------------------------------------------------------


def test_a_shared_database_is_seen_by_every_store(shared_store_url: str) -> None:
    one, two = open_store(shared_store_url), open_store(shared_store_url)
    try:
        [row] = create(one, entity("e1"))
        assert two.entity("e1") == row
        assert two.apply([Write(entity=moved(row, "running"), expect_version=1)]) == [None]
        assert one.entity("e1").version == 2  # type: ignore[union-attr]
    finally:
        one.close()
        two.close()
    reopened = open_store(shared_store_url)  # a no-op migration keeps the data
    try:
        assert reopened.entity("e1").version == 2  # type: ignore[union-attr]
    finally:
        reopened.close()


def test_two_stores_racing_from_one_version_one_wins(shared_store_url: str) -> None:
    stores = [open_store(shared_store_url) for _ in range(2)]
    try:
        [row] = create(stores[0], entity("e1"))
        for round in range(3):
            base = stores[0].entity("e1")
            assert base is not None
            units = [
                Write(
                    entity=moved(base, f"s{i}", winner=i),
                    expect_version=base.version,
                    transitions=[transition(f"t{round}-{i}", "e1")],
                    events=[event("e1", f"by{i}")],
                )
                for i in range(2)
            ]
            results = race(
                [lambda s=s, u=u: s.apply([u]) for s, u in zip(stores, units, strict=True)]
            )
            outcomes = [r[0] for r in results]
            assert sorted(o is None for o in outcomes) == [False, True]
            winner = outcomes.index(None)
            assert isinstance(outcomes[1 - winner], VersionConflict)
            now = stores[1].entity("e1")
            assert now == dataclasses.replace(units[winner].entity, seq=row.seq)  # type: ignore[arg-type]
            assert stores[0].transitions("e1")[-1].id == f"t{round}-{winner}"
        assert [e.seq for e in stores[0].events()] == [1, 2, 3]
        assert len(stores[0].transitions("e1")) == 3
    finally:
        for s in stores:
            s.close()


def test_concurrent_writers_on_distinct_entities_all_commit(store: SqlStore) -> None:
    threads, fires = 8, 4

    def lifecycle(k: int) -> list[list[Exception | None]]:
        row = entity(f"e{k}")
        out = [store.apply([Write(entity=row, events=[event(row.id, "create")])])]
        for n in range(fires):
            new = moved(row, f"s{n}")
            out.append(
                store.apply(
                    [
                        Write(
                            entity=new,
                            expect_version=row.version,
                            transitions=[transition(f"t{k}-{n}", row.id)],
                            steps=[step(f"t{k}-{n}", 0, "done")],
                            events=[event(row.id, f"fire{n}")],
                        )
                    ]
                )
            )
            row = new
        return out

    results = race([lambda k=k: lifecycle(k) for k in range(threads)])
    assert all(r == [None] for per_thread in results for r in per_thread)

    every = store.events()
    assert [e.seq for e in every] == list(range(1, threads * (fires + 1) + 1))
    for k in range(threads):  # each entity's events in its own order
        mine = [e.type for e in every if e.entity_id == f"e{k}"]
        assert mine == ["create"] + [f"fire{n}" for n in range(fires)]
    entities = store.entities(limit=1000)
    assert sorted(r.seq for r in entities) == list(range(1, threads + 1))
    assert all(r.version == fires + 1 for r in entities)
    journal = [t for k in range(threads) for t in store.transitions(f"e{k}")]
    assert sorted(t.seq for t in journal) == list(range(1, threads * fires + 1))


def race(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run ``calls`` in threads released together; their results, or raise the first error."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = calls[i]()
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
        assert not w.is_alive(), "a writer hung"
    if errors:
        raise errors[0]
    return results


# -- opening -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "names"),
    [
        ("not-a-url", "not-a-url"),
        ("", "''"),
        ("mysql://x/y", "mysql"),
        ("oracle+cx_oracle://x/y", "oracle"),
        ("sqlite:///chartd.db?synchronous=bogus", "bogus"),
        ("postgresql+nosuchdriver://x/y", "nosuchdriver"),
        ("sqlite+nosuchdriver://", "nosuchdriver"),
    ],
)
def test_a_bad_url_is_an_invalid_parameter_naming_the_problem(url: str, names: str) -> None:
    with pytest.raises(InvalidParameter, match=names):
        open_store(url)


def test_a_file_in_a_missing_directory_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "chartd.db"
    with pytest.raises(InvalidParameter, match="does not exist") as caught:
        open_store(f"sqlite:///{missing}")
    assert str(missing.parent) in str(caught.value)
    assert not missing.parent.exists()


def sqlite_pragmas(store: SqlStore) -> tuple[str, int, int]:
    """journal_mode, synchronous (0 off .. 3 extra) and busy_timeout of a store connection."""
    with store.engine.connect() as conn:
        mode, sync, busy = (
            conn.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "synchronous", "busy_timeout")
        )
    return str(mode), int(sync), int(busy)


def test_a_sqlite_file_is_opened_in_wal_mode_with_synchronous_full(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'chartd.db'}")
    try:
        assert sqlite_pragmas(store) == ("wal", 2, 10_000)  # FULL: a commit survives power loss
    finally:
        store.close()


@pytest.mark.parametrize(("mode", "level"), [("off", 0), ("normal", 1), ("FULL", 2), ("extra", 3)])
def test_the_url_sets_the_synchronous_mode(tmp_path: Path, mode: str, level: int) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'chartd.db'}?synchronous={mode}")
    try:
        create(store, entity("e1"))
        assert sqlite_pragmas(store) == ("wal", level, 10_000)
    finally:
        store.close()


def test_an_unreachable_server_is_unavailable() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(Unavailable, match=f"127.0.0.1:{port}") as caught:
        open_store(f"postgresql+psycopg://chartd:s3cret@127.0.0.1:{port}/chartd")
    assert "s3cret" not in str(caught.value)


# -- PostgreSQL connections dropped under the store -----------------------------------


def test_connections_killed_while_idle_are_replaced(pg_server: Any, pg_url: str) -> None:
    store = open_store(pg_url)
    try:
        [row] = create(store, entity("e1"))
        assert pg_server.terminate() >= 1  # the store's pooled connection
        assert store.apply(
            [Write(entity=moved(row, "running"), expect_version=1, events=[event("e1", "x")])]
        ) == [None]
        assert store.entity("e1").version == 2  # type: ignore[union-attr]
        pg_server.terminate()
        assert [e.seq for e in store.events()] == [1]
    finally:
        store.close()


def test_a_connection_killed_mid_commit_is_unavailable_and_leaves_nothing(
    pg_server: Any, pg_url: str, lock_waiter: Callable[..., int]
) -> None:
    store = open_store(pg_url)
    conninfo = sa.make_url(pg_url).set(drivername="postgresql").render_as_string(False)
    try:
        create(store, entity("e0"))
        unit = Write(
            entity=entity("e1"),
            transitions=[transition("t1", "e1")],
            steps=[step("t1", 0)],
            timers=[timer("tm1", "e1", 10.0)],
            events=[event("e1", "create")],
        )
        outcome: dict[str, Any] = {}

        def apply() -> None:
            try:
                outcome["result"] = store.apply([unit])
            except Exception as exc:
                outcome["error"] = exc

        # Hold the outbox (its events wait there to be numbered, on PostgreSQL) so
        # that the commit stops after writing everything else.
        with psycopg.connect(conninfo) as locker:
            locker.execute("LOCK TABLE pending_events IN ACCESS EXCLUSIVE MODE")
            writer = threading.Thread(target=apply)
            writer.start()
            pid = lock_waiter()
            pg_server.admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            writer.join(timeout=60)
            assert not writer.is_alive()
            locker.rollback()

        assert isinstance(outcome.get("error"), Unavailable), outcome
        assert store.entity("e1") is None
        assert store.transitions("e1") == []
        assert store.timers("e1") == []
        assert store.events() == []
        # The store goes on, and the aborted commit left no gap in the outbox.
        assert store.apply([unit]) == [None]
        assert [e.seq for e in store.events()] == [1]
    finally:
        store.close()


def test_a_unit_lost_with_the_connection_after_others_committed_is_its_own_failure(
    pg_server: Any, pg_url: str, lock_waiter: Callable[..., int]
) -> None:
    # A taken name makes the store commit the units of a batch one by one; when the
    # connection then dies under a later unit, the earlier ones are committed already:
    # each unit must hear its own outcome, not one error for the whole batch.
    store = open_store(pg_url)
    conninfo = sa.make_url(pg_url).set(drivername="postgresql").render_as_string(False)
    try:
        create(store, entity("web", name="/web"))
        batch = [
            Write(entity=entity("a"), events=[event("a", "create")]),
            Write(entity=entity("b", name="/web"), events=[event("b", "create")]),
            Write(entity=entity("c"), timers=[timer("tm", "c", 1.0)]),
        ]
        outcome: dict[str, Any] = {}

        def apply() -> None:
            try:
                outcome["result"] = store.apply(batch)
            except Exception as exc:
                outcome["error"] = exc

        with psycopg.connect(conninfo) as locker:
            locker.execute("LOCK TABLE timers IN ACCESS EXCLUSIVE MODE")  # only c needs it
            writer = threading.Thread(target=apply)
            writer.start()
            pid = lock_waiter()
            pg_server.admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            writer.join(timeout=60)
            assert not writer.is_alive()
            locker.rollback()

        assert "error" not in outcome, outcome
        a, b, c = outcome["result"]
        assert a is None
        assert isinstance(b, Conflict)
        assert isinstance(c, Unavailable)
        assert [r.id for r in store.entities()] == ["web", "a"]
        assert store.timers("c") == []
        assert [(e.seq, e.entity_id) for e in store.events()] == [(1, "a")]
    finally:
        store.close()


def test_the_outbox_is_numbered_in_the_order_its_events_became_visible(pg_url: str) -> None:
    """On PostgreSQL a commit's events wait unnumbered; a number once read is never
    followed by a lower one, whichever commit took its place in the queue first."""
    store = open_store(pg_url)
    conninfo = sa.make_url(pg_url).set(drivername="postgresql").render_as_string(False)
    try:

        def made(name: str) -> None:
            assert store.apply([Write(entity=entity(name), events=[event(name, "create")])]) == [
                None
            ]

        made("e0")
        with psycopg.connect(conninfo) as slow:
            # A commit still running (or a process that died after its commit, before its
            # events were numbered): its event is queued before the next one.
            slow.execute(
                "INSERT INTO pending_events (entity_id, entity_name, chart, type, attributes,"
                " transition_id, created_at) VALUES ('e9', 'e9', 'test', 'slow', '{}', NULL, 0)"
            )
            made("e1")
            assert [(e.seq, e.entity_id) for e in store.events()] == [(1, "e0"), (2, "e1")]
            slow.commit()
        # Committed later, numbered later, by whichever process reads first.
        again = open_store(pg_url)
        try:
            assert [(e.seq, e.type) for e in again.events(after=2)] == [(3, "slow")]
        finally:
            again.close()
        assert [e.seq for e in store.events()] == [1, 2, 3]
        assert store.last_event() == 3
    finally:
        store.close()


def test_a_writer_numbers_its_events_soon_without_a_reader(pg_url: str) -> None:
    """Events nobody reads do not pile up unnumbered: the writing store numbers them
    on its own thread, and the numbering wakes the other processes' listeners."""
    store = open_store(pg_url)
    conninfo = sa.make_url(pg_url).set(drivername="postgresql").render_as_string(False)
    try:
        with psycopg.connect(conninfo, autocommit=True) as watcher:
            watcher.execute("LISTEN chartd_events")
            assert store.apply([Write(entity=entity("e1"), events=[event("e1", "create")])]) == [
                None
            ]
            heard = next(watcher.notifies(timeout=30), None)
            assert heard is not None and heard.payload == "1"
            numbered = watcher.execute("SELECT seq, entity_id FROM events").fetchall()
            assert numbered == [(1, "e1")]
            assert watcher.execute("SELECT count(*) FROM pending_events").fetchone() == (0,)
    finally:
        store.close()
