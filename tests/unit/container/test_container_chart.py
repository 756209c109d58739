"""The declared container chart: every refusal with moby's exact message, every move.

Each test drives an entity from the initial snapshot with real events
(``engine.step`` only; a saga's transient or failure outcome is taken from
the plan, as the runtime would commit it), then fires one event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest

import engine
from engine.errors import ChartdError, Conflict, NotFound, NotModified
from statecharts.container import CHART_PATH, load_chart

ID = "abc123"
NAME = "/web"
DATA = {"id": ID, "name": NAME}


def _true(snapshot: engine.Snapshot, params: Mapping[str, Any]) -> bool:
    return True


RESTARTS: Mapping[str, engine.ConditionFn] = {"should_restart": _true}
SIGNAL_ONLY: Mapping[str, engine.ConditionFn] = {"signal_only": _true}

# moby's start saga (daemon/start.go), in the order it runs.
START = (
    "mount_rootfs",
    "network_sandbox",
    "container_dirs",
    "mounts",
    "spec",
    "reset_restart_manager",
    "runtime_container",
    "task_create",
    "task_start",
)
# The restart policy's retry: the same saga without resetting the restart manager.
RETRY = tuple(s for s in START if s != "reset_restart_manager")
REMOVE = ("release_layer", "remove_filesystem", "unregister")
STOP = ("task_stop", "task_delete", "cleanup")
KILL = ("task_kill", "task_delete", "cleanup")
RENAME = ("reserve_name", "rename_endpoints", "release_old_name")

ACTIVE = ("running", "running.active")
PAUSED = ("running", "running.paused")
RESTARTING = ("running", "running.restarting")

EVENTS = frozenset(
    {"start", "stop", "kill", "pause", "unpause", "restart", "remove", "exit", "retry", "rename"}
)


# -- walking an entity through real events ---------------------------------------


@dataclass(frozen=True)
class Move:
    """One event; ``outcome`` says what the runtime committed: the target, the
    transient state held while the saga runs, or the failure configuration."""

    event: str
    params: Mapping[str, Any] = field(default_factory=dict)
    conditions: Mapping[str, engine.ConditionFn] = field(default_factory=dict)
    outcome: Literal["commit", "hold", "fail"] = "commit"


START_MOVE = Move("start")

# How to reach each atomic state from a new container.
PATHS: dict[str, tuple[Move, ...]] = {
    "created": (),
    "starting": (Move("start", outcome="hold"),),
    "running.active": (START_MOVE,),
    "running.paused": (START_MOVE, Move("pause")),
    "running.restarting": (START_MOVE, Move("exit", {"exit_code": 1}, RESTARTS)),
    "exited": (START_MOVE, Move("stop")),
    "removing": (Move("remove", outcome="hold"),),
    "dead": (Move("remove", outcome="fail"),),
    "removed": (Move("remove"),),
}


def walk(chart: engine.Chart, moves: tuple[Move, ...]) -> engine.Snapshot:
    snapshot = chart.initial_snapshot(DATA)
    for move in moves:
        plan = engine.step(chart, snapshot, move.event, move.params, conditions=move.conditions)
        if move.outcome == "hold":
            held = plan.transient_snapshot
            assert held is not None, f"{move.event} has no transient state"
            snapshot = held
        elif move.outcome == "fail":
            snapshot = plan.failure_snapshot
        else:
            snapshot = plan.snapshot
    return snapshot


def enter(chart: engine.Chart, state: str) -> engine.Snapshot:
    snapshot = walk(chart, PATHS[state])
    leaves = [
        s
        for s in snapshot.configuration
        if not any(o.startswith(s + ".") for o in snapshot.configuration)
    ]
    assert leaves == [state], f"walking to {state} reached {snapshot.configuration}"
    return snapshot


@pytest.fixture(scope="module")
def chart() -> engine.Chart:
    return load_chart()


# -- the chart itself ---------------------------------------------------------------


def test_chart_loads_once_from_its_path() -> None:
    assert CHART_PATH.name == "chart.yaml" and CHART_PATH.is_file()
    assert load_chart() is load_chart()
    assert load_chart().name == "container"


def test_states_and_events(chart: engine.Chart) -> None:
    assert chart.states == (
        "created",
        "starting",
        "running",
        "running.active",
        "running.paused",
        "running.restarting",
        "exited",
        "removing",
        "dead",
        "removed",
    )
    assert chart.state("starting").transient and chart.state("removing").transient
    assert chart.state("removed").kind == "final"
    assert chart.state("running").initial == "running.active"
    assert {e for e in chart.events if not e.startswith("done.")} == EVENTS


def test_a_new_container_is_created(chart: engine.Chart) -> None:
    snapshot = chart.initial_snapshot(DATA)
    assert snapshot.configuration == ("created",)
    assert dict(snapshot.data) == DATA


@pytest.mark.parametrize("state", sorted(PATHS))
def test_every_state_is_reachable_with_real_events(chart: engine.Chart, state: str) -> None:
    enter(chart, state)


# -- every rejection, with moby's message -------------------------------------------

NOT_RUNNING_KILL = f"cannot kill container: {NAME}: container {ID} is not running"
NOT_RUNNING = f"container {ID} is not running"
NOT_PAUSED = f"Container {ID} is not paused"
NOT_RESTARTING = f"container {ID} is not restarting"
ALREADY_STOPPED = "container is already stopped"
ALREADY_RUNNING = "container is already running"
MARKED = "container is marked for removal and cannot be started"
RESTART_MARKED = f"Cannot restart container {NAME}: {MARKED}"
NO_SUCH = f"No such container: {NAME}"

Row = tuple[str, str, Mapping[str, Any], type[ChartdError], str]

REJECTIONS: list[Row] = [
    # created: never started
    ("created", "stop", {}, NotModified, ALREADY_STOPPED),
    ("created", "kill", {}, Conflict, NOT_RUNNING_KILL),
    ("created", "pause", {}, Conflict, NOT_RUNNING),
    ("created", "unpause", {}, Conflict, NOT_PAUSED),
    ("created", "exit", {}, NotModified, NOT_RUNNING),
    ("created", "retry", {}, NotModified, NOT_RESTARTING),
    # running.active
    ("running.active", "start", {}, NotModified, ALREADY_RUNNING),
    ("running.active", "unpause", {}, Conflict, NOT_PAUSED),
    (
        "running.active",
        "remove",
        {},
        Conflict,
        f'cannot remove container "{NAME}": container is running: '
        "stop the container before removing or force remove",
    ),
    (
        "running.active",
        "remove",
        {"force": False},
        Conflict,
        f'cannot remove container "{NAME}": container is running: '
        "stop the container before removing or force remove",
    ),
    ("running.active", "retry", {}, NotModified, NOT_RESTARTING),
    # running.paused: paused is checked first
    (
        "running.paused",
        "start",
        {},
        Conflict,
        "cannot start a paused container, try unpause instead",
    ),
    ("running.paused", "pause", {}, Conflict, f"Container {ID} is already paused"),
    (
        "running.paused",
        "remove",
        {},
        Conflict,
        f'cannot remove container "{NAME}": container is paused and must be unpaused first',
    ),
    ("running.paused", "retry", {}, NotModified, NOT_RESTARTING),
    # running.restarting: Running is set, as in moby
    ("running.restarting", "start", {}, NotModified, ALREADY_RUNNING),
    (
        "running.restarting",
        "pause",
        {},
        Conflict,
        f"Container {ID} is restarting, wait until the container is running",
    ),
    ("running.restarting", "unpause", {}, Conflict, NOT_PAUSED),
    (
        "running.restarting",
        "remove",
        {},
        Conflict,
        f'cannot remove container "{NAME}": container is restarting: '
        "stop the container before removing or force remove",
    ),
    (
        "running.restarting",
        "exit",
        {},
        NotModified,
        f"container {ID} already exited and is waiting to restart",
    ),
    # exited
    ("exited", "stop", {}, NotModified, ALREADY_STOPPED),
    ("exited", "kill", {}, Conflict, NOT_RUNNING_KILL),
    ("exited", "kill", {"signal": "SIGHUP"}, Conflict, NOT_RUNNING_KILL),
    ("exited", "pause", {}, Conflict, NOT_RUNNING),
    ("exited", "unpause", {}, Conflict, NOT_PAUSED),
    ("exited", "exit", {"exit_code": 0}, NotModified, NOT_RUNNING),
    ("exited", "retry", {}, NotModified, NOT_RESTARTING),
    # removing: RemovalInProgress
    ("removing", "start", {}, Conflict, MARKED),
    ("removing", "restart", {}, Conflict, RESTART_MARKED),
    ("removing", "stop", {}, NotModified, ALREADY_STOPPED),
    ("removing", "kill", {}, Conflict, NOT_RUNNING_KILL),
    ("removing", "pause", {}, Conflict, NOT_RUNNING),
    ("removing", "unpause", {}, Conflict, NOT_PAUSED),
    ("removing", "remove", {}, Conflict, f"removal of container {NAME} is already in progress"),
    (
        "removing",
        "remove",
        {"force": True},
        Conflict,
        f"removal of container {NAME} is already in progress",
    ),
    ("removing", "exit", {}, NotModified, NOT_RUNNING),
    ("removing", "retry", {}, NotModified, NOT_RESTARTING),
    # dead: a removal failed
    ("dead", "start", {}, Conflict, MARKED),
    ("dead", "restart", {}, Conflict, RESTART_MARKED),
    ("dead", "stop", {}, NotModified, ALREADY_STOPPED),
    ("dead", "kill", {}, Conflict, NOT_RUNNING_KILL),
    ("dead", "pause", {}, Conflict, NOT_RUNNING),
    ("dead", "unpause", {}, Conflict, NOT_PAUSED),
    ("dead", "exit", {}, NotModified, NOT_RUNNING),
    ("dead", "retry", {}, NotModified, NOT_RESTARTING),
    # removed: the container is gone
    *(("removed", event, {}, NotFound, NO_SUCH) for event in sorted(EVENTS)),
    ("removed", "remove", {"force": True}, NotFound, NO_SUCH),
]


@pytest.mark.parametrize(
    ("state", "event", "params", "error", "message"),
    REJECTIONS,
    ids=[f"{r[0]}-{r[1]}-{'-'.join(map(str, r[2].values())) or 'plain'}" for r in REJECTIONS],
)
def test_rejection(
    chart: engine.Chart,
    state: str,
    event: str,
    params: Mapping[str, Any],
    error: type[ChartdError],
    message: str,
) -> None:
    snapshot = enter(chart, state)
    with pytest.raises(ChartdError) as caught:
        engine.step(chart, snapshot, event, params)
    assert type(caught.value) is error
    assert caught.value.category == error.category
    assert caught.value.message == message
    assert str(caught.value) == message


def test_the_table_covers_every_declared_rejection(chart: engine.Chart) -> None:
    """Each (atomic state, event) a rejection of the chart applies to has a row above."""
    atomic = [s for s in chart.states if chart.state(s).kind in ("atomic", "final")]
    declared: set[tuple[str, str]] = set()
    for r in chart.rejections:
        events = r.events if r.events is not None else EVENTS
        for leaf in atomic:
            if leaf == r.state or leaf.startswith(r.state + "."):
                declared.update((leaf, e) for e in events)
    tested = {(state, event) for state, event, *_ in REJECTIONS}
    assert tested == declared


def test_a_deeper_rejection_wins_over_its_ancestors(chart: engine.Chart) -> None:
    # `start in running` is not_modified; `start in running.paused` is the conflict.
    with pytest.raises(Conflict, match="try unpause instead"):
        engine.step(chart, enter(chart, "running.paused"), "start")


def test_messages_name_the_data_of_the_entity(chart: engine.Chart) -> None:
    snapshot = walk(chart, PATHS["running.paused"])
    other = engine.Snapshot(
        snapshot.configuration, {"id": "f00d", "name": "/db"}, snapshot.version, snapshot.history
    )
    with pytest.raises(Conflict) as caught:
        engine.step(chart, other, "pause")
    assert caught.value.message == "Container f00d is already paused"


# -- the pairs nothing declares: the engine's default Conflict ---------------------

# While a saga runs the runtime holds the entity's lock, so no event should
# reach it in a transient state; nothing is declared there, and a transition
# can never leave a transient state.
DEFAULT_CONFLICTS = frozenset({("starting", event) for event in EVENTS} | {("removing", "rename")})


def test_exactly_these_pairs_fall_to_the_default_conflict(chart: engine.Chart) -> None:
    found: set[tuple[str, str]] = set()
    for state in PATHS:
        snapshot = enter(chart, state)
        for event in sorted(EVENTS):
            try:
                engine.step(chart, snapshot, event)
            except Conflict as exc:
                if exc.message == f"event {event!r} is not allowed in state {state!r}":
                    found.add((state, event))
            except ChartdError:
                pass
    assert found == DEFAULT_CONFLICTS


# -- the moves -------------------------------------------------------------------


@dataclass(frozen=True)
class Legal:
    state: str
    event: str
    configuration: tuple[str, ...]
    steps: tuple[str, ...]
    guards: tuple[str, ...] = ()
    via: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    conditions: Mapping[str, engine.ConditionFn] = field(default_factory=dict)
    failure: tuple[str, ...] | None = None  # None: back to the source

    @property
    def id(self) -> str:
        extra = "-".join([*map(str, self.params), *self.conditions])
        return f"{self.state}-{self.event}" + (f"-{extra}" if extra else "")


START_GUARDS = ("checkpoint_allowed", "settings_valid")

LEGAL: list[Legal] = [
    # start
    Legal("created", "start", ACTIVE, START, START_GUARDS, "starting"),
    Legal("exited", "start", ACTIVE, START, START_GUARDS, "starting"),
    # restart: stop if running, then the start saga (no guards, as moby)
    Legal("created", "restart", ACTIVE, START, via="starting"),
    Legal("exited", "restart", ACTIVE, START, via="starting"),
    Legal("running.active", "restart", ACTIVE, STOP + START, via="starting", failure=("exited",)),
    Legal("running.paused", "restart", ACTIVE, STOP + START, via="starting", failure=("exited",)),
    Legal(
        "running.restarting",
        "restart",
        ACTIVE,
        ("cancel_restart", *START),
        via="starting",
        failure=("exited",),
    ),
    # retry: the backoff elapsed
    Legal("running.restarting", "retry", ACTIVE, RETRY, via="starting", failure=("exited",)),
    # pause / unpause
    Legal("running.active", "pause", PAUSED, ("task_pause",)),
    Legal("running.paused", "unpause", ACTIVE, ("task_resume",)),
    # stop
    Legal("running.active", "stop", ("exited",), STOP),
    Legal("running.paused", "stop", ("exited",), STOP),
    Legal("running.restarting", "stop", ("exited",), ("cancel_restart",)),
    # kill
    Legal("running.active", "kill", ("exited",), KILL, ("valid_signal",)),
    Legal(
        "running.paused", "kill", ("exited",), KILL, ("valid_signal",), params={"signal": "KILL"}
    ),
    Legal(
        "running.active",
        "kill",
        ACTIVE,
        ("task_signal",),
        ("valid_signal",),
        params={"signal": "SIGHUP"},
        conditions=SIGNAL_ONLY,
    ),
    Legal(
        "running.paused",
        "kill",
        PAUSED,
        ("task_signal",),
        ("valid_signal",),
        params={"signal": "SIGUSR1"},
        conditions=SIGNAL_ONLY,
    ),
    Legal("running.restarting", "kill", ("exited",), ("cancel_restart",), ("valid_signal",)),
    # exit: the restart policy decides
    Legal("running.active", "exit", RESTARTING, ("task_delete", "cleanup"), conditions=RESTARTS),
    Legal("running.paused", "exit", RESTARTING, ("task_delete", "cleanup"), conditions=RESTARTS),
    Legal(
        "running.active", "exit", ("exited",), ("task_delete", "cleanup"), params={"exit_code": 0}
    ),
    Legal("running.paused", "exit", ("exited",), ("task_delete", "cleanup")),
    # remove
    Legal("created", "remove", ("removed",), REMOVE, via="removing", failure=("dead",)),
    Legal("exited", "remove", ("removed",), REMOVE, via="removing", failure=("dead",)),
    Legal("dead", "remove", ("removed",), REMOVE, via="removing", failure=("dead",)),
    Legal(
        "running.active",
        "remove",
        ("removed",),
        KILL + REMOVE,
        via="removing",
        params={"force": True},
        failure=("dead",),
    ),
    Legal(
        "running.paused",
        "remove",
        ("removed",),
        KILL + REMOVE,
        via="removing",
        params={"force": True},
        failure=("dead",),
    ),
    Legal(
        "running.restarting",
        "remove",
        ("removed",),
        ("cancel_restart", *REMOVE),
        via="removing",
        params={"force": True},
        failure=("dead",),
    ),
    # rename: targetless, in every settled state
    *(
        Legal(
            state, "rename", configuration, RENAME, ("new_name_valid",), params={"new_name": "/x"}
        )
        for state, configuration in [
            ("created", ("created",)),
            ("running.active", ACTIVE),
            ("running.paused", PAUSED),
            ("running.restarting", RESTARTING),
            ("exited", ("exited",)),
            ("dead", ("dead",)),
        ]
    ),
]


@pytest.mark.parametrize("move", LEGAL, ids=[m.id for m in LEGAL])
def test_transition(chart: engine.Chart, move: Legal) -> None:
    source = enter(chart, move.state)
    plan = engine.step(chart, source, move.event, move.params, conditions=move.conditions)
    assert plan.snapshot.configuration == move.configuration
    assert plan.steps == move.steps
    assert plan.guards == move.guards
    assert plan.via == move.via
    if move.via is None:
        assert plan.transient_configuration is None
    else:
        # The transient state alone: the source is left, the target not yet entered.
        assert plan.transient_configuration == (move.via,)
    expected_failure = move.failure if move.failure is not None else source.configuration
    assert plan.failure_configuration == expected_failure
    assert plan.snapshot.version == source.version + 1
    assert plan.snapshot.data["id"] == ID


def test_the_start_saga_follows_moby(chart: engine.Chart) -> None:
    plan = engine.step(chart, chart.initial_snapshot(DATA), "start")
    assert plan.via == "starting"
    assert plan.guards == ("checkpoint_allowed", "settings_valid")
    assert plan.steps == (
        "mount_rootfs",
        "network_sandbox",
        "container_dirs",
        "mounts",
        "spec",
        "reset_restart_manager",
        "runtime_container",
        "task_create",
        "task_start",
    )
    policy = plan.on_failure
    assert policy is not None
    assert policy.to is None  # a failed start leaves the container where it was
    assert policy.record == ("error", "exit_code")
    assert policy.then is not None and policy.then.event == "remove"
    assert policy.then.when is not None and str(policy.then.when) == "auto_remove"
    assert plan.failure_configuration == ("created",)
    assert plan.snapshot.data["manually_stopped"] is False


def test_exit_restarts_only_when_the_policy_says_so(chart: engine.Chart) -> None:
    running = enter(chart, "running.active")
    restarting = engine.step(chart, running, "exit", conditions=RESTARTS)
    assert restarting.snapshot.configuration == RESTARTING
    stopped = engine.step(chart, running, "exit", {"should_restart": False})
    assert stopped.snapshot.configuration == ("exited",)
    # A condition found nowhere is false: the container stops.
    assert engine.step(chart, running, "exit").snapshot.configuration == ("exited",)


def test_retry_and_restart_exit_running_while_the_saga_runs(chart: engine.Chart) -> None:
    plan = engine.step(chart, enter(chart, "running.restarting"), "retry")
    assert plan.exited == ("running.restarting", "running")
    assert plan.entered == ACTIVE
    assert plan.transient_snapshot is not None
    assert plan.transient_snapshot.configuration == ("starting",)


def test_stop_and_kill_record_a_manual_stop(chart: engine.Chart) -> None:
    running = enter(chart, "running.active")
    assert engine.step(chart, running, "stop").snapshot.data["manually_stopped"] is True
    assert engine.step(chart, running, "kill").snapshot.data["manually_stopped"] is True
    signalled = engine.step(chart, running, "kill", {"signal": "SIGHUP"}, conditions=SIGNAL_ONLY)
    assert not signalled.changes_state
    assert signalled.snapshot.data["manually_stopped"] is True  # moby: for any signal


def test_a_failed_removal_leaves_the_container_dead(chart: engine.Chart) -> None:
    plan = engine.step(chart, enter(chart, "exited"), "remove")
    assert plan.failure_snapshot.configuration == ("dead",)
    assert plan.on_failure is not None and plan.on_failure.record == ("error",)
    again = engine.step(chart, plan.failure_snapshot, "remove")
    assert again.snapshot.configuration == ("removed",)


def test_every_pair_is_a_move_a_rejection_or_a_listed_default(chart: engine.Chart) -> None:
    """Fired with no params, each (state, event) is in exactly one of the tables above."""
    moves = {(m.state, m.event) for m in LEGAL}
    refusals = {(s, e) for s, e, *_ in REJECTIONS}
    for state in PATHS:
        snapshot = enter(chart, state)
        for event in sorted(EVENTS):
            pair = (state, event)
            try:
                engine.step(chart, snapshot, event)
            except ChartdError:
                assert pair in refusals or pair in DEFAULT_CONFLICTS, pair
                assert not (pair in refusals and pair in DEFAULT_CONFLICTS), pair
            else:
                assert pair in moves, pair
                assert pair not in refusals and pair not in DEFAULT_CONFLICTS, pair
