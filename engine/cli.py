"""The ``chartd`` command: its one entry point.

``chartd serve`` runs the daemon; ``chartd chart ls|show|check|export``
work on chart files and on the charts that installed packages register
under the ``chartd.charts`` entry-point group (the container chart is one);
the client verbs (``create``, ``start``, ``ps``, ...) come from
:mod:`engine.cli_client`.

Only the commands' arguments live here. What a command does is imported
when it runs (:mod:`engine.daemon` for ``serve``, :mod:`engine.cli_chart`
for the chart verbs), so that a client verb loads the generated API, grpc
and the standard library's argparse, and nothing of the engine
(docs/benchmarks.md, ``tools/bench_cli.py``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from engine import cli_client, cli_export, cli_ui
from engine.cli_output import fail
from engine.cli_session import GLOBAL_OPTIONS
from engine.cli_verbs import Parser, Verb, arg, positive
from engine.errors import ChartdError

__all__ = ["LOG_LEVELS", "main", "parser"]

LOG_LEVELS = ("debug", "info", "warning", "error")
"""The values of ``serve --log-level``, in any case."""


def _serve(args: argparse.Namespace) -> None:
    """Run the daemon: the engine, the container chart on real processes, the gRPC API."""
    from engine import daemon  # noqa: PLC0415 - the daemon's imports stay out of the client verbs
    from engine.api import default_state_dir  # noqa: PLC0415

    _start_logging(args.log_level)
    exporter = _otel_exporter(args.otel)
    try:
        config = daemon.DaemonConfig.resolve(
            args.state_dir or default_state_dir(),
            db=args.db,
            listen=args.listen,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            tls_client_ca=args.tls_client_ca,
            insecure=args.insecure,
            retain_removed=args.retain_removed,
            docker_socket=args.docker_socket,
            otel=exporter,
            metrics_addr=args.metrics_addr,
            http=args.http,
            http_allow_fire=args.http_allow_fire,
            node=args.node,
        )
        daemon.serve(config)
    except ChartdError as exc:
        fail(exc.message)


def _start_logging(log_level: str) -> None:
    """Logs to stderr from ``log_level`` on (one of LOG_LEVELS)."""
    import logging  # noqa: PLC0415 - the daemon's imports stay out of the client verbs

    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if log_level.lower() != "debug":
        # Alembic tells every migration step and plugin at INFO: noise on a first
        # start, where what matters is that the daemon serves.
        logging.getLogger("alembic").setLevel(logging.WARNING)


def _otel_exporter(otel: str | None) -> str:
    """``--otel`` as given, else as ``OTEL_TRACES_EXPORTER`` says (``none`` is ``off``)."""
    if otel is not None:
        return otel
    # The standard variable, as OpenTelemetry's own auto-configuration reads it.
    named = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() or "none"
    if named not in ("none", "console", "otlp"):
        fail(f"invalid OTEL_TRACES_EXPORTER {named!r}: use none, console or otlp")
    return "off" if named == "none" else named


SERVE = Verb(
    "serve",
    "Run the daemon: the engine, the container chart on real processes, the gRPC API.",
    _serve,
    (
        arg(
            "--state-dir",
            type=Path,
            help="State directory (default $XDG_STATE_HOME/chartd or ~/.local/state/chartd).",
        ),
        arg("--db", help="Database URL (default sqlite:///STATE_DIR/chartd.db)."),
        arg(
            "--listen",
            help="unix:///path (default STATE_DIR/chartd.sock, mode 0600) or tcp://HOST:PORT.",
        ),
        arg(
            "--docker-socket",
            help="Where docker's Engine API listens: unix:///path (default "
            "STATE_DIR/docker.sock, mode 0600), tcp://HOST:PORT (as --listen), or none.",
        ),
        arg("--tls-cert", type=Path, help="TLS certificate (tcp://)."),
        arg("--tls-key", type=Path, help="TLS private key (tcp://)."),
        arg(
            "--tls-client-ca",
            type=Path,
            help="Require client certificates signed by this CA (mutual TLS; "
            "needed beyond loopback).",
        ),
        arg("--insecure", action="store_true", help="Plain tcp:// without TLS, loopback only."),
        arg(
            "--retain-removed",
            default="24h",
            help="How long removed containers and their history are kept: "
            "a duration (90m, 24h, 7d) or forever (default: 24h).",
        ),
        arg(
            "--node",
            help="This daemon's node name: its containers belong to it, and daemons "
            "of other nodes on the same --db refuse to act on them "
            "(default: the name kept in STATE_DIR/node, else the host name).",
        ),
        arg(
            "--log-level",
            type=str.lower,
            choices=LOG_LEVELS,
            default="info",
            help="debug, info (the default), warning or error.",
        ),
        arg(
            "--otel",
            help="Traces and metrics: off, console (to stderr) or otlp "
            "(set by the OTEL_EXPORTER_OTLP_* variables; needs opentelemetry-exporter-otlp). "
            "Default: OTEL_TRACES_EXPORTER (none, console, otlp), else off.",
        ),
        arg(
            "--metrics-addr",
            metavar="HOST:PORT",
            help="Serve the engine's metrics for Prometheus at http://HOST:PORT/metrics "
            "(loopback; another host needs mutual TLS: --tls-cert, --tls-key, --tls-client-ca).",
        ),
        arg(
            "--http",
            help="Serve the inspector at HOST:PORT (loopback, or with mutual TLS: "
            "--tls-cert, --tls-key, --tls-client-ca).",
        ),
        arg(
            "--http-allow-fire",
            action="store_true",
            help="Let the inspector's pages fire events (CSRF-checked); read-only otherwise.",
        ),
    ),
)


def _chart_verb(name: str) -> Verb:
    """``chart NAME``, whose work is :mod:`engine.cli_chart`'s function of that name."""

    def run(args: argparse.Namespace) -> None:
        # The chart verbs' imports stay theirs.
        if name == "migrate":
            from engine import cli_migrate  # noqa: PLC0415

            cli_migrate.migrate(args)
            return
        from engine import cli_chart  # noqa: PLC0415

        getattr(cli_chart, name)(args)

    text = {
        "ls": "List the installed charts.",
        "show": "Show a chart's states, transitions and rejections.",
        "check": "Validate a chart and report what analysis finds.",
        "diff": "List what changed between two versions of a chart.",
        "migrate": "Move a chart's live entities to another version of it.",
    }[name]
    description = _CHECK_HELP if name == "check" else None
    return Verb(name, text, run, _CHART_ARGS[name], description=description)


