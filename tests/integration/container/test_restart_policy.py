"""Restart policies on real processes: moby's restart manager, on durable timers (issue 4).

The engine's clock is held, so a restarting container waits for its
``retry`` timer until the test moves the clock: the backoff is read from
the timer (its due time) and the container's data, never from wall time.
The one rule that needs a process to run for 10 s (the backoff resets) runs
on the FakeRuntime, whose clock the test moves too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from container_daemon import Clock, Daemon, Waiter, eventually

import engine
from statecharts.container.faults import FakeRuntime
from statecharts.container.service import Containers

EXITS_1 = ["sh", "-c", "exit 1"]


def pending(daemon: Daemon, cid: str) -> list[tuple[str, float]]:
    """The container's pending timers: (event, seconds from now)."""
    now = daemon.clock.now()
    return [
        (t.event, round(t.due_at - now, 6))
        for t in daemon.engine.store.timers(cid)
        if t.status == "pending"
    ]


def elapse(daemon: Daemon, seconds: float) -> None:
    """Move the held clock and fire what fell due (the timer thread may beat us to it)."""
    daemon.clock.advance(seconds)
    daemon.engine.run_due_timers()


@pytest.fixture
def daemon(daemon: Daemon) -> Daemon:
    daemon.clock.hold()
    return daemon


def test_on_failure_3_starts_four_times_restarts_three_times_then_exits(daemon: Daemon) -> None:
    svc = daemon.containers
    cid = svc.create(EXITS_1, name="flaky", restart="on-failure:3").id
    since = daemon.engine.sequence()
    svc.start("flaky")

    for count, backoff in enumerate([0.1, 0.2, 0.4], start=1):
        restarting = daemon.settled(cid, "restarting")
        assert (restarting.data["restart_count"], restarting.data["restart_backoff"]) == (
            count,
            backoff,
        )
        assert pending(daemon, cid) == [("retry", backoff)]
        state = svc.inspect("flaky")
        assert (state["RestartCount"], state["State"]["ExitCode"], state["State"]["Pid"]) == (
            count,
            1,
            0,
        )
        elapse(daemon, backoff / 2)
        assert daemon.entity(cid).version == restarting.version  # not due yet
        elapse(daemon, backoff)
        daemon.until(cid, lambda e, v=restarting.version: e.version > v, "the retry")

    exited = daemon.settled(cid, "exited")
    state = svc.inspect("flaky")
    assert (state["State"]["Status"], state["RestartCount"], state["State"]["ExitCode"]) == (
        "exited",
        3,
        1,
    )
    assert pending(daemon, cid) == []
    assert daemon.events(since, cid) == ["start", "die:1"] * 4
    assert [t.event for t in daemon.engine.history(cid)] == ["start"] + ["exit", "retry"] * 3 + [
        "exit"
    ]

    # A manual start resets the restart manager: the policy applies afresh.
    svc.start("flaky")
    again = daemon.settled(cid, "restarting")
    assert again.version > exited.version
    assert (again.data["restart_count"], again.data["restart_backoff"]) == (1, 0.1)


@pytest.mark.parametrize(
    ("policy", "code", "restarts"),
    [
        ("no", 1, False),
        ("always", 0, True),
        ("always", 1, True),
        ("unless-stopped", 0, True),
        ("on-failure", 0, False),
        ("on-failure", 1, True),
        ("on-failure:1", 1, True),
    ],
)
def test_which_exits_each_policy_restarts(
    daemon: Daemon, policy: str, code: int, restarts: bool
) -> None:
    svc = daemon.containers
    cid = svc.create(["sh", "-c", f"exit {code}"], name="box", restart=policy).id
    svc.start("box")
    settled = daemon.settled(cid, "restarting" if restarts else "exited")
    assert settled.data["exit_code"] == code
    assert pending(daemon, cid) == ([("retry", 0.1)] if restarts else [])
    assert svc.inspect("box")["RestartCount"] == (1 if restarts else 0)


def test_a_manual_stop_of_a_restarting_container_cancels_the_restart(daemon: Daemon) -> None:
    svc = daemon.containers
    cid = svc.create(EXITS_1, name="box", restart="always").id
    svc.start("box")
    daemon.settled(cid, "restarting")
    since = daemon.engine.sequence()

    svc.stop("box")

    stopped = daemon.settled(cid, "exited")
    assert (stopped.data["manually_stopped"], stopped.data["exit_code"]) == (True, 1)
    assert daemon.events(since, cid) == ["stop"]
    assert pending(daemon, cid) == []
    assert [t.status for t in daemon.engine.store.timers(cid)] == ["cancelled"]
    elapse(daemon, 60)
    assert daemon.entity(cid).version == stopped.version


