"""``chartd create`` and ``chartd run``: a container from a command line.

``run`` without ``-d`` stays attached as docker's does: it copies the
container's output, exits with the container's exit code (125 when the
container could not be made or started, 126/127 when its command could not
be executed, read from the failure as docker's CLI does), and with ``--rm``
removes the container itself.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import os
import queue
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from engine.api.chartd.v1 import containers_pb2 as c_pb2
from engine.api.chartd.v1 import engine_pb2
from engine.cli_health import HEALTH_OPTIONS, healthcheck
from engine.cli_output import echo, echo_err
from engine.cli_session import CallFailed, Session
from engine.cli_verbs import Verb, arg

__all__ = ["VERBS", "CreateOptions", "env_option"]

_CREATE_OPTIONS = (
    arg("--name", help="Name the container."),
    arg("--restart", help="no, always, unless-stopped or on-failure[:N]."),
    arg("--rm", action="store_true", help="Remove the container when it exits."),
    arg("--stop-signal", help="Signal that stops it (default SIGTERM)."),
    arg("--stop-timeout", type=int, help="Seconds before SIGKILL on stop."),
    arg("-e", "--env", action="append", help="KEY=VALUE (or KEY: from here)."),
    arg("-w", "--workdir", help="Working directory (absolute)."),
    arg("-l", "--label", action="append", help="KEY=VALUE."),
    *HEALTH_OPTIONS,
    arg("--label-file", action="append", help="A file of KEY=VALUE lines (# comments)."),
    # Options after the command belong to the command: `chartd run -d sh -c 'echo hi'`.
    arg("cmd", nargs=argparse.REMAINDER, metavar="CMD ...", help="The command and its arguments."),
)


@dataclass(frozen=True, slots=True)
class CreateOptions:
    """The options ``create`` and ``run`` share, as given on the command line."""

    name: str | None = None
    restart: str | None = None
    rm: bool = False
    stop_signal: str | None = None
    stop_timeout: int | None = None
    env: Sequence[str] | None = None
    workdir: str | None = None
    label: Sequence[str] | None = None
    health: c_pb2.Healthcheck | None = None

    @classmethod
    def of(cls, args: argparse.Namespace) -> CreateOptions:
        """The options as parsed; exit 125 (docker's status for bad options) on a conflict."""
        options = cls(
            args.name,
            args.restart,
            args.rm,
            args.stop_signal,
            args.stop_timeout,
            args.env,
            args.workdir,
            [*_label_files(args.label_file or ()), *(args.label or ())],
            healthcheck(args),
        )
        if options.rm and options.restart not in (None, "", "no"):
            echo_err("Conflicting options: cannot specify both --restart and --rm")
            raise SystemExit(125)
        return options

    def request(self, cmd: Sequence[str]) -> c_pb2.CreateContainerRequest:
        """The daemon's request for a container running ``cmd``."""
        environment = env_option(self.env)
        labels = {}
        for item in self.label or ():
            key, _, val = item.partition("=")
            labels[key] = val
        request = c_pb2.CreateContainerRequest(
            cmd=list(cmd),
            name=self.name or "",
            env=environment,
            working_dir=self.workdir or "",
            labels=labels,
            stop_signal=self.stop_signal or "",
            restart_policy=self.restart or "",
            auto_remove=self.rm,
        )
        if self.stop_timeout is not None:
            request.stop_timeout = self.stop_timeout
        if self.health is not None:
            request.healthcheck.CopyFrom(self.health)
        return request


def env_option(items: Sequence[str] | None) -> dict[str, str]:
    """``-e KEY=VALUE`` options; ``-e KEY`` passes the client's value on, if it has one."""
    environment: dict[str, str] = {}
    for item in items or ():
        key, eq, val = item.partition("=")
        if eq:
            environment[key] = val
        elif key in os.environ:  # docker's
            environment[key] = os.environ[key]
    return environment


def _label_files(paths: Sequence[str]) -> list[str]:
    """The labels of ``--label-file`` files, as docker reads them (before ``--label``'s).

    A line per label; blank lines and lines starting with ``#`` are skipped.
    A file that cannot be read exits 125, as docker's CLI does.
    """
    labels = []
    for path in paths:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            echo_err(f"open {path}: {(exc.strerror or str(exc)).lower()}")
            raise SystemExit(125) from None
        for number, raw in enumerate(data.splitlines(), start=1):
            try:
                line = raw.decode().lstrip()
            except UnicodeDecodeError:
                echo_err(f"{path}: invalid UTF-8 in line {number}")
                raise SystemExit(125) from None
            if line and not line.startswith("#"):
                labels.append(line)
    return labels


def _command(args: argparse.Namespace) -> list[str]:
    """The command line after the options (a leading ``--`` dropped); exit 2 without one."""
    cmd: list[str] = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        args.parser.error("the command to run is missing")
    return cmd


def _create(args: argparse.Namespace) -> None:
    """Create a container running CMD (not started); print its ID."""
    request = CreateOptions.of(args).request(_command(args))
    with Session(args) as s:
        try:
            created = s.call(s.client.containers.Create, request)
        except CallFailed:
            raise SystemExit(1) from None
        echo(created.id)


def _run(args: argparse.Namespace) -> None:
    """Create and start a container; without -d, show its output and exit with its code.

    Without -d, the signals the CLI receives go to the container (docker's
    --sig-proxy, on by default): Ctrl-C interrupts the container, and run
    returns once it exited, with its code. With --sig-proxy=false, Ctrl-C
    ends run at once (130) and the container runs on.

    With --rm and without -d, the CLI removes the container itself once its
    output is read (as docker's CLI did before 1.13): the daemon's auto-remove
    would delete the log before a short-lived command's output is read.
    """
    options = CreateOptions.of(args)
    cmd = _command(args)
    detach: bool = args.detach
    attached_rm = options.rm and not detach
    request = dataclasses.replace(options, rm=options.rm and detach).request(cmd)
    with Session(args) as s:
        s.prefix = "chartd: "  # docker's run names itself before the daemon's error
        containers = s.client.containers
        created: c_pb2.CreateContainerResponse | None = None
        try:
            # Events from here on tell this container's exit, whenever it comes:
            # nothing is missed between the start and the first look.
            since = s.call(s.client.engine.GetSequence, engine_pb2.GetSequenceRequest()).sequence
            created = s.call(containers.Create, request)
            if detach:
                echo(created.id)  # before the start, as docker's: printed even if it fails
                s.call(containers.Start, c_pb2.StartContainerRequest(container=created.id))
                return
            with _SignalProxy(s, created.id) if args.sig_proxy else _CtrlC() as signals:
                s.call(containers.Start, c_pb2.StartContainerRequest(container=created.id))
                output = _follow_logs(s, created.id)
                try:
                    code = _await_exit(s, created.id, since, signals)
                except BaseException:
                    output.finish(timeout=0)  # Ctrl-C without sig-proxy: no waiting for output
                    raise
                output.finish()
            raise SystemExit(code)
        except CallFailed as failed:
            echo_err("")
            echo_err("Run 'chartd run --help' for more information")
            raise SystemExit(_start_failure_code(failed.message)) from None
        except KeyboardInterrupt:
            attached_rm = False  # without --sig-proxy: the container runs on, as docker's
            raise SystemExit(130) from None
        finally:
            if attached_rm and created is not None:
                with contextlib.suppress(grpc.RpcError):
                    containers.Remove(
                        c_pb2.RemoveContainerRequest(container=created.id, force=True)
                    )


# What docker's ForwardAllSignals passes on: every signal but SIGCHLD, SIGPIPE
# and the Go runtime's own; here, too, the ones a fault raises (a handler in
# Python cannot return from those) and the two no process can catch.
_NOT_PROXIED = {"SIGKILL", "SIGSTOP", "SIGCHLD", "SIGPIPE", "SIGURG"} | {
    "SIGSEGV", "SIGBUS", "SIGFPE", "SIGILL", "SIGTRAP", "SIGSYS",
}  # fmt: skip


class _SignalProxy:
    """While entered, every signal the CLI receives is sent to the container (docker's sig-proxy).

    The handler only queues the signal: the Kill call goes from a thread of its
    own, so a signal never waits for the daemon on the main thread.
    """

    def __init__(self, s: Session, container: str) -> None:
        self.kill = s.client.containers.Kill
        self.container = container
        self.pending: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self.previous: dict[signal.Signals, Any] = {}
        self.thread = threading.Thread(target=self._forward, daemon=True)

    def __enter__(self) -> _SignalProxy:
        self.thread.start()
        for sig in signal.Signals:
            if sig.name not in _NOT_PROXIED:
                with contextlib.suppress(OSError, ValueError):
                    self.previous[sig] = signal.signal(sig, self._received)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.pending.put(None)

    def _received(self, signum: int, frame: object) -> None:
        self.pending.put(signal.Signals(signum).name)

    def _forward(self) -> None:
        while (name := self.pending.get()) is not None:
            # A container that exited meanwhile refuses it; docker's CLI only logs that.
            with contextlib.suppress(grpc.RpcError):
                self.kill(c_pb2.KillContainerRequest(container=self.container, signal=name))


class _CtrlC:
    """While entered, Ctrl-C (SIGINT) ends ``run`` without --sig-proxy; the container runs on.

    The handler only sets an event, and the main thread raises KeyboardInterrupt
    itself where it waits: raised by the interpreter at any bytecode, inside
    gRPC's own code, it can leave one of gRPC's locks held and every thread of
    the client waiting on it for ever.
    """

    def __init__(self) -> None:
        self.interrupted = threading.Event()
        self.previous: Any = None

    def __enter__(self) -> _CtrlC:
        self.previous = signal.signal(signal.SIGINT, lambda signum, frame: self.interrupted.set())
        return self

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGINT, self.previous)


