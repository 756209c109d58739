"""The client verbs of ``chartd``, shaped after the docker CLI.

``chartd [-H unix:///path/chartd.sock] VERB ...``: every verb talks to a
daemon over gRPC (``-H``/``--host``, else ``$CHARTD_HOST``, else the socket
in the default state directory). An error the daemon returns is printed as
``Error response from daemon: <message>`` on stderr and the exit status is
1; NotModified (starting a running container, stopping a stopped one) is
success, as in docker. Listings print tables, or JSON with ``--format json``.

:func:`register` adds the verbs to the ``chartd`` Typer app of
:mod:`engine.cli`, which stays the one entry point.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Annotated, Any, TypeVar

import grpc
import typer
from google.protobuf import timestamp_pb2
from rich.console import Console
from rich.table import Table

import engine
from engine.api import Client, default_host, describe
from engine.api._convert import plain_value
from engine.api.chartd.v1 import containers_pb2 as c_pb2
from engine.api.chartd.v1 import engine_pb2
from engine.errors import Category, ChartdError
from engine.export import FORMATS

__all__ = ["register"]

_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)

T = TypeVar("T")
_Names = list[str]

# Options after the first argument of the command belong to the command:
# `chartd run -d sh -c 'echo hi'` passes -c to sh.
_COMMAND_SETTINGS = {"allow_interspersed_args": False}


@dataclass(frozen=True, slots=True)
class _Options:
    host: str | None = None
    tls_ca: Path | None = None


class _Failed(Exception):
    """A daemon error already printed; the verb exits 1 at the end."""


def _global_options(
    ctx: typer.Context,
    host: Annotated[
        str | None,
        typer.Option(
            "-H",
            "--host",
            envvar="CHARTD_HOST",
            help="Daemon to connect to: unix:///path/chartd.sock or tcp://HOST:PORT.",
            show_default=False,
        ),
    ] = None,
    tls_ca: Annotated[
        Path | None,
        typer.Option(
            "--tls-ca",
            envvar="CHARTD_TLS_CA",
            help="CA certificate of a tcp:// daemon that serves TLS.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """An explicit state-machine engine for control planes."""
    ctx.obj = _Options(host=host, tls_ca=tls_ca)


# -- talking to the daemon ------------------------------------------------------------


class _Session:
    """One verb's connection: calls print daemon errors the docker way."""

    def __init__(self, ctx: typer.Context) -> None:
        options = ctx.obj if isinstance(ctx.obj, _Options) else _Options()
        self.host = options.host or default_host()
        try:
            self.client = Client(self.host, tls_ca=options.tls_ca)
        except ChartdError as exc:
            _err.print(f"error: {exc.message}", markup=False)
            raise typer.Exit(1) from None
        self.failed = False

    def __enter__(self) -> _Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def call(self, method: Callable[..., T], request: Any, *, not_modified_ok: bool = False) -> T:
        """``method(request)``; a daemon error is printed and raised as _Failed."""
        try:
            return method(request)
        except grpc.RpcError as exc:
            if not_modified_ok and describe(exc).category == Category.NOT_MODIFIED:
                raise _NotModified from None
            self.report(exc)
            raise _Failed from None

    def report(self, exc: grpc.RpcError) -> None:
        """Print a failed call; exit at once when the daemon cannot be reached."""
        failure = describe(exc)
        if not failure.detailed and failure.code == grpc.StatusCode.UNAVAILABLE:
            _err.print(
                f"Cannot connect to the chartd daemon at {self.host}. "
                f"Is the daemon running? ({failure.message})",
                markup=False,
            )
            raise typer.Exit(1)
        _err.print(f"Error response from daemon: {failure.message}", markup=False)
        self.failed = True

    def done(self) -> None:
        """Exit 1 if any call failed."""
        if self.failed:
            raise typer.Exit(1)


class _NotModified(Exception):
    """The daemon said NotModified: the end state holds already."""


