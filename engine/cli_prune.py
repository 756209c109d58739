"""``chartd container prune [-f] [--filter ...]``: every stopped container, removed.

Filters: ``until=TIME``, ``label=KEY[=VALUE]``, ``label!=KEY[=VALUE]``.
As docker's: without ``-f`` it asks ``Are you sure you want to continue?
[y/N]`` and does nothing (exit 0) unless the answer is ``y``; then it prints
``Deleted Containers:`` and the IDs removed, a blank line, and ``Total
reclaimed space: 0B`` (chartd's containers have no writable layer).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace

from engine.api.chartd.v1 import containers_pb2 as c_pb2
from engine.cli_output import echo, pairs
from engine.cli_session import CallFailed, Session
from engine.cli_verbs import Verb, arg

__all__ = ["PRUNE", "container_group"]

WARNING = "WARNING! This will remove all stopped containers.\nAre you sure you want to continue?"


def _confirmed() -> bool:
    """docker's prompt: the question on stdout, one line read; ``y`` (any case) is yes."""
    sys.stdout.write(WARNING + " [y/N] ")
    sys.stdout.flush()
    answer = sys.stdin.readline()
    return answer.strip().lower() == "y"


def _human_size(size: int) -> str:
    """go-units' HumanSize (decimal units, 4 significant digits), as docker prints space."""
    value = float(size)
    units = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
    i = 0
    while value >= 1000 and i < len(units) - 1:
        value /= 1000
        i += 1
    return f"{value:.4g}{units[i]}"


def _prune(args: argparse.Namespace) -> None:
    """Remove all stopped containers."""
    filters = [c_pb2.Filter(key=k, value=v) for k, v in pairs(args.filter or (), "filter")]
    if not args.force and not _confirmed():
        return
    with Session(args) as s:
        try:
            answer = s.call(
                s.client.containers.Prune, c_pb2.PruneContainersRequest(filters=filters)
            )
        except CallFailed:
            raise SystemExit(1) from None
    if answer.deleted:
        echo("Deleted Containers:\n" + "".join(cid + "\n" for cid in answer.deleted))
    echo(f"Total reclaimed space: {_human_size(answer.space_reclaimed)}")


PRUNE = Verb(
    "prune",
    "Remove all stopped containers.",
    _prune,
    (
        arg("-f", "--force", action="store_true", help="Do not prompt for confirmation."),
        arg("--filter", action="append", help="until=TIME, label=K[=V], label!=K[=V]."),
    ),
    description=__doc__,
)


def _help_of(args: argparse.Namespace) -> None:
    args.parser.print_help()


_NOT_CONTAINER_VERBS = ("events", "history", "version")


def container_group(verbs: Sequence[Verb]) -> Verb:
    """``container VERB``: docker's management command, over the container ``verbs``.

    ``container ls`` is ``ps``; ``container prune`` exists only here, as in docker.
    """
    children = [v for v in verbs if v.name not in _NOT_CONTAINER_VERBS]
    listing = [replace(v, name="ls") for v in children if v.name == "ps"]
    return Verb("container", "Manage containers.", _help_of, children=(*children, *listing, PRUNE))
