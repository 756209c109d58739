"""``chartd update --restart POLICY CONTAINER...``: a new restart policy, as docker's update.

As docker's CLI: at least one option is required (``you must provide one or
more flags when using this command``); the policy's format is checked here
(``invalid restart policy format: ...``) and the rest by the daemon, for
each container. Each container updated is printed as it was named; the
daemon's errors are printed at the end, one per line, and the exit status
is then 1.
"""

from __future__ import annotations

import argparse
import re

from engine.api.chartd.v1 import containers_pb2 as c_pb2
from engine.cli_output import echo, echo_err
from engine.cli_session import NAMES, CallFailed, Session
from engine.cli_verbs import Verb, arg

__all__ = ["VERBS"]

# Go's strconv.Atoi, as docker's CLI parses the retry count: ASCII digits, a sign, int64.
_COUNT = re.compile(r"[+-]?[0-9]{1,19}", re.ASCII)


def restart_format_error(policy: str) -> str | None:
    """docker CLI's ParseRestartPolicy: the format error of ``policy``, None if it has none."""
    name, colon, count = policy.partition(":")
    if colon and not name:
        return "invalid restart policy format: no policy provided before colon"
    if count and (not _COUNT.fullmatch(count) or not -(2**63) <= int(count) < 2**63):
        return "invalid restart policy format: maximum retry count must be an integer"
    return None


def _update(args: argparse.Namespace) -> None:
    """Update the restart policy of one or more containers."""
    if args.restart is None:
        echo_err("you must provide one or more flags when using this command")
        raise SystemExit(1)
    problem = restart_format_error(args.restart)
    if problem is not None:
        echo_err(problem)
        raise SystemExit(1)
    errors: list[str] = []
    with Session(args) as s:
        for name in args.containers:
            request = c_pb2.UpdateContainerRequest(container=name, restart_policy=args.restart)
            failure, lines = s.held(lambda r=request: s.call(s.client.containers.Update, r))  # type: ignore[misc]
            if failure is None:
                echo(name)
                continue
            errors.extend(lines)
            if not isinstance(failure, CallFailed):  # the daemon cannot be reached: stop now
                break
    for line in errors:
        echo_err(line)
    if errors:
        raise SystemExit(1)


VERBS = (
    Verb(
        "update",
        "Update the restart policy of one or more containers.",
        _update,
        (
            arg(
                "--restart",
                help="Restart policy to apply when a container exits: no, always, "
                "unless-stopped or on-failure[:N].",
            ),
            NAMES,
        ),
        description=__doc__,
    ),
)
"""``update``."""
