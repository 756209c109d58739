"""A full disk under real containers: nothing is lost, nothing is stuck once space returns.

SQLite's ``max_page_count`` on the daemon's writing connection makes a real
"database or disk is full" without mounting anything: a commit that needs
one more page fails (one that rewrites a row in place may still pass, as on
a real full disk). While it is full, containers are started, stopped,
killed, removed, and exit on their own. Then space returns, and within a
bound every container's record matches ``/proc``: one recorded running has
its process alive, one recorded stopped has none; none is held in a
transient state, no saga is left unfinished, and every operation works.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from container_daemon import WAIT, Daemon, alive, eventually

from engine.errors import ChartdError
from statecharts.container.service import status_of

BOUND = 30.0  # seconds after space returns for every record to match /proc
NO_LIMIT = 1_073_741_823  # SQLite's largest max_page_count


class Disk:
    """The daemon's database, filled to its last page and freed again."""

    def __init__(self, daemon: Daemon) -> None:
        self.db = daemon.engine.store._db  # type: ignore[attr-defined]
        self.limit: int | None = None
        # A writing connection opened while the disk is full gets the same limit.
        sa.event.listen(self.db.engine, "connect", self._on_connect)

    def _on_connect(self, dbapi_conn: Any, _record: Any) -> None:
        if self.limit is not None:
            dbapi_conn.execute(f"PRAGMA max_page_count={self.limit}")

    def _run(self, *sql: str) -> None:
        with self.db._write_lock:  # between two commits, never inside one
            raw = self.db._writer()
            for statement in sql:
                raw.execute(statement)

    def fill(self) -> None:
        """No page to spare: the file may not grow, and its free pages are taken."""
        self._run("CREATE TABLE IF NOT EXISTS ballast (x BLOB)")
        with self.db._write_lock:
            raw = self.db._writer()
            self.limit = raw.execute("PRAGMA page_count").fetchone()[0]
            raw.execute(f"PRAGMA max_page_count={self.limit}")
            for size in (4096, 512, 64):
                with contextlib.suppress(Exception):
                    while True:
                        raw.execute(f"INSERT INTO ballast VALUES (zeroblob({size}))")

    def free(self) -> None:
        self.limit = None
        self._run(f"PRAGMA max_page_count={NO_LIMIT}", "DELETE FROM ballast")


def attempt(call: Callable[[], Any]) -> threading.Thread:
    """``call()`` on a thread of its own: while the disk is full it may fail, or wait."""

    def run() -> None:
        with contextlib.suppress(ChartdError):
            call()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def mismatches(daemon: Daemon) -> list[str]:
    """Every container whose record does not match /proc, or that is not at rest."""
    found = []
    unfinished = {t.entity_id for t in daemon.engine.store.unfinished()}
    for page_entity in daemon.engine.list("container", limit=1000).items:
        e = daemon.engine.get(page_entity.id)
        status = status_of(e.configuration, e.data)
        name = e.data.get("name")
        pid = int(e.data.get("pid") or 0)
        task = daemon.process.task(e.id)
        if e.id in unfinished or e.in_state("starting") or e.in_state("removing"):
            found.append(f"{name} is not at rest ({e.state})")
        elif status in ("running", "paused"):
            if not (pid and alive(pid) and task is not None and task.pid == pid):
                found.append(f"{name} is recorded {status} with pid {pid}, which is not alive")
        elif task is not None and alive(task.pid):
            found.append(f"{name} is recorded {status} but its process {task.pid} runs")
    return found


def fill_inside(daemon: Daemon, method: str, container_id: str, disk: Disk) -> None:
    """Fill the disk once, when the runtime's ``method`` has done its work for the container.

    So the saga that called it wrote ahead on a disk with room, and its end
    meets a full one.
    """
    original = getattr(daemon.runtime, method)
    armed = threading.Event()
    armed.set()

    def hooked(cid: str, *args: Any) -> Any:
        result = original(cid, *args)
        if cid == container_id and armed.is_set():
            armed.clear()
            disk.fill()
        return result

    setattr(daemon.runtime, method, hooked)


@pytest.mark.parametrize(
    ("during", "method"),
    [("start", "start_task"), ("stop", "kill"), ("exit", "delete_task")],
)
def test_a_full_disk_loses_no_exit_and_leaves_nothing_stuck(
    daemon: Daemon, caplog: pytest.LogCaptureFixture, during: str, method: str
) -> None:
    caplog.set_level(logging.INFO, logger="chartd")
    svc = daemon.containers
    for name in ("keep", "stop", "kill", "rm", "quick", "exits", "later"):
        svc.create(["sleep", "1000"], name=name)
    svc.create(["sh", "-c", "sleep 0.5"], name="short")
    for name in ("keep", "stop", "kill", "rm", "exits", "short"):
        svc.start(name)
    ids = {e.data["name"].lstrip("/"): e.id for e in svc.list(all=True)}
    pids = {name: svc.get(name).data["pid"] for name in ("keep", "exits", "short")}
    disk = Disk(daemon)
    filler = {"start": "later", "stop": "stop", "exit": "exits"}[during]
    fill_inside(daemon, method, ids[filler], disk)

    # The disk fills in the middle of the saga of `filler`; the rest happens on a full disk.
    work = [attempt(lambda: svc.start("later")), attempt(lambda: svc.stop("stop", timeout=1))]
    daemon.process.kill(ids["exits"], 9)  # an exit the runtime sees, unasked
    try:
        eventually(lambda: disk.limit is not None, f"the disk filled during a {during}")
        work += [
            attempt(lambda: svc.kill("kill")),
            attempt(lambda: svc.remove("rm", force=True)),
            attempt(lambda: svc.start("quick")),
        ]
        for name in ("exits", "short"):
            # Each exit happened, and was tried: recorded, or not yet.
            eventually(lambda name=name: tried(daemon, caplog, ids[name]), f"{name} was tried")
        eventually(lambda: "database or disk is full" in caplog.text, "a commit failed")
    finally:
        disk.free()

    deadline = time.monotonic() + BOUND
    while (wrong := mismatches(daemon)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert wrong == []
    for thread in work:
        thread.join(WAIT)
        assert not thread.is_alive()
    assert svc.inspect("keep")["State"]["Pid"] == pids["keep"]
    assert not alive(pids["exits"]) and svc.inspect("exits")["State"]["Status"] == "exited"
    assert svc.inspect("short")["State"]["Status"] == "exited"
    # Nothing is stuck: every container can still be started, stopped and removed (but a
    # dead one, whose removal failed past its point of no return: only rm finishes it).
    for e in svc.list(all=True):
        if e.state != "dead":
            if not e.in_state("running"):
                svc.start(e.id)
            assert not svc.stop(e.id, timeout=1).in_state("running")
        assert svc.remove(e.id).state == "removed"
    assert svc.list(all=True) == []
    assert daemon.engine.store.unfinished() == []


def tried(daemon: Daemon, caplog: pytest.LogCaptureFixture, container_id: str) -> bool:
    """Whether the container's exit was recorded, or a try at it failed."""
    e = daemon.engine.get(container_id)
    return not e.in_state("running") or f"exit of {container_id[:12]} not recorded" in caplog.text