_FORMAT = arg("--format", dest="fmt", default="text", help="Output format: text or json.")
_CHART = arg(
    "chart",
    nargs="?",
    default="container",
    help="A chart file (YAML or JSON) or the name of an installed chart (default: container).",
)
_CHART_ARGS = {
    "ls": (_FORMAT,),
    "show": (_CHART, _FORMAT),
    "check": (
        _CHART,
        _FORMAT,
        arg(
            "--bindings",
            help="module:attribute of the engine.Bindings for the chart, to check its code "
            "(names without code).",
        ),
        arg(
            "--max-configurations",
            type=positive,
            default=10_000,
            help="Stop the exhaustive exploration after this many configurations.",
        ),
        arg(
            "--migrates-from",
            metavar="OLD",
            help="An older version of the chart (file or installed chart): prove that every "
            "configuration it can reach maps to a legal configuration of this one.",
        ),
    ),
    "diff": (
        arg("old", help="The older version: a chart file or an installed chart's name."),
        arg("new", help="The newer version: a chart file or an installed chart's name."),
        _FORMAT,
    ),
    "migrate": (
        arg(
            "chart",
            help="The chart's name in the database, or a chart file (or installed chart) "
            "whose version is the target.",
        ),
        arg("--to", type=positive, help="The target version (default: the newest stored)."),
        arg("--dry-run", action="store_true", help="Print the plan; move nothing."),
        arg("--batch", type=positive, default=500, help="Entities per commit (default 500)."),
        arg(
            "--state-dir",
            type=Path,
            help="Open this state directory's database directly instead of asking the daemon.",
        ),
        arg(
            "--db",
            help="Open this database URL directly instead of asking the daemon "
            "(CHART may then be a chart file).",
        ),
    ),
}
_CHECK_HELP = """Validate a chart and report what analysis finds.

Every problem of the document at once, then static checks: unreachable
states, dead ends, (state, event) pairs with neither a transition nor a
rejection, transitions their conditions do not tell apart, rejection
messages naming fields the data may lack. With --bindings, guards and steps
without code. Then a bounded exploration of every reachable configuration,
every event and condition value.

With --migrates-from OLD, every configuration OLD can reach (the same bounded
exploration) must map to a legal configuration of this chart; each one that
does not is an error naming it.

Exit status: 0 clean, 1 errors, 2 warnings only."""


def _help_of(args: argparse.Namespace) -> None:
    """A command given without its sub-command: its help, as docker prints it."""
    args.parser.print_help()


CHART = Verb(
    "chart",
    "Inspect and check charts.",
    _help_of,
    children=(
        *(_chart_verb(n) for n in ("ls", "show", "check", "diff", "migrate")),
        cli_export.VERB,
    ),
)


def parser() -> Parser:
    """The parser of ``chartd``'s command line."""
    top = Parser(prog="chartd", description="An explicit state-machine engine for control planes.")
    for a in GLOBAL_OPTIONS:
        top.add_argument(*a.flags, **a.options)
    top.set_defaults(run=_help_of, parser=top)
    top.add_verbs((SERVE, cli_ui.VERB, *cli_client.VERBS, CHART))
    return top


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``chartd`` console script."""
    args, extra = parser().parse_known_args(argv)
    if extra:  # as docker names it, with the help of the verb it was given to
        what = "unknown flag" if extra[0].startswith("-") else "unexpected argument"
        args.parser.error(f"{what}: {extra[0]}")
    try:
        args.run(args)
    except ChartdError as exc:  # pragma: no cover - commands catch their own
        fail(exc.message)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
