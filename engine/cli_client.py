"""The client verbs of ``chartd``, shaped after the docker CLI, and where they are added.

``chartd [-H unix:///path/chartd.sock] VERB ...``: every verb talks to a
daemon over gRPC (``-H``/``--host``, else ``$CHARTD_HOST``, else the socket
in the default state directory). An error the daemon returns is printed as
``Error response from daemon: <message>`` on stderr and the exit status is
1; NotModified (starting a running container, stopping a stopped one) is
success, as in docker. Listings print tables, or JSON with ``--format json``.

The verbs live in rooms of their own: :mod:`engine.cli_run` (create, run),
:mod:`engine.cli_exec` (exec), :mod:`engine.cli_lifecycle` (start, stop, ..., rename),
:mod:`engine.cli_inspection` (ps, inspect, wait, logs, events, history,
version), :mod:`engine.cli_update` (update), :mod:`engine.cli_top` (top),
:mod:`engine.cli_stats` (stats),
:mod:`engine.cli_prune` (container prune), on :mod:`engine.cli_session`
(the connection, errors to exit codes), :mod:`engine.cli_output` (tables and
JSON) and :mod:`engine.cli_format` (``--format`` templates). :data:`VERBS` is
all of them, in the order ``chartd --help`` lists them, and ``container``
with each of them (``container ls`` is ``ps``) and ``container prune``;
:mod:`engine.cli`, the one entry point, adds them to its parser.
"""

from __future__ import annotations

from engine import (
    cli_exec,
    cli_inspection,
    cli_lifecycle,
    cli_prune,
    cli_run,
    cli_stats,
    cli_top,
    cli_update,
)
from engine.cli_verbs import Verb

__all__ = ["VERBS"]

_VERBS: tuple[Verb, ...] = (
    *cli_run.VERBS,
    *cli_exec.VERBS,
    *cli_lifecycle.VERBS,
    *cli_update.VERBS,
    *cli_inspection.VERBS,
    *cli_top.VERBS,
    *cli_stats.VERBS,
)

VERBS: tuple[Verb, ...] = (*_VERBS, cli_prune.container_group(_VERBS))
"""Every client verb."""
