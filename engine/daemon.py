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
    docker.sock      docker's Engine API (unless --docker-socket names another)
    node             the node name its containers belong to (--node, else the host name)
    runtime/         the process runtime's index, lock and task records
    containers/ run/ network/   the container chart's directories
"""

from __future__ import annotations

import logging
import os
import pwd
import signal
import socket
import stat
import threading
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _package_version
from pathlib import Path
from types import FrameType

import sqlalchemy as sa
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.trace import NoOpTracerProvider

import engine
from engine.api import ApiServer, parse_address
from engine.api.address import Address
from engine.api.tls import ServerTLS
from engine.dockerapi import HijackingH11, docker_app
from engine.errors import Forbidden, InvalidParameter
from engine.export import FORMATS
from engine.httpserve import HttpServer, serve_in_thread
from engine.runtime.limits import Limits, parse_retention
from engine.runtime.shared import check_node
from engine.telemetry import (
    MetricsEndpoint,
    MetricsTLS,
    Providers,
    StoreGauges,
    Telemetry,
    check_exporter,
    providers,
    scrape_reader,
)
from engine.web import Source
from engine.web.serve import HttpTLS, Served, check_exposure, parse_http_address, serve_inspector
from statecharts.container.process import ProcessRuntime
from statecharts.container.service import CHART, Containers, status_of

__all__ = ["DaemonConfig", "chartd_version", "node_name", "serve"]

log = logging.getLogger("chartd.daemon")

_JOURNALS = ("-wal", "-shm", "-journal")  # SQLite's files beside a database
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
    tls_client_ca: Path | None = None
    insecure: bool = False
    otel: str = "off"
    shutdown_grace: float = 2.0
    retain_removed: float | None = parse_retention(RETAIN_REMOVED)
    metrics_addr: Address | None = None
    """Where Prometheus scrapes the engine's metrics (a tcp:// address), if anywhere."""
    http: Address | None = None  # where the inspector is served (None: not at all)
    http_allow_fire: bool = False
    docker_socket: Address | None = None
    node: str | None = None

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
        tls_client_ca: Path | None = None,
        insecure: bool = False,
        otel: str = "off",
        retain_removed: str = RETAIN_REMOVED,
        metrics_addr: str | None = None,
        http: str | None = None,
        http_allow_fire: bool = False,
        docker_socket: str | None = None,
        node: str | None = None,
    ) -> DaemonConfig:
        """Defaults filled in and the listen rules enforced (InvalidParameter otherwise).

        TCP needs ``tls_cert`` and ``tls_key``, or ``insecure``, which is
        accepted on a loopback host only: an API that starts processes is
        never offered in the clear beyond this machine. Beyond loopback it
        needs ``tls_client_ca`` too (mutual TLS): a client without a
        certificate that CA signed is refused. ``otel`` is one of
        ``engine.telemetry.EXPORTERS``, and its exporter package is installed.
        ``retain_removed`` is how long removed containers are kept (``24h``, ``forever``).
        ``metrics_addr`` (``HOST:PORT``) is on loopback, or the daemon has mutual TLS,
        whose certificates the scrape endpoint then serves and requires.
        ``http`` (``HOST:PORT``) serves the inspector there, on loopback or with mutual
        TLS (the same files); ``http_allow_fire`` lets its pages fire events.
        ``docker_socket`` is where docker's Engine API listens (``none``: nowhere);
        on TCP it follows the same rules, with the same TLS files.
        ``node`` names this daemon's node (:func:`node_name` when None).
        """
        check_exporter(otel)
        state_dir = state_dir.expanduser().absolute()
        address = parse_address(listen or f"unix://{state_dir / 'chartd.sock'}")
        if (tls_cert is None) != (tls_key is None):
            raise InvalidParameter("--tls-cert and --tls-key go together")
        if tls_client_ca is not None and tls_cert is None:
            raise InvalidParameter("--tls-client-ca needs --tls-cert and --tls-key")
        for path in (tls_cert, tls_key, tls_client_ca):
            if path is not None and not path.is_file():
                raise InvalidParameter(f"no such file: {path}")
        mutual = tls_client_ca is not None
        docker = None
        if docker_socket != "none":
            docker = parse_address(docker_socket or f"unix://{state_dir / 'docker.sock'}")
            if docker == address:
                raise InvalidParameter(f"--docker-socket and --listen are both {address}")
        # The TLS options serve whichever listener is on TCP; on unix sockets only, none.
        listeners = [a for a in (address, docker) if a is not None]
        for where in [a for a in listeners if a.scheme == "tcp"] or [address]:
            _check_listen(where, tls=tls_cert is not None, mutual=mutual, insecure=insecure)
        metrics = None
        if metrics_addr is not None:
            metrics = _metrics_address(metrics_addr, mutual=mutual)
        inspector = None
        if http is not None:
            inspector = parse_http_address(http)
            https = (
                None
                if tls_cert is None or tls_key is None
                else HttpTLS(tls_cert, tls_key, tls_client_ca)
            )
            check_exposure(inspector, https)
        elif http_allow_fire:
            raise InvalidParameter("--http-allow-fire needs --http")
        return cls(
            state_dir=state_dir,
            db=db or f"sqlite:///{state_dir / 'chartd.db'}",
            listen=address,
            tls_cert=tls_cert,
            tls_key=tls_key,
            tls_client_ca=tls_client_ca,
            insecure=insecure,
            otel=otel,
            retain_removed=parse_retention(retain_removed),
            metrics_addr=metrics,
            http=inspector,
            http_allow_fire=http_allow_fire,
            docker_socket=docker,
            node=None if node is None else check_node(node),
        )

    @property
    def tls(self) -> ServerTLS | None:
        """The TLS the daemon serves, if any."""
        if self.tls_cert is None or self.tls_key is None:
            return None
        return ServerTLS(self.tls_cert, self.tls_key, self.tls_client_ca)

    @property
    def metrics_tls(self) -> MetricsTLS | None:
        """The scrape endpoint's mutual TLS: the daemon's, beyond loopback; none on it."""
        if self.metrics_addr is None or self.metrics_addr.loopback:
            return None
        if self.tls_cert is None or self.tls_key is None or self.tls_client_ca is None:
            return None
        return MetricsTLS(self.tls_cert, self.tls_key, self.tls_client_ca)

    @property
    def http_tls(self) -> HttpTLS | None:
        """The inspector's HTTPS: the daemon's own certificate, key and client CA."""
        if self.tls_cert is None or self.tls_key is None:
            return None
        return HttpTLS(self.tls_cert, self.tls_key, self.tls_client_ca)


