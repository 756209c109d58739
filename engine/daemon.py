"""The composition root of ``chartd serve``: the engine, the container chart, the API.

Why here: the API room may not import ``statecharts`` (it depends inward
only) and ``statecharts`` may import only the public ``engine`` API, so the
one module that knows both sides and wires them is this one, beside the
embedded engine's composition root (``engine/_engine.py``). It opens the
engine on the database, the process runtime and the ``Containers`` service
on the state directory, restores what a previous daemon left, serves the
API, and on SIGTERM or SIGINT shuts down in the reverse order.

Layout of the state directory (mode 0700)::

    chartd.db        the SQLite database (unless --db names another)
    chartd.sock      the API's unix socket (unless --listen names another)
    runtime/         the process runtime's index, lock and task records
    containers/ run/ network/   the container chart's directories
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _package_version
from pathlib import Path
from types import FrameType

import engine
from engine.api import ApiServer, parse_address
from engine.api.address import Address
from engine.errors import InvalidParameter
from engine.export import FORMATS
from engine.runtime.limits import Limits, parse_retention
from engine.telemetry import Telemetry, check_exporter, providers
from statecharts.container.process import ProcessRuntime
from statecharts.container.service import Containers, status_of

__all__ = ["DaemonConfig", "chartd_version", "serve"]

log = logging.getLogger("chartd.daemon")

RETAIN_REMOVED = "24h"
"""How long a removed container and its history are kept unless ``--retain-removed`` says."""


def chartd_version() -> str:
    """The installed chartd version (``0+unknown`` when run from a bare tree)."""
    try:
        return _package_version("chartd")
    except PackageNotFoundError:
        return "0+unknown"


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    """What ``chartd serve`` was asked for, checked by :meth:`resolve`."""

    state_dir: Path
    db: str
    listen: Address
    tls_cert: Path | None = None
    tls_key: Path | None = None
    insecure: bool = False
    otel: str = "off"
    shutdown_grace: float = 2.0
    retain_removed: float | None = parse_retention(RETAIN_REMOVED)

    # More than six parameters: one keyword per option of chartd serve, a signature tests pin.
    @classmethod
    def resolve(
        cls,
        state_dir: Path,
        *,
        db: str | None = None,
        listen: str | None = None,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        insecure: bool = False,
        otel: str = "off",
        retain_removed: str = RETAIN_REMOVED,
    ) -> DaemonConfig:
        """Defaults filled in and the listen rules enforced (InvalidParameter otherwise).

        TCP needs ``tls_cert`` and ``tls_key``, or ``insecure``, which is
        accepted on a loopback host only: an API that starts processes is
        never offered in the clear beyond this machine. ``otel`` is one of
        ``engine.telemetry.EXPORTERS``, and its exporter package is installed.
        ``retain_removed`` is how long removed containers are kept (``24h``, ``forever``).
        """
        check_exporter(otel)
        state_dir = state_dir.expanduser().absolute()
        address = parse_address(listen or f"unix://{state_dir / 'chartd.sock'}")
        if (tls_cert is None) != (tls_key is None):
            raise InvalidParameter("--tls-cert and --tls-key go together")
        tls = tls_cert is not None
        if address.scheme == "unix" and (tls or insecure):
            raise InvalidParameter(
                "--tls-cert/--tls-key and --insecure apply to tcp:// addresses only"
            )
        if address.scheme == "tcp":
            if tls and insecure:
                raise InvalidParameter("--insecure and --tls-cert/--tls-key exclude each other")
            if not tls and not insecure:
                raise InvalidParameter(
                    f"listening on {address} needs --tls-cert and --tls-key, "
                    "or --insecure (loopback only)"
                )
            if insecure and not address.loopback:
                raise InvalidParameter(
                    f"--insecure listens on loopback only, not on {address.host}: "
                    "use 127.0.0.1 or ::1, or TLS"
                )
        for path in (tls_cert, tls_key):
            if path is not None and not path.is_file():
                raise InvalidParameter(f"no such file: {path}")
        return cls(
            state_dir=state_dir,
            db=db or f"sqlite:///{state_dir / 'chartd.db'}",
            listen=address,
            tls_cert=tls_cert,
            tls_key=tls_key,
            insecure=insecure,
            otel=otel,
            retain_removed=parse_retention(retain_removed),
        )


def serve(config: DaemonConfig, *, stop: threading.Event | None = None) -> None:
    """Run the daemon until SIGTERM or SIGINT (or until ``stop`` is set).

    Raises a ChartdError if it cannot start (a bad database URL, the state
    directory in use by another daemon, the address taken); once serving,
    it shuts down cleanly: the API first, then the running containers are
    stopped (not as a manual stop, so restart policies apply at the next
    start), then the runtime and the engine are closed, and last the
    telemetry is flushed.
    """
    stop = stop or threading.Event()
    config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    def on_signal(number: int, frame: FrameType | None) -> None:
        if stop.is_set():
            log.warning("shutdown already in progress")
        stop.set()

    if threading.current_thread() is threading.main_thread():
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, on_signal)

    log.info(
        "chartd %s: state in %s, database %s",
        chartd_version(),
        config.state_dir,
        _safe(config.db),
    )
    telemetry = providers(config.otel, version=chartd_version())
    observer = None
    if telemetry is not None:
        observer = Telemetry(
            tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
        )
    try:
        _serve(config, stop, observer)
    finally:
        # Last: the engine's final spans (the containers stopped at shutdown) go too.
        if telemetry is not None:
            telemetry.shutdown()
    log.info("chartd stopped")


def _serve(config: DaemonConfig, stop: threading.Event, observer: Telemetry | None) -> None:
    """The engine, the API and the containers, from start to shutdown."""
    limits = Limits(retain_finished=config.retain_removed)
    eng = engine.Engine.open(config.db, observer=observer, limits=limits)
    try:
        api = ApiServer(eng, version=chartd_version(), exporters=FORMATS)
        # Bound first: a daemon that cannot listen fails before it touches a container.
        api.bind(config.listen, cert=config.tls_cert, key=config.tls_key)
        try:
            runtime = ProcessRuntime(config.state_dir / "runtime")
            try:
                containers = Containers(eng, runtime, config.state_dir)
                log.info("process runtime ready (freezer: %s)", runtime.freezer)
                api.add_containers(containers, status_of)
                restarted = containers.restore()
                if restarted:
                    log.info("restart policies started %d container(s) again", len(restarted))
                api.start()
                log.info("serving the API on %s (pid %d)", config.listen, os.getpid())
                try:
                    # In slices: a wait without a timeout would not let the handler run.
                    while not stop.wait(0.5):
                        pass
                finally:
                    log.info("shutting down: the API stops taking calls")
                    api.stop(config.shutdown_grace)
                    log.info("stopping the running containers")
                    containers.shutdown()
            finally:
                runtime.close()
        finally:
            api.stop(0)  # again, harmlessly; removes the socket if serving never began
    finally:
        eng.close()


def _safe(url: str) -> str:
    """A database URL without its password, for the log."""
    head, at, tail = url.rpartition("@")
    if not at or "://" not in head:
        return url
    scheme, _, credentials = head.partition("://")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{tail}"
