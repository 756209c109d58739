"""One task of the process runtime: its process group, pipes, cgroup and records.

Restore
-------
Each task's pid, process start time (``/proc/<pid>/stat`` field 22) and boot
ID are kept in ``<spec.root>/runtime/task.json``. A new runtime on the same
state directory finds every task again (:func:`restored_task`): a pid whose
start time still matches is the same process (a reused pid would not match)
and is watched through a pidfd; its exit status went to another reaper, so
it is reported as 137 if this runtime SIGKILLed it, else 255 (containerd's
unknown status). A leader that died while no runtime was running has what is
left of its group killed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import ChartdError, Conflict, System
from statecharts.container import cgroups, shim
from statecharts.container.procfs import (
    ProcStat,
    cannot_run,
    group_members,
    is_child,
    poll_until,
    proc_stat,
)
from statecharts.container.runtime import (
    EXIT_UNKNOWN,
    ExitEvent,
    TaskInfo,
    TaskStatus,
    task_info,
    task_status,
)

__all__ = ["Task", "read_json", "restored_task", "unlink", "write_json"]

_log = logging.getLogger("chartd.container.process")


def write_json(path: Path, data: Any) -> None:
    """Replace the record at ``path`` atomically."""
    # No fsync: these records only have to survive a crash of the daemon, not
    # of the machine (after a reboot no process is left to find).
    tmp = path.with_name(f".{path.name}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(data, sort_keys=True))
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    """The record at ``path``."""
    return json.loads(path.read_text())


def unlink(path: Path) -> None:
    """Remove the file at ``path`` if it is there."""
    path.unlink(missing_ok=True)


@dataclass(eq=False)
class Task:
    """A task: the process group its shim leads, and what the runtime holds of it."""

    container_id: str
    pid: int
    start_ticks: int
    boot_id: str
    created_at: float
    cgroup: Path | None
    record_dir: Path
    pidfd: int | None = None
    release_w: int | None = None  # write end of the release pipe (None once released)
    status_r: int | None = None  # read end of the status pipe
    stdin_w: int | None = None  # the runtime's end of an open stdin (None: closed, or none)
    terminal: int | None = None  # a TTY's master (None: no TTY, or restored without it)
    started_at: float | None = None
    paused: bool = False
    exit: ExitEvent | None = None
    sigkilled: bool = False
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def status(self) -> TaskStatus:
        """Created, running, paused or stopped."""
        return task_status(self.exit, self.started_at, self.paused)

    def info(self) -> TaskInfo:
        """What the Runtime protocol says of the task."""
        return task_info(self.container_id, self.pid, self.exit, self.started_at, self.paused)

    def save(self) -> None:
        """Write the task's record, from which a later runtime finds it again."""
        write_json(
            self.record_dir / "task.json",
            {
                "pid": self.pid,
                "start_ticks": self.start_ticks,
                "boot_id": self.boot_id,
                "created_at": self.created_at,
                "started_at": self.started_at,
                "paused": self.paused,
                "cgroup": None if self.cgroup is None else str(self.cgroup),
            },
        )

    def release(self, problem: dict[str, Any] | None, timeout: float) -> None:
        """Release the shim (see :func:`shim.release`) and wait until it exec'd or exited."""
        assert self.release_w is not None
        shim.release(self.release_w, problem)
        self.release_w = None
        assert self.status_r is not None
        try:
            shim.read_until_eof(self.status_r, timeout)  # EOF: it exec'd the command, or exited
        finally:
            shim.close_fd(self.status_r)
            self.status_r = None

    def members(self) -> list[int]:
        """The pids of the task's processes: its cgroup's members, else its group's."""
        if self.cgroup is not None:
            with contextlib.suppress(FileNotFoundError):
                return sorted(int(p) for p in (self.cgroup / "cgroup.procs").read_text().split())
        return sorted(pid for pid, _ in group_members(self.pid))

    def signal_group(self, sig: int) -> None:
        """Send ``sig`` to the task's group.

        The caller holds its runtime's lock and checked that the task is live:
        the runtime records an exit under that lock before it reaps, so the
        group's ID cannot have been reused.
        """
        if sig == signal.SIGKILL:
            self.sigkilled = True
            if self.cgroup is not None:
                try:
                    cgroups.kill(self.cgroup)
                except OSError:
                    _log.warning("cgroup.kill failed for %s", self.cgroup, exc_info=True)
        try:
            if self.pidfd is not None:
                # The leader through its pidfd: exact even for a restored task
                # whose pid another reaper could have released.
                signal.pidfd_send_signal(self.pidfd, sig)
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            raise Conflict(f"container {self.container_id} is not running") from None
        except OSError as exc:
            raise System(f"cannot kill container {self.container_id}: {exc}") from exc

    def kill_leftovers(self, *, leader_reaped: bool) -> None:
        """SIGKILL what is left of the task's group and cgroup once its leader exited."""
        if self.cgroup is not None:
            try:
                cgroups.kill(self.cgroup)
            except OSError:
                _log.warning("cgroup.kill failed for %s", self.cgroup, exc_info=True)
        if not leader_reaped:
            # The leader is an unreaped zombie: the group's ID is still ours.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            return
        # Another reaper may have released the leader's pid, and a new process
        # may lead a group with that number: kill the members one by one, never
        # one whose pid is the group's ID.
        for pid, _ in group_members(self.pid):
            if pid != self.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def await_stopped(self, timeout: float) -> None:
        """Wait until the group sent SIGSTOP cannot run (or the task exited); System if it can."""

        def stopped() -> bool:
            return self.exit is not None or all(
                cannot_run(pid, st) for pid, st in group_members(self.pid)
            )

        if not poll_until(stopped, timeout):
            running = [
                f"{pid} ({st.state})"
                for pid, st in group_members(self.pid)
                if not cannot_run(pid, st)
            ]
            raise System(
                f"cannot pause container {self.container_id}: not stopped after"
                f" {timeout}s: {', '.join(running)}"
            )

    def discard_unwatched(self, timeout: float) -> None:
        """Kill and reap a task the monitor never saw, and remove its cgroup and record."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        for end in (self.release_w, self.status_r, self.pidfd, self.stdin_w):
            shim.close_fd(end)
        if self.cgroup is not None:
            try:
                cgroups.remove(self.cgroup, timeout)
            except (OSError, ChartdError):
                _log.warning("cannot remove cgroup %s", self.cgroup, exc_info=True)
        unlink(self.record_dir / "task.json")

    def remove_remains(self, timeout: float) -> None:
        """Remove what an ended task leaves: its cgroup, pipe ends and records (not its FIFOs)."""
        if self.cgroup is not None:
            cgroups.remove(self.cgroup, timeout)
        for fd in (self.release_w, self.status_r, self.stdin_w):
            shim.close_fd(fd)
        self.release_w = self.status_r = self.stdin_w = None
        # The records a later runtime would find the task by. Its FIFOs stay until the
        # container's records go (an exit's cleanup) or the next task's replace them:
        # two unlinks fewer on the way from an exit to its commit.
        for name in ("task.json", "exit.json", "process.json"):
            unlink(self.record_dir / name)

    def same_process(self, boot_id: str) -> ProcStat | None:
        """The task's process now, if its pid still names the process that was recorded."""
        stat = proc_stat(self.pid)
        if stat is None or self.boot_id != boot_id or stat.start_ticks != self.start_ticks:
            return None
        return stat


