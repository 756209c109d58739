"""The container runtime contract: runtime containers and their tasks.

Modelled on containerd's Container/Task split. A *runtime container*
(:meth:`Runtime.create`) is only metadata: the recorded
:class:`ContainerSpec`. A *task* is the live process that runs it: created
blocked before exec (:meth:`Runtime.create_task`, runc's ``create``),
released (:meth:`Runtime.start_task`, runc's ``start``), signalled, frozen
and thawed, and finally deleted (:meth:`Runtime.delete_task`), which reaps it
and hands back its exit. A container has at most one task at a time.

The moby start saga maps onto it step for step::

    runtime_container  create(spec)            undo: delete(id)
    task_create        create_task(id)         undo: delete_task(id)   (ForceDelete)
    task_start         start_task(id)

Every compensation is idempotent, so a saga can undo a step that never took
effect, or took effect in part.

Errors are :mod:`engine.errors` categories, never ``OSError``:

    NotFound          no such runtime container, or no task (where stated)
    InvalidParameter  a malformed spec, container ID or signal; the command
                      cannot be executed (:class:`ExecFailed`, exit 126/127)
    Conflict          not allowed in the task's state (e.g. kill with no live task)
    System            the host refused (fork, cgroup, exec for another reason)

Exit codes are the kernel's, reported the way moby reports them: the status
passed to ``exit()``, or 128+N when the process was killed by signal N.

Implementations: :class:`statecharts.container.process.ProcessRuntime` (real
processes), :class:`statecharts.container.faults.FakeRuntime` (in memory) and
:class:`statecharts.container.faults.FaultRuntime` (fails any call on demand).
"""

from __future__ import annotations

import re
import signal as _signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from engine.errors import InvalidParameter
from statecharts.container.outtap import TAP_BOUND, OutputTap

