"""engine.step on small charts, one semantic at a time."""

from __future__ import annotations

from typing import Any

import pytest

import engine
from engine.errors import Category, Conflict, InvalidParameter, NotModified, System


def chart(**doc: Any) -> engine.Chart:
    return engine.parse_chart({"chart": "t", **doc})


def fire(c: engine.Chart, snap: engine.Snapshot, *events: str, **kw: Any) -> engine.Snapshot:
    for event in events:
        snap = engine.step(c, snap, event, **kw).snapshot
    return snap


def leaves(snap: engine.Snapshot) -> set[str]:
    return {
        s for s in snap.configuration if not any(o.startswith(s + ".") for o in snap.configuration)
    }


# -- compound ---------------------------------------------------------------------

NESTED = {
    "initial": "off",
    "states": {
        "off": {},
        "on": {
            "initial": "low",
            "states": {
                "low": {},
                "high": {"initial": "warm", "states": {"warm": {}, "hot": {}}},
            },
        },
    },
    "transitions": [
        {"event": "power", "from": "off", "to": "on"},
        {"event": "power", "from": "on", "to": "off"},
        {"event": "up", "from": "on.low", "to": "on.high"},
        {"event": "up", "from": "on.high.warm", "to": "on.high.hot"},
        {"event": "down", "from": "on.high", "to": "on.low"},
    ],
}


def test_entering_a_compound_state_enters_its_initial_descendants() -> None:
    c = chart(**NESTED)
    plan = engine.step(c, c.initial_snapshot(), "power")
    assert plan.snapshot.configuration == ("on", "on.low")
    assert plan.exited == ("off",)
    assert plan.entered == ("on", "on.low")
    assert plan.snapshot.version == 1
    plan = engine.step(c, plan.snapshot, "up")
    assert plan.snapshot.configuration == ("on", "on.high", "on.high.warm")


def test_innermost_source_wins_over_an_ancestor_transition() -> None:
    c = chart(**NESTED)
    snap = fire(c, c.initial_snapshot(), "power", "up")
    # `up` is handled by on.high.warm itself, not by on.low's sibling rule.
    assert fire(c, snap, "up").configuration == ("on", "on.high", "on.high.hot")


def test_a_transition_on_an_ancestor_exits_every_descendant_innermost_first() -> None:
    c = chart(**NESTED)
    snap = fire(c, c.initial_snapshot(), "power", "up", "up")
    plan = engine.step(c, snap, "power")
    assert plan.exited == ("on.high.hot", "on.high", "on")
    assert plan.snapshot.configuration == ("off",)


def test_a_self_transition_exits_and_reenters_the_source() -> None:
    c = chart(
        initial="a",
        states={"a": {"initial": "x", "states": {"x": {}, "y": {}}}},
        transitions=[
            {"event": "go", "from": "a.x", "to": "a.y"},
            {"event": "reset", "from": "a", "to": "a"},
        ],
    )
    snap = fire(c, c.initial_snapshot(), "go")
    plan = engine.step(c, snap, "reset")
    assert plan.exited == ("a.y", "a")
    assert plan.entered == ("a", "a.x")


def test_step_is_pure_and_leaves_the_given_snapshot_alone() -> None:
    c = chart(**NESTED)
    snap = c.initial_snapshot({"k": 1})
    before = snap.to_json()
    first = engine.step(c, snap, "power")
    second = engine.step(c, snap, "power")
    assert snap.to_json() == before
    assert first.snapshot == second.snapshot
    assert first.snapshot.data == {"k": 1}


# -- rejections, defaults, unknown events ----------------------------------------------

REJECTING = {
    "initial": "running",
    "states": {
        "created": {},
        "running": {"initial": "active", "states": {"active": {}, "paused": {}}},
    },
    "transitions": [
        {"event": "start", "from": "created", "to": "running"},
        {"event": "pause", "from": "running.active", "to": "running.paused"},
        {"event": "stop", "from": "running", "to": "created"},
    ],
    "rejections": [
        {"event": "start", "in": "running", "error": "not_modified", "message": "already running"},
        {
            "event": "start",
            "in": "running.paused",
            "error": "conflict",
            "message": "{name} is paused, try unpause instead",
        },
        {"event": "stop", "in": "running.paused", "error": "conflict", "message": "unpause first"},
    ],
}