def _each(ctx: typer.Context, names: Sequence[str], act: Callable[[_Session, str], Any]) -> None:
    """``act`` on every name, printing each name that succeeded (docker's output)."""
    with _Session(ctx) as s:
        for name in names:
            try:
                act(s, name)
            except _Failed:
                continue
            except _NotModified:
                pass
            _out.print(name, markup=False)
        s.done()


# -- formatting -----------------------------------------------------------------------


def _seconds(ts: timestamp_pb2.Timestamp, present: bool) -> float | None:
    return ts.ToNanoseconds() / 1e9 if present else None


def _human_duration(seconds: float) -> str:
    """go-units' HumanDuration, as docker prints ages and uptimes."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(s / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"


def _ago(when: float | None, now: float) -> str:
    return "" if when is None else f"{_human_duration(max(0.0, now - when))} ago"


def _status_text(c: c_pb2.ContainerSummary, now: float) -> str:
    started = _seconds(c.started_at, c.HasField("started_at"))
    finished = _seconds(c.finished_at, c.HasField("finished_at"))
    up = _human_duration(max(0.0, now - started)) if started else ""
    return {
        "created": "Created",
        "running": f"Up {up}",
        "paused": f"Up {up} (Paused)",
        "restarting": f"Restarting ({c.exit_code}) {_ago(finished, now)}",
        "exited": f"Exited ({c.exit_code}) {_ago(finished, now)}",
        "removing": "Removal In Progress",
        "dead": "Dead",
    }.get(c.state, c.state)


def _iso(ts: timestamp_pb2.Timestamp, present: bool = True) -> str:
    if not present:
        return "0001-01-01T00:00:00Z"
    return ts.ToDatetime(tzinfo=UTC).isoformat().replace("+00:00", "Z")


def _command(cmd: Sequence[str]) -> str:
    return " ".join(cmd)  # as docker joins Path and Args: no quoting


def _print_table(table: Table) -> None:
    """Print a table at its natural width: never wrapped, as docker's tabwriter."""
    from rich.measure import Measurement  # noqa: PLC0415 - only listings need it

    natural = Measurement.get(_out, _out.options.update_width(10_000), table).maximum
    Console(highlight=False, width=max(natural, 20)).print(table)


def _summary_json(c: c_pb2.ContainerSummary, now: float) -> dict[str, Any]:
    return {
        "ID": c.id,
        "Names": c.name.lstrip("/"),
        "Command": _command(c.cmd),
        "CreatedAt": _iso(c.created),
        "RunningFor": _ago(_seconds(c.created, True), now),
        "State": c.state,
        "Status": _status_text(c, now),
        "Labels": dict(c.labels),
        "ExitCode": c.exit_code,
        "RestartCount": c.restart_count,
        "Pid": c.pid,
    }


def _inspect_json(i: c_pb2.ContainerInspect) -> dict[str, Any]:
    st, cfg, host = i.state, i.config, i.host_config
    return {
        "Id": i.id,
        "Name": i.name,
        "Created": i.created,
        "State": {
            "Status": st.status,
            "Running": st.running,
            "Paused": st.paused,
            "Restarting": st.restarting,
            "OOMKilled": st.oom_killed,
            "Dead": st.dead,
            "Pid": st.pid,
            "ExitCode": st.exit_code,
            "Error": st.error,
            "StartedAt": st.started_at,
            "FinishedAt": st.finished_at,
        },
        "RestartCount": i.restart_count,
        "Config": {
            "Cmd": list(cfg.cmd),
            "Env": list(cfg.env),
            "WorkingDir": cfg.working_dir,
            "Labels": dict(cfg.labels),
            "StopSignal": cfg.stop_signal,
            "StopTimeout": cfg.stop_timeout if cfg.HasField("stop_timeout") else None,
        },
        "HostConfig": {
            "RestartPolicy": {
                "Name": host.restart_policy.name,
                "MaximumRetryCount": host.restart_policy.maximum_retry_count,
            },
            "AutoRemove": host.auto_remove,
        },
        "NetworkSettings": {"IPAddress": i.ip_address},
        "LogPath": i.log_path,
    }