__all__ = [
    "DEFAULT_PATH",
    "EXIT_UNKNOWN",
    "ContainerSpec",
    "ExecFailed",
    "ExitEvent",
    "Runtime",
    "TaskInfo",
    "TaskStatus",
    "check_container_id",
    "check_signal",
    "exit_code_from_start_error",
    "task_info",
    "task_status",
]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""The PATH a container gets when its env has none (docker's default for Linux)."""

EXIT_UNKNOWN = 255
"""The exit code reported when the real one cannot be known.

containerd's ``UnknownExitStatus``: e.g. a process left by a daemon that
crashed exits while the new daemon is not its parent, so its status went to
another reaper.
"""

EXIT_START_FAILED = 128
"""moby's ``exitUnknown``: the exit code recorded for a start that failed for a
reason other than the command (``setExitCodeFromError``)."""

TaskStatus = Literal["created", "running", "paused", "stopped"]
"""created: blocked before exec; running: released; paused: frozen; stopped: exited."""

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def check_container_id(container_id: str) -> str:
    """``container_id`` if it is usable as a file and cgroup name; InvalidParameter otherwise.

    moby's IDs are 64 hex digits; tests use short names. Anything with a
    slash, a leading dot or dash, or more than 128 characters is refused,
    because runtimes name directories and cgroups after it.
    """
    if not isinstance(container_id, str) or not _ID.fullmatch(container_id):
        raise InvalidParameter(f"invalid container ID: {container_id!r}")
    return container_id


def check_signal(sig: int) -> int:
    """``sig`` if it is a signal number that can be sent (1..NSIG-1); InvalidParameter otherwise.

    The message is moby's (``daemon/kill.go``).
    """
    if isinstance(sig, bool) or not isinstance(sig, int) or not 0 < sig < _signal.NSIG:
        raise InvalidParameter(f"invalid signal: {sig}")
    return int(sig)


@dataclass(frozen=True, slots=True, kw_only=True)
class ContainerSpec:
    """What a runtime container runs: the process half of an OCI spec, plus where to keep things.

    ``env`` is the whole environment of the process (nothing is inherited from
    the daemon); a runtime adds ``PATH=`` :data:`DEFAULT_PATH` when it is
    missing, as docker does. ``working_dir`` must exist when the task is
    created (``None``: the runtime's choice, ``/`` for processes).
    ``stop_signal`` is recorded for the service's stop; the runtime does not
    use it. ``log_path`` receives stdout and stderr (docker's json-file
    lines, appended). ``open_stdin``: the process reads a stdin the runtime
    holds the other end of (:meth:`Runtime.write_stdin`), not ``/dev/null``. ``root`` is
    the container's state directory (moby's ``/var/lib/docker/containers/<id>``);
    the runtime keeps its records there, under ``root/"runtime"``. ``tty``: the
    process's stdin, stdout and stderr are a pseudo-terminal's slave, its
    controlling terminal (docker's ``-t``); the runtime reads the master into
    the log as stdout and writes an open stdin to it (:meth:`Runtime.resize`);
    ``console_size`` (height, width) is its window before the process starts.
    """

    id: str
    name: str
    cmd: list[str]
    env: Mapping[str, str] = field(default_factory=dict)
    working_dir: str | None = None
    stop_signal: int = int(_signal.SIGTERM)
    labels: Mapping[str, str] = field(default_factory=dict)
    log_path: Path
    root: Path
    open_stdin: bool = False
    tty: bool = False
    console_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        check_container_id(self.id)
        if not self.cmd or not all(isinstance(a, str) for a in self.cmd) or not self.cmd[0]:
            # moby's message for a config with neither Entrypoint nor Cmd.
            raise InvalidParameter("No command specified")
        if any("\0" in a for a in self.cmd):
            raise InvalidParameter("invalid command: argument contains a NUL byte")
        for key, value in self.env.items():
            if not key or "=" in key or "\0" in key or "\0" in value:
                raise InvalidParameter(f"invalid environment variable: {key!r}")
        if self.working_dir is not None and not self.working_dir.startswith("/"):
            # moby: "the working directory '...' is invalid, it needs to be an absolute path"
            raise InvalidParameter(
                f"the working directory '{self.working_dir}' is invalid,"
                " it needs to be an absolute path"
            )
        check_signal(self.stop_signal)

    def process_env(self) -> dict[str, str]:
        """The environment the process gets: ``env``, plus the default PATH if it has none."""
        env = dict(self.env)
        env.setdefault("PATH", DEFAULT_PATH)
        return env

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict; :meth:`from_json` reads it back."""
        return {
            "id": self.id,
            "name": self.name,
            "cmd": list(self.cmd),
            "env": dict(self.env),
            "working_dir": self.working_dir,
            "stop_signal": self.stop_signal,
            "labels": dict(self.labels),
            "log_path": str(self.log_path),
            "root": str(self.root),
            "open_stdin": self.open_stdin,
            "tty": self.tty,
            "console_size": None if self.console_size is None else list(self.console_size),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ContainerSpec:
        return cls(
            id=data["id"],
            name=data["name"],
            cmd=list(data["cmd"]),
            env=dict(data["env"]),
            working_dir=data["working_dir"],
            stop_signal=int(data["stop_signal"]),
            labels=dict(data["labels"]),
            log_path=Path(data["log_path"]),
            root=Path(data["root"]),
            open_stdin=bool(data.get("open_stdin", False)),
            tty=bool(data.get("tty", False)),
            console_size=(
                (int(data["console_size"][0]), int(data["console_size"][1]))
                if data.get("console_size")
                else None
            ),
        )


@dataclass(frozen=True, slots=True)
class ExitEvent:
    """A task's main process exited (containerd's ``TaskExit``).

    ``exit_code`` is the kernel's status, or 128+``signal`` when a signal
    killed it (moby's convention), or :data:`EXIT_UNKNOWN` when the status
    could not be known. ``exited_at`` is a Unix time in seconds.
    """

    container_id: str
    pid: int
    exit_code: int
    exited_at: float
    signal: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "container_id": self.container_id,
            "pid": self.pid,
            "exit_code": self.exit_code,
            "exited_at": self.exited_at,
            "signal": self.signal,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ExitEvent:
        return cls(
            container_id=data["container_id"],
            pid=int(data["pid"]),
            exit_code=int(data["exit_code"]),
            exited_at=float(data["exited_at"]),
            signal=None if data.get("signal") is None else int(data["signal"]),
        )


@dataclass(frozen=True, slots=True)
class TaskInfo:
    """A snapshot of one task. Times are Unix seconds; ``None`` until they happen.

    ``exit_code`` is set once ``status`` is ``stopped``. ``oom_killed`` is
    true when the kernel's OOM killer ended it (only runtimes with a memory
    cgroup can tell).
    """

    container_id: str
    pid: int
    status: TaskStatus
    exit_code: int | None = None
    started_at: float | None = None
    exited_at: float | None = None
    oom_killed: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "container_id": self.container_id,
            "pid": self.pid,
            "status": self.status,
            "exit_code": self.exit_code,
            "started_at": self.started_at,
            "exited_at": self.exited_at,
            "oom_killed": self.oom_killed,
        }


def task_status(exit: ExitEvent | None, started_at: float | None, paused: bool) -> TaskStatus:
    """A task's status from what a driver keeps: its exit, its start, the freezer."""
    if exit is not None:
        return "stopped"
    if started_at is None:
        return "created"
    return "paused" if paused else "running"


