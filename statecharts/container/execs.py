"""Exec instances (moby's ExecConfig) and the health probes, which are execs too.

The chart decides whether a container may have an exec (``exec_create`` and
``exec_start`` are refused with moby's messages when it is not running, is
paused or restarting), keeps the IDs of its execs (``ExecIDs``) and emits
``exec_create``/``exec_start``/``exec_die``; :class:`Execs` keeps what moby
keeps in memory (the exec's config, whether it runs, its exit code) and
runs the process on the runtime (``exec_process``, see
:mod:`~statecharts.container.execproc`). As moby's, exec instances live as
long as the daemon: a restarted daemon knows none (their processes ended
with their containers).

:class:`ExecProber` runs the health probes (:class:`~statecharts.container.health.Prober`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import selectors
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import engine
from engine.errors import ChartdError, Conflict, InvalidParameter, NotFound
from statecharts.container import shim, terminal
from statecharts.container.health import MAX_OUTPUT, go_duration

__all__ = ["ExecOutput", "ExecProber", "Execs", "check_command", "exec_steps"]

log = logging.getLogger("chartd.containers.exec")

Fire = Callable[[str, str, Mapping[str, Any]], engine.Entity]
"""Fire an event (with params) on the container with this ID."""

_READ = 65536
# How long an ended exec can still be inspected: moby's garbage collection runs every
# 5 minutes and drops what ended before the previous run.
_KEEP_ENDED = 600.0


@dataclass(slots=True)
class _Exec:
    id: str
    container_id: str
    cmd: list[str]
    env: dict[str, str]
    working_dir: str | None
    tty: bool
    attach_stdin: bool
    running: bool = False
    exit_code: int | None = None
    pid: int = 0
    started: bool = False
    ended_at: float | None = None
    console_size: tuple[int, int] | None = None  # a TTY's first window (height, width)
    terminal: int | None = None  # a running TTY exec's master (a copy), for resize
    lock: threading.Lock = field(default_factory=threading.Lock)
    terminal_lock: threading.Lock = field(default_factory=threading.Lock)


def _runtime_exec(runtime: Any) -> Callable[..., subprocess.Popen[bytes]]:
    run = getattr(runtime, "exec_process", None)
    if run is None:
        raise engine.errors.NotImplemented("this container runtime cannot run execs")
    return run  # type: ignore[no-any-return]


def check_command(cmd: Sequence[str]) -> None:
    """moby's refusal of an exec without a command, which its router makes before it
    looks the container up."""
    if not cmd:
        raise InvalidParameter("No exec command specified")


class ExecOutput:
    """An attached exec's output, as (stream, bytes) while it runs; then ``exit_code``.

    An exec created with ``attach_stdin`` (``docker exec -i``) reads a pipe
    (``reads_stdin``) that :meth:`write_stdin` fills and :meth:`close_stdin`
    ends; it is closed when the process ends.
    """

    def __init__(self, process: subprocess.Popen[bytes], done: Callable[[int], None]) -> None:
        self._process = process
        self._done = done
        self._stdin_lock = threading.Lock()
        self.reads_stdin = process.stdin is not None
        self.tty = False  # its output is a terminal's (docker exec -t)
        self.exit_code: int | None = None

    def write_stdin(self, data: bytes, timeout: float) -> int:
        """Write a prefix of ``data`` to the exec's stdin, waiting up to ``timeout`` for room;
        how much went in. Conflict once it is closed (here, or by the process)."""
        with self._stdin_lock:
            pipe = self._process.stdin
            if pipe is None or pipe.closed:
                raise Conflict("the exec's stdin is closed")
            # Our own description of it: a close meanwhile cannot hand the number on.
            fd = os.dup(pipe.fileno())
        try:
            return shim.write_some(fd, data, timeout)
        except BrokenPipeError:
            raise Conflict("the exec's stdin is closed") from None
        finally:
            os.close(fd)

    def close_stdin(self) -> None:
        """Close the exec's stdin: its process reads EOF after what was written. Idempotent."""
        with self._stdin_lock:
            if self._process.stdin is not None:
                with contextlib.suppress(OSError):
                    self._process.stdin.close()

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        finished = False
        try:
            yield from _chunks(self._process)
            finished = True
        finally:
            if not finished:  # the reader went: the exec goes on, unattached, to its end
                threading.Thread(target=self._drain, daemon=True).start()
            else:
                self._end()

    def _drain(self) -> None:
        for _ in _chunks(self._process):
            pass
        self._end()

    def _end(self) -> None:
        self.exit_code = _status(self._process.wait())
        self.close_stdin()
        self._done(self.exit_code)


def _chunks(process: subprocess.Popen[bytes]) -> Iterator[tuple[str, bytes]]:
    with selectors.DefaultSelector() as selector:
        for stream, pipe in (("stdout", process.stdout), ("stderr", process.stderr)):
            if pipe is not None:
                selector.register(pipe, selectors.EVENT_READ, stream)
        while selector.get_map():
            for key, _ in selector.select():
                try:
                    data = key.fileobj.read1(_READ)  # type: ignore[union-attr]
                except OSError:  # a terminal's master once the process closed it: EIO
                    data = b""
                if not data:
                    selector.unregister(key.fileobj)
                    key.fileobj.close()  # type: ignore[union-attr]
                else:
                    yield key.data, data