def _await_exit(s: Session, container: str, since: int, signals: object) -> int:
    """The container's exit code; KeyboardInterrupt at Ctrl-C when ``signals`` is a _CtrlC."""
    if not isinstance(signals, _CtrlC):
        return _exit_code(s, container, since)
    found: queue.SimpleQueue[int] = queue.SimpleQueue()
    waiter = threading.Thread(
        target=lambda: found.put(_exit_code(s, container, since)), daemon=True
    )
    waiter.start()
    while True:
        if signals.interrupted.is_set():
            raise KeyboardInterrupt  # the events stream ends with the session's channel
        try:
            return found.get(timeout=0.05)
        except queue.Empty:
            continue


def _start_failure_code(message: str) -> int:
    """docker run's status for a container that was not made or did not start.

    As docker's CLI (``runStartContainerErr``), from the daemon's message
    itself: the container may be gone already (auto-remove) when it is read.
    127 for a command not found, 126 for one that cannot be run, else 125.
    """
    if any(m in message for m in ("executable file not found", "no such file or directory")):
        return 127
    if any(
        m in message for m in (os.strerror(errno.EACCES).lower(), os.strerror(errno.EISDIR).lower())
    ):
        return 126
    return 125


def _exit_code(s: Session, container: str, since: int) -> int:
    request = c_pb2.EventsRequest(
        since=since,
        filters=[
            c_pb2.Filter(key="container", value=container),
            c_pb2.Filter(key="event", value="die"),
        ],
    )
    stream = s.client.containers.Events(request)
    try:
        for ev in stream:
            return int(ev.attributes.get("exitCode", "0"))
    except grpc.RpcError as exc:
        s.report(exc)
    finally:
        stream.cancel()
    return 125


