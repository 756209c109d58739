"""The ``chartd`` command: its one entry point.

``chartd serve`` runs the daemon; ``chartd chart ls|show|check|export``
work on chart files and on the charts that installed packages register
under the ``chartd.charts`` entry-point group (the container chart is one);
the client verbs (``create``, ``start``, ``ps``, ...) are added by
:mod:`engine.cli_client`.

Only the commands' signatures live here. What a command does is imported
when it runs (:mod:`engine.daemon` for ``serve``, :mod:`engine.cli_chart`
for the chart verbs), so that a client verb loads the generated API, grpc
and the CLI framework, and nothing of the engine (docs/benchmarks.md).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from engine import cli_client
from engine.cli_output import fail, one_of
from engine.errors import ChartdError

__all__ = ["app", "main"]

app = typer.Typer(
    name="chartd",
    help="An explicit state-machine engine for control planes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Usage errors as click prints them: "Error: ...", as every other error here.
    rich_markup_mode=None,
)
chart_app = typer.Typer(
    help="Inspect and check charts.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(chart_app, name="chart")

ChartArg = Annotated[
    str,
    typer.Argument(help="A chart file (YAML or JSON) or the name of an installed chart."),
]
FormatOpt = Annotated[str, typer.Option("--format", help="Output format: text or json.")]


@chart_app.command("ls")
def chart_ls(fmt: FormatOpt = "text") -> None:
    """List the installed charts."""
    from engine import cli_chart  # noqa: PLC0415 - the chart verbs' imports stay theirs

    cli_chart.ls(fmt)


@chart_app.command("show")
def chart_show(chart: ChartArg = "container", fmt: FormatOpt = "text") -> None:
    """Show a chart's states, transitions and rejections."""
    from engine import cli_chart  # noqa: PLC0415

    cli_chart.show(chart, fmt)


BindingsOpt = Annotated[
    str | None,
    typer.Option(
        "--bindings",
        help="module:attribute of the engine.Bindings for the chart, to check its code "
        "(names without code).",
    ),
]
LimitOpt = Annotated[
    int,
    typer.Option(
        "--max-configurations",
        min=1,
        help="Stop the exhaustive exploration after this many configurations.",
    ),
]


@chart_app.command("check")
def chart_check(
    chart: ChartArg = "container",
    fmt: FormatOpt = "text",
    bindings: BindingsOpt = None,
    max_configurations: LimitOpt = 10_000,
) -> None:
    """Validate a chart and report what analysis finds.

    Every problem of the document at once, then static checks: unreachable
    states, dead ends, (state, event) pairs with neither a transition nor a
    rejection, transitions their conditions do not tell apart, rejection
    messages naming fields the data may lack. With --bindings, guards and
    steps without code. Then a bounded exploration of every reachable
    configuration, every event and condition value.

    Exit status: 0 clean, 1 errors, 2 warnings only.
    """
    from engine import cli_chart  # noqa: PLC0415

    cli_chart.check(chart, fmt, bindings, max_configurations)


# serve is a typer command: one parameter per CLI option, so more than six.
@app.command()
def serve(
    state_dir: Annotated[
        Path | None,
        typer.Option(
            "--state-dir",
            help="State directory (default $XDG_STATE_HOME/chartd or ~/.local/state/chartd).",
            show_default=False,
        ),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(
            "--db", help="Database URL (default sqlite:///STATE_DIR/chartd.db).", show_default=False
        ),
    ] = None,
    listen: Annotated[
        str | None,
        typer.Option(
            "--listen",
            help="unix:///path (default STATE_DIR/chartd.sock, mode 0600) or tcp://HOST:PORT.",
            show_default=False,
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option("--tls-cert", help="TLS certificate (tcp://).", show_default=False),
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", help="TLS private key (tcp://).", show_default=False)
    ] = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Plain tcp:// without TLS, loopback only.")
    ] = False,
    log_level: Annotated[
        str, typer.Option("--log-level", help="debug, info, warning, error.")
    ] = "info",
    otel: Annotated[
        str | None,
        typer.Option(
            "--otel",
            help="Traces and metrics: off, console (to stderr) or otlp "
            "(set by the OTEL_EXPORTER_OTLP_* variables; needs opentelemetry-exporter-otlp). "
            "Default: OTEL_TRACES_EXPORTER (none, console, otlp), else off.",
        ),
    ] = None,
) -> None:
    """Run the daemon: the engine, the container chart on real processes, the gRPC API."""
    from engine import daemon  # noqa: PLC0415 - the daemon's imports stay out of the client verbs
    from engine.api import default_state_dir  # noqa: PLC0415

    _start_logging(log_level)
    exporter = _otel_exporter(otel)
    try:
        config = daemon.DaemonConfig.resolve(
            state_dir or default_state_dir(),
            db=db,
            listen=listen,
            tls_cert=tls_cert,
            tls_key=tls_key,
            insecure=insecure,
            otel=exporter,
        )
        daemon.serve(config)
    except ChartdError as exc:
        fail(exc.message)


LOG_LEVELS = ("debug", "info", "warning", "error")
"""The values of ``serve --log-level``, in any case."""


def _start_logging(log_level: str) -> None:
    """Logs to stderr from ``log_level`` on (one of LOG_LEVELS, any case); a usage error else."""
    import logging  # noqa: PLC0415 - the daemon's imports stay out of the client verbs

    if log_level.lower() not in LOG_LEVELS:
        fail(f"invalid --log-level {log_level!r}: use {one_of(LOG_LEVELS)}", 2)
    level = getattr(logging, log_level.upper())
    logging.basicConfig(
        stream=sys.stderr, level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def _otel_exporter(otel: str | None) -> str:
    """``--otel`` as given, else as ``OTEL_TRACES_EXPORTER`` says (``none`` is ``off``)."""
    if otel is not None:
        return otel
    # The standard variable, as OpenTelemetry's own auto-configuration reads it.
    named = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() or "none"
    if named not in ("none", "console", "otlp"):
        fail(f"invalid OTEL_TRACES_EXPORTER {named!r}: use none, console or otlp")
    return "off" if named == "none" else named


cli_client.register(app, chart_app)


def main() -> None:
    """Entry point of the ``chartd`` console script."""
    try:
        app()
    except ChartdError as exc:  # pragma: no cover - commands catch their own
        sys.stderr.write(f"Error: {exc.message}\n")
        sys.exit(1)
