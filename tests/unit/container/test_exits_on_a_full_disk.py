"""An exit the runtime reports while the database is full is retried until it is recorded.

The exit cannot be dropped: the container would stay recorded running with a
dead PID, and stop and kill would wait for an exit that never comes. Once
the database takes commits again, the exit is recorded; inspect says exited,
and every operation works. An exit that waits holds up no other container's.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.errors import Conflict, NotModified, Unavailable
from engine.runtime.engine import Engine
from engine.runtime.limits import Limits
from engine.store import open_store
from engine.testing.databases import FullStore
from statecharts.container.faults import FakeRuntime
from statecharts.container.service import Containers

BOUND = 10.0


@pytest.fixture
def disk(tmp_path: Path) -> FullStore:
    return FullStore(open_store(f"sqlite:///{tmp_path / 'chartd.db'}"))


@pytest.fixture
def runtime() -> FakeRuntime:
    return FakeRuntime()


@pytest.fixture
def svc(disk: FullStore, runtime: FakeRuntime, tmp_path: Path) -> Iterator[Containers]:
    with Engine(disk, limits=Limits(beat=0.05)) as eng:  # type: ignore[arg-type]
        yield Containers(eng, runtime, tmp_path / "state")


def eventually(check: Any, what: str) -> None:
    deadline = time.monotonic() + BOUND
    while not check():
        assert time.monotonic() < deadline, f"not within {BOUND}s: {what}"
        time.sleep(0.01)


def test_an_exit_while_the_disk_is_full_is_recorded_once_it_is_not(
    svc: Containers, disk: FullStore, runtime: FakeRuntime
) -> None:
    web = svc.create(["sleep", "100"], name="web")
    svc.start("web")
    disk.full = True
    runtime.exit(web.id, 3)
    # Nothing else commits meanwhile: these are the exit's tries, and it keeps trying
    # (it used to give up after four).
    eventually(lambda: disk.refused >= 5, "the exit was tried, again and again")
    assert svc.inspect("web")["State"]["Status"] == "running"  # the record lags, for now

    disk.full = False
    eventually(lambda: svc.inspect("web")["State"]["Status"] == "exited", "the exit recorded")
    state = svc.inspect("web")["State"]
    assert (state["ExitCode"], state["Pid"]) == (3, 0)
    with pytest.raises(NotModified):
        svc.stop("web")
    with pytest.raises(Conflict, match="is not running"):
        svc.kill("web")
    assert svc.start("web").in_state("running")
    assert svc.remove("web", force=True).state == "removed"


def test_an_exit_that_waits_holds_up_no_other_container(
    svc: Containers, runtime: FakeRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    held, free = (svc.create(["sleep", "100"], name=name) for name in ("held", "free"))
    for name in ("held", "free"):
        svc.start(name)
    waiting = {held.id}  # the held container's exit cannot be recorded, for now
    fire = svc.engine.fire

    def fire_unless_waiting(ref: Any, event: str, params: Any = None, **kw: Any) -> Any:
        if event == "exit" and ref in waiting:
            raise Unavailable(f"{ref[:12]} is being recovered; try again")
        return fire(ref, event, params, **kw)

    monkeypatch.setattr(svc.engine, "fire", fire_unless_waiting)
    runtime.exit(held.id, 1)  # reported first
    runtime.exit(free.id, 2)
    eventually(lambda: svc.inspect("free")["State"]["Status"] == "exited", "the second recorded")
    assert svc.inspect("held")["State"]["Status"] == "running"
    waiting.clear()
    eventually(lambda: svc.inspect("held")["State"]["Status"] == "exited", "the first recorded")
    assert svc.inspect("held")["State"]["ExitCode"] == 1
