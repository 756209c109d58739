"""``chartd create`` and ``chartd run``: a container from a command line.

``run`` without ``-d`` stays attached as docker's does: it copies the
container's output, exits with the container's exit code (125 when the
container could not be made or started, 126/127 when its command could not
be executed), and with ``--rm`` removes the container itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Annotated

import grpc
import typer

from engine.api.chartd.v1 import containers_pb2 as c_pb2
from engine.api.chartd.v1 import engine_pb2
from engine.cli_output import echo, echo_err
from engine.cli_session import CallFailed, Session

__all__ = ["CreateOptions", "create", "run"]

# The verbs here are typer commands: one parameter per CLI option, so more than six.
# What they pass on travels as one CreateOptions.

NameOpt = Annotated[str | None, typer.Option("--name", help="Name the container.")]
RestartOpt = Annotated[
    str | None,
    typer.Option("--restart", help="no, always, unless-stopped or on-failure[:N]."),
]
RmOpt = Annotated[bool, typer.Option("--rm", help="Remove the container when it exits.")]
StopSignalOpt = Annotated[
    str | None, typer.Option("--stop-signal", help="Signal that stops it (default SIGTERM).")
]
StopTimeoutOpt = Annotated[
    int | None, typer.Option("--stop-timeout", help="Seconds before SIGKILL on stop.")
]
EnvOpt = Annotated[
    list[str] | None, typer.Option("-e", "--env", help="KEY=VALUE (or KEY: from here).")
]
WorkdirOpt = Annotated[
    str | None, typer.Option("-w", "--workdir", help="Working directory (absolute).")
]
LabelOpt = Annotated[list[str] | None, typer.Option("-l", "--label", help="KEY=VALUE.")]
CmdArg = Annotated[list[str], typer.Argument(help="The command and its arguments.")]


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

    def check(self) -> None:
        """Exit 125 (docker's status for bad options) on --rm with a restart policy."""
        if self.rm and self.restart not in (None, "", "no"):
            echo_err("Conflicting options: cannot specify both --restart and --rm")
            raise typer.Exit(125)

    def request(self, cmd: Sequence[str]) -> c_pb2.CreateContainerRequest:
        """The daemon's request for a container running ``cmd``."""
        environment: dict[str, str] = {}
        for item in self.env or ():
            key, eq, val = item.partition("=")
            if eq:
                environment[key] = val
            elif key in os.environ:  # docker: `-e KEY` passes the client's value on
                environment[key] = os.environ[key]
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
        return request


def create(
    ctx: typer.Context,
    cmd: CmdArg,
    name: NameOpt = None,
    restart: RestartOpt = None,
    rm: RmOpt = False,
    stop_signal: StopSignalOpt = None,
    stop_timeout: StopTimeoutOpt = None,
    env: EnvOpt = None,
    workdir: WorkdirOpt = None,
    label: LabelOpt = None,
) -> None:
    """Create a container running CMD (not started); print its ID."""
    options = CreateOptions(name, restart, rm, stop_signal, stop_timeout, env, workdir, label)
    options.check()
    request = options.request(cmd)
    with Session(ctx) as s:
        try:
            created = s.call(s.client.containers.Create, request)
        except CallFailed:
            raise typer.Exit(1) from None
        echo(created.id)


def run(
    ctx: typer.Context,
    cmd: CmdArg,
    detach: Annotated[
        bool, typer.Option("-d", "--detach", help="Print the ID and leave it running.")
    ] = False,
    name: NameOpt = None,
    restart: RestartOpt = None,
    rm: RmOpt = False,
    stop_signal: StopSignalOpt = None,
    stop_timeout: StopTimeoutOpt = None,
    env: EnvOpt = None,
    workdir: WorkdirOpt = None,
    label: LabelOpt = None,
) -> None:
    """Create and start a container; without -d, show its output and exit with its code.

    With --rm and without -d, the CLI removes the container itself once its
    output is read (as docker's CLI did before 1.13): the daemon's auto-remove
    would delete the log before a short-lived command's output is read.
    """
    options = CreateOptions(name, restart, rm, stop_signal, stop_timeout, env, workdir, label)
    options.check()
    attached_rm = rm and not detach
    request = dataclasses.replace(options, rm=rm and detach).request(cmd)
    with Session(ctx) as s:
        containers = s.client.containers
        created: c_pb2.CreateContainerResponse | None = None
        try:
            # Events from here on tell this container's exit, whenever it comes:
            # nothing is missed between the start and the first look.
            since = s.call(s.client.engine.GetSequence, engine_pb2.GetSequenceRequest()).sequence
            created = s.call(containers.Create, request)
            s.call(containers.Start, c_pb2.StartContainerRequest(container=created.id))
            if detach:
                echo(created.id)
                return
            output = _follow_logs(s, created.id)
            try:
                code = _exit_code(s, created.id, since)
            finally:
                output.finish()
            raise typer.Exit(code)
        except CallFailed:
            raise typer.Exit(_start_failure_code(s, created)) from None
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        finally:
            if attached_rm and created is not None:
                with contextlib.suppress(grpc.RpcError):
                    containers.Remove(
                        c_pb2.RemoveContainerRequest(container=created.id, force=True)
                    )


def _start_failure_code(s: Session, created: c_pb2.CreateContainerResponse | None) -> int:
    """docker run's status for a container that did not start: 126/127 from exec, else 125."""
    if created is None:
        return 125
    try:
        found = s.client.containers.Inspect(c_pb2.InspectContainerRequest(container=created.id))
    except grpc.RpcError:
        return 125
    return found.state.exit_code if found.state.exit_code in (126, 127) else 125


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
    """Copies a container's output to stdout from a thread, until told to finish."""

    def __init__(self, stream: Iterator[c_pb2.LogChunk]) -> None:
        self.stream = stream
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for chunk in self.stream:
                sys.stdout.buffer.write(chunk.data)
                sys.stdout.buffer.flush()
        except grpc.RpcError:
            pass  # cancelled by finish(), or the container is gone: the exit code says it

    def finish(self, timeout: float = 5.0) -> None:
        # The stream ends by itself once the container stopped and all output was sent.
        self.thread.join(timeout)
        cancel = getattr(self.stream, "cancel", None)
        if cancel is not None:
            cancel()
        self.thread.join(1.0)


def _follow_logs(s: Session, container: str) -> _LogPump:
    return _LogPump(s.client.containers.Logs(c_pb2.LogsRequest(container=container, follow=True)))
