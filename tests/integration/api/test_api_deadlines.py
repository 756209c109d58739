"""Deadlines on a real daemon: calls that block end at their deadline and never act later.

Before: 70 ``Stop(timeout=-1)`` calls with a 2 s deadline on a container
that ignores SIGTERM left 64 server threads blocked, so health checks timed
out; abandoned restarts were carried out minutes later, and a ``Remove``
whose deadline had passed removed the container when the queue reached it.
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from collections import Counter
from typing import Any

import grpc
import pytest
from api_daemon import Daemon
from grpc_health.v1 import health_pb2

from engine.api import Client
from engine.api.chartd.v1 import containers_pb2 as c
from engine.api.chartd.v1 import engine_pb2 as e

_names = (f"dl{n}" for n in itertools.count())
# SIGTERM ignored, and the disposition survives exec: the process only dies of SIGKILL.
STUBBORN = ["sh", "-c", "trap '' TERM; exec sleep 100000"]
DEADLINE = 1.5  # seconds each blocked call's client waits


def _stubborn(client: Client) -> tuple[str, int]:
    name = next(_names)
    client.containers.Create(c.CreateContainerRequest(cmd=STUBBORN, name=name))
    pid = client.containers.Start(c.StartContainerRequest(container=name)).pid
    return name, pid


def _ended(future: Any) -> str:
    try:
        future.result()
    except grpc.RpcError as exc:
        return str(exc.code().name)
    return "OK"


def _answers_quickly(client: Client, until: float) -> list[float]:
    """Health and ps, again and again until ``until``: how long each took."""
    took = []
    while time.monotonic() < until:
        started = time.monotonic()
        check = client.health_check(health_pb2.HealthCheckRequest(), timeout=1.0)
        assert check.status == health_pb2.HealthCheckResponse.SERVING
        client.containers.List(c.ListContainersRequest(all=True), timeout=2.0)
        took.append(time.monotonic() - started)
        time.sleep(0.05)
    return took


def test_blocked_calls_end_at_their_deadline_and_never_act_later(
    client: Client, daemon: Daemon
) -> None:
    # Stops on some containers, restarts and a forced remove on others (a stop that
    # overlaps a restart sees the restart's own stop phase, which is another matter).
    stopped = [_stubborn(client) for _ in range(2)]
    restarted = [_stubborn(client) for _ in range(2)]
    containers = stopped + restarted
    since = client.engine.GetSequence(e.GetSequenceRequest()).sequence
    # First a restart that holds each container in its stop phase, past every deadline below.
    calls = [
        client.containers.Restart.future(
            c.RestartContainerRequest(container=name, timeout=-1), timeout=DEADLINE + 1.0
        )
        for name, _ in restarted
    ]
    time.sleep(0.3)
    for name, _ in stopped:
        calls += [
            client.containers.Stop.future(
                c.StopContainerRequest(container=name, timeout=-1), timeout=DEADLINE
            )
            for _ in range(40)
        ]
    for name, _ in restarted:
        calls += [
            client.containers.Restart.future(
                c.RestartContainerRequest(container=name, timeout=-1), timeout=DEADLINE
            )
            for _ in range(40)
        ]
        calls.append(
            client.containers.Remove.future(
                c.RemoveContainerRequest(container=name, force=True), timeout=DEADLINE
            )
        )
    took = _answers_quickly(client, time.monotonic() + DEADLINE + 1.0)
    assert max(took) < 1.0, took
    endings = Counter(_ended(f) for f in calls)
    # Each was either refused at once (its kind at its quota) or ran out of time.
    assert set(endings) <= {"DEADLINE_EXCEEDED", "UNAVAILABLE"}, endings
    assert endings["DEADLINE_EXCEEDED"] > 0

    # The server has its threads back: calls of every kind answer at once.
    took = _answers_quickly(client, time.monotonic() + 0.5)
    assert max(took) < 0.5, took
    for name, pid in containers:
        shown = client.containers.Inspect(c.InspectContainerRequest(container=name), timeout=2)
        assert (shown.state.running, shown.state.pid) == (True, pid)

    # Now the processes die: nothing abandoned may run after that (no restart, no rm).
    for _, pid in containers:
        os.kill(pid, signal.SIGKILL)
    time.sleep(3.0)
    for name, _ in containers:
        shown = client.containers.Inspect(c.InspectContainerRequest(container=name), timeout=2)
        assert (shown.state.status, shown.state.exit_code) == ("exited", 137), shown.state
        events = client.containers.Events(
            c.EventsRequest(
                since=since,
                until=client.engine.GetSequence(e.GetSequenceRequest()).sequence,
                filters=[c.Filter(key="container", value=name)],
            ),
            timeout=5,
        )
        actions = [ev.action for ev in events]
        assert "start" not in actions and "destroy" not in actions, actions
        assert actions.count("die") == 1, actions
    assert "failed unexpectedly" not in daemon.logs()


def test_a_wait_ends_when_its_client_goes(client: Client) -> None:
    name, _ = _stubborn(client)
    waits = [
        client.containers.Wait.future(c.WaitContainerRequest(container=name), timeout=0.5)
        for _ in range(40)
    ]
    assert {_ended(f) for f in waits} <= {"DEADLINE_EXCEEDED", "UNAVAILABLE"}
    time.sleep(1.0)  # the waits' threads are back: the stream quota has room again
    quick = client.containers.Wait.future(c.WaitContainerRequest(container=name), timeout=5)
    client.containers.Kill(c.KillContainerRequest(container=name), timeout=5)
    assert quick.result().status_code == 137
    client.containers.Remove(c.RemoveContainerRequest(container=name), timeout=5)


@pytest.mark.parametrize("call", ["Start", "Remove"])
def test_a_call_queued_behind_a_blocked_restart_gives_up_and_does_nothing(
    client: Client, call: str
) -> None:
    name, pid = _stubborn(client)
    blocked = client.containers.Restart.future(
        c.RestartContainerRequest(container=name, timeout=-1), timeout=3.0
    )
    time.sleep(0.3)  # the restart holds the container, waiting for an exit that never comes
    queued = {
        "Start": lambda: client.containers.Start(
            c.StartContainerRequest(container=name), timeout=1
        ),
        "Remove": lambda: client.containers.Remove(
            c.RemoveContainerRequest(container=name, force=True), timeout=1
        ),
    }[call]
    with pytest.raises(grpc.RpcError) as gave_up:
        queued()
    assert gave_up.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert _ended(blocked) == "DEADLINE_EXCEEDED"
    time.sleep(1.0)
    shown = client.containers.Inspect(c.InspectContainerRequest(container=name), timeout=2)
    assert (shown.state.running, shown.state.pid) == (True, pid)
    client.containers.Remove(c.RemoveContainerRequest(container=name, force=True), timeout=10)
