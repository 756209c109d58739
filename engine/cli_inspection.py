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
from google.protobuf.timestamp_pb2 import Timestamp

from engine.api.chartd.v1 import containers_pb2 as c_pb2
from engine.api.chartd.v1 import engine_pb2
from engine.api.times import TimeError, parse_time
from engine.cli_format import (
    FormatFailed,
    check_ps_format,
    fail_with,
    inspect_output,
    parse_inspect_format,
    ps_output,
    write,
)
from engine.cli_output import (
    check_format,
    container_table,
    echo,
    echo_err,
    event_json,
    event_line,
    fail,
    inspect_json,
    journal_table,
    pairs,
    print_json,
    transition_json,
)
from engine.cli_session import NAMES, CallFailed, Session
from engine.cli_verbs import Verb, arg, non_negative

__all__ = ["VERBS"]

_FORMAT = arg("--format", dest="fmt", default="table", help="table or json.")


def _ps(args: argparse.Namespace) -> None:
    """List containers (docker's table, a Go template, or JSON lines with --format json)."""
    fmt: str = args.fmt or "table"
    if args.quiet:
        if args.fmt:
            echo_err("WARNING: Ignoring custom format, because both --format and --quiet are set.")
        fmt = "{{.ID}}"
    try:
        check_ps_format(fmt)
    except FormatFailed as exc:
        fail_with(exc)
    filters = [c_pb2.Filter(key=k, value=v) for k, v in pairs(args.filter or (), "filter")]
    # docker's -n N and -l (the N, or one, created last) take stopped containers too.
    last: int = 1 if args.latest else args.last
    with Session(args) as s:
        try:
            found = s.call(
                s.client.list_containers,
                c_pb2.ListContainersRequest(all=args.all or last > 0, filters=filters),
            )
        except CallFailed:
            raise SystemExit(1) from None
    if last > 0:
        found = sorted(found, key=lambda c: (c.created.seconds, c.created.nanos), reverse=True)[
            :last
        ]
    now = time.time()
    if fmt == "table":
        container_table(found, now, full=args.no_trunc).print()
        return
    try:
        write(ps_output(found, fmt, now, trunc=not args.no_trunc))
    except FormatFailed as exc:
        fail_with(exc)


def _newest_first(c: c_pb2.ContainerSummary) -> tuple[int, int]:
    return (-c.created.seconds, -c.created.nanos)


def _inspect(args: argparse.Namespace) -> None:
    """Show containers in detail: a JSON array, or each through --format's template."""
    if args.type not in ("", "container"):
        echo_err(f'unknown type: "{args.type}": must be "container"')  # as docker's, bare
        raise SystemExit(1)
    try:
        tmpl = parse_inspect_format(args.fmt) if args.fmt else None
    except FormatFailed as exc:
        fail_with(exc)
    found = []
    with Session(args) as s:
        missing: list[str] = []  # said after what was found, as docker's
        for name in args.containers:
            error, lines = s.held(
                lambda n=name: found.append(  # type: ignore[misc]
                    s.call(s.client.containers.Inspect, c_pb2.InspectContainerRequest(container=n))
                )
            )
            missing.extend(lines)
            if error is not None and not isinstance(error, CallFailed):
                for line in missing:
                    echo_err(line)
                raise error
        documents = [inspect_json(i) for i in found]
        errors: list[str] = []
        if not args.fmt:
            print_json(documents)
        else:
            out, errors = inspect_output(documents, tmpl)
            write(out)
        for error_line in (*errors, *missing):
            echo_err(error_line)
        s.failed = s.failed or bool(errors)
        s.done()


def _port(args: argparse.Namespace) -> None:
    """A container's published ports: none, as it shares the host's network."""
    with Session(args) as s:
        try:
            s.call(
                s.client.containers.Inspect,
                c_pb2.InspectContainerRequest(container=args.container),
            )
        except CallFailed:
            raise SystemExit(1) from None
    if args.port:
        fail(f"No public port '{args.port}' published for {args.container}")


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
    """Print a container's output: its stdout on stdout, its stderr on stderr.

    --since and --until take docker's times (10m, 2025-01-02T15:04:05Z, a
    Unix timestamp); --tail N the last N lines (all: every line); -t puts
    each line's time first (RFC 3339 with nanoseconds).
    """
    request = c_pb2.LogsRequest(container=args.container, follow=args.follow)
    for option in ("since", "until"):
        value = getattr(args, option)
        if value:
            try:
                getattr(request, f"{option}_time").FromNanoseconds(parse_time(value))
            except TimeError as exc:
                echo_err(f'invalid value for "{option}": {exc}')
                raise SystemExit(1) from None
    tail = _tail(args.tail)
    if tail is not None:
        request.tail = tail
    with Session(args) as s:
        stream = s.client.containers.Logs(request)
        try:
            for chunk in stream:
                out = sys.stderr if chunk.stream == "stderr" else sys.stdout
                if args.timestamps:
                    out.buffer.write(_nano_fixed(chunk.time).encode() + b" ")
                out.buffer.write(chunk.data)
                out.buffer.flush()
        except grpc.RpcError as exc:
            s.report(exc)
        except KeyboardInterrupt:
            stream.cancel()
            raise SystemExit(130) from None
        s.done()


def _tail(text: str) -> int | None:
    """--tail as moby reads it: a whole number, else (``all``, anything else) every line."""
    try:
        value = int(text.strip()) if text.strip().lstrip("+-").isdigit() else None
    except ValueError:
        return None
    return value if value is not None and value >= 0 else None


def _nano_fixed(ts: Timestamp) -> str:
    """Go's RFC3339NanoFixed in UTC, as docker prints a log line's time with -t."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts.seconds))
    return f"{stamp}.{ts.nanos:09d}Z"


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
            arg(
                "-f",
                "--filter",
                action="append",
                help="status=S, id=ID, name=REGEXP, label=K[=V], health=H, exited=CODE.",
            ),
            arg(
                "--format",
                dest="fmt",
                help="table (the default), json (a JSON object per line), "
                "a Go template ('{{.ID}} {{.Status}}') or 'table TEMPLATE'.",
            ),
            arg("--no-trunc", action="store_true", help="Full IDs and commands."),
            arg(
                "-n",
                "--last",
                type=int,
                default=-1,
                help="The N containers created last, stopped ones too.",
            ),
            arg(
                "-l",
                "--latest",
                action="store_true",
                help="The container created last, stopped or not.",
            ),
        ),
    ),
    Verb(
        "inspect",
        "Show containers in detail, as a JSON array.",
        _inspect,
        (
            arg(
                "-f",
                "--format",
                dest="fmt",
                help="json (a compact array) or a Go template ('{{.State.Status}}').",
            ),
            arg("--type", default="", help="container: the only kind of object chartd has."),
            NAMES,
        ),
    ),
    Verb(
        "port",
        "List a container's published ports (chartd publishes none).",
        _port,
        (_CONTAINER, arg("port", nargs="?", default="", help="PRIVATE_PORT[/PROTO]")),
    ),
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
        (
            arg("-f", "--follow", action="store_true", help="Follow the output."),
            arg("--since", help="Only output since this time (10m, RFC 3339, Unix time)."),
            arg("--until", help="Only output before this time (10m, RFC 3339, Unix time)."),
            arg("-n", "--tail", default="all", help="The last N lines (default: all)."),
            arg("-t", "--timestamps", action="store_true", help="Show each line's time."),
            _CONTAINER,
        ),
        description=_logs.__doc__,
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