def _event_json(ev: c_pb2.ContainerEvent) -> dict[str, Any]:
    return {
        "seq": ev.seq,
        "Type": "container",
        "Action": ev.action,
        "Actor": {"ID": ev.id, "Attributes": {"name": ev.name, **dict(ev.attributes)}},
        "time": ev.time.seconds,
        "timeNano": ev.time.ToNanoseconds(),
    }


def _event_line(ev: c_pb2.ContainerEvent) -> str:
    attrs = {"name": ev.name, **dict(ev.attributes), "seq": str(ev.seq)}
    shown = ", ".join(f"{k}={v}" for k, v in sorted(attrs.items()))
    when = ev.time.ToDatetime(tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")
    return f"{when} container {ev.action} {ev.id} ({shown})"


def _transition_json(t: engine_pb2.Transition) -> dict[str, Any]:
    def when(ts: timestamp_pb2.Timestamp, present: bool) -> str | None:
        return _iso(ts) if present else None

    return {
        "id": t.id,
        "seq": t.seq,
        "event": t.event,
        "params": {k: plain_value(v) for k, v in t.params.fields.items()},
        "status": t.status,
        "source": list(t.source),
        "target": list(t.target) if t.target else None,
        "version_from": t.version_from,
        "version_to": t.version_to if t.HasField("version_to") else None,
        "error_category": t.error_category or None,
        "error_message": t.error_message or None,
        "compensation_errors": list(t.compensation_errors),
        "idempotency_key": t.idempotency_key or None,
        "started_at": when(t.started_at, t.HasField("started_at")),
        "finished_at": when(t.finished_at, t.HasField("finished_at")),
        "steps": [
            {
                "index": s.index,
                "name": s.name,
                "status": s.status,
                "payload": plain_value(s.payload),
                "error": s.error or None,
                "started_at": when(s.started_at, s.HasField("started_at")),
                "finished_at": when(s.finished_at, s.HasField("finished_at")),
                "compensated_at": when(s.compensated_at, s.HasField("compensated_at")),
                "compensation_error": s.compensation_error or None,
            }
            for s in t.steps
        ],
    }


def _print_json(data: Any) -> None:
    # print_json would re-indent and colour; a plain dump is what scripts read.
    _out.print(json.dumps(data, indent=4), markup=False)


def _check_format(fmt: str, allowed: Sequence[str] = ("table", "json")) -> None:
    if fmt not in allowed:
        _err.print(f"error: invalid --format {fmt!r}: use {' or '.join(allowed)}", markup=False)
        raise typer.Exit(2)


def _pairs(values: Sequence[str], what: str) -> list[tuple[str, str]]:
    out = []
    for v in values:
        key, eq, val = v.partition("=")
        if not key or not eq:
            _err.print(f"error: invalid {what} {v!r}: use KEY=VALUE", markup=False)
            raise typer.Exit(2)
        out.append((key, val))
    return out


# -- create and run -------------------------------------------------------------------

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


def _create_request(
    cmd: Sequence[str],
    name: str | None,
    restart: str | None,
    rm: bool,
    stop_signal: str | None,
    stop_timeout: int | None,
    env: Sequence[str] | None,
    workdir: str | None,
    label: Sequence[str] | None,
) -> c_pb2.CreateContainerRequest:
    environment: dict[str, str] = {}
    for item in env or ():
        key, eq, val = item.partition("=")
        if eq:
            environment[key] = val
        elif key in os.environ:  # docker: `-e KEY` passes the client's value on
            environment[key] = os.environ[key]
    labels = {}
    for item in label or ():
        key, _, val = item.partition("=")
        labels[key] = val
    request = c_pb2.CreateContainerRequest(
        cmd=list(cmd),
        name=name or "",
        env=environment,
        working_dir=workdir or "",
        labels=labels,
        stop_signal=stop_signal or "",
        restart_policy=restart or "",
        auto_remove=rm,
    )
    if stop_timeout is not None:
        request.stop_timeout = stop_timeout
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
    _no_restart_with_rm(rm, restart)
    request = _create_request(
        cmd, name, restart, rm, stop_signal, stop_timeout, env, workdir, label
    )
    with _Session(ctx) as s:
        try:
            created = s.call(s.client.containers.Create, request)
        except _Failed:
            raise typer.Exit(1) from None
        _out.print(created.id, markup=False)


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
    _no_restart_with_rm(rm, restart)
    attached_rm = rm and not detach
    request = _create_request(
        cmd, name, restart, rm and detach, stop_signal, stop_timeout, env, workdir, label
    )
    with _Session(ctx) as s:
        containers = s.client.containers
        created: c_pb2.CreateContainerResponse | None = None
        try:
            # Events from here on tell this container's exit, whenever it comes:
            # nothing is missed between the start and the first look.
            since = s.call(s.client.engine.GetSequence, engine_pb2.GetSequenceRequest()).sequence
            created = s.call(containers.Create, request)
            s.call(containers.Start, c_pb2.StartContainerRequest(container=created.id))
            if detach:
                _out.print(created.id, markup=False)
                return
            output = _follow_logs(s, created.id)
            try:
                code = _exit_code(s, created.id, since)
            finally:
                output.finish()
            raise typer.Exit(code)
        except _Failed:
            raise typer.Exit(_start_failure_code(s, created)) from None
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        finally:
            if attached_rm and created is not None:
                with contextlib.suppress(grpc.RpcError):
                    containers.Remove(
                        c_pb2.RemoveContainerRequest(container=created.id, force=True)
                    )


def _no_restart_with_rm(rm: bool, restart: str | None) -> None:
    if rm and restart not in (None, "", "no"):
        _err.print("Conflicting options: cannot specify both --restart and --rm", markup=False)
        raise typer.Exit(125)


def _start_failure_code(s: _Session, created: c_pb2.CreateContainerResponse | None) -> int:
    """docker run's status for a container that did not start: 126/127 from exec, else 125."""
    if created is None:
        return 125
    try:
        found = s.client.containers.Inspect(c_pb2.InspectContainerRequest(container=created.id))
    except grpc.RpcError:
        return 125
    return found.state.exit_code if found.state.exit_code in (126, 127) else 125


def _exit_code(s: _Session, container: str, since: int) -> int:
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


def _follow_logs(s: _Session, container: str) -> _LogPump:
    return _LogPump(s.client.containers.Logs(c_pb2.LogsRequest(container=container, follow=True)))


# -- lifecycle verbs ------------------------------------------------------------------

NamesArg = Annotated[list[str], typer.Argument(help="Container names or IDs.")]
TimeoutOpt = Annotated[
    int | None, typer.Option("-t", "--time", "--timeout", help="Seconds before SIGKILL.")
]
SignalOpt = Annotated[str | None, typer.Option("-s", "--signal", help="Signal to send.")]


def start(ctx: typer.Context, containers: NamesArg) -> None:
    """Start one or more containers."""
    _each(
        ctx,
        containers,
        lambda s, n: s.call(
            s.client.containers.Start,
            c_pb2.StartContainerRequest(container=n),
            not_modified_ok=True,
        ),
    )


def stop(
    ctx: typer.Context, containers: NamesArg, time: TimeoutOpt = None, signal: SignalOpt = None
) -> None:
    """Stop one or more running containers (stop signal, then SIGKILL after the timeout)."""

    def act(s: _Session, n: str) -> None:
        request = c_pb2.StopContainerRequest(container=n, signal=signal or "")
        if time is not None:
            request.timeout = time
        s.call(s.client.containers.Stop, request, not_modified_ok=True)

    _each(ctx, containers, act)


def restart(ctx: typer.Context, containers: NamesArg, time: TimeoutOpt = None) -> None:
    """Restart one or more containers."""

    def act(s: _Session, n: str) -> None:
        request = c_pb2.RestartContainerRequest(container=n)
        if time is not None:
            request.timeout = time
        s.call(s.client.containers.Restart, request)

    _each(ctx, containers, act)


def pause(ctx: typer.Context, containers: NamesArg) -> None:
    """Pause every process of one or more containers."""
    _each(
        ctx,
        containers,
        lambda s, n: s.call(s.client.containers.Pause, c_pb2.PauseContainerRequest(container=n)),
    )


def unpause(ctx: typer.Context, containers: NamesArg) -> None:
    """Unpause one or more containers."""
    _each(
        ctx,
        containers,
        lambda s, n: s.call(
            s.client.containers.Unpause, c_pb2.UnpauseContainerRequest(container=n)
        ),
    )


def kill(ctx: typer.Context, containers: NamesArg, signal: SignalOpt = None) -> None:
    """Send a signal (SIGKILL by default) to one or more containers."""
    _each(
        ctx,
        containers,
        lambda s, n: s.call(
            s.client.containers.Kill, c_pb2.KillContainerRequest(container=n, signal=signal or "")
        ),
    )


def rm(
    ctx: typer.Context,
    containers: NamesArg,
    force: Annotated[
        bool, typer.Option("-f", "--force", help="Kill a running container first.")
    ] = False,
) -> None:
    """Remove one or more containers."""
    _each(
        ctx,
        containers,
        lambda s, n: s.call(
            s.client.containers.Remove, c_pb2.RemoveContainerRequest(container=n, force=force)
        ),
    )


def rename(
    ctx: typer.Context,
    container: Annotated[str, typer.Argument(help="The container.")],
    new_name: Annotated[str, typer.Argument(help="Its new name.")],
) -> None:
    """Rename a container."""
    with _Session(ctx) as s:
        with contextlib.suppress(_Failed):  # printed already; done() exits 1
            s.call(
                s.client.containers.Rename,
                c_pb2.RenameContainerRequest(container=container, new_name=new_name),
            )
        s.done()


# -- looking at containers ------------------------------------------------------------

FormatOpt = Annotated[str, typer.Option("--format", help="table or json.")]


def ps(
    ctx: typer.Context,
    all: Annotated[bool, typer.Option("-a", "--all", help="Show stopped containers too.")] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Only IDs.")] = False,
    filter: Annotated[
        list[str] | None,
        typer.Option("-f", "--filter", help="status=X, id=X, name=X, label=K[=V]."),
    ] = None,
    fmt: FormatOpt = "table",
    no_trunc: Annotated[bool, typer.Option("--no-trunc", help="Full IDs and commands.")] = False,
) -> None:
    """List containers."""
    _check_format(fmt)
    filters = [c_pb2.Filter(key=k, value=v) for k, v in _pairs(filter or (), "filter")]
    with _Session(ctx) as s:
        try:
            found = s.call(
                s.client.containers.List, c_pb2.ListContainersRequest(all=all, filters=filters)
            ).containers
        except _Failed:
            raise typer.Exit(1) from None
    now = time.time()
    if quiet:
        for c in found:
            _out.print(c.id if no_trunc else c.id[:12], markup=False)
        return
    if fmt == "json":
        _print_json([_summary_json(c, now) for c in found])
        return
    table = Table("CONTAINER ID", "COMMAND", "CREATED", "STATUS", "NAMES", box=None)
    for c in found:
        command = _command(c.cmd)
        if not no_trunc and len(command) > 20:
            command = command[:19] + "…"
        table.add_row(
            c.id if no_trunc else c.id[:12],
            json.dumps(command, ensure_ascii=False),
            _ago(_seconds(c.created, True), now),
            _status_text(c, now),
            c.name.lstrip("/"),
        )
    _print_table(table)


def inspect(ctx: typer.Context, containers: NamesArg) -> None:
    """Show containers in detail, as a JSON array."""
    found = []
    with _Session(ctx) as s:
        for name in containers:
            try:
                found.append(
                    s.call(
                        s.client.containers.Inspect, c_pb2.InspectContainerRequest(container=name)
                    )
                )
            except _Failed:
                continue
        _print_json([_inspect_json(i) for i in found])
        s.done()


def wait(
    ctx: typer.Context,
    containers: NamesArg,
    condition: Annotated[
        str, typer.Option("--condition", help="not-running, next-exit or removed.")
    ] = "not-running",
) -> None:
    """Block until containers stop; print their exit codes."""
    with _Session(ctx) as s:
        for name in containers:
            try:
                answer = s.call(
                    s.client.containers.Wait,
                    c_pb2.WaitContainerRequest(container=name, condition=condition),
                )
            except _Failed:
                continue
            _out.print(str(answer.status_code), markup=False)
        s.done()


def logs(
    ctx: typer.Context,
    container: Annotated[str, typer.Argument(help="The container.")],
    follow: Annotated[bool, typer.Option("-f", "--follow", help="Follow the output.")] = False,
) -> None:
    """Print a container's output (stdout and stderr)."""
    with _Session(ctx) as s:
        stream = s.client.containers.Logs(c_pb2.LogsRequest(container=container, follow=follow))
        try:
            for chunk in stream:
                sys.stdout.buffer.write(chunk.data)
                sys.stdout.buffer.flush()
        except grpc.RpcError as exc:
            s.report(exc)
        except KeyboardInterrupt:
            stream.cancel()
            raise typer.Exit(130) from None
        s.done()


def events(
    ctx: typer.Context,
    since: Annotated[
        int | None,
        typer.Option("--since", help="Show events after this sequence number (0: all)."),
    ] = None,
    until: Annotated[
        int | None, typer.Option("--until", help="Stop after this sequence number.")
    ] = None,
    filter: Annotated[
        list[str] | None,
        typer.Option("-f", "--filter", help="container=NAME, event=ACTION, type=container."),
    ] = None,
    fmt: FormatOpt = "table",
) -> None:
    """Stream container events (only new ones unless --since)."""
    _check_format(fmt)
    filters = [c_pb2.Filter(key=k, value=v) for k, v in _pairs(filter or (), "filter")]
    with _Session(ctx) as s:
        try:
            if since is None:
                since = s.call(
                    s.client.engine.GetSequence, engine_pb2.GetSequenceRequest()
                ).sequence
        except _Failed:
            raise typer.Exit(1) from None
        if since < 0 or (until is not None and until < 0):
            _err.print("error: --since and --until take sequence numbers >= 0", markup=False)
            raise typer.Exit(2)
        stream = s.client.containers.Events(
            c_pb2.EventsRequest(since=since, until=until or 0, filters=filters)
        )
        try:
            for ev in stream:
                if fmt == "json":
                    _out.print(json.dumps(_event_json(ev)), markup=False)
                else:
                    _out.print(_event_line(ev), markup=False)
        except grpc.RpcError as exc:
            s.report(exc)
        except KeyboardInterrupt:
            stream.cancel()
        s.done()


def history(
    ctx: typer.Context,
    container: Annotated[str, typer.Argument(help="The container.")],
    fmt: FormatOpt = "table",
) -> None:
    """Show a container's journal: every transition, its steps and compensations."""
    _check_format(fmt)
    with _Session(ctx) as s:
        try:
            # Inspect resolves an ID prefix, which the engine's lookup does not.
            found = s.call(
                s.client.containers.Inspect, c_pb2.InspectContainerRequest(container=container)
            )
            journal = s.call(
                s.client.engine.GetHistory,
                engine_pb2.GetHistoryRequest(entity=found.id, chart="container"),
            ).transitions
        except _Failed:
            raise typer.Exit(1) from None
    if fmt == "json":
        _print_json([_transition_json(t) for t in journal])
        return
    table = Table("SEQ", "EVENT / STEP", "STATUS", "FROM", "TO", "STARTED", "ERROR", box=None)
    for t in journal:
        table.add_row(
            str(t.seq),
            t.event,
            t.status,
            _leaves(t.source),
            _leaves(t.target) if t.target else "",
            _iso(t.started_at, t.HasField("started_at")),
            f"{t.error_category}: {t.error_message}" if t.error_category else "",
        )
        for step in t.steps:
            status = step.status
            if step.HasField("compensated_at"):
                status += " ↶ compensated"
            error = step.error
            if step.compensation_error:
                error = f"{error}; undo failed: {step.compensation_error}".lstrip("; ")
            table.add_row("", f"  {step.index}. {step.name}", status, "", "", "", error)
        for problem in t.compensation_errors:
            table.add_row("", "  compensation", "failed", "", "", "", problem)
    _print_table(table)


def _leaves(configuration: Sequence[str]) -> str:
    conf = list(configuration)
    return ",".join(s for s in conf if not any(o.startswith(s + ".") for o in conf))


def version(ctx: typer.Context) -> None:
    """Show the client's and the daemon's versions."""
    from engine.daemon import chartd_version  # noqa: PLC0415 - keeps the client light

    _out.print(f"Client: chartd {chartd_version()}", markup=False)
    with _Session(ctx) as s:
        try:
            answer = s.call(s.client.engine.Version, engine_pb2.VersionRequest())
        except _Failed:
            raise typer.Exit(1) from None
        _out.print(f"Server: chartd {answer.version} (API {answer.api_version})", markup=False)


# -- chart export ---------------------------------------------------------------------


def _chart_export(load: Callable[[str], engine.Chart]) -> Callable[..., None]:
    def chart_export(
        chart: Annotated[
            str, typer.Argument(help="A chart file or the name of an installed chart.")
        ] = "container",
        fmt: Annotated[str, typer.Option("--format", help=", ".join(FORMATS))] = "json",
        output: Annotated[
            Path | None, typer.Option("-o", "--output", help="Write to this file.")
        ] = None,
    ) -> None:
        """Export a chart as JSON, DOT, SVG, Mermaid, PlantUML, SCXML or XState JSON."""
        _check_format(fmt, tuple(FORMATS))
        try:
            text = FORMATS[fmt](load(chart))
        except ChartdError as exc:  # e.g. svg without Graphviz
            _err.print(f"error: {exc.message}", markup=False)
            raise typer.Exit(1) from None
        if output is None:
            sys.stdout.write(text)
        else:
            output.write_text(text, encoding="utf-8")

    return chart_export


# -- registration ---------------------------------------------------------------------


def register(app: typer.Typer, chart_app: typer.Typer, load: Callable[[str], engine.Chart]) -> None:
    """Add the global -H/--host option, the daemon verbs and ``chart export`` to ``app``.

    ``load`` resolves a chart argument (file or installed name) as the other
    ``chart`` verbs do.
    """
    app.callback()(_global_options)
    app.command(context_settings=_COMMAND_SETTINGS)(create)
    app.command(context_settings=_COMMAND_SETTINGS)(run)
    verbs: tuple[Callable[..., None], ...] = (
        start,
        stop,
        restart,
        pause,
        unpause,
        kill,
        rm,
        rename,
        ps,
        inspect,
        wait,
        logs,
        events,
        history,
        version,
    )
    for fn in verbs:
        app.command()(fn)
    chart_app.command("export")(_chart_export(load))
