"""``chartd ui``: the inspector over any engine database, with no daemon.

A control plane that embeds the engine (``engine.Engine.open``) has no
``chartd serve`` to ask; ``chartd ui --db URL`` reads its database (a SQLite
file or PostgreSQL), never writes it, and serves the inspector until SIGINT
or SIGTERM. Charts are drawn from their definitions: the installed ones and
any given with ``--chart``. What it does is imported when it runs, so the
client verbs do not load the web stack.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from engine.cli_output import fail
from engine.cli_verbs import Verb, arg
from engine.errors import ChartdError, InvalidParameter

if TYPE_CHECKING:
    from engine.web.serve import HttpTLS

__all__ = ["DEFAULT_LISTEN", "VERB"]

DEFAULT_LISTEN = "127.0.0.1:7480"
"""Where ``chartd ui`` listens unless ``--listen`` says."""


def _ui(args: argparse.Namespace) -> None:
    import engine  # noqa: PLC0415 - the web stack stays out of the client verbs
    from engine._loading import installed_charts  # noqa: PLC0415
    from engine.web import Source  # noqa: PLC0415
    from engine.web.serve import parse_http_address, serve_inspector  # noqa: PLC0415

    stop = threading.Event()
    try:
        address = parse_http_address(args.listen, "--listen")
        tls = _tls(args)
        names = args.chart or sorted(installed_charts())
        charts = {c.name: c for c in (engine.load_chart(n) for n in names)}
        served = serve_inspector(Source.open(args.db, charts), address, tls, "--listen")
    except ChartdError as exc:
        fail(exc.message)

    def on_signal(number: int, frame: FrameType | None) -> None:
        stop.set()

    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, on_signal)
    if served.exposure is not None:
        sys.stderr.write(f"Warning: {served.exposure}\n")
    sys.stdout.write(f"chartd inspector (read-only) on {served.url}\n")
    sys.stdout.flush()
    try:
        while not stop.wait(0.5):  # in slices, so the signal handler runs
            pass
    finally:
        served.close()


def _tls(args: argparse.Namespace) -> HttpTLS | None:
    """The HTTPS files given, checked; None for none."""
    if (args.tls_cert is None) != (args.tls_key is None):
        raise InvalidParameter("--tls-cert and --tls-key go together")
    if args.tls_client_ca is not None and args.tls_cert is None:
        raise InvalidParameter("--tls-client-ca needs --tls-cert and --tls-key")
    for path in (args.tls_cert, args.tls_key, args.tls_client_ca):
        if path is not None and not path.is_file():
            raise InvalidParameter(f"no such file: {path}")
    if args.tls_cert is None:
        return None
    from engine.web.serve import HttpTLS  # noqa: PLC0415

    return HttpTLS(args.tls_cert, args.tls_key, args.tls_client_ca)


VERB = Verb(
    "ui",
    "Serve the inspector over an engine database, read-only (no daemon needed).",
    _ui,
    (
        arg(
            "--db",
            required=True,
            help="The engine's database URL (sqlite:///FILE or postgresql+psycopg://...).",
        ),
        arg(
            "--listen",
            default=DEFAULT_LISTEN,
            help=f"HOST:PORT (default {DEFAULT_LISTEN}); beyond loopback only with mutual TLS.",
        ),
        arg(
            "--chart",
            action="append",
            help="A chart file or installed chart to draw (repeatable; default: all installed).",
        ),
        *(
            arg(f"--tls-{name}", type=Path, help=text)
            for name, text in (
                ("cert", "HTTPS certificate."),
                ("key", "HTTPS private key."),
                ("client-ca", "Require client certificates this CA signed (mutual TLS)."),
            )
        ),
    ),
)
"""``ui``."""