def restored_task(container_id: str, records: Path, record: Any, boot_id: str) -> Task:
    """The task of ``record`` (read from ``records``), as a new runtime on this boot finds it.

    A task whose process still runs comes back with its pidfd open and not
    done: the caller watches it. Any other has its exit set and is done.
    """
    cgroup = record.get("cgroup")
    task = Task(
        container_id=container_id,
        pid=int(record["pid"]),
        start_ticks=int(record["start_ticks"]),
        boot_id=record.get("boot_id", ""),
        created_at=float(record["created_at"]),
        cgroup=None if cgroup is None else Path(cgroup),
        record_dir=records,
        started_at=record.get("started_at"),
        paused=bool(record.get("paused")),
    )
    if task.cgroup is not None and not task.cgroup.exists():
        task.cgroup = None
    with contextlib.suppress(OSError, ValueError, KeyError):
        task.exit = ExitEvent.from_json(read_json(records / "exit.json"))
    if task.exit is None and task.same_process(boot_id):
        with contextlib.suppress(ProcessLookupError):
            task.pidfd = os.pidfd_open(task.pid)
        # Checked again with the pidfd held: the pid cannot change under it now.
        stat = task.same_process(boot_id) if task.pidfd is not None else None
        # A zombie has ended; unless it is our own child (a runtime reopened in
        # the same process), its status is another reaper's: nothing to wait for.
        if stat is not None and (stat.state not in "ZX" or is_child(task.pid)):
            return task
        shim.close_fd(task.pidfd)
        task.pidfd = None
    if task.exit is None:
        # It ended while no runtime was watching: status unknown.
        task.kill_leftovers(leader_reaped=True)
        task.exit = ExitEvent(container_id, task.pid, EXIT_UNKNOWN, time.time(), None)
        task.paused = False
    task.done.set()
    return task
