"""FakeRuntime: the Runtime contract in memory, for tests (no process at all).

It keeps the same contract as the process runtime (same states, errors and
messages, exit events exactly once): a task runs until it is killed or told
to ``exit(container_id, code)``. :mod:`statecharts.container.faults` wraps
any runtime to fail its calls on demand.
"""

from __future__ import annotations

import itertools
import signal as _signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from engine.errors import Conflict, NotFound
from statecharts.container.outtap import TAP_BOUND, OutputTap
from statecharts.container.runtime import (
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

__all__ = ["STDIN_ROOM", "FakeRuntime"]

STDIN_ROOM = 64 * 1024
"""What a FakeRuntime task's open stdin holds unread (a pipe's capacity)."""

# Signals whose default action does not end a process.
_HARMLESS = frozenset(
    {
        _signal.SIGCHLD,
        _signal.SIGCONT,
        _signal.SIGURG,
        _signal.SIGWINCH,
        _signal.SIGSTOP,
        _signal.SIGTSTP,
        _signal.SIGTTIN,
        _signal.SIGTTOU,
    }
)


# -- FakeRuntime -----------------------------------------------------------------------


@dataclass(eq=False)
class _FakeTask:
    container_id: str
    pid: int
    started_at: float | None = None
    paused: bool = False
    exit: ExitEvent | None = None
    pending: list[int] = field(default_factory=list)  # signals held while paused
    stdin: bytearray | None = None  # written, not yet read; None: no open stdin
    stdin_closed: bool = False
    terminal: tuple[int, int] | None = None  # a TTY's window (height, width); None: no TTY

    @property
    def status(self) -> TaskStatus:
        return task_status(self.exit, self.started_at, self.paused)

    def info(self) -> TaskInfo:
        return task_info(self.container_id, self.pid, self.exit, self.started_at, self.paused)


class FakeRuntime:
    """An in-memory Runtime: tasks are records, pids are counters, exits are simulated.

    A task's "process" ends when :meth:`exit` is called, or when it is sent a
    signal whose default action ends a process (exit 128+N), unless
    :meth:`ignore` made it ignore that signal (SIGKILL cannot be ignored).
    While paused, such a signal stays pending until ``resume`` (SIGSTOP
    semantics); SIGKILL acts at once. :meth:`fail_exec` makes the next
    ``start_task`` fail as a missing command would. An open stdin holds
    :data:`STDIN_ROOM` bytes until the "process" reads them (:meth:`read_stdin`).
    Its output is what :meth:`output` says the process writes: only the
    taps see it (no log is written, no tap makes it wait); they end at the exit.

    Exit events are delivered synchronously, on the thread that caused the
    exit, after the runtime's lock is released; so a test sees them as soon
    as the call returns. ``clock`` supplies ``started_at``/``exited_at``.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time, first_pid: int = 1000) -> None:
        self._clock = clock
        self._pids = itertools.count(first_pid)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._containers: dict[str, ContainerSpec] = {}
        self._tasks: dict[str, _FakeTask] = {}
        self._ignored: dict[str, set[int]] = {}
        self._exec_failures: dict[str, ExecFailed] = {}
        self._subscribers: list[ExitCallback] = []
        self._taps: dict[str, list[OutputTap]] = {}
        self._closed = False

    # -- simulation --------------------------------------------------------------------

    def exit(self, container_id: str, code: int, *, signal: int | None = None) -> ExitEvent:
        """The task's process exits with ``code`` (as if killed by ``signal``, if given).

        Conflict ``container <id> is not running`` if it has no live task.
        """
        with self._lock:
            task = self._live(container_id)
            event = self._end(task, code, signal)
        self._deliver(event)
        return event

    def ignore(self, container_id: str, *signals: int) -> None:
        """The container's process ignores ``signals`` (e.g. SIGTERM, to exercise stop timeouts)."""
        with self._lock:
            self._ignored.setdefault(container_id, set()).update(signals)

    def fail_exec(
        self, container_id: str, *, exit_code: int = 127, message: str | None = None
    ) -> None:
        """The next ``start_task`` of the container fails as runc's exec would (ExecFailed)."""
        with self._lock:
            spec = self._containers.get(container_id)
            arg0 = spec.cmd[0] if spec else container_id
            default = (
                f'exec: "{arg0}": executable file not found in $PATH'
                if exit_code == 127
                else f'exec: "{arg0}": permission denied'
            )
            self._exec_failures[container_id] = ExecFailed(message or default, exit_code=exit_code)

    def output(self, container_id: str, stream: str, data: bytes) -> None:
        """The task's process writes ``data`` to ``stream``: its taps get it.

        Conflict ``container <id> is not running`` if it has no live task.
        """
        with self._lock:
            self._live(container_id)
            for tap in self._taps.get(container_id, ()):
                tap.put(stream, data)

    def read_stdin(self, container_id: str) -> bytes | None:
        """What the task's process reads of its stdin now; None at its end (closed, all read)."""
        with self._lock:
            task = self._task(container_id)
            data = bytes(task.stdin or b"")
            if task.stdin is not None:
                task.stdin.clear()
            return None if not data and (task.stdin is None or task.stdin_closed) else data

    def spec(self, container_id: str) -> ContainerSpec | None:
        """The recorded spec of a runtime container, or ``None``."""
        with self._lock:
            return self._containers.get(container_id)

    # -- the Runtime protocol ----------------------------------------------------------

    def create(self, spec: ContainerSpec) -> None:
        with self._lock:
            existing = self._containers.get(spec.id)
            if existing == spec:
                return
            task = self._tasks.get(spec.id)
            if existing is not None and task is not None and task.exit is None:
                raise Conflict(f"container {spec.id} has a live task: its spec cannot be replaced")
            self._containers[spec.id] = spec

    def delete(self, container_id: str) -> None:
        check_container_id(container_id)
        with self._lock:
            if container_id not in self._containers:
                return
            task = self._tasks.get(container_id)
            if task is not None:
                if task.exit is None:
                    raise Conflict(
                        f"cannot delete container {container_id}: its task is still running"
                    )
                del self._tasks[container_id]
            del self._containers[container_id]

    def prepare_task(self, container_id: str) -> None:
        pass  # nothing to prepare: its tasks are made at once

    def create_task(self, container_id: str) -> TaskInfo:
        check_container_id(container_id)
        with self._lock:
            if container_id not in self._containers:
                raise NotFound(f'container "{container_id}": not found')
            task = self._tasks.get(container_id)
            if task is None:
                task = self._tasks[container_id] = _FakeTask(container_id, next(self._pids))
                spec = self._containers[container_id]
                if spec.open_stdin:
                    task.stdin = bytearray()
                if spec.tty:
                    # The window it was created with, or a new pseudo-terminal's.
                    height, width = spec.console_size or (0, 0)
                    task.terminal = (height % 2**16, width % 2**16)
                for tap in self._taps.get(container_id, ()):
                    tap.join()
            return task.info()

    def start_task(self, container_id: str) -> TaskInfo:
        check_container_id(container_id)
        with self._lock:
            task = self._task(container_id)
            if task.exit is not None:
                raise Conflict(f"cannot start task {container_id}: it has exited")
            if task.started_at is not None:
                return task.info()
            failure = self._exec_failures.pop(container_id, None)
            if failure is None:
                task.started_at = self._clock()
                return task.info()
            event = self._end(task, failure.exit_code, None)
        self._deliver(event)
        raise failure

    def kill(self, container_id: str, signal: int) -> None:
        check_container_id(container_id)
        check_signal(signal)
        with self._lock:
            task = self._live(container_id)
            event = self._signal(task, signal)
        if event is not None:
            self._deliver(event)

    def write_stdin(self, container_id: str, data: bytes, timeout: float) -> int:
        check_container_id(container_id)
        with self._lock:
            task = self._task(container_id)
            if task.stdin is None or task.stdin_closed or task.exit is not None:
                raise Conflict(f"container {container_id} has no open stdin")
            taken = data[: max(0, STDIN_ROOM - len(task.stdin))]
            task.stdin += taken
            return len(taken)

    def close_stdin(self, container_id: str) -> None:
        check_container_id(container_id)
        with self._lock:
            self._task(container_id).stdin_closed = True

    def resize(self, container_id: str, height: int, width: int) -> None:
        check_container_id(container_id)
        with self._lock:
            task = self._live(container_id)
            if task.terminal is not None:
                task.terminal = (height % 2**16, width % 2**16)

    def terminal_size(self, container_id: str) -> tuple[int, int] | None:
        """The task's window (height, width) as its process would read it; None: no TTY."""
        with self._lock:
            return self._task(container_id).terminal

    def tap(self, container_id: str, bound: int = TAP_BOUND) -> OutputTap:
        check_container_id(container_id)
        tap = OutputTap(bound, on_close=lambda gone: self._untap(container_id, gone))
        with self._lock:
            if self._closed:
                tap.end()
                return tap
            self._taps.setdefault(container_id, []).append(tap)
            task = self._tasks.get(container_id)
            if task is not None and task.exit is None:
                tap.join()
        return tap

    def pause(self, container_id: str) -> None:
        check_container_id(container_id)
        with self._lock:
            self._started(container_id).paused = True

    def resume(self, container_id: str) -> None:
        check_container_id(container_id)
        with self._lock:
            task = self._started(container_id)
            task.paused = False
            event = None
            pending, task.pending = task.pending, []
            for sig in pending:
                event = event or self._signal(task, sig)
        if event is not None:
            self._deliver(event)

    def delete_task(self, container_id: str) -> ExitEvent | None:
        check_container_id(container_id)
        with self._lock:
            task = self._tasks.get(container_id)
            if task is None:
                return None
            event = None
            if task.exit is None:
                event = self._end(task, 128 + _signal.SIGKILL, int(_signal.SIGKILL))
            del self._tasks[container_id]
        if event is not None:
            self._deliver(event)
        return task.exit

    def task(self, container_id: str) -> TaskInfo | None:
        with self._lock:
            task = self._tasks.get(container_id)
            return None if task is None else task.info()

    def processes(self, container_id: str) -> list[int]:
        with self._lock:
            task = self._tasks.get(container_id)
            if task is None or task.status not in ("running", "paused"):
                raise Conflict(f"container {container_id} is not running")
            return [task.pid]

    def tasks(self) -> list[TaskInfo]:
        with self._lock:
            return [self._tasks[cid].info() for cid in sorted(self._tasks)]

    def wait(self, container_id: str, timeout: float | None = None) -> ExitEvent | None:
        with self._lock:
            task = self._task(container_id)
            self._changed.wait_for(lambda: task.exit is not None, timeout)
            return task.exit

    def subscribe(self, callback: ExitCallback) -> None:
        with self._lock:
            self._subscribers.append(callback)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for taps in self._taps.values():
                for tap in taps:
                    tap.end()
            self._taps.clear()

    def _untap(self, container_id: str, tap: OutputTap) -> None:
        with self._lock:
            taps = self._taps.get(container_id, [])
            if tap in taps:
                taps.remove(tap)

    # -- internals (callers hold the lock) ----------------------------------------------

    def _task(self, container_id: str) -> _FakeTask:
        task = self._tasks.get(container_id)
        if task is None:
            raise NotFound(f"no running task found: task {container_id} not found")
        return task

    def _live(self, container_id: str) -> _FakeTask:
        task = self._tasks.get(container_id)
        if task is None or task.exit is not None:
            raise Conflict(f"container {container_id} is not running")
        return task

    def _started(self, container_id: str) -> _FakeTask:
        task = self._tasks.get(container_id)
        if task is None or task.exit is not None or task.started_at is None:
            raise Conflict(f"container {container_id} is not running")
        return task

    def _signal(self, task: _FakeTask, sig: int) -> ExitEvent | None:
        if sig == _signal.SIGKILL:
            return self._end(task, 128 + sig, sig)
        if sig in _HARMLESS or sig in self._ignored.get(task.container_id, ()):
            return None
        if task.paused:
            task.pending.append(sig)
            return None
        return self._end(task, 128 + sig, sig)

    def _end(self, task: _FakeTask, code: int, sig: int | None) -> ExitEvent:
        task.exit = ExitEvent(task.container_id, task.pid, code, self._clock(), sig)
        task.paused = False
        for tap in self._taps.pop(task.container_id, ()):
            tap.end()
        self._changed.notify_all()
        return task.exit

    def _deliver(self, event: ExitEvent) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            callback(event)


if TYPE_CHECKING:  # it keeps the Runtime contract (checked by mypy, free at run time)
    _fake: Runtime = FakeRuntime()
