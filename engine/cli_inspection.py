"""The verbs of ``chartd`` that look at containers and wait for them.

``ps``, ``inspect``, ``wait``, ``logs``, ``events``, ``history`` and
``version``: nothing here changes a container.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated

import grpc
import typer

from engine.api.chartd.v1 import containers_pb2 as c_pb2
from engine.api.chartd.v1 import engine_pb2
from engine.cli_output import (
    check_format,
    container_table,
    err,
    event_json,
    event_line,
    inspect_json,
    journal_table,
    out,
    pairs,
    print_json,
    print_table,
    summary_json,
    transition_json,
)
from engine.cli_session import CallFailed, NamesArg, Session

__all__ = ["events", "history", "inspect", "logs", "ps", "version", "wait"]

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
    check_format(fmt)
    filters = [c_pb2.Filter(key=k, value=v) for k, v in pairs(filter or (), "filter")]
    with Session(ctx) as s:
        try:
            found = s.call(
                s.client.list_containers, c_pb2.ListContainersRequest(all=all, filters=filters)
            )
        except CallFailed:
            raise typer.Exit(1) from None
    now = time.time()
    if quiet:
        for c in found:
            out.print(c.id if no_trunc else c.id[:12], markup=False)
        return
    if fmt == "json":
        print_json([summary_json(c, now) for c in found])
        return
    print_table(container_table(found, now, full=no_trunc))


def inspect(ctx: typer.Context, containers: NamesArg) -> None:
    """Show containers in detail, as a JSON array."""
    found = []
    with Session(ctx) as s:
        for name in containers:
            try:
                found.append(
                    s.call(
                        s.client.containers.Inspect, c_pb2.InspectContainerRequest(container=name)
                    )
                )
            except CallFailed:
                continue
        print_json([inspect_json(i) for i in found])
        s.done()


def wait(
    ctx: typer.Context,
    containers: NamesArg,
    condition: Annotated[
        str, typer.Option("--condition", help="not-running, next-exit or removed.")
    ] = "not-running",
) -> None:
    """Block until containers stop; print their exit codes."""
    with Session(ctx) as s:
        for name in containers:
            try:
                answer = s.call(
                    s.client.containers.Wait,
                    c_pb2.WaitContainerRequest(container=name, condition=condition),
                )
            except CallFailed:
                continue
            out.print(str(answer.status_code), markup=False)
        s.done()


def logs(
    ctx: typer.Context,
    container: Annotated[str, typer.Argument(help="The container.")],
    follow: Annotated[bool, typer.Option("-f", "--follow", help="Follow the output.")] = False,
) -> None:
    """Print a container's output (stdout and stderr)."""
    with Session(ctx) as s:
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
    check_format(fmt)
    filters = [c_pb2.Filter(key=k, value=v) for k, v in pairs(filter or (), "filter")]
    with Session(ctx) as s:
        try:
            if since is None:
                since = s.call(
                    s.client.engine.GetSequence, engine_pb2.GetSequenceRequest()
                ).sequence
        except CallFailed:
            raise typer.Exit(1) from None
        if since < 0 or (until is not None and until < 0):
            err.print("error: --since and --until take sequence numbers >= 0", markup=False)
            raise typer.Exit(2)
        stream = s.client.containers.Events(
            c_pb2.EventsRequest(since=since, until=until or 0, filters=filters)
        )
        try:
            for ev in stream:
                if fmt == "json":
                    out.print(json.dumps(event_json(ev)), markup=False)
                else:
                    out.print(event_line(ev), markup=False)
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
    check_format(fmt)
    with Session(ctx) as s:
        try:
            # Inspect resolves an ID prefix, which the engine's lookup does not.
            found = s.call(
                s.client.containers.Inspect, c_pb2.InspectContainerRequest(container=container)
            )
            journal = s.call(
                s.client.history, engine_pb2.GetHistoryRequest(entity=found.id, chart="container")
            )
        except CallFailed:
            raise typer.Exit(1) from None
    if fmt == "json":
        print_json([transition_json(t) for t in journal])
        return
    print_table(journal_table(journal))


def version(ctx: typer.Context) -> None:
    """Show the client's and the daemon's versions."""
    from engine.daemon import chartd_version  # noqa: PLC0415 - keeps the client light

    out.print(f"Client: chartd {chartd_version()}", markup=False)
    with Session(ctx) as s:
        try:
            answer = s.call(s.client.engine.Version, engine_pb2.VersionRequest())
        except CallFailed:
            raise typer.Exit(1) from None
        out.print(f"Server: chartd {answer.version} (API {answer.api_version})", markup=False)
