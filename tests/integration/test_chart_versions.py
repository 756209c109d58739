"""Chart versions on a real store: kept, refused when changed in place, run per entity, migrated.

On SQLite (a file) and PostgreSQL: every version registered is stored with
its hash; entities keep running on theirs (with that version's code, or the
newest's by default) in this engine and in the next; ``Engine.migrate``
moves them with one journal entry each, mapping data, history and timers as
the new version declares, and a second run moves nothing.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

import engine
from engine.errors import ChartdError, Conflict, InvalidParameter
from engine.runtime.bindings import Bindings, Context, Step

V1 = """
chart: job
version: 1
initial: idle
states:
  idle: {}
  busy:
    initial: working
    states:
      working: {}
      resting: {}
      h: {history: shallow}
  away: {}
transitions:
  - {event: go, from: idle, to: busy, steps: [work]}
  - {event: rest, from: busy.working, to: busy.resting}
  - {event: leave, from: busy, to: away}
  - {event: back, from: away, to: busy.h}
"""

V2 = """
chart: job
version: 2
initial: idle
states:
  idle: {}
  busy:
    initial: working
    states:
      working: {}
      napping: {}
      hist: {history: shallow}
  away: {}
transitions:
  - {event: go, from: idle, to: busy, steps: [work]}
  - {event: nap, from: busy.working, to: busy.napping}
  - {event: leave, from: busy, to: away}
  - {event: back, from: away, to: busy.hist}
  - {event: ping, from: busy}
migrations:
  1:
    states: {busy.resting: busy.napping}
    data:
      rename: {owner: user}
      drop: [scratch]
      set: {plan: b}
    history: {busy.h: busy.hist}
    timers: {remind: ping, expire: null}
