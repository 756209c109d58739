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

import engine
from engine.api import ApiServer, parse_address
from engine.api.address import Address
from engine.api.tls import ServerTLS
from engine.errors import Forbidden, InvalidParameter
from engine.export import FORMATS
from engine.runtime.limits import Limits, parse_retention
from engine.runtime.shared import check_node
from engine.telemetry import Telemetry, check_exporter, providers
from statecharts.container.process import ProcessRuntime
from statecharts.container.service import Containers, status_of

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
        _check_listen(address, tls=tls_cert is not None, mutual=mutual, insecure=insecure)
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
            node=None if node is None else check_node(node),
        )

    @property
    def tls(self) -> ServerTLS | None:
        """The TLS the daemon serves, if any."""
        if self.tls_cert is None or self.tls_key is None:
            return None
        return ServerTLS(self.tls_cert, self.tls_key, self.tls_client_ca)


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
    node = node_name(config.state_dir, config.node)
    eng = engine.Engine.open(config.db, observer=observer, limits=limits, node=node)
    log.info("node %s: its containers are run by this daemon only", node)
    try:
        api = ApiServer(eng, version=chartd_version(), exporters=FORMATS)
        # Bound first: a daemon that cannot listen fails before it touches a container.
        api.bind(config.listen, config.tls)
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
                exposure = _exposure(config)
                if exposure is not None:
                    log.warning("%s", exposure)
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


def _exposure(config: DaemonConfig) -> str | None:
    """What a listener without client authentication gives away, for the startup log."""
    if config.listen.scheme == "unix" or config.tls_client_ca is not None:
        return None  # the socket is 0600; mutual TLS checks every client
    how = "--insecure" if config.insecure else "TLS without --tls-client-ca"
    uid = os.geteuid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = f"uid {uid}"
    power = "root" if uid == 0 else f"the rights of {user}"
    return (
        f"{how} on {config.listen} gives every local user {power}: anyone who can "
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