def _metrics_address(text: str, *, mutual: bool) -> Address:
    """``--metrics-addr HOST:PORT``; beyond loopback only with the daemon's mutual TLS."""
    try:
        address = parse_address(f"tcp://{text}")
    except InvalidParameter:
        raise InvalidParameter(
            f"invalid --metrics-addr {text!r}: use HOST:PORT, e.g. 127.0.0.1:9464"
        ) from None
    if not address.loopback and not mutual:
        raise InvalidParameter(
            f"--metrics-addr {text} is not a loopback address: serving metrics beyond this "
            "machine needs mutual TLS (--tls-cert, --tls-key and --tls-client-ca), "
            "or use 127.0.0.1"
        )
    return address


def _check_listen(address: Address, *, tls: bool, mutual: bool, insecure: bool) -> None:
    """Refuse a listener that would let someone run processes without credentials."""
    if address.scheme == "unix":
        if tls or insecure:
            raise InvalidParameter(
                "--tls-cert/--tls-key, --tls-client-ca and --insecure "
                "apply to tcp:// addresses only"
            )
        return
    if tls and insecure:
        raise InvalidParameter("--insecure and --tls-cert/--tls-key exclude each other")
    if insecure and not address.loopback:
        raise InvalidParameter(
            f"--insecure listens on loopback only, not on {address.host}: "
            "use 127.0.0.1 or ::1, or mutual TLS"
        )
    if address.loopback and not tls and not insecure:
        raise InvalidParameter(
            f"listening on {address} needs --tls-cert and --tls-key, or --insecure (loopback only)"
        )
    if not address.loopback and not mutual:
        raise InvalidParameter(
            f"listening on {address} needs --tls-cert, --tls-key and --tls-client-ca: "
            "beyond loopback every client must show a certificate that CA signed "
            "(mutual TLS), or anyone who reaches the port runs processes as this daemon's user"
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
    _private_state_dir(config.state_dir)
    _private_database(config.db)

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
    scrape = scrape_reader() if config.metrics_addr is not None else None
    telemetry = providers(
        config.otel, version=chartd_version(), metric_readers=[scrape] if scrape else ()
    )
    # Always an observer: with tracing off its tracer does nothing but hand on a caller's
    # trace context (a traceparent), whose trace id the journal then keeps.
    observer = Telemetry(
        tracer_provider=(telemetry and telemetry.tracer_provider) or NoOpTracerProvider(),
        meter_provider=telemetry.meter_provider if telemetry else NoOpMeterProvider(),
    )
    try:
        _serve(config, stop, observer, (telemetry, scrape))
    finally:
        # Last: the engine's final spans (the containers stopped at shutdown) go too.
        if telemetry is not None:
            telemetry.shutdown()
    log.info("chartd stopped")


def _serve(
    config: DaemonConfig,
    stop: threading.Event,
    observer: Telemetry,
    metrics: tuple[Providers | None, InMemoryMetricReader | None],
) -> None:
    """The engine, the API and the containers, from start to shutdown."""
    limits = Limits(retain_finished=config.retain_removed)
    node = node_name(config.state_dir, config.node)
    eng = engine.Engine.open(config.db, observer=observer, limits=limits, node=node)
    log.info("node %s: its containers are run by this daemon only", node)
    try:
        api = ApiServer(eng, version=chartd_version(), exporters=FORMATS)
        # Bound first: a daemon that cannot listen fails before it touches a container.
        api.bind(config.listen, config.tls)
        endpoint = None
        inspector = None
        try:
            # Before any container is touched too: a taken metrics port ends the start.
            endpoint = _metrics(config, eng, *metrics)
            inspector = _inspector(eng, config)
            runtime = ProcessRuntime(config.state_dir / "runtime")
            try:
                containers = Containers(eng, runtime, config.state_dir)
                _upgrade(eng, CHART)
                log.info("process runtime ready (freezer: %s)", runtime.freezer)
                api.add_containers(containers, status_of)
                docker = _serve_docker(config, eng, containers)
                try:
                    _run(config, stop, api, containers, docker)
                finally:
                    if docker is not None:
                        docker.stop(0)  # again, harmlessly; if serving never began
            finally:
                runtime.close()
        finally:
            if endpoint is not None:
                endpoint.close()
            if inspector is not None:
                inspector.close()
            api.stop(0)  # again, harmlessly; removes the socket if serving never began
    finally:
        eng.close()


def _metrics(
    config: DaemonConfig,
    eng: engine.Engine,
    telemetry: Providers | None,
    scrape: InMemoryMetricReader | None,
) -> MetricsEndpoint | None:
    """The store's gauges, and the scrape endpoint if one was asked for (serving)."""
    if telemetry is not None:
        StoreGauges(eng.store, telemetry.meter_provider)
    if scrape is None or config.metrics_addr is None:
        return None
    address = config.metrics_addr
    endpoint = MetricsEndpoint(scrape, address.host, address.port, config.metrics_tls)
    log.info("serving metrics on %s", endpoint.url)
    return endpoint


def _inspector(eng: engine.Engine, config: DaemonConfig) -> Served | None:
    """The inspector served at ``--http`` (None without it)."""
    if config.http is None:
        return None
    source = Source.of_engine(eng, fire=config.http_allow_fire)
    served = serve_inspector(source, config.http, config.http_tls)
    mode = "may fire events" if config.http_allow_fire else "read-only"
    log.info("serving the inspector on %s (%s)", served.url, mode)
    if served.exposure is not None:
        log.warning("%s", served.exposure)
    return served


def _run(
    config: DaemonConfig,
    stop: threading.Event,
    api: ApiServer,
    containers: Containers,
    docker: HttpServer | None,
) -> None:
    """Restore, serve until ``stop``, then stop taking calls and stop the containers."""
    restarted = containers.restore()
    if restarted:
        log.info("restart policies started %d container(s) again", len(restarted))
    api.start()
    log.info("serving the API on %s (pid %d)", config.listen, os.getpid())
    exposure = _exposure(config)
    if exposure is not None:
        log.warning("%s", exposure)
    try:
        # In slices: a wait without a timeout would not let the handler run.
        while not stop.wait(0.5):
            pass
    finally:
        log.info("shutting down: the API stops taking calls")
        if docker is not None:
            docker.stop(config.shutdown_grace)
        api.stop(config.shutdown_grace)
        log.info("stopping the running containers")
        containers.shutdown()


def _serve_docker(
    config: DaemonConfig, eng: engine.Engine, containers: Containers
) -> HttpServer | None:
    """docker's Engine API on the same container service, if asked for; serving."""
    if config.docker_socket is None:
        return None
    app = docker_app(containers, eng, status_of=status_of, version=chartd_version())
    tls = config.tls if config.docker_socket.scheme == "tcp" else None
    served = serve_in_thread(
        app, config.docker_socket, tls, http=HijackingH11, on_stop=app.stopping
    )
    log.info("serving docker's Engine API on %s", config.docker_socket)
    exposure = _exposure(config, config.docker_socket)
    if exposure is not None:
        log.warning("%s", exposure)
    return served


def _upgrade(eng: engine.Engine, chart: str) -> None:
    """Move the containers to the version of the container chart this daemon runs, if older.

    The plan is logged first, one line per source configuration. A container
    that cannot move stops the daemon before it serves: nothing moved then.
    """
    version = eng.charts()[chart].version
    plan = eng.migration_plan(chart, version)
    if not plan.entities and not plan.illegal and not plan.problems:
        return
    log.info("migrating %d container(s) to container chart version %d:", plan.entities, version)
    for line in plan.lines():
        log.info("  %s", line)
    report = eng.migrate(chart, version)
    log.info("%d container(s) now run on container chart version %d", report.moved, version)
    if report.waiting:
        log.warning("still on an older version (a saga in flight): %s", ", ".join(report.waiting))


def node_name(state_dir: Path, given: str | None) -> str:
    """The node this daemon's containers belong to, kept in ``STATE_DIR/node``.

    ``given`` (``--node``) is used and kept; otherwise the name kept by an
    earlier start, else the host name. Kept because the containers are
    recorded under it: a host renamed must not orphan them.
    """
    kept = state_dir / "node"
    if given is None:
        try:
            given = check_node(kept.read_text().strip())
        except FileNotFoundError:
            given = socket.gethostname()
        except (OSError, InvalidParameter) as exc:
            raise InvalidParameter(f"cannot read the node name in {kept}: {exc}") from None
    try:
        if not kept.exists() or kept.read_text().strip() != given:
            kept.write_text(given + "\n")
    except OSError as exc:
        raise InvalidParameter(f"cannot keep the node name in {kept}: {exc.strerror}") from None
    return given


def _private_state_dir(path: Path) -> None:
    """Make the state directory (0700), tightening one others may enter.

    It holds the database and every container's environment (secrets among
    them): a directory of another user is refused, one others may read or
    enter is narrowed to 0700, with a warning.
    """
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        found = path.stat()
    except OSError as exc:
        raise InvalidParameter(
            f"cannot use {path} as the state directory: {exc.strerror}"
        ) from None
    if not stat.S_ISDIR(found.st_mode):
        raise InvalidParameter(f"cannot use {path} as the state directory: not a directory")
    if found.st_uid != os.geteuid():
        raise Forbidden(
            f"the state directory {path} belongs to uid {found.st_uid}, not to uid "
            f"{os.geteuid()} that runs chartd serve: chown it, or use another --state-dir"
        )
    mode = stat.S_IMODE(found.st_mode)
    if mode & 0o077:
        os.chmod(path, 0o700)
        log.warning(
            "the state directory %s was mode %04o: now 0700, since it holds the database "
            "and the containers' environments",
            path,
            mode,
        )


def _private_database(url: str) -> None:
    """An SQLite database file and its journals readable by the daemon's user only.

    Made before SQLite opens it, so that the WAL and shared-memory files,
    which SQLite creates with the database's own mode, are private too.
    """
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        return  # the engine says what is wrong with it
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return  # a server's database, or one in memory
    database = Path(parsed.database)
    try:
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
        for path in (database, *(database.with_name(database.name + s) for s in _JOURNALS)):
            if path.exists() and stat.S_IMODE(path.stat().st_mode) & 0o077:
                os.chmod(path, 0o600)
                log.warning("%s was readable by others: now mode 0600", path)
    except OSError as exc:
        raise InvalidParameter(f"cannot open the database {database}: {exc.strerror}") from None


def _exposure(config: DaemonConfig, listen: Address | None = None) -> str | None:
    """What a listener (``--listen``'s by default) without client authentication gives away."""
    listen = listen or config.listen
    if listen.scheme == "unix" or config.tls_client_ca is not None:
        return None  # the socket is 0600; mutual TLS checks every client
    how = "--insecure" if config.insecure else "TLS without --tls-client-ca"
    uid = os.geteuid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = f"uid {uid}"
    power = "root" if uid == 0 else f"the rights of {user}"
    return (
        f"{how} on {listen} gives every local user {power}: anyone who can "
        f"connect to it runs processes as {user} without credentials (docs/security.md)"
    )


def _safe(url: str) -> str:
    """A database URL without its password, for the log."""
    head, at, tail = url.rpartition("@")
    if not at or "://" not in head:
        return url
    scheme, _, credentials = head.partition("://")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{tail}"
