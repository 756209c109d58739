"""The client verbs of ``chartd``, shaped after the docker CLI, and where they are added.

``chartd [-H unix:///path/chartd.sock] VERB ...``: every verb talks to a
daemon over gRPC (``-H``/``--host``, else ``$CHARTD_HOST``, else the socket
in the default state directory). An error the daemon returns is printed as
``Error response from daemon: <message>`` on stderr and the exit status is
1; NotModified (starting a running container, stopping a stopped one) is
success, as in docker. Listings print tables, or JSON with ``--format json``.

The verbs live in rooms of their own: :mod:`engine.cli_run` (create, run),
:mod:`engine.cli_lifecycle` (start, stop, ..., rename),
:mod:`engine.cli_inspection` (ps, inspect, wait, logs, events, history,
version), on :mod:`engine.cli_session` (the connection, errors to exit
codes) and :mod:`engine.cli_output` (tables and JSON); ``chart export`` is
in :mod:`engine.cli_export`. :func:`register` adds them all to the
``chartd`` Typer app of :mod:`engine.cli`, which stays the one entry point.
"""

from __future__ import annotations

from collections.abc import Callable

import typer

from engine.cli_export import chart_export
from engine.cli_inspection import events, history, inspect, logs, ps, version, wait
from engine.cli_lifecycle import kill, pause, rename, restart, rm, start, stop, unpause
from engine.cli_run import create, run
from engine.cli_session import global_options

__all__ = ["register"]

# Options after the first argument of the command belong to the command:
# `chartd run -d sh -c 'echo hi'` passes -c to sh.
_COMMAND_SETTINGS = {"allow_interspersed_args": False}


def register(app: typer.Typer, chart_app: typer.Typer) -> None:
    """Add the global -H/--host option, the daemon verbs and ``chart export`` to ``app``."""
    app.callback()(global_options)
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
    chart_app.command("export")(chart_export)
