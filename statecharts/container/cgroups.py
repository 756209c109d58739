"""The cgroup v2 side of the process runtime: one cgroup per task, its freezer and kill.

With a writable cgroup v2 hierarchy, each task gets a cgroup
(``<cgroup2>/<own cgroup>/chartd-<hash of state_dir>/<id>``), entered while
the shim is still blocked, so every descendant is inside: pause writes
``cgroup.freeze`` and waits for ``frozen 1``; delete also uses
``cgroup.kill``, which catches processes that left the process group.

Moving a process into a cgroup takes the kernel's cgroup threadgroup lock for
writing, which first waits for an RCU grace period unless a migration less
than a grace period ago left it warm (or cgroup2 is mounted with
``favordynmods``): 2 to 15 ms on a 2-CPU VM, on every start.
:class:`MigrationWarmer` pays that wait ahead, beside the start's first commit
and steps (see there).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import signal
import subprocess
import threading
from pathlib import Path

from engine.errors import ChartdError, System
from statecharts.container.procfs import poll_until
from statecharts.container.worker import Worker

__all__ = ["MigrationWarmer", "freeze", "kill", "remove", "sweep", "task_cgroup_parent"]

_log = logging.getLogger("chartd.container.process")


def _own_cgroup_dir() -> Path | None:
    """This process's own cgroup v2 directory, if a cgroup2 hierarchy is mounted."""
    try:
        own = next(
            line[3:]
            for line in Path("/proc/self/cgroup").read_text().splitlines()
            if line.startswith("0::")
        )
        mountinfo = Path("/proc/self/mountinfo").read_text().splitlines()
    except (OSError, StopIteration):
        return None
    for line in mountinfo:
        left, _, right = line.partition(" - ")
        if right.split(" ", 1)[0] != "cgroup2":
            continue
        fields = left.split()
        root, mountpoint = fields[3], fields[4].replace("\\040", " ")
        rel = os.path.relpath(own, root)
        if rel.startswith(".."):
            continue
        return Path(mountpoint) / rel if rel != "." else Path(mountpoint)
    return None


def task_cgroup_parent(state_dir: Path) -> Path | None:
    """A writable cgroup for this state directory's tasks, or None if there is none."""
    base = _own_cgroup_dir()
    if base is None:
        return None
    digest = hashlib.sha256(str(state_dir).encode()).hexdigest()[:12]
    parent = base / f"chartd-{digest}"
    probe = parent / f"probe-{os.getpid()}"
    try:
        parent.mkdir(exist_ok=True)
        probe.mkdir(exist_ok=True)
        try:
            usable = os.access(probe / "cgroup.freeze", os.W_OK) and os.access(
                probe / "cgroup.procs", os.W_OK
            )
        finally:
            probe.rmdir()
    except OSError:
        return None
    if not usable:
        with contextlib.suppress(OSError):
            parent.rmdir()
        return None
    return parent


def _events(path: Path) -> dict[str, str]:
    lines = (path / "cgroup.events").read_text().splitlines()
    return dict(line.split(" ", 1) for line in lines if " " in line)


def freeze(path: Path, frozen: bool, timeout: float) -> bool:
    """Freeze (or thaw) the cgroup; whether it got there within ``timeout`` seconds."""
    want = "1" if frozen else "0"
    (path / "cgroup.freeze").write_text(want)
    return poll_until(lambda: _events(path).get("frozen") == want, timeout)


def kill(path: Path) -> None:
    """SIGKILL every process of the cgroup (nothing if it is gone)."""
    try:
        (path / "cgroup.kill").write_text("1")
    except FileNotFoundError:
        if not path.exists():
            return
        # Kernels before 5.14 have no cgroup.kill: signal the members one by one.
        for pid in (path / "cgroup.procs").read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)


def remove(path: Path, timeout: float) -> None:
    """Kill the cgroup's processes and remove it once they are gone (System after ``timeout``)."""
    if not path.exists():
        return
    kill(path)

    def gone() -> bool:
        try:
            path.rmdir()
        except FileNotFoundError:
            return True
        except OSError as exc:
            if exc.errno == errno.EBUSY:  # members are still dying
                return False
            raise
        return True

    if not poll_until(gone, timeout):
        raise System(f"cgroup {path} still has processes {timeout}s after SIGKILL")


def sweep(parent: Path, owned: set[Path], timeout: float) -> None:
    """Remove the cgroups under a runtime's ``parent`` that no task owns (not in ``owned``).

    A runtime that died between making a task's cgroup and recording the
    task left a cgroup nobody knows of (its shim, blocked until start,
    exits when its releaser dies): the start is rolled back by recovery,
    which finds no task to delete. The parent cgroup is its runtime's alone
    (one runtime per state directory), so whatever in it is not a restored
    task's is such a leftover: its processes are killed and it goes.
    """
    for path in parent.iterdir():
        if path.is_dir() and path not in owned:
            try:
                remove(path, timeout)
            except (OSError, ChartdError):
                _log.warning("cannot remove the leftover cgroup %s", path, exc_info=True)
            else:
                _log.info("removed the leftover cgroup %s", path)


class MigrationWarmer:
    """Makes a cgroup migration soon to come cheap: its grace period is waited for ahead.

    :meth:`warm` (a start begins) makes, on a thread of its own, a migration
    that changes nothing: the warmer's own idle process (a shell reading a
    pipe only this object writes: it exits when the daemon goes) written into
    the cgroup ``path`` it is already in. That write waits for the grace
    period (see the module docstring) while the start writes ahead and runs
    its first steps; the shim's move, within a grace period after it, does
    not wait again. Nothing is recorded or left to undo: a warm-up that fails
    turns the warmer off, and the moves wait as they did. ``path`` (a cgroup
    beside the tasks', not among them) is made on first use, removed by
    :meth:`close`.
    """

    def __init__(self, path: Path, shell: str) -> None:
        self.path = path
        self._shell = shell
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._off = False
        self._worker: Worker[None] = Worker("chartd-cgroup-warm", self._migrate)

    @classmethod
    def beside(cls, parent: Path | None, shell: str) -> MigrationWarmer | None:
        """The warmer of the tasks' cgroup ``parent`` (None without one), in a sibling of it."""
        return None if parent is None else cls(parent.with_name(f"{parent.name}-warm"), shell)

    def warm(self) -> None:
        """A task will soon be moved into its cgroup: start the wait for it now."""
        if not self._off:
            self._worker.put(None)

    def _migrate(self, _: None) -> None:
        with self._lock:
            if self._off:
                return
            try:
                if self._proc is None:
                    self.path.mkdir(exist_ok=True)
                    self._proc = subprocess.Popen(
                        [self._shell, "-c", "read _"],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        start_new_session=True,
                    )
                (self.path / "cgroup.procs").write_text(str(self._proc.pid))
            except OSError as exc:
                _log.info("cgroup migrations are not warmed ahead: %s", exc)
                self._stop()

    def close(self) -> None:
        """End the idle process and remove its cgroup."""
        with self._lock:
            self._stop()

    def _stop(self) -> None:
        self._off = True
        proc, self._proc = self._proc, None
        if proc is not None:
            assert proc.stdin is not None
            proc.stdin.close()  # EOF: the shell's read ends, and so does it
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        with contextlib.suppress(OSError, System):
            remove(self.path, 5)
