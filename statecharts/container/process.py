"""ProcessRuntime: containers as plain host processes (no runc, no namespaces).

How a task is made
------------------
``create_task`` spawns (``posix_spawn``, its own session, every signal
disposition at its default, no descriptor but 0 to 4) a shim, ``/bin/sh``
running a script of a dozen lines, with fd 3 the read end of a *release* pipe
and fd 4 the write end of a *status* pipe, and the command's exact
environment. The shim enters the working directory, writes ``R`` on the
status pipe and blocks reading the release pipe: the process exists, with
its final pid, but nothing of the command has run (runc's ``create`` with
its exec fifo). ``start_task`` looks the command up first (Go's
``LookPath`` rules, as runc; or, for a path, what ``execve`` would say of
it), because a shell whose exec fails can only exit: if it cannot be run,
it tells the shim to exit with moby's code (127, 126) and raises
:class:`~statecharts.container.runtime.ExecFailed`; otherwise it writes
``G`` and the shim ``exec``-s the command in place, so the pid does not
change, closing the status pipe on the way: ``start_task`` reads EOF. There
is no timing guess anywhere. If the runtime goes away before the release,
the shim reads EOF and exits without running the command. A working
directory that cannot be entered fails ``create_task`` before anything is
spawned.

What the shell does not tell apart: a file that passes the look-up but that
the kernel still refuses (not a binary nor a script with ``#!``, a missing
ELF interpreter) starts, and exits at once with 126 or 127 and the shell's
message in the log, where runc fails the start; and a text file without
``#!`` is run by the shell as a script, as ``execvp`` would.

Exits
-----
One monitor thread polls a pidfd per task. When one is readable it peeks at
the status with ``waitid(WNOWAIT)`` (the leader stays a zombie, so its pid,
which is the process group's ID, cannot be reused yet), SIGKILLs whatever is
left of the group (and of the task's cgroup), records the exit, then reaps.
Exit events go to subscribers from a second thread, in order.

Restore
-------
Each task's pid, process start time (``/proc/<pid>/stat`` field 22) and boot
ID are kept in ``<spec.root>/runtime/task.json``, and an index of runtime
containers in ``<state_dir>/containers``. A new ProcessRuntime on the same
state directory finds every task again: a pid whose start time still matches
is the same process (a reused pid would not match) and is watched through a
pidfd; its exit status went to another reaper, so it is reported as 137 if
this runtime SIGKILLed it, else 255 (containerd's unknown status). A leader
that died while no runtime was running has what is left of its group killed.

Pause
-----
With a writable cgroup v2 hierarchy, each task gets a cgroup
(``<cgroup2>/<own cgroup>/chartd-<hash of state_dir>/<id>``), entered while
the shim is still blocked, so every descendant is inside: pause writes
``cgroup.freeze`` and waits for ``frozen 1``; delete also uses
``cgroup.kill``, which catches processes that left the process group. Without
one, pause is SIGSTOP to the group (and resume SIGCONT), waiting until every
member is stopped or has the SIGSTOP pending (a shell blocked in ``vfork``
for a child stopped before its exec stays in uninterruptible sleep until the
child goes on, and stops as it leaves it); processes that left the group
(``setsid``) are not frozen then. :attr:`ProcessRuntime.freezer` says which
is used.

Not done: namespaces, rootfs, users, resource limits, OOM detection
(``oom_killed`` is always false: no memory cgroup is set up).
"""

from __future__ import annotations

import contextlib
import errno as _errno
import fcntl
import hashlib
import json
import logging
import os
import select
import signal
import stat
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from engine import errors
from engine.errors import (
    ChartdError,
    Conflict,
    DeadlineExceeded,
    NotFound,
    System,
    Unavailable,
)
from statecharts.container.runtime import (
    EXIT_UNKNOWN,
    ContainerSpec,
    ExecFailed,
    ExitCallback,
    ExitEvent,
    Runtime,
    TaskInfo,
    TaskStatus,
    check_container_id,
    check_signal,
    task_info,
    task_status,
)

__all__ = ["ProcessRuntime"]

_log = logging.getLogger("chartd.container.process")

Freezer = Literal["cgroup", "signal"]