def test_a_rejection_in_a_deeper_state_wins_over_one_in_its_ancestor() -> None:
    c = chart(**REJECTING)
    active = c.initial_snapshot({"name": "web"})
    with pytest.raises(NotModified, match=r"^already running$"):
        engine.step(c, active, "start")
    paused = fire(c, active, "pause")
    with pytest.raises(Conflict) as info:
        engine.step(c, paused, "start")
    assert info.value.message == "web is paused, try unpause instead"
    assert info.value.category is Category.CONFLICT


def test_a_deeper_rejection_wins_over_an_ancestor_transition() -> None:
    c = chart(**REJECTING)
    paused = fire(c, c.initial_snapshot(), "pause")
    with pytest.raises(Conflict, match="unpause first"):
        engine.step(c, paused, "stop")
    assert engine.step(c, c.initial_snapshot(), "stop").snapshot.configuration == ("created",)


def test_an_unhandled_event_is_a_conflict_naming_event_and_state() -> None:
    c = chart(**REJECTING)
    with pytest.raises(Conflict, match=r"event 'pause' is not allowed in state 'created'"):
        engine.step(c, fire(c, c.initial_snapshot(), "stop"), "pause")


def test_an_unknown_event_is_an_invalid_parameter_listing_the_known_ones() -> None:
    c = chart(**REJECTING)
    with pytest.raises(
        InvalidParameter, match=r"unknown event 'strat' .*known: pause, start, stop"
    ):
        engine.step(c, c.initial_snapshot(), "strat")


def test_a_rejection_message_may_name_params_event_and_state() -> None:
    c = chart(
        initial="a",
        states={"a": {}},
        rejections=[
            {
                "event": "*",
                "in": "a",
                "error": "forbidden",
                "message": "{event} in {state} by {who}",
            }
        ],
        transitions=[{"event": "poke", "from": "a", "to": "a", "when": "never"}],
    )
    with pytest.raises(engine.errors.Forbidden, match=r"^poke in a by ann$"):
        engine.step(c, c.initial_snapshot(), "poke", {"who": "ann"})


# -- conditions -------------------------------------------------------------------------


CHOICE = {
    "initial": "idle",
    "states": {"idle": {}, "fast": {}, "slow": {}, "gone": {}},
    "transitions": [
        {"event": "go", "from": "idle", "to": "fast", "when": "hurry"},
        {"event": "go", "from": "idle", "to": "slow", "when": "!hurry"},
        {"event": "rm", "from": ["fast", "slow"], "to": "gone", "when": "force"},
    ],
    "rejections": [
        {"event": "rm", "in": ["fast", "slow"], "error": "conflict", "message": "stop first"}
    ],
}


def test_when_reads_params_then_data_then_condition_functions() -> None:
    c = chart(**CHOICE)
    idle = c.initial_snapshot({"hurry": True})
    assert fire(c, idle, "go").configuration == ("fast",)
    assert fire(c, idle, "go", params={"hurry": False}).configuration == ("slow",)
    hurry = {"hurry": lambda snap, params: snap.data.get("hurry") is None}
    assert fire(c, idle, "go", conditions=hurry).configuration == ("slow",)
    assert fire(c, c.initial_snapshot(), "go", conditions=hurry).configuration == ("fast",)


def test_a_conditional_transition_falls_back_to_the_rejection() -> None:
    c = chart(**CHOICE)
    fast = fire(c, c.initial_snapshot({"hurry": 1}), "go")
    with pytest.raises(Conflict, match="stop first"):
        engine.step(c, fast, "rm")
    assert fire(c, fast, "rm", params={"force": True}).configuration == ("gone",)


def test_memoised_outcomes_never_leak_across_conditions() -> None:
    c = chart(**CHOICE)
    idle = c.initial_snapshot()
    for hurry in (True, False, True, False):
        expected = ("fast",) if hurry else ("slow",)
        assert fire(c, idle, "go", params={"hurry": hurry}).configuration == expected


# -- parallel ---------------------------------------------------------------------------

