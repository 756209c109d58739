"""The declared container chart: every refusal with moby's exact message, every move.

This file covers the lifecycle of the process (the events of the chart's
version 1); the health region and exec are in test_container_chart_health.py.
A running container without a health check is in ``running.active`` with its
health region in ``none``.

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
from engine.core import holds
from engine.errors import ChartdError, Conflict, NotFound, NotModified
from statecharts.container import CHART_PATH, load_chart
from statecharts.container.conditions import CONDITIONS

ID = "abc123"
NAME = "/web"
DATA = {"id": ID, "name": NAME}


def _true(snapshot: engine.Snapshot, params: Mapping[str, Any]) -> bool:
    return True


RESTARTS: Mapping[str, engine.ConditionFn] = {"should_restart": _true}

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
# restart stops a running container in its own saga: signal, wait, kill.
SYNC_STOP = ("task_stop", "task_delete", "cleanup")
# A forced remove kills a running container first.
FORCE_KILL = ("task_kill", "task_delete", "cleanup")
# The process exited (monitor.go): back to exited, or to restarting by the policy.
EXIT = ("task_delete", "cleanup", "record_exit")
EXIT_TO_RESTART = ("task_delete", "cleanup", "schedule_retry")
RENAME = ("reserve_name", "rename_endpoints", "release_old_name")

ACTIVE = ("running", "running.active", "running.active.health", "running.active.health.none")
PAUSED = ("running", "running.paused")
RESTARTING = ("running", "running.restarting")

EVENTS = frozenset(
    {
        "start",
        "stop",
        "stop_timeout",
        "kill",
        "pause",
        "unpause",
        "restart",
        "remove",
        "exit",
        "retry",
        "rename",
        "update",
    }
)

# Version 2's: the health region and exec (test_container_chart_health.py).
NEW_EVENTS = frozenset(
    {"health_check", "probe_passed", "probe_failed", "exec_create", "exec_start", "exec_die"}
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
    # A stop only signals: the process's exit moves the container.
    "exited": (START_MOVE, Move("stop"), Move("exit", {"exit_code": 143})),
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
    if state == "running.active":  # its health region, without a health check
        state = "running.active.health.none"
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
        "running.active.health",
        "running.active.health.none",
        "running.active.health.starting",
        "running.active.health.healthy",
        "running.active.health.unhealthy",
        "running.active.health.last",
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
    assert {e for e in chart.events if not e.startswith("done.")} == EVENTS | NEW_EVENTS | {
        "resize"
    }


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
UPDATE_MARKED = (
    f'Cannot update container {ID}: container is marked for removal and cannot be "update"'
)

Row = tuple[str, str, Mapping[str, Any], type[ChartdError], str]

REJECTIONS: list[Row] = [
    # created: never started
    ("created", "stop", {}, NotModified, ALREADY_STOPPED),
    ("created", "kill", {}, Conflict, NOT_RUNNING_KILL),
    ("created", "pause", {}, Conflict, NOT_RUNNING),
    ("created", "unpause", {}, Conflict, NOT_PAUSED),
    ("created", "exit", {}, NotModified, NOT_RUNNING),
    ("created", "stop_timeout", {}, NotModified, NOT_RUNNING),
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
    ("running.restarting", "stop_timeout", {}, NotModified, NOT_RUNNING),
    # exited
    ("exited", "stop", {}, NotModified, ALREADY_STOPPED),
    ("exited", "kill", {}, Conflict, NOT_RUNNING_KILL),
    ("exited", "kill", {"signal": "SIGHUP"}, Conflict, NOT_RUNNING_KILL),
    ("exited", "pause", {}, Conflict, NOT_RUNNING),
    ("exited", "unpause", {}, Conflict, NOT_PAUSED),
    ("exited", "exit", {"exit_code": 0}, NotModified, NOT_RUNNING),
    ("exited", "stop_timeout", {}, NotModified, NOT_RUNNING),
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
    ("removing", "stop_timeout", {}, NotModified, NOT_RUNNING),
    ("removing", "retry", {}, NotModified, NOT_RESTARTING),
    ("removing", "update", {}, Conflict, UPDATE_MARKED),
    # dead: a removal failed
    ("dead", "start", {}, Conflict, MARKED),
    ("dead", "restart", {}, Conflict, RESTART_MARKED),
    ("dead", "stop", {}, NotModified, ALREADY_STOPPED),
    ("dead", "kill", {}, Conflict, NOT_RUNNING_KILL),
    ("dead", "pause", {}, Conflict, NOT_RUNNING),
    ("dead", "unpause", {}, Conflict, NOT_PAUSED),
    ("dead", "exit", {}, NotModified, NOT_RUNNING),
    ("dead", "stop_timeout", {}, NotModified, NOT_RUNNING),
    ("dead", "retry", {}, NotModified, NOT_RESTARTING),
    ("dead", "update", {}, Conflict, UPDATE_MARKED),
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
    atomic = list(PATHS)
    declared: set[tuple[str, str]] = set()
    for r in chart.rejections:
        events = EVENTS if r.events is None else set(r.events) & EVENTS
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


def test_messages_take_the_id_from_the_fields_below_the_data(chart: engine.Chart) -> None:
    # The runtime keeps the ID as the entity's key, not in its data: it passes it as a field.
    snapshot = walk(chart, PATHS["exited"])
    keyless = engine.Snapshot(
        snapshot.configuration, {"name": NAME}, snapshot.version, snapshot.history
    )
    with pytest.raises(NotModified) as caught:
        engine.step(chart, keyless, "stop_timeout", fields={"id": "f00d"})
    assert caught.value.message == "container f00d is not running"
    # The data wins over the fields, and a name found nowhere is left as written.
    with pytest.raises(NotModified) as caught:
        engine.step(chart, snapshot, "stop_timeout", fields={"id": "f00d"})
    assert caught.value.message == NOT_RUNNING
    with pytest.raises(NotModified) as caught:
        engine.step(chart, keyless, "stop_timeout")
    assert caught.value.message == "container {id} is not running"


# -- the pairs nothing declares: the engine's default Conflict ---------------------

# While a saga runs the runtime holds the entity's lock, so no event should
# reach it in a transient state (a due `stop_timeout` waits for the lock, and
# the saga's task_delete cancels it); nothing is declared there, and a
# transition can never leave a transient state.
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
    assign: Mapping[str, Any] = field(default_factory=dict)  # the transition's `set`
    then: tuple[str, str | None] | None = None  # the follow-up: (event, when)

    @property
    def id(self) -> str:
        extra = "-".join([*(f"{k}={v}" for k, v in self.params.items()), *self.conditions])
        return f"{self.state}-{self.event}" + (f"-{extra}" if extra else "")


START_GUARDS = ("checkpoint_allowed", "settings_valid")
SIGNAL = ("valid_signal",)

MANUAL = {"manually_stopped": True}
UNSET = {"manually_stopped": False}
AUTO_REMOVE = ("remove", "auto_remove")

# Every settled state, with its configuration.
SETTLED = [
    ("created", ("created",)),
    ("running.active", ACTIVE),
    ("running.paused", PAUSED),
    ("running.restarting", RESTARTING),
    ("exited", ("exited",)),
    ("dead", ("dead",)),
]

LEGAL: list[Legal] = [
    # start
    Legal("created", "start", ACTIVE, START, START_GUARDS, "starting", assign=UNSET),
    Legal("exited", "start", ACTIVE, START, START_GUARDS, "starting", assign=UNSET),
    # restart: stop if running, then the start saga (no guards, as moby)
    Legal("created", "restart", ACTIVE, START, via="starting", assign=UNSET),
    Legal("exited", "restart", ACTIVE, START, via="starting", assign=UNSET),
    Legal(
        "running.active",
        "restart",
        ACTIVE,
        SYNC_STOP + START,
        via="starting",
        failure=("exited",),
        assign=UNSET,
    ),
    Legal(
        "running.paused",
        "restart",
        ACTIVE,
        SYNC_STOP + START,
        via="starting",
        failure=("exited",),
        assign=UNSET,
    ),
    Legal(
        "running.restarting",
        "restart",
        ACTIVE,
        ("cancel_restart", *START),
        via="starting",
        failure=("exited",),
        assign=UNSET,
    ),
    # retry: the backoff elapsed
    Legal("running.restarting", "retry", ACTIVE, RETRY, via="starting", failure=("exited",)),
    # pause / unpause
    Legal("running.active", "pause", PAUSED, ("task_pause", "health_stop")),
    Legal("running.paused", "unpause", ACTIVE, ("task_resume", "health_resume")),
    # stop: the signal now, the container stays until its process exits; the
    # manual stop is the step's to record (not during a daemon shutdown); a signal
    # moby cannot parse is refused before anything is sent
    Legal("running.active", "stop", ACTIVE, ("stop_signal",), SIGNAL),
    Legal(
        "running.active",
        "stop",
        ACTIVE,
        ("stop_signal",),
        SIGNAL,
        params={"signal": "SIGINT", "timeout": 3},
    ),
    Legal("running.active", "stop", ACTIVE, ("stop_signal",), SIGNAL, params={"shutdown": True}),
    # a paused container is thawed after an ending signal (moby resumes it)
    Legal("running.paused", "stop", ACTIVE, ("stop_signal",), SIGNAL, conditions=CONDITIONS),
    Legal("running.paused", "stop", PAUSED, ("stop_signal",), SIGNAL),
    Legal("running.restarting", "stop", ("exited",), ("cancel_restart",), assign=MANUAL),
    # a daemon shutdown is no manual stop
    Legal(
        "running.restarting", "stop", ("exited",), ("cancel_restart",), params={"shutdown": True}
    ),
    # stop_timeout: the stop's durable timer, SIGKILL
    Legal("running.active", "stop_timeout", ACTIVE, ("task_kill",)),
    Legal("running.paused", "stop_timeout", PAUSED, ("task_kill",)),
    # kill: the signal is delivered whatever it is; an ending one brings the exit
    Legal("running.active", "kill", ACTIVE, ("task_signal",), ("valid_signal",)),
    Legal(
        "running.active",
        "kill",
        ACTIVE,
        ("task_signal",),
        ("valid_signal",),
        params={"signal": "SIGHUP"},
    ),
    Legal(
        "running.paused",
        "kill",
        ACTIVE,
        ("task_signal",),
        ("valid_signal",),
        params={"signal": "KILL"},
        conditions=CONDITIONS,
    ),
    Legal(
        "running.paused",
        "kill",
        PAUSED,
        ("task_signal",),
        ("valid_signal",),
        params={"signal": "SIGUSR1"},
    ),
    Legal(
        "running.restarting",
        "kill",
        ("exited",),
        ("cancel_restart",),
        ("valid_signal",),
        assign=MANUAL,
        conditions=CONDITIONS,
    ),
    # a signal that does not end it: a manual stop, and the restart goes on
    Legal("running.restarting", "kill", RESTARTING, (), ("valid_signal",), assign=MANUAL),
    # exit: only the current task's; the restart policy decides
    Legal(
        "running.active",
        "exit",
        RESTARTING,
        EXIT_TO_RESTART,
        ("current_task",),
        conditions=RESTARTS,
    ),
    Legal(
        "running.paused",
        "exit",
        RESTARTING,
        EXIT_TO_RESTART,
        ("current_task",),
        conditions=RESTARTS,
    ),
    Legal(
        "running.active",
        "exit",
        ("exited",),
        EXIT,
        ("current_task",),
        params={"exit_code": 0, "pid": 4242},
        then=AUTO_REMOVE,
    ),
    Legal("running.paused", "exit", ("exited",), EXIT, ("current_task",), then=AUTO_REMOVE),
    # remove
    Legal("created", "remove", ("removed",), REMOVE, via="removing", failure=("dead",)),
    Legal("exited", "remove", ("removed",), REMOVE, via="removing", failure=("dead",)),
    Legal("dead", "remove", ("removed",), REMOVE, via="removing", failure=("dead",)),
    Legal(
        "running.active",
        "remove",
        ("removed",),
        FORCE_KILL + REMOVE,
        via="removing",
        params={"force": True},
        failure=("dead",),
    ),
    Legal(
        "running.paused",
        "remove",
        ("removed",),
        FORCE_KILL + REMOVE,
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
        for state, configuration in SETTLED
    ),
    # update: targetless, in every state but removal
    *(
        Legal(
            state,
            "update",
            configuration,
            ("update_config",),
            ("update_allowed",),
            params={"restart_policy": {"name": "always", "maximum_retry_count": 0}},
        )
        for state, configuration in SETTLED
        if state != "dead"
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
    assert dict(plan.transition.assign) == move.assign
    then = plan.transition.then
    follow_up = (
        None if then is None else (then.event, None if then.when is None else str(then.when))
    )
    assert follow_up == move.then
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


def test_a_stop_signals_now_kills_on_its_timer_and_the_exit_completes_it(
    chart: engine.Chart,
) -> None:
    running = enter(chart, "running.active")
    stop = engine.step(chart, running, "stop", {"timeout": 10})
    assert not stop.changes_state
    assert stop.steps == ("stop_signal",)  # the signal, and the durable `stop_timeout` timer
    assert stop.via is None and stop.transition.then is None
    timeout = engine.step(chart, stop.snapshot, "stop_timeout")
    assert not timeout.changes_state
    assert timeout.steps == ("task_kill",)
    ended = engine.step(chart, timeout.snapshot, "exit", {"exit_code": 137, "pid": 4242})
    assert ended.snapshot.configuration == ("exited",)
    assert ended.exited == (
        "running.active.health.none",
        "running.active.health",
        "running.active",
        "running",
    )
    assert ended.guards == ("current_task",)  # an exit of an older process is refused
    assert ended.steps == EXIT
    # A timer that fires after the exit finds nothing to kill.
    with pytest.raises(NotModified) as caught:
        engine.step(chart, ended.snapshot, "stop_timeout")
    assert caught.value.message == NOT_RUNNING


def test_the_chart_marks_a_manual_stop_only_for_a_restarting_container(
    chart: engine.Chart,
) -> None:
    # From a running process, the steps `stop_signal` and `task_signal` record it
    # (unless the daemon is shutting down): the chart leaves the data alone.
    running = enter(chart, "running.active")
    for event, params in [
        ("stop", {}),
        ("stop", {"shutdown": True}),
        ("kill", {}),
        ("kill", {"signal": "SIGHUP"}),
        ("stop_timeout", {}),
    ]:
        plan = engine.step(chart, running, event, params)
        assert not plan.changes_state, event
        assert plan.snapshot.data == running.data, event
    # A restarting container has no process: the chart itself sets it.
    restarting = enter(chart, "running.restarting")
    for event in ("stop", "kill"):
        plan = engine.step(chart, restarting, event, conditions=CONDITIONS)
        assert plan.snapshot.configuration == ("exited",)
        assert plan.snapshot.data["manually_stopped"] is True
    shutdown = engine.step(chart, restarting, "stop", {"shutdown": True})
    assert not shutdown.snapshot.data.get("manually_stopped")


def test_an_exit_to_exited_asks_for_the_auto_remove(chart: engine.Chart) -> None:
    running = enter(chart, "running.active")
    plan = engine.step(chart, running, "exit", {"exit_code": 0})
    follow_up = plan.transition.then
    assert follow_up is not None and follow_up.event == "remove"
    # `when` is decided on the committed snapshot: the container's --rm.
    assert not holds(follow_up.when, plan.snapshot, plan.params)
    rm = engine.Snapshot(
        running.configuration, {**running.data, "auto_remove": True}, running.version
    )
    removed = engine.step(chart, rm, "exit", {"exit_code": 0})
    assert holds(follow_up.when, removed.snapshot, removed.params)
    # The follow-up is a new fire: from exited, `remove` removes the container.
    assert engine.step(chart, removed.snapshot, "remove").snapshot.configuration == ("removed",)
    # Going to restart, no follow-up (--rm refuses a restart policy anyway).
    restarting = engine.step(chart, rm, "exit", {"exit_code": 1}, conditions=RESTARTS)
    assert restarting.snapshot.configuration == RESTARTING
    assert restarting.transition.then is None


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


# -- version 4: resize (moby's resize.go: GetRunningTask, then the `resize` event) --------


@pytest.mark.parametrize("state", list(PATHS))
def test_resize_needs_a_running_task(chart: engine.Chart, state: str) -> None:
    snapshot = enter(chart, state)
    size = {"height": 24, "width": 80}
    if state in ("running.active", "running.paused"):
        plan = engine.step(chart, snapshot, "resize", size)
        assert plan.snapshot.configuration == snapshot.configuration
        assert plan.steps == ("resized",)
        return
    with pytest.raises(ChartdError) as caught:
        engine.step(chart, snapshot, "resize", size)
    if state == "removed":
        assert (type(caught.value), caught.value.message) == (NotFound, NO_SUCH)
    elif state == "starting":  # a saga holds the entity: nothing reaches it
        assert caught.value.message == "event 'resize' is not allowed in state 'starting'"
    else:
        assert (type(caught.value), caught.value.message) == (Conflict, NOT_RUNNING)