# The shim is /bin/sh (dash, or any POSIX shell): about 1 ms to start, where a
# Python interpreter took 10 to 30. Its arguments: the working directory, the
# container's PWD and OLDPWD ("=value", or "-" when the spec has none: `cd`
# sets and exports both, and the environment must stay exactly the spec's),
# then the command. Its environment is the command's. fd 3 is the release
# pipe, fd 4 the status pipe: it writes R once ready, then reads one line: G
# execs the command in place (the status pipe closes on the way), E<code>
# exits with that code (the command cannot be run), anything else or EOF
# exits 255 without running anything.
_SH = "/bin/sh"
_SHIM = r"""
cd -- "$1" 2>/dev/null || { printf c >&4; exit 1; }
unset OLDPWD PWD
case $2 in =*) PWD=${2#=}; export PWD;; esac
case $3 in =*) OLDPWD=${3#=}; export OLDPWD;; esac
shift 3
printf R >&4
IFS= read -r go <&3
case $go in
G) ;;
E*) exit "${go#E}";;
*) exit 255;;
esac
exec 3<&-
exec "$@" 4>&-
"""
_SIGNALS = sorted(signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP})

_TIMEOUT = 30.0  # bound on every wait for the kernel or the shim; generous for loaded CI


@dataclass(frozen=True, slots=True)
class _Stat:
    state: str
    pgrp: int
    start_ticks: int


def _proc_stat(pid: int) -> _Stat | None:
    """State, process group and start time (clock ticks after boot) of ``pid``, or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # comm (field 2) may hold spaces and parentheses: split after the last ')'.
    rest = raw[raw.rindex(b")") + 2 :].split()
    return _Stat(state=rest[0].decode(), pgrp=int(rest[2]), start_ticks=int(rest[19]))


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _group_members(pgid: int) -> list[tuple[int, _Stat]]:
    members = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            st = _proc_stat(int(entry.name))
            if st is not None and st.pgrp == pgid:
                members.append((int(entry.name), st))
    return members


def _cannot_run(pid: int, stat: _Stat) -> bool:
    """``pid`` is stopped or dead, or will stop before it runs user code again.

    A member of a group sent SIGSTOP can sit in uninterruptible sleep with
    the signal pending, e.g. a shell in ``vfork`` waiting for a child that
    was stopped before its exec: it stays there until the child goes on, and
    when it leaves it stops, since signals are handled on the way back to user
    mode.
    """
    if stat.state in "TtZX":
        return True
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True  # gone
    stop = 1 << (signal.SIGSTOP - 1)
    return any(
        line.startswith(("SigPnd:", "ShdPnd:")) and int(line.split()[1], 16) & stop
        for line in status.splitlines()
    )


def _write_json(path: Path, data: Any) -> None:
    # Atomic replace, no fsync: these records only have to survive a crash of
    # the daemon, not of the machine (after a reboot no process is left to find).
    tmp = path.with_name(f".{path.name}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(data, sort_keys=True))
    os.replace(tmp, path)


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)


def _close(fd: int | None) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)


def _high_fd(fd: int) -> int:
    # posix_spawn's dup2 actions would clobber a source fd numbered 0..4.
    if fd >= 5:
        return fd
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 5)
    os.close(fd)
    return high


def _inheritable_fds() -> list[int]:
    """This process's descriptors above 4 that a spawned process would inherit.

    Python opens everything close-on-exec; a C library may not. The shim is a
    shell, which cannot close what it does not know of, so the spawn does.
    """
    found = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 4:
            with contextlib.suppress(OSError):  # the listing's own descriptor, closed now
                if os.get_inheritable(fd):
                    found.append(fd)
    return found


def _reason(err: int) -> str:
    # Go's syscall error strings, which moby's exit-code mapping matches on.
    return os.strerror(err).lower()


def _exec_error(record: dict[str, Any], spec: ContainerSpec) -> ChartdError:
    stage, path, err = record.get("stage"), record.get("path"), int(record.get("errno", 0))
    arg0 = spec.cmd[0]
    code = _exit_code(err)
    if stage == "chdir":
        message = f'chdir to cwd ("{path}") set in the container spec failed: {_reason(err)}'
    elif stage == "lookup":
        message = f'exec: "{arg0}": executable file not found in $PATH'
    elif err == _errno.ENOENT:
        message = f'exec: "{arg0}": stat {path}: no such file or directory'
    else:
        message = f'exec: "{arg0}": {_reason(err)}'
    if err in (_errno.ENOENT, _errno.ENOTDIR, _errno.EACCES, _errno.EISDIR):
        return ExecFailed(message, exit_code=code)
    return System(message)


def _exit_code(err: int) -> int:
    """moby's exit code for a command that cannot be run with ``err`` (setExitCodeFromError)."""
    if err in (_errno.ENOENT, _errno.ENOTDIR):
        return 127
    return 126 if err in (_errno.EACCES, _errno.EISDIR) else 128


def _cwd_errno(cwd: str) -> int | None:
    """The errno chdir to ``cwd`` would fail with, or None if it would succeed."""
    try:
        st = os.stat(cwd)
    except OSError as exc:
        return exc.errno
    if not stat.S_ISDIR(st.st_mode):
        return _errno.ENOTDIR
    return None if os.access(cwd, os.X_OK) else _errno.EACCES