def test_a_stopped_running_container_is_not_restarted_by_its_policy(daemon: Daemon) -> None:
    svc = daemon.containers
    cid = svc.create(["sleep", "1000"], name="box", restart="always").id
    svc.start("box")

    svc.stop("box")  # SIGTERM: exit 143, which `always` would restart

    stopped = daemon.settled(cid, "exited")
    assert (stopped.data["exit_code"], stopped.data["manually_stopped"]) == (143, True)
    assert svc.inspect("box")["RestartCount"] == 0
    assert pending(daemon, cid) == []


def test_a_kill_with_a_signal_that_does_not_end_it_keeps_it_restarting_as_manually_stopped(
    daemon: Daemon,
) -> None:
    """moby: any kill sets HasBeenManuallyStopped; only an ending signal cancels the restart.

    The container has a stop signal (SIGTERM), so SIGWINCH does not end it:
    the retry still happens, and when the process exits again ``unless-stopped``
    does not restart it (the reference's finding 6).
    """
    svc = daemon.containers
    cid = svc.create(EXITS_1, name="box", restart="unless-stopped", stop_signal="SIGTERM").id
    svc.start("box")
    restarting = daemon.settled(cid, "restarting")
    since = daemon.engine.sequence()

    svc.kill("box", signal="SIGWINCH")

    after = daemon.entity(cid)
    assert after.state == "running.restarting"
    assert after.data["manually_stopped"] is True
    assert pending(daemon, cid) == [("retry", 0.1)]
    assert daemon.events(since, cid) == []  # no process: no signal, no event (kill.go)

    elapse(daemon, 0.1)  # the retry runs it; it exits 1 again: not restarted now
    daemon.until(cid, lambda e: e.version > restarting.version + 2, "retry and exit")
    final = daemon.settled(cid, "exited")
    assert (final.data["restart_count"], final.data["exit_code"]) == (1, 1)
    assert daemon.events(since, cid) == ["start", "die:1"]


def test_a_kill_with_the_stop_signal_ends_a_restarting_container(daemon: Daemon) -> None:
    svc = daemon.containers
    cid = svc.create(EXITS_1, name="box", restart="always", stop_signal="SIGTERM").id
    svc.start("box")
    daemon.settled(cid, "restarting")

    svc.kill("box", signal="SIGTERM")

    ended = daemon.settled(cid, "exited")
    assert ended.data["manually_stopped"] is True
    assert pending(daemon, cid) == []


def test_a_retry_that_fails_to_start_leaves_the_container_exited(
    daemon: Daemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moby's monitor: the restart failed, so SetStopped (and autoRemove)."""
    script = tmp_path / "entry"
    script.write_text("#!/bin/sh\nexit 1\n")
    script.chmod(0o755)
    svc = daemon.containers
    cid = svc.create([str(script)], name="box", restart="always").id
    svc.start("box")
    daemon.settled(cid, "restarting")
    script.unlink()
    waiter = Waiter(daemon, monkeypatch, "box", "not-running")  # a restarting one runs

    elapse(daemon, 0.1)

    failed = daemon.settled(cid, "exited")
    message = f'exec: "{script}": stat {script}: no such file or directory'
    assert (failed.data["exit_code"], failed.data["error"]) == (127, message)
    assert waiter.join() == (127, message)  # moby's SetStopped wakes the waiters
    assert svc.inspect("box")["RestartCount"] == 1
    assert daemon.engine.history(cid)[-1].event == "retry"
    assert daemon.leftovers(cid) == []


# -- the backoff, on a clock the test moves -----------------------------------------------------


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[tuple[Containers, FakeRuntime, Clock]]:
    clock = Clock()
    clock.hold(1_000_000.0)
    runtime = FakeRuntime(clock=clock.now)
    with engine.Engine.open(clock=clock, timers=False) as eng:
        yield Containers(eng, runtime, tmp_path, clock=clock.now), runtime, clock


def test_the_backoff_doubles_to_a_minute_and_resets_after_ten_seconds_of_running(
    fake: tuple[Containers, FakeRuntime, Clock],
) -> None:
    svc, runtime, clock = fake
    cid = svc.create(["app"], name="box", restart="always").id
    svc.start("box")
    delays = []
    for _ in range(12):
        runtime.exit(cid, 1)
        entity = restarting(svc, cid)
        delays.append(entity.data["restart_backoff"])
        clock.advance(delays[-1])
        assert svc.engine.run_due_timers() == 1
        assert svc.get("box").in_state("running.active")
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 51.2, 60.0, 60.0]

    clock.advance(10)  # it ran for 10 s: the next exit starts the backoff over
    runtime.exit(cid, 1)
    assert restarting(svc, cid).data["restart_backoff"] == 0.1
    assert svc.inspect("box")["RestartCount"] == 13
    assert svc.stop("box").state == "exited"


def restarting(svc: Containers, cid: str) -> engine.Entity:
    """The container once the exit reported by the runtime took it to restarting."""
    entity: engine.Entity = eventually(
        lambda: (e := svc.engine.get(cid)).state == "running.restarting" and e, "restarting"
    )
    return entity
