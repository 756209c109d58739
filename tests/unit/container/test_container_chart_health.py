"""Version 2 of the container chart: the health region and exec, moby's refusals and moves."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

import engine
from engine.errors import ChartdError, Conflict, NotModified
from statecharts.container import load_chart
from statecharts.container.health import (
    CONDITIONS,
    go_duration,
    health_status,
    healthcheck_data,
    next_delay,
)

ID = "abc123"
DATA = {"id": ID, "name": "/web"}
HC = {"healthcheck": {"test": ["CMD", "true"], "retries": 2}}
CHART = load_chart()


def at(state: str, data: Mapping[str, Any] | None = None) -> engine.Snapshot:
    """A container driven to ``state`` with real events (a health check when ``data`` has one)."""
    s = CHART.initial_snapshot({**DATA, **(data or {})})

    def fire(event: str, params: Mapping[str, Any] | None = None) -> None:
        nonlocal s
        s = engine.step(CHART, s, event, dict(params or {}), conditions=CONDITIONS).snapshot

    if state == "created":
        return s
    if state in ("removing", "dead"):
        plan = engine.step(CHART, s, "remove")
        return plan.transient_snapshot if state == "removing" else plan.failure_snapshot  # type: ignore[return-value]
    fire("start")
    if state == "paused":
        fire("pause")
    elif state == "exited":
        fire("exit", {"exit_code": 0})
    return s


def restarting() -> engine.Snapshot:
    s = engine.step(CHART, at("created"), "start").snapshot
    return engine.step(
        CHART, s, "exit", {"exit_code": 1}, conditions={"should_restart": lambda *_: True}
    ).snapshot


NOT_RUNNING = f"Container {ID} is not running"
PAUSED_ID = f"Container {ID} is paused, unpause the container before exec"
RESTARTING = f"Container {ID} is restarting, wait until the container is running"
EXEC = {"exec_id": "e1", "cmd": ["ls"], "ref": "web"}


@pytest.mark.parametrize(
    ("state", "event", "error", "message"),
    [
        ("created", "exec_create", Conflict, NOT_RUNNING),
        ("exited", "exec_create", Conflict, NOT_RUNNING),
        ("dead", "exec_start", Conflict, NOT_RUNNING),
        ("removing", "exec_create", Conflict, NOT_RUNNING),
        (
            "paused",
            "exec_create",
            Conflict,
            "Container web is paused, unpause the container before exec",
        ),
        ("paused", "exec_start", Conflict, PAUSED_ID),
        ("restarting", "exec_create", Conflict, RESTARTING),
        ("restarting", "exec_start", Conflict, RESTARTING),
        ("removing", "exec_die", NotModified, f"container {ID} is being removed"),
        ("paused", "health_check", NotModified, f"container {ID} is not running"),
        ("exited", "probe_passed", NotModified, f"container {ID} is not running"),
        ("restarting", "probe_failed", NotModified, f"container {ID} is not running"),
        ("running", "health_check", NotModified, f"container {ID} has no health check"),
    ],
)
def test_refusals(state: str, event: str, error: type[ChartdError], message: str) -> None:
    snapshot = restarting() if state == "restarting" else at(state)
    params = {"probe": "p", "exit_code": 0} if event.startswith("probe") else EXEC
    with pytest.raises(error) as caught:
        engine.step(CHART, snapshot, event, params, conditions=CONDITIONS)
    assert type(caught.value) is error and caught.value.message == message


def test_exec_events_are_taken_by_a_running_container_and_change_no_state() -> None:
    running = at("running")
    for event in ("exec_create", "exec_start", "exec_die"):
        plan = engine.step(CHART, running, event, EXEC)
        assert plan.snapshot.configuration == running.configuration
        assert plan.steps == (
            event.replace("exec_", "exec_") + ("d" if event.endswith("e") else "ed"),
        )
    # An exec ends with its container: its exec_die is taken after the exit too.
    assert engine.step(CHART, at("exited"), "exec_die", EXEC).steps == ("exec_died",)


def test_a_start_with_a_health_check_enters_starting_and_resets() -> None:
    plan = engine.step(CHART, at("created", HC), "start", conditions=CONDITIONS)
    assert plan.snapshot.configuration[-1] == "running.active.health.starting"
    assert plan.steps[-1] == "health_reset"
    without = engine.step(CHART, at("created"), "start", conditions=CONDITIONS)
    assert without.snapshot.configuration[-1] == "running.active.health.none"
    assert "health_reset" not in without.steps


def test_results_move_the_region_and_pause_keeps_it() -> None:
    s = at("running", HC)
    assert engine.step(CHART, s, "health_check").steps == ("probe_start",)
    ok = engine.step(
        CHART, s, "probe_passed", {"probe": "p", "exit_code": 0}, conditions=CONDITIONS
    )
    assert ok.snapshot.configuration[-1] == "running.active.health.healthy"
    assert ok.guards == ("current_probe",) and ok.steps == ("record_probe",)
    # retries 2: the streak is 0, so one failure stays healthy; with a streak of 1 it is not.
    failed = {"probe": "p", "exit_code": 1}
    once = engine.step(CHART, ok.snapshot, "probe_failed", failed, conditions=CONDITIONS)
    assert once.snapshot.configuration[-1] == "running.active.health.healthy"
    streak = engine.Snapshot(
        ok.snapshot.configuration,
        {**ok.snapshot.data, "health": {"failing_streak": 1}},
        ok.snapshot.version,
        ok.snapshot.history,
    )
    twice = engine.step(CHART, streak, "probe_failed", failed, conditions=CONDITIONS)
    assert twice.snapshot.configuration[-1] == "running.active.health.unhealthy"
    paused = engine.step(CHART, twice.snapshot, "pause").snapshot
    assert paused.configuration[-1] == "running.paused"
    back = engine.step(CHART, paused, "unpause", conditions=CONDITIONS)
    assert back.snapshot.configuration[-1] == "running.active.health.unhealthy"
    assert back.steps == ("task_resume", "health_resume")


def test_a_version_1_path_of_a_paused_container_comes_back_to_its_default() -> None:
    # A container paused under version 1 has no history of the region: unpause enters
    # its default, then `starting` when it has a health check.
    v1_paused = engine.Snapshot(("running", "running.paused"), {**DATA, **HC}, 3, {})
    back = engine.step(CHART, v1_paused, "unpause", conditions=CONDITIONS)
    assert back.snapshot.configuration[-1] == "running.active.health.starting"
    assert back.steps == ("task_resume", "health_resume", "health_reset")


def test_healthcheck_options_and_go_durations() -> None:
    assert healthcheck_data(None) is None
    assert healthcheck_data({"test": ["CMD-SHELL", "true"], "interval": 0.001})["interval"] == 0.001
    for bad, message in (
        (
            {"test": ["CMD", "x"], "timeout": 0.0005},
            "Timeout in Healthcheck cannot be less than 1ms",
        ),
        ({"test": ["CMD", "x"], "retries": -1}, "Retries in Healthcheck cannot be negative"),
        (
            {"test": ["CMD", "x"], "start_period": -2},
            "StartPeriod in Healthcheck cannot be less than 1ms",
        ),
        (
            {"test": ["CMD", "x"], "interval": float("nan")},
            "Interval in Healthcheck must be a duration",
        ),
    ):
        with pytest.raises(ChartdError, match=message):
            healthcheck_data(bad)
    assert [go_duration(x) for x in (30, 1.5, 0.2, 90, 3600, 0, 0.0000015)] == [
        "30s", "1.5s", "200ms", "1m30s", "1h0m0s", "0s", "1.5µs",
    ]  # fmt: skip


def test_the_wait_before_a_probe() -> None:
    hc = {"interval": 10.0, "start_interval": 2.0, "start_period": 5.0}
    data = {"healthcheck": hc, "started_at": 100.0}
    assert next_delay(data, "starting", 100.0) == 2.0  # the start interval
    assert next_delay(data, "starting", 104.0) == 1.0  # at most until the period ends
    assert next_delay(data, "starting", 106.0) == 10.0  # the period is over
    assert next_delay(data, "healthy", 101.0) == 10.0  # not starting any more
    assert next_delay({"healthcheck": {}, "started_at": 100.0}, "starting", 100.0) == 30.0


def test_a_container_has_a_health_status_once_started() -> None:
    created = engine.Entity("c1", "container", "web", ("created",), {**DATA, **HC}, 1, {}, 0.0, 0.0)
    assert health_status(created) is None
    conf = ("running", "running.active", "running.active.health", "running.active.health.healthy")
    running = engine.Entity("c1", "container", "web", conf, {**DATA, **HC}, 2, {}, 0.0, 0.0)
    assert health_status(running) == "healthy"
    stopped = engine.Entity(
        "c1", "container", "web", ("exited",), {**DATA, **HC, "health": {"status": "unhealthy"}},
        3, {}, 0.0, 0.0,
    )  # fmt: skip
    assert health_status(stopped) == "unhealthy"
