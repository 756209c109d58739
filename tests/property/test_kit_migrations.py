"""Random charts, random evolutions, random entities: migrated, with crashes, legal and once.

The kit draws a chart (:func:`engine.testing.chart_documents`) and its next
version (:func:`engine.testing.evolutions.evolutions`: a state renamed,
split, merged, a parallel region or a compound level added or removed, with
the migration lines the change needs). Then:

* every configuration the old version reaches by random walks maps to a
  configuration of the new version that this file checks for legality on its
  own (not with the code under test), and that the new chart can step from;
* a real engine with entities in random configurations, one of them with a
  saga held in flight, is migrated by a second engine that crashes after a
  drawn number of commits, then by a third: every live entity ends on the new
  version in a legal configuration, none is lost, each has exactly one
  ``chart.migrate`` entry, the held saga finished under the old version first.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import event as hypothesis_event
from hypothesis import strategies as st

import engine
from engine.errors import ChartdError
from engine.model.migration import declared, migrate
from engine.ports import Store, Write
from engine.runtime.bindings import Bindings, Context, Step
from engine.testing import SimulatedCrash, StandIns, chart_documents, evolutions

DOCUMENTS = chart_documents(max_transitions=6, follow_ups=False, done_events=False)


def illegal(chart: engine.Chart, configuration: Sequence[str]) -> str | None:
    """Why ``configuration`` is no configuration an entity of ``chart`` can rest in."""
    active = set(configuration)
    if len(active) != len(configuration):
        return "a state twice"
    states = chart.model.states
    if len([p for p in active if states[p].parent is None]) != 1:
        return "not exactly one top-level state"
    for path in active:
        state = states[path]
        if state.kind == "history" or state.transient:
            return f"{path} is no resting state"
        if state.parent is not None and state.parent not in active:
            return f"{path} without its parent"
        children = [c for c in state.children if states[c].kind != "history"]
        inside = [c for c in children if c in active]
        if state.kind == "compound" and len(inside) != 1:
            return f"{path} holds {inside}"
        if state.kind == "parallel" and len(inside) != len(children):
            return f"{path} misses regions"
    return None


def walks(chart: engine.Chart, events: list[tuple[str, bool]]) -> list[engine.Snapshot]:
    """The snapshots a random walk of ``events`` (with one condition value each) passes."""
    names = {c for t in chart.transitions if t.when for c in [t.when.name]}
    snapshot = chart.initial_snapshot(conditions={n: (lambda s, p: False) for n in names})
    seen = [snapshot]
    for event, value in events:
        conditions = {n: (lambda s, p, v=value: v) for n in names}
        try:
            plan = engine.step(chart, snapshot, event, conditions=conditions)
        except ChartdError:
            continue
        snapshot = plan.snapshot if value else plan.failure_snapshot
        seen.append(snapshot)
    return seen


RANDOM_EVENTS = st.lists(st.tuples(st.sampled_from(["e0", "e1", "e2"]), st.booleans()), max_size=30)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_reached_configuration_migrates_to_a_legal_one(data: st.DataObject) -> None:
    document = data.draw(DOCUMENTS, "v1")
    evolution = data.draw(evolutions(document), "evolution")
    old, new = engine.parse_chart(document), engine.parse_chart(evolution.document)
    migration = declared(new.model, old.version)
    for snapshot in walks(old, data.draw(RANDOM_EVENTS, "events")):
        moved = migrate(new.model, migration, snapshot.configuration, {}, snapshot.history)
        why = illegal(new, moved.configuration)
        assert why is None, (evolution.kind, snapshot.configuration, moved.configuration, why)
        if snapshot.history:
            hypothesis_event(f"history recorded, {evolution.kind}")
        if evolution.kind in ("rename", "split", "add-level", "add-region"):
            # Nothing was removed: every recorded history follows its state.
            assert set(moved.history) == {migration.state(h) for h in snapshot.history}
        for path, recorded in moved.history.items():
            state = new.model.states[path]
            assert state.kind == "history" and state.parent is not None
            assert all(p.startswith(state.parent + ".") for p in recorded)
        after = engine.Snapshot(moved.configuration, {}, 1, moved.history)
        for event in ("e0", "e1", "e2"):
            with contextlib.suppress(ChartdError):
                engine.step(new, after, event)  # never an internal fault


class Crashing:
    """A store that dies after ``commits`` more commits: every later write raises."""

    def __init__(self, store: Store, commits: int) -> None:
        self.store = store
        self.left = commits

    def apply(self, batch: Sequence[Write]) -> list[Exception | None]:
        if self.left <= 0:
            raise SimulatedCrash("migration")
        self.left -= 1
        return self.store.apply(batch)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def held_bindings(chart: engine.Chart, entered: threading.Event, go: threading.Event) -> Bindings:
    """Stand-ins whose steps wait for ``go`` on the entity named ``held``."""
    made = StandIns(chart)

    def do(ctx: Context) -> Any:
        if ctx.entity_name == "held":
            entered.set()
            assert go.wait(60), "the held saga was never let go"
        return made.do(ctx)

    steps = {name: Step(do, made.undo) for name in made.bindings.steps}
    return Bindings(made.bindings.guards, steps)


def hold_a_saga(eng: engine.Engine, chart: engine.Chart) -> str | None:
    """An event that runs a saga from ``held``'s configuration, if one does (conditions false)."""
    snapshot = eng.get("held").snapshot
    for event in sorted(chart.events):
        try:
            plan = engine.step(chart, snapshot, event)
        except ChartdError:
            continue
        if plan.steps:
            return event
    return None


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_live_entities_migrate_once_through_crashes_and_sagas_in_flight(
    data: st.DataObject,
) -> None:
    document = data.draw(DOCUMENTS, "v1")
    evolution = data.draw(evolutions(document), "evolution")
    hypothesis_event(f"evolution: {evolution.kind}")
    old, new = engine.parse_chart(document), engine.parse_chart(evolution.document)
    fires = data.draw(st.lists(st.tuples(st.integers(0, 3), st.sampled_from(["e0", "e1", "e2"]))))
    crash_after = data.draw(st.integers(0, 3), "commits before the crash")
    with tempfile.TemporaryDirectory(prefix="chartd-migrate-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'chartd.db'}"
        entered, go = threading.Event(), threading.Event()
        first = engine.Engine.open(url, timers=False)
        try:
            first.register(old, held_bindings(old, entered, go))
            for i in range(4):
                first.create(old.name, f"x{i}")
            first.create(old.name, "held")
            for i, event in fires:
                with contextlib.suppress(ChartdError):
                    first.fire(f"x{i}", event)
            held: threading.Thread | None = None
            event = hold_a_saga(first, old)
            hypothesis_event(f"saga in flight: {event is not None}")
            if event is not None:

                def fire_held() -> None:
                    with contextlib.suppress(ChartdError):
                        first.fire("held", event)

                held = threading.Thread(target=fire_held)
                held.start()
                assert entered.wait(30)
            before = {e.id: e for e in _all(first, old.name)}
            first.register(new)  # bindings shared with version 1
            _migrate_with_a_crash(url, new, crash_after)
            go.set()
            if held is not None:
                held.join(30)
            with engine.Engine.open(url, timers=False) as last:
                last.register(old, held_bindings(old, entered, go))
                last.register(new)
                report = last.migrate(old.name, new.version, wait=30)
                assert not report.waiting
                _check(last, old, new, before, event)
        finally:
            go.set()
            first.close()


def _migrate_with_a_crash(url: str, new: engine.Chart, commits: int) -> None:
    from engine.store import open_store  # noqa: PLC0415

    store = open_store(url)
    crashing = engine.Engine(Crashing(store, commits), timers=False)  # type: ignore[arg-type]
    try:
        crashing.migrate(new.name, new.version, batch=1, wait=0)
        hypothesis_event("migrated without a crash")
    except SimulatedCrash:
        hypothesis_event("crashed mid-migration")
    finally:
        with contextlib.suppress(SimulatedCrash, ChartdError):
            crashing.close()
        store.close()


def _all(eng: engine.Engine, chart: str) -> list[engine.Entity]:
    return list(eng.list(chart, limit=1000).items)


def _check(
    eng: engine.Engine,
    old: engine.Chart,
    new: engine.Chart,
    before: Mapping[str, engine.Entity],
    held_event: str | None,
) -> None:
    after = {e.id: e for e in _all(eng, old.name)}
    assert set(after) == set(before), "an entity was lost or made"
    for entity_id, entity in after.items():
        journal = eng.history(entity_id)
        moves = [t for t in journal if t.event == "chart.migrate"]
        if eng.get(entity_id).chart_version != new.version:
            # Finished before the migration: finished entities stay on their version.
            assert not moves and old.finished(entity.configuration), entity
            continue
        assert len(moves) == 1, (entity.name, [t.event for t in journal])
        assert moves[0].chart_version == new.version
        assert moves[0].params["from_version"] == old.version
        assert moves[0].target == entity.configuration
        assert illegal(new, eng.get(entity_id).configuration) is None
        assert all(t.chart_version == old.version for t in journal[: journal.index(moves[0])])
        if entity.name == "held" and held_event is not None:
            events = [t.event for t in journal]
            assert held_event in events[: events.index("chart.migrate")], events