def _status(code: int) -> int:
    return 128 - code if code < 0 else code  # killed by signal N: 128+N, as moby reports


class Execs:
    """moby's exec instances on a container service: create, start, inspect."""

    def __init__(self, runtime: Any, fire: Fire) -> None:
        self.runtime = runtime
        self._fire = fire
        self._lock = threading.Lock()
        self._execs: dict[str, _Exec] = {}

    def create(
        self,
        container: engine.Entity,
        ref: str,
        cmd: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        working_dir: str | None = None,
        tty: bool = False,
        attach_stdin: bool = False,
        console_size: Sequence[int] | None = None,
    ) -> str:
        """A new exec in ``container`` (``ref`` as the caller named it); its ID.

        ``console_size`` (``[height, width]``, zeros: none) is its TTY's first window.
        """
        if not all(isinstance(a, str) and "\0" not in a for a in cmd):
            raise InvalidParameter("invalid command: arguments must be strings without NUL")
        for key, value in (env or {}).items():
            if not key or "=" in key or "\0" in key or "\0" in value:
                raise InvalidParameter(f"invalid environment variable: {key!r}")
        if working_dir and not working_dir.startswith("/"):
            raise InvalidParameter(
                f"the working directory '{working_dir}' is invalid, it needs to be an absolute path"
            )
        record = _Exec(
            secrets.token_hex(32),
            container.id,
            list(cmd),
            dict(env or {}),
            working_dir or None,
            tty,
            attach_stdin,
        )
        if tty and console_size and any(console_size):
            height, width = console_size
            record.console_size = (int(height), int(width))
        self._fire(
            container.id, "exec_create", {"exec_id": record.id, "cmd": record.cmd, "ref": ref}
        )
        with self._lock:
            self._execs[record.id] = record
        return record.id

    def _forget_ended(self) -> None:
        """Drop the execs that ended a while ago (moby's execCommandGC), under the lock."""
        horizon = time.monotonic() - _KEEP_ENDED
        for exec_id in [k for k, r in self._execs.items() if r.ended_at and r.ended_at < horizon]:
            del self._execs[exec_id]

    def _get(self, exec_id: str) -> _Exec:
        with self._lock:
            record = self._execs.get(exec_id)
        if record is None:
            raise NotFound(f"No such exec instance: {exec_id}")
        return record

    def start(self, exec_id: str, *, detach: bool = False) -> ExecOutput | None:
        """Run the exec; its output (None when ``detach``: it runs on its own)."""
        record = self._get(exec_id)
        with record.lock:
            if record.exit_code is not None or (record.started and not record.running):
                raise Conflict(f"Error: Exec command {exec_id} has already run")
            if record.running:
                raise Conflict(f"Error: Exec command {exec_id} is already running")
            self._fire(record.container_id, "exec_start", {"exec_id": exec_id, "cmd": record.cmd})
            record.started = True
            try:
                process = _runtime_exec(self.runtime)(
                    record.container_id,
                    record.cmd,
                    env=record.env,
                    working_dir=record.working_dir,
                    attach=not detach,
                    # moby's exec: OpenStdin is AttachStdin; a detached one gets no stdin
                    # (nor a terminal: nobody would read it).
                    stdin=record.attach_stdin and not detach,
                    tty=record.tty and not detach,
                    console_size=record.console_size,
                )
            except ChartdError as exc:
                self._ended(record, None, int(getattr(exc, "exit_code", 126)))
                raise
            record.running, record.pid = True, process.pid
            if record.tty and not detach and process.stdout is not None:
                record.terminal = os.dup(process.stdout.fileno())
        output = ExecOutput(process, lambda code: self._ended(record, process, code))
        output.tty = record.tty and not detach
        if detach:
            threading.Thread(target=output._end, name=f"exec-{exec_id[:12]}", daemon=True).start()
            return None
        return output

    def resize(self, exec_id: str, height: int, width: int) -> None:
        """Set the window of a running exec's terminal (``docker exec -t``); nothing to do
        for one without a terminal, or not running (moby's would wait for its start)."""
        record = self._get(exec_id)
        with record.terminal_lock:  # its end closes it under this lock too
            if record.terminal is not None:
                terminal.set_window(record.terminal, height, width)

    def _ended(self, record: _Exec, process: subprocess.Popen[bytes] | None, code: int) -> None:
        with record.terminal_lock:
            master, record.terminal = record.terminal, None
        shim.close_fd(master)
        record.running, record.exit_code, record.pid = False, code, 0
        record.ended_at = time.monotonic()
        if process is not None:
            with contextlib.suppress(AttributeError):
                self.runtime.execs.ended(record.container_id, process)
        try:
            self._fire(record.container_id, "exec_die", {"exec_id": record.id, "exit_code": code})
        except ChartdError as exc:  # the container was removed meanwhile
            log.debug("exec_die of %s: %s", record.id[:12], exc.message)

    def inspect(self, exec_id: str) -> dict[str, Any]:
        """The exec as moby's ``GET /exec/{id}/json`` shows it."""
        r = self._get(exec_id)
        return {
            "ID": r.id,
            "Running": r.running,
            "ExitCode": r.exit_code,
            "ProcessConfig": {
                "tty": r.tty,
                "entrypoint": r.cmd[0],
                "arguments": r.cmd[1:],
                "privileged": False,
                "user": "",
            },
            "OpenStdin": r.attach_stdin,
            "OpenStderr": True,
            "OpenStdout": True,
            "CanRemove": False,
            "ContainerID": r.container_id,
            "DetachKeys": "",
            "Pid": r.pid,
        }