"""


def bindings(label: str, ran: list[str]) -> Bindings:
    def work(ctx: Context) -> None:
        ran.append(f"{label}:{ctx.entity_name}")
        ctx.schedule("remind", 3600)
        ctx.schedule("expire", 3600)

    return Bindings(steps={"work": Step(work, external=False)})


@pytest.fixture(params=["sqlite-file", "postgresql"])
def url(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql":
        found: str = request.getfixturevalue("pg_url")
        return found
    return f"sqlite:///{request.getfixturevalue('tmp_path') / 'chartd.db'}"


def test_a_version_is_kept_and_never_registered_again_with_other_content(
    url: str, open_engine: Callable[..., engine.Engine]
) -> None:
    eng = open_engine(url)
    eng.register(engine.parse_chart(V1), bindings("v1", []))
    eng.register(engine.parse_chart(V1), bindings("v1", []))  # the same content: fine
    described = V1.replace("  away: {}", "  away: {description: gone for the day}")
    eng.register(engine.parse_chart(described), bindings("v1", []))  # descriptions: fine
    changed = V1.replace("away: {}", "away: {}\n  gone: {}")
    with pytest.raises(Conflict, match=r"version 1 is registered already.*state gone added"):
        eng.register(engine.parse_chart(changed), bindings("v1", []))
    # Another engine on the database sees the stored version too.
    other = open_engine(url)
    with pytest.raises(Conflict, match="state gone added"):
        other.register(engine.parse_chart(changed), bindings("v1", []))


def test_entities_run_on_their_version_with_its_code_until_migrated(
    url: str, open_engine: Callable[..., engine.Engine]
) -> None:
    ran: list[str] = []
    eng = open_engine(url, timers=False)
    eng.register(engine.parse_chart(V1), bindings("v1", ran))
    eng.create("job", "old", {"owner": "ann", "scratch": 1})
    eng.create("job", "spare1", {})
    eng.create("job", "spare2", {})
    eng.register(engine.parse_chart(V2), bindings("v2", ran))
    eng.create("job", "new")
    assert (eng.get("old").chart_version, eng.get("new").chart_version) == (1, 2)
    eng.fire("old", "go")
    eng.fire("new", "go")
    assert ran == ["v1:old", "v2:new"]  # each version's own code
    eng.fire("old", "rest")  # an event only version 1 has
    with pytest.raises(InvalidParameter, match="unknown event 'rest'"):
        eng.fire("new", "rest")
    assert [t.chart_version for t in eng.history("old")] == [1, 1]

    # The next engine registers only version 2: version 1 comes from the store,
    # with version 2's code (bindings are shared by default).
    eng.close()
    ran.clear()
    after = open_engine(url, timers=False)
    after.register(engine.parse_chart(V2), bindings("v2", ran))
    after.create("job", "third", {})
    after.fire("old", "leave")
    assert after.get("old").history == {"busy.h": ("busy.resting",)}
    assert after.get("old").chart_version == 1
    after.fire("spare1", "go")  # version 1's chart, version 2's code (shared)
    # Version 1 registered after version 2, with code of its own: its entities run that
    # code from now on; new entities still get version 2, and run version 2's.
    after.register(engine.parse_chart(V1), bindings("v1 again", ran))
    after.fire("spare2", "go")
    after.create("job", "fifth")
    after.fire("fifth", "go")
    assert ran == ["v2:spare1", "v1 again:spare2", "v2:fifth"]
    assert after.get("fifth").chart_version == 2


def test_migrate_maps_states_data_history_and_timers_once(
    url: str, open_engine: Callable[..., engine.Engine]
) -> None:
    eng = open_engine(url, timers=False)
    eng.register(engine.parse_chart(V1), bindings("v1", []))
    eng.create("job", "resting", {"owner": "ann", "scratch": 1})
    eng.fire("resting", "go")
    eng.fire("resting", "rest")
    eng.create("job", "away", {})
    eng.fire("away", "go")
    eng.fire("away", "rest")
    eng.fire("away", "leave")
    eng.create("job", "idle", {})
    eng.register(engine.parse_chart(V2))

    plan = eng.migration_plan("job")
    assert plan.lines() == [
        "v1 away -> v2 away: 1",
        "v1 busy.resting -> v2 busy.napping: 1",
        "v1 idle -> v2 idle: 1",
    ]
    assert eng.get("resting").chart_version == 1  # a plan moves nothing
    seen: list[tuple[int, int]] = []
    report = eng.migrate("job", batch=2, progress=lambda n, total: seen.append((n, total)))
    assert (report.moved, report.waiting) == (3, [])
    assert seen == [(2, 3), (3, 3)]

    resting = eng.get("resting")
    assert resting.configuration == ("busy", "busy.napping")
    assert dict(resting.data) == {"user": "ann", "plan": "b"}
    assert resting.chart_version == 2
    timers = {t.event: t.status for t in eng.store.timers(resting.id)}
    assert timers == {"ping": "pending", "expire": "cancelled"}
    away = eng.get("away")
    assert dict(away.history) == {"busy.hist": ("busy.napping",)}
    eng.fire("away", "back")  # the mapped history is where `back` returns
    assert eng.get("away").configuration == ("busy", "busy.napping")

    [move] = [t for t in eng.history("resting") if t.event == "chart.migrate"]
    assert dict(move.params) == {
        "from_version": 1,
        "to_version": 2,
        "from": ["busy", "busy.resting"],
        "to": ["busy", "busy.napping"],
    }
    assert (move.source, move.target, move.chart_version) == (
        ("busy", "busy.resting"),
        ("busy", "busy.napping"),
        2,
    )
    again = eng.migrate("job")
    assert again.moved == 0 and again.plan.entities == 0
    assert len([t for t in eng.history("resting") if t.event == "chart.migrate"]) == 1


def test_a_migration_that_leaves_an_entity_nowhere_moves_nothing(
    url: str, open_engine: Callable[..., engine.Engine]
) -> None:
    eng = open_engine(url, timers=False)
    eng.register(engine.parse_chart(V1), bindings("v1", []))
    eng.create("job", "a", {})
    eng.create("job", "b", {})
    eng.fire("b", "go")
    eng.fire("b", "rest")
    broken = V2.replace("states: {busy.resting: busy.napping}", "states: {}")
    eng.register(engine.parse_chart(broken))
    with pytest.raises(InvalidParameter, match=r"v1 busy.resting: cannot migrate: busy.resting"):
        eng.migrate("job")
    assert [eng.get(n).chart_version for n in "ab"] == [1, 1]
    with pytest.raises(engine.errors.NotFound, match="no version 7"):
        eng.migrate("job", 7)


def test_entities_made_before_versions_are_adopted_by_the_first_version(
    tmp_path: Any, open_engine: Callable[..., engine.Engine]
) -> None:
    url = f"sqlite:///{tmp_path / 'chartd.db'}"
    eng = open_engine(url, timers=False)
    eng.register(engine.parse_chart(V1), bindings("v1", []))
    eng.create("job", "early", {})
    eng.close()
    with sa.create_engine(url).begin() as conn:  # as revision 0005 left them
        conn.execute(sa.text("UPDATE entities SET chart_version = NULL"))
        conn.execute(sa.text("DELETE FROM chart_versions"))
    again = open_engine(url, timers=False)
    assert again.get("early").chart_version == 0
    again.register(engine.parse_chart(V1), bindings("v1", []))
    assert again.get("early").chart_version == 1
    assert again.history("early") == []  # nothing to move: only labelled


def test_an_entity_whose_saga_is_in_flight_moves_once_the_saga_ends_under_its_version(
    url: str, open_engine: Callable[..., engine.Engine]
) -> None:
    entered, go = threading.Event(), threading.Event()
    ran: list[str] = []

    def work(ctx: Context) -> None:
        entered.set()
        assert go.wait(60)
        ran.append(f"v1:{ctx.entity_name}")

    eng = open_engine(url, timers=False)
    eng.register(engine.parse_chart(V1), Bindings(steps={"work": Step(work)}))  # external
    eng.create("job", "busy", {})
    eng.create("job", "idle", {})
    saga = threading.Thread(target=eng.fire, args=("busy", "go"))
    saga.start()
    assert entered.wait(30)
    eng.register(engine.parse_chart(V2), bindings("v2", ran))
    assert eng.migration_plan("job").lines() == [
        "v1 idle -> v2 idle: 1",
        "v1 idle: 1 in flight (moves once its saga ends)",
    ]
    # The first round moves `idle` and leaves `busy` waiting; the saga is let go then.
    report = eng.migrate("job", batch=1, progress=lambda moved, total: go.set())
    saga.join(30)
    assert (report.moved, report.waiting) == (2, [])
    assert ran == ["v1:busy"]
    journal = eng.history("busy")
    assert [(t.event, t.status, t.chart_version) for t in journal] == [
        ("go", "committed", 1),
        ("chart.migrate", "committed", 2),
    ]
    assert eng.get("busy").configuration == ("busy", "busy.working")


class _AnHourLater:
    """The clock of an engine that starts long after another one stopped beating."""

    def now(self) -> float:
        return time.time() + 3600


def test_a_dead_engines_saga_is_recovered_under_its_version_before_the_entity_moves(
    tmp_path: Any, open_engine: Callable[..., engine.Engine]
) -> None:
    url = f"sqlite:///{tmp_path / 'chartd.db'}"
    entered, go = threading.Event(), threading.Event()
    undone: list[str] = []

    def stuck(ctx: Context) -> None:
        entered.set()
        go.wait(60)

    def undo(ctx: Context, payload: Any) -> None:
        undone.append(ctx.entity_name)

    dead = open_engine(url, timers=False)
    dead.register(engine.parse_chart(V1), Bindings(steps={"work": Step(stuck, undo)}))
    dead.create("job", "stuck", {})

    def fire() -> None:
        with contextlib.suppress(ChartdError):  # the dead engine's commit is refused
            dead.fire("stuck", "go")

    saga = threading.Thread(target=fire)
    saga.start()
    try:
        assert entered.wait(30)
        later = open_engine(url, timers=False, clock=_AnHourLater())
        # Registering version 1 recovers the dead engine's saga with version 1's code.
        later.register(engine.parse_chart(V1), Bindings(steps={"work": Step(stuck, undo)}))
        later.register(engine.parse_chart(V2), bindings("v2", []))
        assert undone == ["stuck"]
        report = later.migrate("job", wait=0)
        assert (report.moved, report.waiting) == (1, [])
        journal = later.history("stuck")
        assert [(t.event, t.chart_version) for t in journal] == [("go", 1), ("chart.migrate", 2)]
        assert journal[0].status != "running"
        assert later.get("stuck").configuration == ("idle",)
    finally:
        go.set()
        saga.join(30)


def test_entities_made_before_versions_move_as_the_first_version_declares_from_1(
    url: str, open_engine: Callable[..., engine.Engine]
) -> None:
    eng = open_engine(url, timers=False)
    eng.register(engine.parse_chart(V1), bindings("v1", []))
    eng.create("job", "resting", {"owner": "ann"})
    eng.fire("resting", "go")
    eng.fire("resting", "rest")
    eng.create("job", "idle", {})
    eng.close()
    with sa.create_engine(url).begin() as conn:  # a database of revision 0005, upgraded
        conn.execute(sa.text("UPDATE entities SET chart_version = NULL"))
        conn.execute(sa.text("DELETE FROM chart_versions"))
    # The first version registered is 2: what it declares from version 1 applies.
    again = open_engine(url, timers=False)
    again.register(engine.parse_chart(V2), bindings("v2", []))
    resting, idle = again.get("resting"), again.get("idle")
    assert (resting.configuration, resting.chart_version) == (("busy", "busy.napping"), 2)
    assert dict(resting.data) == {"user": "ann", "plan": "b"}
    assert (idle.configuration, idle.chart_version) == (("idle",), 2)
    [move] = [t for t in again.history("resting") if t.event == "chart.migrate"]
    assert (move.params["from_version"], move.params["to_version"]) == (1, 2)
    assert dict(idle.data) == {"plan": "b"}  # the data lines apply to it too
    assert [t.event for t in again.history("idle")] == ["chart.migrate"]