class _LogPump:
    """Copies a container's output (stdout and stderr apart) from a thread, until told to finish."""

    def __init__(self, stream: Iterator[c_pb2.LogChunk]) -> None:
        self.stream = stream
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for chunk in self.stream:
                out = sys.stderr if chunk.stream == "stderr" else sys.stdout
                out.buffer.write(chunk.data)
                out.buffer.flush()
        except grpc.RpcError:
            pass  # cancelled by finish(), or the container is gone: the exit code says it

    def finish(self, timeout: float = 5.0) -> None:
        # The stream ends by itself once the container stopped and all output was sent.
        if timeout:
            self.thread.join(timeout)
        cancel = getattr(self.stream, "cancel", None)
        if cancel is not None:
            cancel()
        if timeout:
            self.thread.join(1.0)


def _follow_logs(s: Session, container: str) -> _LogPump:
    return _LogPump(s.client.containers.Logs(c_pb2.LogsRequest(container=container, follow=True)))


_TRUE = ("1", "t", "T", "true", "TRUE", "True")
_FALSE = ("0", "f", "F", "false", "FALSE", "False")

VERBS = (
    Verb(
        "create",
        "Create a container running CMD (not started); print its ID.",
        _create,
        _CREATE_OPTIONS,
    ),
    Verb(
        "run",
        "Create and start a container; without -d, show its output and exit with its code.",
        _run,
        (
            arg("-d", "--detach", action="store_true", help="Print the ID and leave it running."),
            arg(
                "--sig-proxy",
                dest="sig_proxy",
                action="store_true",
                default=True,
                help="Send the signals run receives to the container (the default);"
                " --sig-proxy=false: do not.",
            ),
            # docker's bool flag spellings (Go's strconv.ParseBool), which
            # argparse matches whole before it splits at "=".
            *(
                arg(
                    *(f"--sig-proxy={v}" for v in spellings),
                    dest="sig_proxy",
                    action=action,
                    help=argparse.SUPPRESS,
                )
                for spellings, action in ((_TRUE, "store_true"), (_FALSE, "store_false"))
            ),
            *_CREATE_OPTIONS,
        ),
        description=_run.__doc__,
    ),
)
"""``create`` and ``run``."""
