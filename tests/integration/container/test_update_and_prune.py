"""update, top and prune on the container service, with the real process runtime.

The engine's clock is held where a container must stay ``restarting``:
its retry falls due only when the test moves the clock.
"""

from __future__ import annotations

import time

import pytest
from container_daemon import Daemon

from engine.errors import Conflict, InvalidParameter, NotFound

EXITS_1 = ["sh", "-c", "exit 1"]
SLEEPS = ["sh", "-c", "sleep 600"]


def elapse(daemon: Daemon, seconds: float) -> None:
    daemon.clock.advance(seconds)
    daemon.engine.run_due_timers()


def test_a_restarting_container_restarts_once_more_then_follows_its_new_policy(
    daemon: Daemon,
) -> None:
    daemon.clock.hold()
    svc = daemon.containers
    cid = svc.create(EXITS_1, name="flaky", restart="always").id
    svc.start("flaky")
    daemon.settled(cid, "restarting")
    updated = svc.update("flaky", restart="no")
    assert updated.in_state("running.restarting")  # the pending restart still happens
    assert svc.inspect("flaky")["HostConfig"]["RestartPolicy"] == {
        "Name": "no",
        "MaximumRetryCount": 0,
    }
    elapse(daemon, 1.0)
    done = daemon.settled(cid, "exited")  # the retry ran, and its exit is judged by "no"
    assert done.data["restart_count"] == 1


def test_update_checks_the_policy_before_the_container(daemon: Daemon) -> None:
    svc = daemon.containers
    with pytest.raises(InvalidParameter, match="unknown policy 'never'"):
        svc.update("nosuch", restart="never")
    with pytest.raises(NotFound, match="No such container: nosuch"):
        svc.update("nosuch", restart="always")


def test_top_lists_the_process_group_and_refuses_a_restarting_container(
    daemon: Daemon,
) -> None:
    svc = daemon.containers
    cid = svc.create(SLEEPS, name="top").id
    started = svc.start("top")
    table = svc.top("top")
    assert table.titles == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    pids = [int(row[1]) for row in table.processes]
    assert started.data["pid"] in pids
    assert sorted(pids) == sorted(daemon.runtime.processes(cid))
    svc.kill("top")
    with pytest.raises(Conflict, match=f"^container {cid} is not running$"):
        svc.top("top")

    daemon.clock.hold()
    flaky = svc.create(EXITS_1, name="flaky-top", restart="always").id
    svc.start("flaky-top")
    daemon.settled(flaky, "restarting")
    with pytest.raises(Conflict, match=f"Container {flaky} is restarting, wait until"):
        svc.top("flaky-top")


def test_prune_removes_the_stopped_containers_it_selects_at_once(daemon: Daemon) -> None:
    svc = daemon.containers
    running = svc.create(SLEEPS, name="keeps-running").id
    svc.start(running)
    created = svc.create(["true"], name="never-started", labels={"keep": "yes"}).id
    stopped = svc.create(["true"], name="ran").id
    svc.start(stopped)
    daemon.settled(stopped, "exited")

    assert svc.prune({"label!": ["keep"]}) == [stopped]
    assert svc.prune({"until": [str(time.time() - 3600)]}) == []  # created within the hour
    assert svc.prune({"label": ["keep=yes"]}) == [created]
    assert [e.id for e in svc.list(all=True)] == [running]
    with pytest.raises(InvalidParameter, match=r"^invalid filter 'status'$"):
        svc.prune({"status": ["exited"]})
    with pytest.raises(InvalidParameter, match=r"^more than one until filter specified$"):
        svc.prune({"until": ["1", "2"]})
    with pytest.raises(InvalidParameter, match="failed to parse value as time or duration"):
        svc.prune({"until": ["1h"]})  # the front end reads docker's forms