PARALLEL = {
    "initial": "on",
    "states": {
        "on": {
            "parallel": True,
            "states": {
                "bold": {"initial": "off", "states": {"off": {}, "on": {}}},
                "italic": {"initial": "off", "states": {"off": {}, "on": {}}},
            },
        },
        "off": {},
    },
    "transitions": [
        {"event": "bold", "from": "on.bold.off", "to": "on.bold.on"},
        {"event": "bold", "from": "on.bold.on", "to": "on.bold.off"},
        {"event": "italic", "from": "on.italic.off", "to": "on.italic.on"},
        {"event": "reset", "from": "on.bold.on", "to": "on.bold.off"},
        {"event": "reset", "from": "on.italic.on", "to": "on.italic.off"},
        {"event": "quit", "from": "on", "to": "off"},
        {"event": "lock", "from": "on.bold.on", "to": "on.bold.off"},
    ],
    "rejections": [
        {"event": "lock", "in": "on.italic.on", "error": "conflict", "message": "italic refuses"}
    ],
}


def test_entering_a_parallel_state_enters_every_region() -> None:
    c = chart(**PARALLEL)
    assert c.initial_snapshot().configuration == (
        "on",
        "on.bold",
        "on.bold.off",
        "on.italic",
        "on.italic.off",
    )


def test_regions_move_independently_and_together() -> None:
    c = chart(**PARALLEL)
    snap = fire(c, c.initial_snapshot(), "bold", "italic")
    assert leaves(snap) == {"on.bold.on", "on.italic.on"}
    plan = engine.step(c, snap, "reset")
    assert len(plan.transitions) == 2
    assert leaves(plan.snapshot) == {"on.bold.off", "on.italic.off"}
    plan = engine.step(c, snap, "quit")
    assert plan.snapshot.configuration == ("off",)
    assert set(plan.exited) == {"on", "on.bold", "on.bold.on", "on.italic", "on.italic.on"}


def test_a_region_that_refuses_refuses_the_event() -> None:
    c = chart(**PARALLEL)
    only_bold = fire(c, c.initial_snapshot(), "bold")
    assert leaves(fire(c, only_bold, "lock")) == {"on.bold.off", "on.italic.off"}
    both = fire(c, only_bold, "italic")
    with pytest.raises(Conflict, match="italic refuses"):
        engine.step(c, both, "lock")


def test_conflicting_transitions_in_regions_go_to_the_first_in_document_order() -> None:
    c = chart(
        initial="p",
        states={
            "p": {
                "parallel": True,
                "states": {"a": {"initial": "x", "states": {"x": {}}}, "b": {}},
            },
            "out1": {},
            "out2": {},
        },
        transitions=[
            {"event": "e", "from": "p.b", "to": "out2"},
            {"event": "e", "from": "p.a.x", "to": "out1"},
        ],
    )
    plan = engine.step(c, c.initial_snapshot(), "e")
    # Neither source is inside the other: p.a.x comes first in document order (of the
    # states, not of the transitions), and p.b's transition, which exits the same states,
    # loses.
    assert plan.snapshot.configuration == ("out1",)
    assert len(plan.transitions) == 1


def test_a_descendants_transition_preempts_an_ancestors_selected_before_it() -> None:
    # p.a.x has no transition of its own for e: looking outwards it selects p's, first in
    # document order. p.b.y then selects its own, which exits p.b.y, a state p's exits too.
    # Of two conflicting transitions the one whose source is a descendant of the other's
    # wins (SCXML's removeConflictingTransitions), whatever the order of selection.
    c = chart(
        initial="p",
        states={
            "p": {
                "parallel": True,
                "states": {
                    "a": {"initial": "x", "states": {"x": {}}},
                    "b": {"initial": "y", "states": {"y": {}, "z": {}}},
                },
            },
            "out": {},
        },
        transitions=[
            {"event": "e", "from": "p", "to": "out"},
            {"event": "e", "from": "p.b.y", "to": "p.b.z"},
        ],
    )
    plan = engine.step(c, c.initial_snapshot(), "e")
    assert [(t.source, t.target) for t in plan.transitions] == [("p.b.y", "p.b.z")]
    assert leaves(plan.snapshot) == {"p.a.x", "p.b.z"}
    assert plan.exited == ("p.b.y",)


# -- history ----------------------------------------------------------------------------