def _exec_problem(name: str, search: str, cwd: str) -> dict[str, Any] | None:
    """Why the command ``name`` cannot be run from ``cwd`` (a failure record), or None.

    A shell whose exec fails only exits 126 or 127: it cannot say why, so
    the runtime asks before the release, as the exec would answer: Go's
    LookPath rules (runc's) over ``search`` (the container's PATH, relative
    entries from ``cwd``) for a bare name, what execve says for a path.
    """
    if "/" not in name:
        for folder in search.split(":"):
            candidate = os.path.join(cwd, folder or ".", name)
            try:
                st = os.stat(candidate)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and st.st_mode & 0o111 and os.access(candidate, os.X_OK):
                return None
        return {"stage": "lookup", "path": name, "errno": _errno.ENOENT}
    target = os.path.join(cwd, name)
    try:
        st = os.stat(target)
    except OSError as exc:
        return {"stage": "exec", "path": name, "errno": exc.errno}
    if stat.S_ISDIR(st.st_mode):
        return {"stage": "exec", "path": name, "errno": _errno.EISDIR}
    if not stat.S_ISREG(st.st_mode) or not st.st_mode & 0o111 or not os.access(target, os.X_OK):
        return {"stage": "exec", "path": name, "errno": _errno.EACCES}
    return None


# -- cgroup v2 -------------------------------------------------------------------------


def _cgroup2_dir() -> Path | None:
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


def _cgroup_parent(state_dir: Path) -> Path | None:
    """A writable cgroup for this state directory's tasks, or None if there is none."""
    base = _cgroup2_dir()
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


def _cg_events(path: Path) -> dict[str, str]:
    lines = (path / "cgroup.events").read_text().splitlines()
    return dict(line.split(" ", 1) for line in lines if " " in line)


def _poll_until(check: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.02)


def _cg_freeze(path: Path, frozen: bool, timeout: float) -> bool:
    want = "1" if frozen else "0"
    (path / "cgroup.freeze").write_text(want)
    return _poll_until(lambda: _cg_events(path).get("frozen") == want, timeout)


def _cg_kill(path: Path) -> None:
    try:
        (path / "cgroup.kill").write_text("1")
    except FileNotFoundError:
        if not path.exists():
            return
        # Kernels before 5.14 have no cgroup.kill: signal the members one by one.
        for pid in (path / "cgroup.procs").read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)


def _cg_remove(path: Path, timeout: float) -> None:
    if not path.exists():
        return
    _cg_kill(path)

    def gone() -> bool:
        try:
            path.rmdir()
        except FileNotFoundError:
            return True
        except OSError as exc:
            if exc.errno == _errno.EBUSY:  # members are still dying
                return False
            raise
        return True

    if not _poll_until(gone, timeout):
        raise System(f"cgroup {path} still has processes {timeout}s after SIGKILL")


# -- tasks -----------------------------------------------------------------------------


@dataclass(eq=False)
class _Task:
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
    started_at: float | None = None
    paused: bool = False
    exit: ExitEvent | None = None
    sigkilled: bool = False
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def status(self) -> TaskStatus:
        return task_status(self.exit, self.started_at, self.paused)

    def info(self) -> TaskInfo:
        return task_info(self.container_id, self.pid, self.exit, self.started_at, self.paused)

    def save(self) -> None:
        _write_json(
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


def _is_child(pid: int) -> bool:
    try:
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


def _decode(result: os.waitid_result | None) -> tuple[int, int | None]:
    if result is None:
        return EXIT_UNKNOWN, None
    if result.si_code == os.CLD_EXITED:
        return result.si_status, None
    if result.si_code in (os.CLD_KILLED, os.CLD_DUMPED):
        return 128 + result.si_status, result.si_status
    return EXIT_UNKNOWN, None


class _Monitor:
    """One thread waiting on every task's pidfd; calls ``on_exit(task)`` once per task."""

    def __init__(self, on_exit: Any) -> None:
        self._on_exit = on_exit
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._pending: deque[_Task] = deque()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="chartd-task-monitor", daemon=True)
        self._thread.start()

    def watch(self, task: _Task) -> None:
        self._pending.append(task)
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError):  # full pipe: already awake
            os.write(self._wake_w, b"x")

    def close(self) -> None:
        self._stop = True
        self._wake()
        self._thread.join(_TIMEOUT)
        _close(self._wake_r)
        _close(self._wake_w)

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self._wake_r, select.POLLIN)
        watched: dict[int, _Task] = {}
        while not self._stop:
            for fd, _ in poller.poll():
                if fd == self._wake_r:
                    os.read(self._wake_r, 4096)
                    while self._pending:
                        task = self._pending.popleft()
                        assert task.pidfd is not None
                        watched[task.pidfd] = task
                        poller.register(task.pidfd, select.POLLIN)
                    continue
                task = watched.pop(fd)
                poller.unregister(fd)
                try:
                    self._on_exit(task)
                except Exception:  # the monitor must outlive any one task
                    _log.exception("handling the exit of task %s", task.container_id)


