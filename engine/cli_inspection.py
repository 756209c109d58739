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
    echo,
    event_json,
    event_line,
    fail,
    inspect_json,
    journal_table,
    pairs,
    print_json,
    summary_json,
    transition_json,
)
from engine.cli_session import CallFailed, NamesArg, Session
from engine.cli_times import TimeError, parse_time

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
                s.client.containers.List, c_pb2.ListContainersRequest(all=all, filters=filters)
            ).containers
        except CallFailed:
            raise typer.Exit(1) from None
    now = time.time()
    if quiet:
        for c in found:
            echo(c.id if no_trunc else c.id[:12])
        return
    if fmt == "json":
        print_json([summary_json(c, now) for c in found])
        return
    container_table(found, now, full=no_trunc).print()


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
            echo(str(answer.status_code))
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
        str | None, typer.Option("--since", help="Show events since this time.")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Stream events until this time.")
    ] = None,
    after: Annotated[
        int | None,
        typer.Option("--after", min=0, help="Show events after this sequence number (0: all)."),
    ] = None,
    filter: Annotated[
        list[str] | None,
        typer.Option("-f", "--filter", help="container=NAME, event=ACTION, type=container."),
    ] = None,
    fmt: FormatOpt = "table",
) -> None:
    """Stream container events (only new ones unless --since, --until or --after).

    --since and --until take docker's times: a duration before now (10m,
    1h30m), an RFC 3339 date or time (2025-01-02, 2025-01-02T15:04:05Z; local
    time without a zone) or a Unix timestamp.
    """
    check_format(fmt)
    filters = [c_pb2.Filter(key=k, value=v) for k, v in pairs(filter or (), "filter")]
    request = c_pb2.EventsRequest(filters=filters, since=after or 0)
    try:
        if since is not None:
            request.since_time.FromNanoseconds(parse_time(since))
        if until is not None:
            request.until_time.FromNanoseconds(parse_time(until))
    except TimeError as exc:
        fail(str(exc))
    with Session(ctx) as s:
        if after is None and since is None and until is None:
            try:
                request.since = s.call(
                    s.client.engine.GetSequence, engine_pb2.GetSequenceRequest()
                ).sequence
            except CallFailed:
                raise typer.Exit(1) from None
        stream = s.client.containers.Events(request)
        try:
            for ev in stream:
                echo(json.dumps(event_json(ev)) if fmt == "json" else event_line(ev))
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
                s.client.engine.GetHistory,
                engine_pb2.GetHistoryRequest(entity=found.id, chart="container"),
            ).transitions
        except CallFailed:
            raise typer.Exit(1) from None
    if fmt == "json":
        print_json([transition_json(t) for t in journal])
        return
    journal_table(journal).print()


def _installed_version() -> str:
    """The installed chartd, as the daemon reports its own (``0+unknown`` from a bare tree).

    Read here rather than from engine.daemon, whose imports are the daemon's.
    """
    from importlib.metadata import PackageNotFoundError  # noqa: PLC0415 - version only
    from importlib.metadata import version as package_version  # noqa: PLC0415

    try:
        return package_version("chartd")
    except PackageNotFoundError:
        return "0+unknown"


def version(ctx: typer.Context) -> None:
    """Show the client's and the daemon's versions."""
    echo(f"Client: chartd {_installed_version()}")
    with Session(ctx) as s:
        try:
            answer = s.call(s.client.engine.Version, engine_pb2.VersionRequest())
        except CallFailed:
            raise typer.Exit(1) from None
        echo(f"Server: chartd {answer.version} (API {answer.api_version})")
