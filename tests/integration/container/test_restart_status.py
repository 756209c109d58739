"""What ps and inspect say while a restart runs, as moby says it.

moby's restart stops the old process, then starts a new one. Until the old
process exits the container is running, with the old pid; from its exit to
the new start it is exited, with the old process's exit code. chartd holds
the container in ``starting`` for the whole restart saga: the status comes
from the data the saga committed at its point of no return (the old task
deleted), so it reads as moby's in both phases.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

from container_daemon import WAIT, Daemon, alive, eventually

from statecharts.container.service import status_of

DEAF = ["sh", "-c", 'trap "" TERM; while :; do sleep 0.1; done']  # ignores the stop signal


def ps(daemon: Daemon, name: str) -> str:
    [found] = [e for e in daemon.containers.list(all=True) if e.data["name"] == f"/{name}"]
    return status_of(found.configuration, found.data)


def test_a_restart_reads_running_until_the_old_process_exits_then_exited(daemon: Daemon) -> None:
    svc = daemon.containers
    web = svc.create(DEAF, name="web")
    old = svc.start("web").data["pid"]
    # The new task is created only when the test says so: the start phase waits there.
    reached, proceed = threading.Event(), threading.Event()
    create_task = daemon.runtime.create_task

    def held(container_id: str) -> Any:
        reached.set()
        assert proceed.wait(WAIT)
        return create_task(container_id)

    daemon.runtime.create_task = held  # type: ignore[method-assign]
    restart = threading.Thread(target=lambda: svc.restart("web", timeout=60), daemon=True)
    restart.start()
    try:
        # The stop signal was sent: the restart waits in its stop phase, the old process runs.
        eventually(lambda: daemon.runtime.calls_of("kill"), "the stop signal was sent")
        assert daemon.entity(web.id).in_state("starting") and alive(old)
        state = svc.inspect("web")["State"]
        assert (state["Status"], state["Running"], state["Pid"]) == ("running", True, old)
        assert ps(daemon, "web") == "running"

        os.kill(old, signal.SIGKILL)  # the old process ends; the start phase begins
        assert reached.wait(WAIT)
        state = svc.inspect("web")["State"]
        assert (state["Status"], state["Running"], state["Pid"]) == ("exited", False, 0)
        assert state["ExitCode"] == 137
        assert ps(daemon, "web") == "exited"
    finally:
        proceed.set()
        restart.join(WAIT)
    assert not restart.is_alive()
    state = svc.inspect("web")["State"]
    assert state["Status"] == "running" and state["Pid"] not in (0, old) and alive(state["Pid"])