def history_chart(kind: str, default: str | None = None) -> engine.Chart:
    history: dict[str, Any] = {"history": kind}
    if default is not None:
        history["default"] = default
    return chart(
        initial="work",
        states={
            "work": {
                "initial": "a",
                "states": {
                    "a": {},
                    "b": {"initial": "b1", "states": {"b1": {}, "b2": {}}},
                    "h": history,
                },
            },
            "away": {},
        },
        transitions=[
            {"event": "next", "from": "work.a", "to": "work.b"},
            {"event": "next", "from": "work.b.b1", "to": "work.b.b2"},
            {"event": "leave", "from": "work", "to": "away"},
            {"event": "back", "from": "away", "to": "work.h"},
        ],
    )


def test_shallow_history_restores_the_child_and_its_default_descendants() -> None:
    c = history_chart("shallow")
    snap = fire(c, c.initial_snapshot(), "next", "next", "leave")
    assert snap.history == {"work.h": ("work.b",)}
    assert fire(c, snap, "back").configuration == ("work", "work.b", "work.b.b1")


def test_deep_history_restores_the_atomic_descendants() -> None:
    c = history_chart("deep")
    snap = fire(c, c.initial_snapshot(), "next", "next", "leave")
    assert snap.history == {"work.h": ("work.b.b2",)}
    assert fire(c, snap, "back").configuration == ("work", "work.b", "work.b.b2")


def test_history_with_nothing_recorded_and_no_default_enters_the_parents_initial() -> None:
    c = history_chart("deep")
    away = engine.Snapshot(("away",))
    assert fire(c, away, "back").configuration == ("work", "work.a")


@pytest.mark.parametrize("kind", ["shallow", "deep"])
def test_history_with_nothing_recorded_enters_its_default(kind: str) -> None:
    c = history_chart(kind, default="work.b.b2")
    away = engine.Snapshot(("away",))
    assert fire(c, away, "back").configuration == ("work", "work.b", "work.b.b2")
    # Once something is recorded, the default no longer counts.
    snap = fire(c, c.initial_snapshot(), "leave", "back")
    assert snap.configuration == ("work", "work.a")


def test_history_survives_json() -> None:
    c = history_chart("deep")
    snap = fire(c, c.initial_snapshot(), "next", "next", "leave")
    again = engine.Snapshot.from_json(snap.to_json())
    assert again == snap
    assert fire(c, again, "back").configuration == ("work", "work.b", "work.b.b2")


# -- eventless and final ----------------------------------------------------------------


def test_eventless_transitions_run_until_the_configuration_is_stable() -> None:
    c = chart(
        initial="a",
        states={"a": {}, "b": {}, "c": {}, "d": {}},
        transitions=[
            {"event": "go", "from": "a", "to": "b", "steps": ["one"]},
            {"from": "b", "to": "c", "steps": ["two"]},
            {"from": "c", "to": "d", "when": "deep", "steps": ["three"]},
        ],
    )
    plan = engine.step(c, c.initial_snapshot(), "go")
    assert plan.snapshot.configuration == ("c",)
    assert plan.steps == ("one", "two")
    assert [t.target for t in plan.transitions] == ["b", "c"]
    assert fire(c, c.initial_snapshot(), "go", params={"deep": True}).configuration == ("d",)


def test_the_initial_snapshot_is_settled_too() -> None:
    c = chart(
        initial="boot",
        states={"boot": {}, "ready": {}},
        transitions=[
            {"from": "boot", "to": "ready"},
            {"event": "x", "from": "ready", "to": "boot"},
        ],
    )
    assert c.initial_snapshot().configuration == ("ready",)
    assert engine.step(c, c.initial_snapshot(), "x").snapshot.configuration == ("ready",)


def test_entering_a_final_child_raises_done_state_of_its_parent() -> None:
    c = chart(
        initial="job",
        states={
            "job": {"initial": "run", "states": {"run": {}, "ok": {"final": True}}},
            "archived": {},
        },
        transitions=[
            {"event": "finish", "from": "job.run", "to": "job.ok"},
            {"event": "done.state.job", "from": "job", "to": "archived", "steps": ["archive"]},
        ],
    )
    plan = engine.step(c, c.initial_snapshot(), "finish")
    assert plan.snapshot.configuration == ("archived",)
    assert plan.steps == ("archive",)