class ExecProber:
    """Runs health probes as execs, each on a thread; reports results through ``report``."""

    def __init__(self, runtime: Any, report: Callable[[str, dict[str, Any]], None]) -> None:
        self.runtime = runtime
        self.report = report
        self._lock = threading.Lock()
        self._running: dict[str, subprocess.Popen[bytes] | None] = {}

    def start(self, container_id: str, probe_id: str, cmd: list[str], timeout: float) -> None:
        """Run ``cmd`` in the background; its result goes to ``report``."""
        with self._lock:
            self._running[probe_id] = None
        threading.Thread(
            target=self._run,
            args=(container_id, probe_id, cmd, timeout),
            name=f"probe-{container_id[:12]}",
            daemon=True,
        ).start()

    def cancel(self, container_id: str, probe_id: str) -> None:
        """Kill the probe; it reports nothing."""
        with self._lock:
            process = self._running.pop(probe_id, None)
        if process is not None:
            self.runtime.execs.kill(process)

    def _run(self, container_id: str, probe_id: str, cmd: list[str], timeout: float) -> None:
        start = time.time()
        try:
            process = _runtime_exec(self.runtime)(
                container_id, cmd, env={}, working_dir=None, attach=True
            )
        except ChartdError as exc:
            self._report(container_id, probe_id, start, -1, exc.message)
            return
        with self._lock:
            wanted = probe_id in self._running
            if wanted:
                self._running[probe_id] = process
        if not wanted:
            self.runtime.execs.kill(process)
        try:
            out, err = process.communicate(timeout=timeout)
            code, output = _status(process.returncode), _limited(out + err)
        except subprocess.TimeoutExpired:
            self.runtime.execs.kill(process)
            out, err = process.communicate()
            code, output = -1, f"Health check exceeded timeout ({go_duration(timeout)})"
            if out + err:
                output += ": " + _limited(out + err)
        with contextlib.suppress(AttributeError):
            self.runtime.execs.ended(container_id, process)
        if wanted:
            self._report(container_id, probe_id, start, code, output)

    def _report(self, container_id: str, probe_id: str, start: float, code: int, out: str) -> None:
        with self._lock:
            wanted = self._running.pop(probe_id, "gone") != "gone"
        if not wanted:
            return
        params = {"probe": probe_id, "exit_code": code, "output": out, "start": start}
        params["end"] = time.time()
        try:
            self.report(container_id, params)
        except ChartdError as exc:  # paused, stopped or removed meanwhile
            log.debug("probe of %s: %s", container_id[:12], exc.message)


def _limited(raw: bytes) -> str:
    text = raw[:MAX_OUTPUT].decode("utf-8", "replace")
    return text + "..." if len(raw) > MAX_OUTPUT else text


# -- the chart's exec steps (internal: they keep ExecIDs and emit moby's events) ------------


def exec_created(ctx: engine.Context) -> None:
    """Keep the new exec's ID; ``exec_create: <cmd>``."""
    exec_id = str(ctx.params["exec_id"])
    ctx.data["exec_ids"] = [*(ctx.data.get("exec_ids") or []), exec_id]
    ctx.emit(f"exec_create: {' '.join(ctx.params.get('cmd') or ())}", execID=exec_id)


def exec_started(ctx: engine.Context) -> None:
    """``exec_start: <cmd>``."""
    ctx.emit(f"exec_start: {' '.join(ctx.params.get('cmd') or ())}", execID=ctx.params["exec_id"])


def exec_died(ctx: engine.Context) -> None:
    """Forget the exec's ID; ``exec_die`` with its exit code."""
    exec_id = str(ctx.params["exec_id"])
    ctx.data["exec_ids"] = [e for e in ctx.data.get("exec_ids") or [] if e != exec_id]
    ctx.emit("exec_die", execID=exec_id, exitCode=str(ctx.params.get("exit_code", 0)))


def exec_steps() -> dict[str, engine.Step]:
    """The chart's exec steps, bound (internal: they act on the data alone)."""
    return {
        name: engine.Step(fn, external=False)
        for name, fn in (
            ("exec_created", exec_created),
            ("exec_started", exec_started),
            ("exec_died", exec_died),
        )
    }
