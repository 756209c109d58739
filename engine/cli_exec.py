"""``chartd exec``: run a command in a running container, as ``docker exec``.

Attached (the default), the command's stdout and stderr are copied to the
CLI's, and the CLI exits with the command's exit code; a command that cannot
be run prints the daemon's reason on stdout (where docker's stream puts it)
and exits 126 (cannot be run) or 127 (not found), read from the exec as
docker's CLI reads it. ``-d`` starts it and returns. A refusal (the
container is not running, is paused or restarting) is ``Error response from
daemon: ...`` on stderr and exit status 1. ``-i`` and ``-t`` are accepted:
the command's stdin is ``/dev/null`` and no terminal is allocated.
"""

from __future__ import annotations

import argparse
import sys

import grpc

from engine.api.chartd.v1 import exec_pb2
from engine.cli_run import env_option
from engine.cli_session import CallFailed, Session
from engine.cli_verbs import Verb, arg

__all__ = ["VERBS"]


def _exec(args: argparse.Namespace) -> None:
    """Run a command in a running container."""
    cmd: list[str] = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        args.parser.error("the command to run is missing")
    request = exec_pb2.CreateExecRequest(
        container=args.container,
        cmd=cmd,
        env=env_option(args.env),
        working_dir=args.workdir or "",
        tty=args.tty,
        attach_stdin=args.interactive,
    )
    with Session(args) as s:
        try:
            exec_id = s.call(s.client.exec.CreateExec, request).id
            start = exec_pb2.StartExecRequest(exec_id=exec_id, detach=args.detach)
            if args.detach:
                _detached(s, start)
                return
        except CallFailed:
            raise SystemExit(1) from None
        raise SystemExit(_attached(s, start))


def _detached(s: Session, start: exec_pb2.StartExecRequest) -> None:
    """Start the exec and return; a start that fails is the daemon's error (exit 1)."""
    try:
        for _ in s.client.exec.StartExec(start):
            pass
    except grpc.RpcError as exc:
        s.report(exc)
        raise CallFailed from None


def _attached(s: Session, start: exec_pb2.StartExecRequest) -> int:
    """Copy the exec's output; its exit code."""
    stream = s.client.exec.StartExec(start)
    try:
        for chunk in stream:
            if chunk.HasField("exit_code"):
                return chunk.exit_code
            out = sys.stderr if chunk.stream == "stderr" else sys.stdout
            out.buffer.write(chunk.data)
            out.buffer.flush()
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.UNAVAILABLE:
            s.report(exc)
        # docker's daemon writes a failed start into the exec's output stream.
        sys.stdout.write(f"{exc.details()}\r\n")
        sys.stdout.flush()
    except KeyboardInterrupt:
        stream.cancel()
        return 130
    try:
        found = s.call(
            s.client.exec.InspectExec, exec_pb2.InspectExecRequest(exec_id=start.exec_id)
        )
    except CallFailed:
        return 1
    return found.exit_code if found.HasField("exit_code") else 126


VERBS: tuple[Verb, ...] = (
    Verb(
        "exec",
        "Execute a command in a running container.",
        _exec,
        (
            arg("-d", "--detach", action="store_true", help="Run the command in the background."),
            arg("-e", "--env", action="append", help="KEY=VALUE (or KEY: from here)."),
            arg("-w", "--workdir", help="Working directory inside the container."),
            arg("-i", "--interactive", action="store_true", help="Accepted; stdin is not sent."),
            arg("-t", "--tty", action="store_true", help="Accepted; no terminal is allocated."),
            arg("container", metavar="CONTAINER", help="Container name or ID."),
            arg("cmd", nargs=argparse.REMAINDER, metavar="CMD ...", help="The command."),
        ),
    ),
)
"""The ``exec`` verb."""