def test_a_parallel_state_is_done_when_every_region_is_final() -> None:
    c = chart(
        initial="build",
        states={
            "build": {
                "parallel": True,
                "states": {
                    "code": {"initial": "w", "states": {"w": {}, "done": {"final": True}}},
                    "docs": {"initial": "w", "states": {"w": {}, "done": {"final": True}}},
                },
            },
            "shipped": {},
        },
        transitions=[
            {"event": "code", "from": "build.code.w", "to": "build.code.done"},
            {"event": "docs", "from": "build.docs.w", "to": "build.docs.done"},
            {"event": "done.state.build", "from": "build", "to": "shipped"},
        ],
    )
    half = fire(c, c.initial_snapshot(), "code")
    assert "build.code.done" in half.configuration
    assert fire(c, half, "docs").configuration == ("shipped",)


def test_a_top_level_final_state_accepts_no_more_events() -> None:
    c = chart(
        initial="a",
        states={"a": {}, "end": {"final": True}},
        transitions=[{"event": "finish", "from": "a", "to": "end"}],
    )
    end = fire(c, c.initial_snapshot(), "finish")
    with pytest.raises(Conflict, match="final state 'end' and accepts no more events"):
        engine.step(c, end, "finish")


def test_a_chart_that_never_settles_is_a_system_error() -> None:
    # Conditions cannot be checked statically; this cycle is only cut off at run time.
    c = chart(
        initial="a",
        states={"a": {"initial": "x", "states": {"x": {}, "y": {}}}},
        transitions=[
            {"event": "go", "from": "a.x", "to": "a.y"},
            {"event": "done.state.a", "from": "a", "to": "a"},
            {"event": "spin", "from": "a", "to": "a.y"},
        ],
    )
    assert engine.step(c, c.initial_snapshot(), "go").snapshot.configuration == ("a", "a.y")
    with pytest.raises(System):
        bounce = chart(
            initial="a",
            states={
                "a": {"initial": "x", "states": {"x": {}, "f": {"final": True}}},
            },
            transitions=[
                {"event": "go", "from": "a.x", "to": "a.f"},
                {"event": "done.state.a", "from": "a", "to": "a.f"},
            ],
        )
        engine.step(bounce, bounce.initial_snapshot(), "go")


# -- transient states, failure targets, assignments -------------------------------------------


SAGA = {
    "initial": "created",
    "states": {
        "created": {},
        "starting": {"transient": True},
        "running": {"initial": "active", "states": {"active": {}}},
        "dead": {},
    },
    "transitions": [
        {
            "event": "start",
            "from": "created",
            "to": "running",
            "via": "starting",
            "guards": ["ok"],
            "steps": ["a", "b"],
            "set": {"started": True},
            "on_failure": {"record": ["error"], "then": {"event": "kill", "when": "auto"}},
        },
        {
            "event": "kill",
            "from": "running",
            "to": "dead",
            "steps": ["k"],
            "on_failure": {"to": "dead"},
        },
        {"event": "kill", "from": "created", "to": "dead"},
    ],
}


def test_a_saga_plan_holds_the_transient_state_and_knows_its_failure_target() -> None:
    c = chart(**SAGA)
    plan = engine.step(c, c.initial_snapshot({"x": 1}), "start")
    assert plan.via == "starting"
    assert plan.guards == ("ok",)
    assert plan.steps == ("a", "b")
    assert plan.transient_snapshot is not None
    assert plan.transient_snapshot.configuration == ("starting",)
    assert plan.failure_snapshot.configuration == ("created",)
    assert plan.failure_snapshot.data == {"x": 1}
    assert plan.snapshot.data == {"x": 1, "started": True}
    assert plan.on_failure is not None and plan.on_failure.then is not None
    assert plan.on_failure.then.event == "kill"


def test_a_declared_failure_target_is_where_a_failed_saga_ends() -> None:
    c = chart(**SAGA)
    running = fire(c, c.initial_snapshot(), "start")
    plan = engine.step(c, running, "kill")
    assert plan.transient_snapshot is None
    assert plan.failure_snapshot.configuration == ("dead",)