class _Dispatcher:
    """Delivers exit events to subscribers, in order, on its own thread.

    Events wait until there is a subscriber, so exits reaped before the
    service subscribed (e.g. of tasks restored at start) are not lost;
    ``close`` delivers what is queued before it returns.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: deque[ExitEvent] = deque()
        self._subscribers: list[ExitCallback] = []
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="chartd-task-events", daemon=True)
        self._thread.start()

    def subscribe(self, callback: ExitCallback) -> None:
        with self._cond:
            self._subscribers.append(callback)
            self._cond.notify_all()

    def put(self, event: ExitEvent) -> None:
        with self._cond:
            self._queue.append(event)
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(_TIMEOUT)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stop and not (self._queue and self._subscribers):
                    self._cond.wait()
                if not (self._queue and self._subscribers):  # stopping, and drained
                    return
                event = self._queue.popleft()
                subscribers = list(self._subscribers)
            for callback in subscribers:
                try:
                    callback(event)
                except Exception:
                    _log.exception("exit callback %r failed on %s", callback, event)


class ProcessRuntime:
    """The real driver: each task is a host process in its own session and process group.

    ``state_dir`` holds the runtime's index and lock; one ProcessRuntime at a
    time may use it (Conflict otherwise; a crashed one releases it).
    ``freezer``: ``"auto"`` uses the cgroup v2 freezer when a writable cgroup2
    hierarchy is mounted and SIGSTOP otherwise; ``"cgroup"`` requires it
    (NotImplemented without); ``"signal"`` never uses cgroups.
    See the module docstring for how tasks are made, watched and restored.
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        freezer: Literal["auto", "cgroup", "signal"] = "auto",
        timeout: float = _TIMEOUT,
    ) -> None:
        if not hasattr(os, "pidfd_open"):
            raise errors.NotImplemented("ProcessRuntime needs Linux pidfds (Linux 5.3, Python 3.9)")
        if not os.access(_SH, os.X_OK):
            raise errors.NotImplemented(f"ProcessRuntime needs {_SH} for its shim")
        self.state_dir = Path(state_dir).resolve()
        self._timeout = timeout
        (self.state_dir / "containers").mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.state_dir / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise Conflict(
                f"runtime state directory {self.state_dir} is in use by another runtime"
            ) from None
        self._cgroup_parent = None if freezer == "signal" else _cgroup_parent(self.state_dir)
        if freezer == "cgroup" and self._cgroup_parent is None:
            os.close(self._lock_fd)
            raise errors.NotImplemented("no writable cgroup v2 hierarchy with cgroup.freeze")
        # How pause freezes new tasks: the cgroup v2 freezer, or SIGSTOP to the group.
        self.freezer: Freezer = "cgroup" if self._cgroup_parent is not None else "signal"
        self._boot_id = _boot_id()
        self._lock = threading.Lock()
        self._ops: dict[str, threading.Lock] = {}
        self._containers: dict[str, ContainerSpec] = {}
        self._tasks: dict[str, _Task] = {}
        self._closed = False
        self._dispatcher = _Dispatcher()
        self._monitor = _Monitor(self._on_exit)
        try:
            self._restore()
        except BaseException:
            self.close()
            raise

    # -- the Runtime protocol ----------------------------------------------------------

    def create(self, spec: ContainerSpec) -> None:
        self._check_open()
        with self._op(spec.id):
            with self._lock:
                existing = self._containers.get(spec.id)
                task = self._tasks.get(spec.id)
            if existing == spec:
                return
            if existing is not None and task is not None and task.exit is None:
                raise Conflict(f"container {spec.id} has a live task: its spec cannot be replaced")
            root = spec.root.resolve()
            records = root / "runtime"
            try:
                records.mkdir(parents=True, exist_ok=True)
                _write_json(records / "spec.json", spec.to_json())
                link = self.state_dir / "containers" / spec.id
                tmp = link.with_name(f".{spec.id}.tmp")
                _unlink(tmp)
                os.symlink(root, tmp)
                os.replace(tmp, link)
            except OSError as exc:
                raise System(f"cannot record container {spec.id}: {exc}") from exc
            with self._lock:
                self._containers[spec.id] = spec

    def delete(self, container_id: str) -> None:
        self._check_open()
        check_container_id(container_id)
        with self._op(container_id):
            with self._lock:
                spec = self._containers.get(container_id)
                task = self._tasks.get(container_id)
            if spec is None:
                return
            if task is not None:
                if task.exit is None:
                    raise Conflict(
                        f"cannot delete container {container_id}: its task is still running"
                    )
                self._delete_task(task)
            records = spec.root.resolve() / "runtime"
            for name in ("spec.json", "process.json"):
                _unlink(records / name)
            with contextlib.suppress(OSError):
                records.rmdir()
            _unlink(self.state_dir / "containers" / container_id)
            with self._lock:
                del self._containers[container_id]

    def create_task(self, container_id: str) -> TaskInfo:
        self._check_open()
        check_container_id(container_id)
        with self._op(container_id):
            with self._lock:
                spec = self._containers.get(container_id)
                task = self._tasks.get(container_id)
            if spec is None:
                raise NotFound(f'container "{container_id}": not found')
            if task is not None:
                return task.info()
            task = self._spawn(spec)
            with self._lock:
                self._tasks[container_id] = task
            self._monitor.watch(task)
            return task.info()

    def start_task(self, container_id: str) -> TaskInfo:
        self._check_open()
        check_container_id(container_id)
        with self._op(container_id):
            task = self._task(container_id)
            if task.exit is not None:
                raise Conflict(f"cannot start task {container_id}: it has exited")
            if task.started_at is not None:
                return task.info()
            if task.release_w is None:
                raise Conflict(
                    f"cannot start task {container_id}: it was created by a previous"
                    " runtime process and can no longer be released; delete it"
                )
            spec = self._containers[container_id]
            # Recorded before the release: a daemon that crashes right after it
            # must find a started task, not one it believes is still blocked.
            task.started_at = time.time()
            task.save()
            cwd = spec.working_dir or "/"
            problem = _exec_problem(spec.cmd[0], spec.process_env()["PATH"], cwd)
            order = b"G\n" if problem is None else f"E{_exit_code(problem['errno'])}\n".encode()
            with contextlib.suppress(BrokenPipeError):  # the shim is gone; its exit says why
                os.write(task.release_w, order)
            _close(task.release_w)
            task.release_w = None
            assert task.status_r is not None
            try:
                self._read_all(task.status_r)  # EOF: it exec'd the command, or exited
            finally:
                _close(task.status_r)
                task.status_r = None
            if problem is not None:
                task.started_at = None  # it never ran
                # The shim exits with moby's code: let the monitor reap it, so the
                # caller sees the task stopped with that code.
                task.done.wait(self._timeout)
                raise _exec_error(problem, spec)
            return task.info()

    def kill(self, container_id: str, signal: int) -> None:
        self._check_open()
        check_container_id(container_id)
        check_signal(signal)
        with self._lock:
            task = self._tasks.get(container_id)
            if task is None or task.exit is not None:
                raise Conflict(f"container {container_id} is not running")
            # Under the lock: the monitor records the exit (under it too) before it
            # reaps, so the group's ID cannot have been reused here.
            self._signal_group(task, signal)

    def pause(self, container_id: str) -> None:
        self._check_open()
        check_container_id(container_id)
        with self._op(container_id):
            task = self._started(container_id)
            if task.paused:
                return
            if task.cgroup is not None:
                if not _cg_freeze(task.cgroup, True, self._timeout):
                    _cg_freeze(task.cgroup, False, self._timeout)
                    raise System(
                        f"cannot pause container {container_id}: not frozen after {self._timeout}s"
                    )
            else:
                with self._lock:
                    if task.exit is not None:
                        raise Conflict(f"container {container_id} is not running")
                    self._signal_group(task, signal.SIGSTOP)

                def stopped() -> bool:
                    return task.exit is not None or all(
                        _cannot_run(pid, st) for pid, st in _group_members(task.pid)
                    )

                if not _poll_until(stopped, self._timeout):
                    running = [
                        f"{pid} ({st.state})"
                        for pid, st in _group_members(task.pid)
                        if not _cannot_run(pid, st)
                    ]
                    raise System(
                        f"cannot pause container {container_id}: not stopped after"
                        f" {self._timeout}s: {', '.join(running)}"
                    )
            with self._lock:
                task.paused = task.exit is None
            task.save()

    def resume(self, container_id: str) -> None:
        self._check_open()
        check_container_id(container_id)
        with self._op(container_id):
            task = self._started(container_id)
            if not task.paused:
                return
            if task.cgroup is not None:
                if not _cg_freeze(task.cgroup, False, self._timeout):
                    raise System(
                        f"cannot resume container {container_id}: not thawed after {self._timeout}s"
                    )
            else:
                with self._lock:
                    if task.exit is None:
                        self._signal_group(task, signal.SIGCONT)
            with self._lock:
                task.paused = False
            task.save()

    def delete_task(self, container_id: str) -> ExitEvent | None:
        self._check_open()
        check_container_id(container_id)
        with self._op(container_id):
            with self._lock:
                task = self._tasks.get(container_id)
            if task is None:
                return None
            return self._delete_task(task)

    def task(self, container_id: str) -> TaskInfo | None:
        with self._lock:
            task = self._tasks.get(container_id)
            return None if task is None else task.info()

    def tasks(self) -> list[TaskInfo]:
        with self._lock:
            return [self._tasks[cid].info() for cid in sorted(self._tasks)]

    def wait(self, container_id: str, timeout: float | None = None) -> ExitEvent | None:
        with self._lock:
            task = self._tasks.get(container_id)
        if task is None:
            raise NotFound(f"no running task found: task {container_id} not found")
        return task.exit if task.done.wait(timeout) else None

    def subscribe(self, callback: ExitCallback) -> None:
        self._check_open()
        self._dispatcher.subscribe(callback)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._monitor.close()
        self._dispatcher.close()
        with self._lock:
            for task in self._tasks.values():
                # A created task's shim sees EOF on its release pipe and exits
                # without running the command: it cannot outlive its releaser.
                for fd in (task.release_w, task.status_r, task.pidfd):
                    _close(fd)
                task.release_w = task.status_r = task.pidfd = None
        if self._cgroup_parent is not None:
            with contextlib.suppress(OSError):  # only succeeds when no task cgroup is left
                self._cgroup_parent.rmdir()
        _close(self._lock_fd)

    def __enter__(self) -> ProcessRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise Unavailable("the process runtime is closed")

    @contextlib.contextmanager
    def _op(self, container_id: str) -> Iterator[None]:
        """One operation at a time per container; different containers run in parallel.

        The lock is forgotten once the container is gone, so that a daemon that
        runs many containers keeps none for the deleted ones. An operation that
        waited for a lock forgotten meanwhile takes the container's current one.
        """
        while True:
            with self._lock:
                lock = self._ops.setdefault(container_id, threading.Lock())
            lock.acquire()
            with self._lock:
                if self._ops.get(container_id) is lock:
                    break
            lock.release()
        try:
            yield
        finally:
            with self._lock:
                if container_id not in self._containers and container_id not in self._tasks:
                    del self._ops[container_id]
            lock.release()

    def _task(self, container_id: str) -> _Task:
        with self._lock:
            task = self._tasks.get(container_id)
        if task is None:
            raise NotFound(f"no running task found: task {container_id} not found")
        return task

    def _started(self, container_id: str) -> _Task:
        with self._lock:
            task = self._tasks.get(container_id)
        if task is None or task.exit is not None or task.started_at is None:
            raise Conflict(f"container {container_id} is not running")
        return task

    def _read_all(self, fd: int) -> bytes:
        """Everything written on the pipe ``fd`` until EOF (every writer closed or exec'd)."""
        deadline = time.monotonic() + self._timeout
        chunks: list[bytes] = []
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not poller.poll(left * 1000):
                raise DeadlineExceeded(f"the task process did not exec within {self._timeout}s")
            chunk = os.read(fd, 65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)

    def _spawn(self, spec: ContainerSpec) -> _Task:
        records = spec.root.resolve() / "runtime"
        cwd = spec.working_dir or "/"
        err = _cwd_errno(cwd)
        if err is not None:  # the shim would only say that its cd failed
            raise _exec_error({"stage": "chdir", "path": cwd, "errno": err}, spec)
        env = spec.process_env()
        # The container's own PWD and OLDPWD, for the shim to put back after its cd.
        saved = [f"={env[name]}" if name in env else "-" for name in ("PWD", "OLDPWD")]
        fds: dict[str, int] = {}
        try:
            records.mkdir(parents=True, exist_ok=True)
            spec.log_path.parent.mkdir(parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
            fds["log"] = _high_fd(os.open(spec.log_path, flags, 0o640))
            fds["null"] = _high_fd(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
            release_r, fds["release_w"] = os.pipe()
            fds["release_r"] = _high_fd(release_r)
            fds["status_r"], status_w = os.pipe()
            fds["status_w"] = _high_fd(status_w)
            pid = os.posix_spawn(
                _SH,
                [_SH, "-c", _SHIM, "chartd-shim", cwd, *saved, *spec.cmd],
                env,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, fds["null"], 0),
                    (os.POSIX_SPAWN_DUP2, fds["log"], 1),
                    (os.POSIX_SPAWN_DUP2, fds["log"], 2),
                    (os.POSIX_SPAWN_DUP2, fds["release_r"], 3),
                    (os.POSIX_SPAWN_DUP2, fds["status_w"], 4),
                    *((os.POSIX_SPAWN_CLOSE, fd) for fd in _inheritable_fds()),
                ],
                setsid=True,
                setsigmask=(),
                # Every disposition back to its default: an ignored one would
                # survive both execs (a shell cannot reset what it inherited ignored).
                setsigdef=_SIGNALS,
            )
        except OSError as exc:
            for fd in fds.values():
                _close(fd)
            raise System(f"cannot create task {spec.id}: {exc}") from exc
        for name in ("log", "null", "release_r", "status_w"):
            _close(fds[name])
        release_w, status_r = fds["release_w"], fds["status_r"]
        # Our child cannot be reaped by anyone else, so the pid is stable here.
        stat = _proc_stat(pid)
        task = _Task(
            container_id=spec.id,
            pid=pid,
            start_ticks=stat.start_ticks if stat else 0,
            boot_id=self._boot_id,
            created_at=time.time(),
            cgroup=None,
            record_dir=records,
            pidfd=os.pidfd_open(pid),
            release_w=release_w,
            status_r=status_r,
        )
        try:
            if self._cgroup_parent is not None:
                # Entered while the shim is blocked: every descendant starts inside.
                task.cgroup = self._cgroup_parent / spec.id
                try:
                    task.cgroup.mkdir(exist_ok=True)
                    (task.cgroup / "cgroup.procs").write_text(str(pid))
                except OSError as exc:
                    raise System(f"cannot create the cgroup of task {spec.id}: {exc}") from exc
            task.save()
            first = os.read(status_r, 1) if self._readable(status_r) else None
            if first == b"c":  # its cd failed after all (the directory changed meanwhile)
                err = _cwd_errno(cwd) or _errno.ENOENT
                raise _exec_error({"stage": "chdir", "path": cwd, "errno": err}, spec)
            if first is None:
                raise DeadlineExceeded(
                    f"cannot create task {spec.id}: its process was not ready"
                    f" within {self._timeout}s"
                )
            if first != b"R":
                raise System(
                    f"cannot create task {spec.id}: its process exited before it was ready"
                    f" (see {spec.log_path})"
                )
        except BaseException:
            # Undo everything here, synchronously: the monitor never saw this task.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            for end in (release_w, status_r, task.pidfd):
                _close(end)
            if task.cgroup is not None:
                try:
                    _cg_remove(task.cgroup, self._timeout)
                except (OSError, ChartdError):
                    _log.warning("cannot remove cgroup %s", task.cgroup, exc_info=True)
            _unlink(records / "task.json")
            raise
        return task

    def _readable(self, fd: int) -> bool:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(self._timeout * 1000))

    def _signal_group(self, task: _Task, sig: int) -> None:
        """Send ``sig`` to the task's group; caller holds ``_lock`` and checked it is live."""
        if sig == signal.SIGKILL:
            task.sigkilled = True
            if task.cgroup is not None:
                try:
                    _cg_kill(task.cgroup)
                except OSError:
                    _log.warning("cgroup.kill failed for %s", task.cgroup, exc_info=True)
        try:
            if task.pidfd is not None:
                # The leader through its pidfd: exact even for a restored task
                # whose pid another reaper could have released.
                signal.pidfd_send_signal(task.pidfd, sig)
            os.killpg(task.pid, sig)
        except ProcessLookupError:
            raise Conflict(f"container {task.container_id} is not running") from None
        except OSError as exc:
            raise System(f"cannot kill container {task.container_id}: {exc}") from exc

    def _kill_leftovers(self, task: _Task, *, leader_reaped: bool) -> None:
        """SIGKILL what is left of the task's group and cgroup once its leader exited."""
        if task.cgroup is not None:
            try:
                _cg_kill(task.cgroup)
            except OSError:
                _log.warning("cgroup.kill failed for %s", task.cgroup, exc_info=True)
        if not leader_reaped:
            # The leader is an unreaped zombie: the group's ID is still ours.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(task.pid, signal.SIGKILL)
            return
        # Another reaper may have released the leader's pid, and a new process
        # may lead a group with that number: kill the members one by one, never
        # one whose pid is the group's ID.
        for pid, _ in _group_members(task.pid):
            if pid != task.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def _on_exit(self, task: _Task) -> None:
        """The monitor saw the task's pidfd readable: its leader has exited."""
        assert task.pidfd is not None
        try:
            result = os.waitid(os.P_PIDFD, task.pidfd, os.WEXITED | os.WNOWAIT)
            ours = True
        except ChildProcessError:
            # Not our child (restored from a previous daemon process): the
            # status went to its reaper. SIGKILL is the one outcome we know.
            result, ours = None, False
        self._kill_leftovers(task, leader_reaped=not ours)
        if ours:
            code, sig = _decode(result)
        elif task.sigkilled:
            code, sig = 128 + signal.SIGKILL, int(signal.SIGKILL)
        else:
            code, sig = EXIT_UNKNOWN, None
        event = ExitEvent(task.container_id, task.pid, code, time.time(), sig)
        with self._lock:
            task.exit = event
            task.paused = False
        if ours:
            with contextlib.suppress(ChildProcessError):
                os.waitid(os.P_PIDFD, task.pidfd, os.WEXITED)
        _close(task.pidfd)
        task.pidfd = None
        try:
            _write_json(task.record_dir / "exit.json", event.to_json())
        except OSError:
            _log.warning("cannot record the exit of %s", task.container_id, exc_info=True)
        task.done.set()
        self._dispatcher.put(event)

    def _delete_task(self, task: _Task) -> ExitEvent | None:
        cid = task.container_id
        with self._lock:
            if task.exit is None:
                self._signal_group_quiet(task)
        if not task.done.wait(self._timeout):
            raise System(f"task {cid} did not exit within {self._timeout}s of SIGKILL")
        if task.cgroup is not None:
            _cg_remove(task.cgroup, self._timeout)
        for fd in (task.release_w, task.status_r):
            _close(fd)
        task.release_w = task.status_r = None
        for name in ("task.json", "exit.json", "process.json"):
            _unlink(task.record_dir / name)
        with self._lock:
            if self._tasks.get(cid) is task:
                del self._tasks[cid]
        return task.exit

    def _signal_group_quiet(self, task: _Task) -> None:
        with contextlib.suppress(Conflict):  # exited meanwhile: the monitor is reaping it
            self._signal_group(task, signal.SIGKILL)

    def _restore(self) -> None:
        """Find the containers and tasks recorded by a previous runtime on this state."""
        for link in sorted((self.state_dir / "containers").iterdir()):
            if link.name.startswith("."):
                _unlink(link)
                continue
            try:
                root = Path(os.readlink(link))
                spec = ContainerSpec.from_json(_read_json(root / "runtime" / "spec.json"))
            except (OSError, ValueError, KeyError, ChartdError):
                _log.warning("dropping unreadable runtime container %s", link.name)
                _unlink(link)
                continue
            self._containers[spec.id] = spec
            try:
                record = _read_json(root / "runtime" / "task.json")
            except FileNotFoundError:
                continue
            except (OSError, ValueError):
                _log.warning("unreadable task record of %s", spec.id, exc_info=True)
                continue
            self._tasks[spec.id] = self._restore_task(spec, root / "runtime", record)

    def _restore_task(self, spec: ContainerSpec, records: Path, record: Any) -> _Task:
        cgroup = record.get("cgroup")
        task = _Task(
            container_id=spec.id,
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
            task.exit = ExitEvent.from_json(_read_json(records / "exit.json"))
        if task.exit is None and self._same_process(task):
            with contextlib.suppress(ProcessLookupError):
                task.pidfd = os.pidfd_open(task.pid)
            # Checked again with the pidfd held: the pid cannot change under it now.
            stat = self._same_process(task) if task.pidfd is not None else None
            # A zombie has ended; unless it is our own child (a runtime reopened in
            # the same process), its status is another reaper's: nothing to wait for.
            if stat is not None and (stat.state not in "ZX" or _is_child(task.pid)):
                self._monitor.watch(task)
                return task
            _close(task.pidfd)
            task.pidfd = None
        if task.exit is None:
            # It ended while no runtime was watching: status unknown.
            self._kill_leftovers(task, leader_reaped=True)
            task.exit = ExitEvent(spec.id, task.pid, EXIT_UNKNOWN, time.time(), None)
            task.paused = False
        task.done.set()
        return task

    def _same_process(self, task: _Task) -> _Stat | None:
        """The task's process now, if its pid still names the process that was recorded."""
        stat = _proc_stat(task.pid)
        if stat is None or task.boot_id != self._boot_id or stat.start_ticks != task.start_ticks:
            return None
        return stat


if TYPE_CHECKING:  # ProcessRuntime keeps the Runtime contract (checked by mypy)
    _process: Runtime = ProcessRuntime(Path())
