"""ProcessRuntime: containers as plain host processes (no runc, no namespaces).

A task is a host process in its own session and process group: a shim
(:mod:`statecharts.container.shim`) spawned blocked until start, which then
``exec``-s the command in place; :mod:`statecharts.container.tasks` holds
what the runtime knows of each task and how a new runtime finds them again,
:mod:`statecharts.container.exits` how their exits are seen and reported,
:mod:`statecharts.container.cgroups` the cgroup each task gets when it can.
This module keeps the runtime itself: the Runtime protocol's operations, one
at a time per container, and the index of runtime containers in
``<state_dir>/containers``; a deleted container's records go to
``<state_dir>/trash`` (:mod:`statecharts.container.trash`).

Pause
-----
With a writable cgroup v2 hierarchy, pause uses the task's cgroup freezer
(see :mod:`statecharts.container.cgroups`). Without one, pause is SIGSTOP to
the group (and resume SIGCONT), waiting until every member is stopped or has
the SIGSTOP pending (a shell blocked in ``vfork`` for a child stopped before
its exec stays in uninterruptible sleep until the child goes on, and stops
as it leaves it); processes that left the group (``setsid``) are not frozen
then. :attr:`ProcessRuntime.freezer` says which is used.

Not done: namespaces, rootfs, users, resource limits, OOM detection
(``oom_killed`` is always false: no memory cgroup is set up).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Unpack

from engine import errors
from engine.errors import ChartdError, Conflict, NotFound, System, Unavailable
from engine.locks import KeyedLock
from statecharts.container import cgroups, shim, terminal
from statecharts.container.execproc import ExecHow, ExecProcesses
from statecharts.container.exits import ExitDispatcher, TaskMonitor
from statecharts.container.logcopy import LogCopier
from statecharts.container.outtap import TAP_BOUND, OutputTap
from statecharts.container.procfs import TIMEOUT, boot_id, decode_exit, proc_stat
from statecharts.container.runtime import (
    EXIT_UNKNOWN,
    ContainerSpec,
    ExitCallback,
    ExitEvent,
    Runtime,
    TaskInfo,
    check_container_id,
    check_signal,
)
from statecharts.container.tasks import Task, read_json, restored_task, unlink, write_json
from statecharts.container.trash import Trash

__all__ = ["ProcessRuntime"]

_log = logging.getLogger("chartd.container.process")

Freezer = Literal["cgroup", "signal"]


class ProcessRuntime:
    """The real driver: each task is a host process in its own session and process group.

    ``state_dir`` holds the runtime's index and lock; one ProcessRuntime at a
    time may use it (Conflict otherwise; a crashed one releases it).
    ``freezer``: ``"auto"`` uses the cgroup v2 freezer when a writable cgroup2
    hierarchy is mounted and SIGSTOP otherwise; ``"cgroup"`` requires it
    (NotImplemented without); ``"signal"`` never uses cgroups.
    See the module docstrings of :mod:`~statecharts.container.shim`,
    :mod:`~statecharts.container.exits` and :mod:`~statecharts.container.tasks`
    for how tasks are made, watched and restored.
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        freezer: Literal["auto", "cgroup", "signal"] = "auto",
        timeout: float = TIMEOUT,
    ) -> None:
        if not hasattr(os, "pidfd_open"):
            raise errors.NotImplemented("ProcessRuntime needs Linux pidfds (Linux 5.3, Python 3.9)")
        if not os.access(shim.SH, os.X_OK):
            raise errors.NotImplemented(f"ProcessRuntime needs {shim.SH} for its shim")
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
        self._cgroup_parent = (
            None if freezer == "signal" else cgroups.task_cgroup_parent(self.state_dir)
        )
        if freezer == "cgroup" and self._cgroup_parent is None:
            os.close(self._lock_fd)
            raise errors.NotImplemented("no writable cgroup v2 hierarchy with cgroup.freeze")
        # How pause freezes new tasks: the cgroup v2 freezer, or SIGSTOP to the group.
        self.freezer: Freezer = "cgroup" if self._cgroup_parent is not None else "signal"
        self._warmer = cgroups.MigrationWarmer.beside(self._cgroup_parent, shim.SH)
        self._boot_id = boot_id()
        self._trash = Trash(self.state_dir / "trash")
        self._lock = threading.Lock()
        self._ops = KeyedLock()  # one operation at a time per container
        self._containers: dict[str, ContainerSpec] = {}
        self._tasks: dict[str, Task] = {}
        self._closed = False
        self._dispatcher = ExitDispatcher()
        self._monitor = TaskMonitor(self._on_exit)
        self._logs = LogCopier()
        self.execs = ExecProcesses()
        try:
            self._restore()
            self._sweep_cgroups()
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
                write_json(records / "spec.json", spec.to_json())
                link = self.state_dir / "containers" / spec.id
                tmp = link.with_name(f".{spec.id}.tmp")
                unlink(tmp)
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
            # The records (spec.json; the task's are gone with it) leave with their folder.
            self._trash.discard(spec.root.resolve() / "runtime")
            unlink(self.state_dir / "containers" / container_id)
            with self._lock:
                del self._containers[container_id]

    def prepare_task(self, container_id: str) -> None:
        if self._warmer is not None and not self._closed:
            self._warmer.warm()

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
            problem = shim.exec_problem(spec.cmd[0], spec.process_env()["PATH"], cwd)
            task.release(problem, self._timeout)
            if problem is not None:
                task.started_at = None  # it never ran
                # The shim exits with moby's code: let the monitor reap it, so the
                # caller sees the task stopped with that code.
                task.done.wait(self._timeout)
                raise shim.exec_error(problem, spec)
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
            task.signal_group(signal)

    def write_stdin(self, container_id: str, data: bytes, timeout: float) -> int:
        self._check_open()
        check_container_id(container_id)
        task = self._task(container_id)
        with self._lock:
            if task.stdin_w is None or task.exit is not None:
                raise Conflict(f"container {container_id} has no open stdin")
            # Our own description of it: a close meanwhile (close_stdin, the exit)
            # cannot hand this number to another file under the write.
            fd = os.dup(task.stdin_w)
        try:
            return shim.write_some(fd, data, timeout)
        finally:
            os.close(fd)

    def close_stdin(self, container_id: str) -> None:
        self._check_open()
        check_container_id(container_id)
        task = self._task(container_id)
        with self._lock:
            fd, task.stdin_w = task.stdin_w, None
        shim.close_fd(fd)

    def exec_process(
        self,
        container_id: str,
        cmd: Sequence[str],
        *,
        env: Mapping[str, str],
        working_dir: str | None,
        attach: bool,
        **how: Unpack[ExecHow],
    ) -> subprocess.Popen[bytes]:
        """Run ``cmd`` in the container's running task (see :mod:`~statecharts.container.execproc`);
        ``how``: its stdin, its terminal (see :meth:`ExecProcesses.spawn`).

        Conflict if the task is not running; ExecFailed (126/127) if ``cmd``
        cannot be run. The caller reaps it, then tells ``execs.ended``.
        """
        self._check_open()
        check_container_id(container_id)
        with self._op(container_id):
            task = self._started(container_id)
            spec = self._containers[container_id]
            return self.execs.spawn(
                spec,
                cmd,
                env=env,
                working_dir=working_dir,
                cgroup=task.cgroup,
                attach=attach,
                **how,
            )

    def resize(self, container_id: str, height: int, width: int) -> None:
        self._check_open()
        check_container_id(container_id)
        with self._lock:
            task = self._tasks.get(container_id)
            if task is None or task.exit is not None:
                raise Conflict(f"container {container_id} is not running")
            if task.terminal is not None:  # under the lock: the exit closes it under it too
                terminal.set_window(task.terminal, height, width)

    def tap(self, container_id: str, bound: int = TAP_BOUND) -> OutputTap:
        check_container_id(container_id)
        return self._logs.tap(container_id, bound)

    def pause(self, container_id: str) -> None:
        self._check_open()
        check_container_id(container_id)
        with self._op(container_id):
            task = self._started(container_id)
            if task.paused:
                return
            if task.cgroup is not None:
                if not cgroups.freeze(task.cgroup, True, self._timeout):
                    cgroups.freeze(task.cgroup, False, self._timeout)
                    raise System(
                        f"cannot pause container {container_id}: not frozen after {self._timeout}s"
                    )
            else:
                with self._lock:
                    if task.exit is not None:
                        raise Conflict(f"container {container_id} is not running")
                    task.signal_group(signal.SIGSTOP)
                task.await_stopped(self._timeout)
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
                if not cgroups.freeze(task.cgroup, False, self._timeout):
                    raise System(
                        f"cannot resume container {container_id}: not thawed after {self._timeout}s"
                    )
            else:
                with self._lock:
                    if task.exit is None:
                        task.signal_group(signal.SIGCONT)
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

    def processes(self, container_id: str) -> list[int]:
        self._check_open()
        check_container_id(container_id)
        task = self._started(container_id)
        with self._lock:
            # Under the lock, as signals are: the group cannot have been reaped meanwhile.
            if task.exit is not None:
                raise Conflict(f"container {container_id} is not running")
            return task.members()

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
                for fd in (task.release_w, task.status_r, task.pidfd, task.stdin_w, task.terminal):
                    shim.close_fd(fd)
                task.release_w = task.status_r = task.pidfd = task.stdin_w = task.terminal = None
        if self._warmer is not None:
            self._warmer.close()
        if self._cgroup_parent is not None:
            with contextlib.suppress(OSError):  # only succeeds when no task cgroup is left
                self._cgroup_parent.rmdir()
        self._logs.close()
        shim.close_fd(self._lock_fd)

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
        self._ops.acquire(container_id)
        try:
            yield
        finally:
            with self._lock:
                gone = container_id not in self._containers and container_id not in self._tasks
            self._ops.release(container_id, forget=gone)

    def _task(self, container_id: str) -> Task:
        with self._lock:
            task = self._tasks.get(container_id)
        if task is None:
            raise NotFound(f"no running task found: task {container_id} not found")
        return task

    def _started(self, container_id: str) -> Task:
        with self._lock:
            task = self._tasks.get(container_id)
        if task is None or task.exit is not None or task.started_at is None:
            raise Conflict(f"container {container_id} is not running")
        return task

    def _spawn(self, spec: ContainerSpec) -> Task:
        """The task of ``spec``: its shim spawned, blocked until start, in its cgroup, recorded."""
        records = spec.root.resolve() / "runtime"
        cwd = spec.working_dir or "/"
        err = shim.cwd_errno(cwd)
        if err is not None:  # the shim would only say that its cd failed
            raise shim.exec_error({"stage": "chdir", "path": cwd, "errno": err}, spec)
        try:
            records.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise System(f"cannot create task {spec.id}: {exc}") from exc
        spawned = shim.spawn(spec, cwd)
        task = Task(
            container_id=spec.id,
            pid=spawned.pid,
            start_ticks=0,
            boot_id=self._boot_id,
            created_at=time.time(),
            cgroup=None,
            record_dir=records,
            pidfd=os.pidfd_open(spawned.pid),
            release_w=spawned.release_w,
            status_r=spawned.status_r,
            stdin_w=spawned.stdin_w,
            terminal=spawned.terminal,
        )
        try:
            # Into its cgroup first: the shell starts up meanwhile, and reading its stat
            # before it has would wait for it.
            self._enter_cgroup(task)
            # Our child cannot be reaped by anyone else, so the pid is stable here.
            stat = proc_stat(task.pid)
            task.start_ticks = stat.start_ticks if stat else 0
            self._attach_logs(spec, records, spawned.terminal)
            task.save()
            shim.await_ready(spawned.status_r, spec, cwd, self._timeout)
        except BaseException:
            # Undo everything here, synchronously: the monitor never saw this task.
            task.discard_unwatched(self._timeout)
            self._logs.drain(spec.id)
            raise
        return task

    def _attach_logs(self, spec: ContainerSpec, records: Path, master: int | None) -> None:
        try:
            # A TTY's master is read through a copy of its own, which the copier closes.
            copy = None if master is None else os.dup(master)
            self._logs.attach(spec.id, records, spec.log_path, terminal=copy)
        except OSError as exc:
            raise System(f"cannot create task {spec.id}: its output: {exc}") from exc

    def _enter_cgroup(self, task: Task) -> None:
        """Move the task's blocked shim into a cgroup of its own, if the runtime uses cgroups."""
        if self._cgroup_parent is None:
            return
        # Entered while the shim is blocked: every descendant starts inside.
        task.cgroup = self._cgroup_parent / task.container_id
        try:
            task.cgroup.mkdir(exist_ok=True)
            (task.cgroup / "cgroup.procs").write_text(str(task.pid))
        except OSError as exc:
            raise System(f"cannot create the cgroup of task {task.container_id}: {exc}") from exc

    def _on_exit(self, task: Task) -> None:
        """The monitor saw the task's pidfd readable: its leader has exited."""
        assert task.pidfd is not None
        try:
            result = os.waitid(os.P_PIDFD, task.pidfd, os.WEXITED | os.WNOWAIT)
            ours = True
        except ChildProcessError:
            # Not our child (restored from a previous daemon process): the
            # status went to its reaper. SIGKILL is the one outcome we know.
            result, ours = None, False
        task.kill_leftovers(leader_reaped=not ours)
        self.execs.kill_all(task.container_id)  # without a cgroup, they are not in its group
        if ours:
            code, sig = decode_exit(result)
        elif task.sigkilled:
            code, sig = 128 + signal.SIGKILL, int(signal.SIGKILL)
        else:
            code, sig = EXIT_UNKNOWN, None
        event = ExitEvent(task.container_id, task.pid, code, time.time(), sig)
        with self._lock:
            task.exit = event
            task.paused = False
            stdin_w, task.stdin_w = task.stdin_w, None
            master, task.terminal = task.terminal, None
        shim.close_fd(stdin_w)
        shim.close_fd(master)
        if ours:
            with contextlib.suppress(ChildProcessError):
                os.waitid(os.P_PIDFD, task.pidfd, os.WEXITED)
        shim.close_fd(task.pidfd)
        task.pidfd = None
        # Told before the record is written, which the subscribers need not wait for:
        # deleting the task waits for `done`, so the record never outlives the task.
        self._dispatcher.put(event)
        try:
            write_json(task.record_dir / "exit.json", event.to_json())
        except OSError:
            _log.warning("cannot record the exit of %s", task.container_id, exc_info=True)
        # Its output before its exit, as docker's copier ends before the exit is handled.
        self._logs.drain(task.container_id)
        task.done.set()

    def _delete_task(self, task: Task) -> ExitEvent | None:
        cid = task.container_id
        with self._lock:
            if task.exit is None:
                self._signal_group_quiet(task)
        if not task.done.wait(self._timeout):
            raise System(f"task {cid} did not exit within {self._timeout}s of SIGKILL")
        task.remove_remains(self._timeout)
        with self._lock:
            if self._tasks.get(cid) is task:
                del self._tasks[cid]
        return task.exit

    def _signal_group_quiet(self, task: Task) -> None:
        with contextlib.suppress(Conflict):  # exited meanwhile: the monitor is reaping it
            task.signal_group(signal.SIGKILL)

    def _sweep_cgroups(self) -> None:
        """Remove the cgroups of this state directory that no task owns (see
        :func:`cgroups.sweep`: a runtime that died between making a task's cgroup
        and recording the task left it)."""
        if self._cgroup_parent is not None:
            owned = {t.cgroup for t in self._tasks.values() if t.cgroup is not None}
            cgroups.sweep(self._cgroup_parent, owned, self._timeout)

    def _restore(self) -> None:
        """Find the containers and tasks recorded by a previous runtime on this state."""
        for link in sorted((self.state_dir / "containers").iterdir()):
            if link.name.startswith("."):
                unlink(link)
                continue
            try:
                root = Path(os.readlink(link))
                spec = ContainerSpec.from_json(read_json(root / "runtime" / "spec.json"))
            except (OSError, ValueError, KeyError, ChartdError):
                _log.warning("dropping unreadable runtime container %s", link.name)
                unlink(link)
                continue
            self._containers[spec.id] = spec
            try:
                record = read_json(root / "runtime" / "task.json")
            except FileNotFoundError:
                continue
            except (OSError, ValueError):
                _log.warning("unreadable task record of %s", spec.id, exc_info=True)
                continue
            task = restored_task(spec.id, root / "runtime", record, self._boot_id)
            if not task.done.is_set():
                with contextlib.suppress(OSError):  # a task from before the FIFOs: no copy
                    self._logs.attach(spec.id, root / "runtime", spec.log_path)
                self._monitor.watch(task)
            self._tasks[spec.id] = task


if TYPE_CHECKING:  # ProcessRuntime keeps the Runtime contract (checked by mypy)
    _process: Runtime = ProcessRuntime(Path())
