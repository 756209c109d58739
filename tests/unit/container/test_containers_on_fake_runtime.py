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
from engine.errors import Conflict, InvalidParameter
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


def test_a_tty_container_is_resized_while_it_runs(service: tuple[Containers, FakeRuntime]) -> None:
    svc, runtime = service
    cid = svc.create(["app"], name="term", tty=True).id
    plain = svc.create(["app"], name="plain").id
    assert svc.inspect("term")["Config"]["Tty"] is True
    assert svc.inspect("plain")["Config"]["Tty"] is False
    assert "tty" not in svc.get("plain").data  # valid under the chart's version 3 too
    with pytest.raises(Conflict, match=f"^container {cid} is not running$"):
        svc.resize("term", 24, 80)
    svc.start("term")
    svc.start("plain")
    since = svc.engine.sequence()
    svc.resize("term", 24, 80)
    svc.resize("plain", 30, 100)  # no terminal: nothing to set, as moby's runtime says
    svc.pause("term")
    svc.resize("term", 25, 81)  # paused: it still runs, with its terminal
    assert runtime.terminal_size(cid) == (25, 81)
    assert runtime.terminal_size(plain) is None
    resized = [
        (ev.entity_id, dict(ev.attributes))
        for ev in svc.engine.watch(since, timeout=0)
        if ev.type == "resize"
    ]
    assert resized == [
        (cid, {"height": "24", "width": "80"}),
        (plain, {"height": "30", "width": "100"}),
        (cid, {"height": "25", "width": "81"}),
    ]
    bounded(lambda: svc.kill("term"))
    with pytest.raises(Conflict, match=f"^container {cid} is not running$"):
        svc.resize("term", 24, 80)


def test_a_tty_starts_with_its_console_size(service: tuple[Containers, FakeRuntime]) -> None:
    svc, runtime = service
    cid = svc.create(["app"], name="sized", tty=True, console_size=[20, 50]).id
    plain = svc.create(["app"], name="unsized", console_size=[20, 50]).id  # no TTY: no window
    assert svc.inspect("sized")["HostConfig"]["ConsoleSize"] == [20, 50]
    assert svc.inspect("unsized")["HostConfig"]["ConsoleSize"] == [0, 0]
    svc.start("sized")
    svc.start("unsized")
    assert runtime.terminal_size(cid) == (20, 50)
    assert runtime.terminal_size(plain) is None
    for size in ([1], [-1, 2], [True, 2]):
        with pytest.raises(InvalidParameter, match=r"^invalid console size: "):
            svc.create(["app"], tty=True, console_size=size)
