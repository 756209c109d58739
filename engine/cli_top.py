"""``chartd top CONTAINER [ps OPTIONS]``: a running container's processes, as docker's top.

The daemon runs the host's ``ps`` with the options given (``-ef`` by
default: UID, PID, PPID, C, STIME, TTY, TIME, CMD) on the container's
processes; the CLI lays the columns out as docker's does (at least 20
characters wide, 3 apart).
"""

from __future__ import annotations

import argparse

from engine.api.chartd.v1 import containers_pb2 as c_pb2
from engine.cli_format import tabwrite, write
from engine.cli_session import CallFailed, Session
from engine.cli_verbs import Verb, arg

__all__ = ["VERBS"]


def _top(args: argparse.Namespace) -> None:
    """Display the running processes of a container."""
    request = c_pb2.TopRequest(container=args.container, ps_args=" ".join(args.ps_args))
    with Session(args) as s:
        try:
            answer = s.call(s.client.containers.Top, request)
        except CallFailed:
            raise SystemExit(1) from None
    rows = ["\t".join(answer.titles), *("\t".join(p.cells) for p in answer.processes)]
    write(tabwrite("".join(row + "\n" for row in rows), min_width=20, padding=3))


VERBS = (
    Verb(
        "top",
        "Display the running processes of a container.",
        _top,
        (
            arg("container", metavar="CONTAINER", help="The container."),
            # Everything after the container goes to ps: `chartd top web -o pid,comm`.
            arg("ps_args", nargs=argparse.REMAINDER, metavar="ps OPTIONS", help="ps options."),
        ),
        description=__doc__,
    ),
)
"""``top``."""
