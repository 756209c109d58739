"""Containers on the FakeRuntime, which reports an exit on the thread that caused it.

That thread is inside the step of a stop, kill, rm -f, restart or failed
start, holding the entity's lock: the service must apply the exit after the
step, not from inside it (it used to wait for the lock forever). Each
operation runs on a thread joined with a bound, so a regression fails
instead of hanging the suite.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import engine
from engine.errors import InvalidParameter
from statecharts.container.faults import FakeRuntime
from statecharts.container.service import Containers

BOUND = 10.0


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[Containers, FakeRuntime]]:
    runtime = FakeRuntime()
    with engine.Engine.open(timers=False) as eng:
        yield Containers(eng, runtime, tmp_path), runtime


def bounded(call: Callable[[], Any]) -> Any:
    """``call()`` on a thread: what it returned, or what it raised raised again here.

    Fails if it has not returned within BOUND seconds.
    """
    returned: list[Any] = []
    raised: list[BaseException] = []

    def run() -> None:
        try:
            returned.append(call())
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(BOUND)
    assert not thread.is_alive(), "deadlocked"
    if raised:
        raise raised[0]
    return returned[0]


@pytest.mark.parametrize(
    ("operation", "status", "exit_code"),
    [
        (lambda svc: svc.stop("web"), "exited", 143),
        (lambda svc: svc.kill("web"), "exited", 137),
        (lambda svc: svc.remove("web", force=True), "removed", 137),
        (lambda svc: svc.restart("web"), "running", 0),
    ],
    ids=["stop", "kill", "rm -f", "restart"],
)
def test_an_exit_caused_inside_a_step_is_applied_after_it(
    service: tuple[Containers, FakeRuntime],
    operation: Callable[[Containers], Any],
    status: str,
    exit_code: int,
) -> None:
    svc, _ = service
    cid = svc.create(["app"], name="web").id
    svc.start("web")

    bounded(lambda: operation(svc))  # raises what the operation raised

    entity = svc.engine.get(cid)
    assert entity.state == {"running": "running.active.health.none"}.get(status, status)
    assert entity.data["exit_code"] == exit_code


def test_a_start_whose_exec_fails_is_refused_and_its_exit_ignored(
    service: tuple[Containers, FakeRuntime],
) -> None:
    svc, runtime = service
    cid = svc.create(["app"], name="web").id
    message = 'exec: "app": executable file not found in $PATH'
    runtime.fail_exec(cid, message=message)

    with pytest.raises(InvalidParameter) as refused:
        bounded(lambda: svc.start("web"))

    error = refused.value
    assert error.message == message
    state = svc.inspect("web")["State"]
    assert (state["Status"], state["ExitCode"]) == ("created", 127)
    assert bounded(lambda: svc.wait("web", "not-running", timeout=BOUND)) == (127, error.message)