def test_a_targetless_transition_runs_steps_and_keeps_the_configuration() -> None:
    c = chart(
        initial="a",
        states={"a": {"initial": "x", "states": {"x": {}}}},
        transitions=[{"event": "rename", "from": "a", "steps": ["rename"]}],
    )
    plan = engine.step(c, c.initial_snapshot(), "rename")
    assert plan.snapshot.configuration == ("a", "a.x")
    assert plan.exited == plan.entered == ()
    assert not plan.changes_state
    assert plan.steps == ("rename",)
    assert plan.snapshot.version == 1


# -- snapshots --------------------------------------------------------------------------


def test_snapshot_round_trips_through_json() -> None:
    snap = engine.Snapshot(
        ("running", "running.paused"), {"id": "x", "n": [1, 2]}, 7, {"a.h": ("a.b",)}
    )
    assert engine.Snapshot.from_json(snap.to_json()) == snap
    assert snap.in_state("running") and not snap.in_state("exited")


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("[", "not valid JSON"),
        ("[]", "must be an object"),
        ('{"configuration": "a"}', "'configuration' must be a list"),
        ('{"configuration": [], "version": -1}', "'version' must be a non-negative integer"),
        ('{"configuration": [], "data": 3}', "'data' must be an object"),
        ('{"configuration": [], "extra": 1}', "unknown keys"),
        ('{"configuration": [], "history": {"h": "x"}}', "'history' must map"),
    ],
)
def test_a_malformed_snapshot_json_names_what_is_wrong(text: str, complaint: str) -> None:
    with pytest.raises(InvalidParameter, match=complaint):
        engine.Snapshot.from_json(text)


def test_a_via_outside_the_transition_domain_exits_what_it_must_while_held() -> None:
    c = chart(
        initial="r",
        states={
            "r": {"initial": "a", "states": {"a": {}, "b": {}}},
            "hold": {"transient": True},
        },
        transitions=[
            {"event": "swap", "from": "r.a", "to": "r.b"},
            {"event": "back", "from": "r.b", "to": "r.a", "via": "hold", "steps": ["s"]},
        ],
    )
    b = fire(c, c.initial_snapshot(), "swap")
    plan = engine.step(c, b, "back")
    assert plan.transient_snapshot is not None
    assert plan.transient_snapshot.configuration == ("hold",)
    assert plan.snapshot.configuration == ("r", "r.a")


def test_condition_functions_see_the_source_snapshot_and_are_asked_once() -> None:
    c = chart(**CHOICE)
    asked: list[tuple[str, ...]] = []

    def hurry(snap: engine.Snapshot, params: Any) -> bool:
        asked.append(snap.configuration)
        return bool(params.get("now"))

    idle = c.initial_snapshot()
    assert fire(c, idle, "go", params={"now": 1}, conditions={"hurry": hurry}).configuration == (
        "fast",
    )
    assert fire(c, idle, "go", params={}, conditions={"hurry": hurry}).configuration == ("slow",)
    # Memoised now: the decision tree still asks the condition, once per step.
    assert fire(c, idle, "go", params={"now": 1}, conditions={"hurry": hurry}).configuration == (
        "fast",
    )
    assert asked == [("idle",), ("idle",), ("idle",)]


def test_a_failure_policy_with_after_applies_only_once_that_step_completed() -> None:
    c = chart(
        initial="running",
        states={"running": {}, "restarting": {"transient": True}, "exited": {}},
        transitions=[
            {
                "event": "restart",
                "from": "running",
                "to": "running",
                "via": "restarting",
                "steps": ["stop", "delete", "create", "start"],
                "on_failure": {"after": "delete", "to": "exited", "record": ["error"]},
            }
        ],
    )
    plan = engine.step(c, c.initial_snapshot(), "restart")
    assert plan.failure_from == 2
    for failed in (0, 1):  # the old task still stands: back where it was, nothing recorded
        assert plan.failure_at(failed) == (("running",), None)
    for failed in (2, 3, 4):  # 4: every step done, the final commit refused
        assert plan.failure_at(failed) == (("exited",), plan.on_failure)
    assert plan.failure_snapshot.configuration == ("exited",)
    no_after = engine.step(chart(**SAGA), chart(**SAGA).initial_snapshot(), "start")
    assert no_after.failure_from == 0
    assert no_after.failure_at(0) == (("created",), no_after.on_failure)