def task_info(
    container_id: str, pid: int, exit: ExitEvent | None, started_at: float | None, paused: bool
) -> TaskInfo:
    """The :class:`TaskInfo` of a task as a driver keeps it."""
    return TaskInfo(
        container_id=container_id,
        pid=pid,
        status=task_status(exit, started_at, paused),
        exit_code=None if exit is None else exit.exit_code,
        started_at=started_at,
        exited_at=None if exit is None else exit.exited_at,
    )


class ExecFailed(InvalidParameter):
    """The command of a task cannot be executed (runc's ``exec: "x": ...`` errors).

    ``exit_code`` is what moby records for it (``setExitCodeFromError``):
    127 when the command or working directory does not exist (ENOENT,
    ENOTDIR), 126 when it cannot be run (EACCES, EISDIR). The task's process
    exits with the same code, so its :class:`ExitEvent` agrees.
    """

    def __init__(self, message: str, *, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def exit_code_from_start_error(error: BaseException) -> int:
    """The exit code moby records when a start fails with ``error``.

    :class:`ExecFailed` carries its own (126 or 127); anything else is 128
    (moby's ``exitUnknown``).
    """
    if isinstance(error, ExecFailed):
        return error.exit_code
    return EXIT_START_FAILED


ExitCallback = Callable[[ExitEvent], None]


@runtime_checkable
class Runtime(Protocol):
    """Runs containers as tasks. Thread-safe: any method may be called from any thread.

    Lifecycle of one container::

        create ─ create_task ─ start_task ─ (kill | pause ─ resume)* ─ exit
               ─ delete_task ─ delete

    A task exists from ``create_task`` until ``delete_task``, including after
    its process exited (status ``stopped``), so that its exit can be read.
    "Live" below means created, running or paused.
    """

    def create(self, spec: ContainerSpec) -> None:
        """Record ``spec`` as runtime container ``spec.id``, under ``spec.root``.

        Idempotent: the same spec again is a no-op. A different spec replaces
        the record (moby's ``ReplaceContainer``) while the container has no
        live task; with one, Conflict. InvalidParameter for a bad spec.
        """
        ...

    def delete(self, container_id: str) -> None:
        """Forget runtime container ``container_id`` and remove the runtime's records.

        Idempotent: an unknown ID is a no-op. Conflict while a live task
        exists (``delete_task`` first); a stopped task is deleted with it.
        Leaves ``spec.root`` and the log file, which belong to the caller.
        """
        ...

    def prepare_task(self, container_id: str) -> None:
        """A hint: a task of the container will be created soon (a start begins).

        The runtime may prepare what makes ``create_task`` faster, ahead of
        it, on a thread of its own; nothing that needs undoing (it may come
        before the start is recorded, and the start may be refused). Never
        raises, whatever the container.
        """
        ...

    def create_task(self, container_id: str) -> TaskInfo:
        """Start the container's process, blocked before it execs the command.

        The process is the leader of its own session and process group (the
        container's group: signals go to the whole group), has stdin from
        ``/dev/null`` and stdout and stderr, apart, to ``spec.log_path``,
        the exact environment :meth:`ContainerSpec.process_env`, no other
        open files, and ``spec.working_dir`` as its directory. Its ``pid`` is
        final: the exec in ``start_task`` keeps it. Nothing of the command
        has run yet. Returns status ``created``.

        Idempotent: if the container has a task (in any status) it is
        returned unchanged; delete a stopped task before creating a new one.
        NotFound if ``create`` was not called. ExecFailed (127/126) if the
        working directory does not exist or cannot be entered; no task is
        left behind then.
        """
        ...

    def start_task(self, container_id: str) -> TaskInfo:
        """Release the created task: its process execs the command. Returns status ``running``.

        The exec's outcome is known before this returns (runc's status
        pipe): if the command cannot be executed, raises :class:`ExecFailed`
        (``exec: "x": executable file not found in $PATH`` 127, ``permission
        denied`` / ``is a directory`` 126) or System for another errno (128),
        and the task is already ``stopped`` with that exit code, its exit
        reported to subscribers; ``delete_task`` remains the caller's job.

        Idempotent for a running or paused task (returns it). NotFound if
        there is no task; Conflict if it already stopped, or if it was left
        by a previous daemon process before it was started (it cannot be
        released any more: delete it).
        """
        ...

    def kill(self, container_id: str, signal: int) -> None:
        """Send ``signal`` to every process of the task's process group.

        Returns once the signal is sent, not when it took effect: use
        ``wait`` or ``subscribe`` for the exit. On a paused task, a signal
        whose default action ends the process ends it at once under the
        cgroup freezer but stays pending until ``resume`` under SIGSTOP;
        SIGKILL acts at once under both. Callers that want the signal acted
        on resume after it, as moby's kill does.

        InvalidParameter ``invalid signal: X``; Conflict ``container <id> is
        not running`` if the container has no live task (a created task is
        live: it can be killed).
        """
        ...

    def write_stdin(self, container_id: str, data: bytes, timeout: float) -> int:
        """Write a prefix of ``data`` to the task's stdin; how many bytes (0: no room in time).

        Waits up to ``timeout`` seconds for room (the process reads at its own
        pace, or never): nothing is buffered beyond what the stdin itself holds.
        NotFound if the container has no task; Conflict ``container <id> has no
        open stdin`` if its spec has none, the stdin was closed or the task
        stopped (or it was left by a previous runtime process).
        """
        ...

    def close_stdin(self, container_id: str) -> None:
        """Close the task's stdin: its process reads EOF after what was written.

        Idempotent (also for a task without an open stdin). NotFound if the
        container has no task.
        """
        ...

    def resize(self, container_id: str, height: int, width: int) -> None:
        """Set the window size of the task's terminal (``TIOCSWINSZ``), each modulo 2**16
        as runc's does; a task without a terminal has nothing to resize.

        Conflict ``container <id> is not running`` without a live task.
        """
        ...

    def tap(self, container_id: str, bound: int = TAP_BOUND) -> OutputTap:
        """A live, raw tap on the container's stdout and stderr from now on (an attach's).

        Every chunk exactly as the process wrote it, then the end mark once its
        output is all read after its exit (or when the runtime closes). Made
        before the container's task exists, it waits for the next task. While it
        holds ``bound`` bytes or more, the container's output waits (its process
        blocks writing, its log waits too); other containers' do not. The
        subscriber closes it when it goes.
        """
        ...

    def pause(self, container_id: str) -> None:
        """Freeze every process of the task (cgroup freezer, or SIGSTOP to the group).

        Returns once frozen. Idempotent: pausing a paused task is a no-op.
        Conflict ``container <id> is not running`` unless the task is running
        or paused. Status becomes ``paused``.
        """
        ...

    def resume(self, container_id: str) -> None:
        """Thaw a paused task (the freezer, or SIGCONT to the group). Status becomes ``running``.

        Idempotent: resuming a running task is a no-op. Conflict ``container
        <id> is not running`` unless the task is running or paused.
        """
        ...

    def delete_task(self, container_id: str) -> ExitEvent | None:
        """Kill the task if it is live (SIGKILL to the group), reap it, forget it; its exit.

        containerd's ``ForceDelete``: works in every status, including
        created and paused, and returns once the process is reaped and no
        process of the group is left. The exit is also reported to
        subscribers, once, like any other. Idempotent: ``None`` when the
        container has no task (or no runtime container).
        """
        ...

    def task(self, container_id: str) -> TaskInfo | None:
        """The container's task now, or ``None`` if it has none."""
        ...

    def processes(self, container_id: str) -> list[int]:
        """The pids of every process of the container's started, live task (``docker top``).

        Its cgroup's members, or its process group's where it has no cgroup;
        Conflict ``container ID is not running`` without such a task.
        """
        ...

    def tasks(self) -> list[TaskInfo]:
        """Every task the runtime knows, by container ID.

        Includes tasks left by a previous daemon process on the same state
        (it crashed, or exited without deleting them): a persistent runtime
        records each task's pid and process start time, finds them again
        when it starts, tells a live one from a reused pid, and can signal
        and ``delete_task`` it. Whether to kill them is the caller's policy.
        """
        ...

    def wait(self, container_id: str, timeout: float | None = None) -> ExitEvent | None:
        """Block until the task's process exits; its exit, or ``None`` after ``timeout`` seconds.

        Returns at once for a stopped task. NotFound if there is no task.
        """
        ...

    def subscribe(self, callback: ExitCallback) -> None:
        """Call ``callback(event)`` for every exit from now on, exactly once per task.

        Exits come from the kernel (waitpid/pidfd), in the order they were
        reaped, on a runtime thread: a callback must not block for long, and
        may call back into the runtime. An exception in a callback is logged
        and does not stop delivery.
        """
        ...

    def close(self) -> None:
        """Stop the runtime's threads and release its resources. Idempotent.

        Does not stop running tasks: what to do with them at shutdown is the
        service's policy. A task still created (never started) cannot outlive
        the runtime that holds its release and exits without running.
        """
        ...
