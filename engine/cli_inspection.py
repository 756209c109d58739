"""The verbs of ``chartd`` that look at containers and wait for them.

``ps``, ``inspect``, ``wait``, ``logs``, ``events``, ``history`` and
``version``: nothing here changes a container.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import grpc

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
from engine.cli_session import NAMES, CallFailed, Session
from engine.cli_times import TimeError, parse_time
from engine.cli_verbs import Verb, arg, non_negative

__all__ = ["VERBS"]

_FORMAT = arg("--format", dest="fmt", default="table", help="table or json.")


def _ps(args: argparse.Namespace) -> None:
    """List containers."""
    check_format(args.fmt)
    filters = [c_pb2.Filter(key=k, value=v) for k, v in pairs(args.filter or (), "filter")]
    with Session(args) as s:
        try:
            found = s.call(
                s.client.list_containers,
                c_pb2.ListContainersRequest(all=args.all, filters=filters),
            )
        except CallFailed:
            raise SystemExit(1) from None
    now = time.time()
    if args.quiet:
        for c in found:
            echo(c.id if args.no_trunc else c.id[:12])
        return
    if args.fmt == "json":
        print_json([summary_json(c, now) for c in found])
        return
    container_table(found, now, full=args.no_trunc).print()


def _inspect(args: argparse.Namespace) -> None:
    """Show containers in detail, as a JSON array."""
    found = []
    with Session(args) as s:
        for name in args.containers:
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


def _wait(args: argparse.Namespace) -> None:
    """Block until containers stop; print their exit codes."""
    with Session(args) as s:
        for name in args.containers:
            try:
                answer = s.call(
                    s.client.containers.Wait,
                    c_pb2.WaitContainerRequest(container=name, condition=args.condition),
                )
            except CallFailed:
                continue
            echo(str(answer.status_code))
        s.done()


def _logs(args: argparse.Namespace) -> None:
    """Print a container's output: its stdout on stdout, its stderr on stderr."""
    with Session(args) as s:
        request = c_pb2.LogsRequest(container=args.container, follow=args.follow)
        stream = s.client.containers.Logs(request)
        try:
            for chunk in stream:
                out = sys.stderr if chunk.stream == "stderr" else sys.stdout
                out.buffer.write(chunk.data)
                out.buffer.flush()
        except grpc.RpcError as exc:
            s.report(exc)
        except KeyboardInterrupt:
            stream.cancel()
            raise SystemExit(130) from None
        s.done()


def _events(args: argparse.Namespace) -> None:
    """Stream container events (only new ones unless --since, --until or --after).

    --since and --until take docker's times: a duration before now (10m,
    1h30m), an RFC 3339 date or time (2025-01-02, 2025-01-02T15:04:05Z; local
    time without a zone) or a Unix timestamp.
    """
    check_format(args.fmt)
    filters = [c_pb2.Filter(key=k, value=v) for k, v in pairs(args.filter or (), "filter")]
    request = c_pb2.EventsRequest(filters=filters, since=args.after or 0)
    try:
        if args.since is not None:
            request.since_time.FromNanoseconds(parse_time(args.since))
        if args.until is not None:
            request.until_time.FromNanoseconds(parse_time(args.until))
    except TimeError as exc:
        fail(str(exc))
    with Session(args) as s:
        if args.after is None and args.since is None and args.until is None:
            try:
                request.since = s.call(
                    s.client.engine.GetSequence, engine_pb2.GetSequenceRequest()
                ).sequence
            except CallFailed:
                raise SystemExit(1) from None
        stream = s.client.containers.Events(request)
        try:
            for ev in stream:
                echo(json.dumps(event_json(ev)) if args.fmt == "json" else event_line(ev))
        except grpc.RpcError as exc:
            s.report(exc)
        except KeyboardInterrupt:
            stream.cancel()
        s.done()


def _history(args: argparse.Namespace) -> None:
    """Show a container's journal: every transition, its steps and compensations."""
    check_format(args.fmt)
    with Session(args) as s:
        try:
            # Inspect resolves an ID prefix, which the engine's lookup does not.
            found = s.call(
                s.client.containers.Inspect,
                c_pb2.InspectContainerRequest(container=args.container),
            )
            journal = s.call(
                s.client.history,
                engine_pb2.GetHistoryRequest(entity=found.id, chart="container"),
            )
        except CallFailed:
            raise SystemExit(1) from None
    if args.fmt == "json":
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


def _version(args: argparse.Namespace) -> None:
    """Show the client's and the daemon's versions."""
    echo(f"Client: chartd {_installed_version()}")
    with Session(args) as s:
        try:
            answer = s.call(s.client.engine.Version, engine_pb2.VersionRequest())
        except CallFailed:
            raise SystemExit(1) from None
        echo(f"Server: chartd {answer.version} (API {answer.api_version})")


_CONTAINER = arg("container", help="The container.")

VERBS = (
    Verb(
        "ps",
        "List containers.",
        _ps,
        (
            arg("-a", "--all", action="store_true", help="Show stopped containers too."),
            arg("-q", "--quiet", action="store_true", help="Only IDs."),
            arg("-f", "--filter", action="append", help="status=X, id=X, name=X, label=K[=V]."),
            _FORMAT,
            arg("--no-trunc", action="store_true", help="Full IDs and commands."),
        ),
    ),
    Verb("inspect", "Show containers in detail, as a JSON array.", _inspect, (NAMES,)),
    Verb(
        "wait",
        "Block until containers stop; print their exit codes.",
        _wait,
        (
            arg(
                "--condition",
                default="not-running",
                help="not-running (the default), next-exit or removed.",
            ),
            NAMES,
        ),
    ),
    Verb(
        "logs",
        "Print a container's output (stdout and stderr).",
        _logs,
        (arg("-f", "--follow", action="store_true", help="Follow the output."), _CONTAINER),
    ),
    Verb(
        "events",
        "Stream container events (only new ones unless --since, --until or --after).",
        _events,
        (
            arg("--since", help="Show events since this time."),
            arg("--until", help="Stream events until this time."),
            arg(
                "--after",
                type=non_negative,
                metavar="SEQ",
                help="Show events after this sequence number (0: all).",
            ),
            arg(
                "-f",
                "--filter",
                action="append",
                help="container=NAME, event=ACTION, type=container.",
            ),
            _FORMAT,
        ),
        description=_events.__doc__,
    ),
    Verb(
        "history",
        "Show a container's journal: every transition, its steps and compensations.",
        _history,
        (_CONTAINER, _FORMAT),
    ),
    Verb("version", "Show the client's and the daemon's versions.", _version),
)
"""The verbs that look, in the order ``chartd --help`` lists them."""
