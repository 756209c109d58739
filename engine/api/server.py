"""The gRPC server: chartd's services, health and reflection, on one address."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

import engine
from engine.api._rpc import add_service
from engine.api.address import Address
from engine.api.admission import Admission
from engine.api.chartd.v1 import containers_pb2, engine_pb2, exec_pb2
from engine.api.containers_service import ContainerService, ContainersServicer, StatusOf
from engine.api.engine_service import EngineServicer, Exporter
from engine.api.exec_service import ExecService, ExecServicer
from engine.api.tls import ServerTLS
from engine.errors import Conflict, InvalidParameter, Unavailable

__all__ = ["SERVICES", "ApiServer"]

log = logging.getLogger("chartd.api")

ENGINE = engine_pb2.DESCRIPTOR.services_by_name["Engine"]
CONTAINERS = containers_pb2.DESCRIPTOR.services_by_name["Containers"]
EXEC = exec_pb2.DESCRIPTOR.services_by_name["Exec"]
SERVICES = (ENGINE.full_name, CONTAINERS.full_name, EXEC.full_name)
"""The full names of chartd's services, as health and reflection list them."""

_EXEC_METHODS = ("exec_create", "exec_start", "exec_inspect")
MAX_MESSAGE = 4 * 1024 * 1024  # gRPC's default, stated: larger requests get RESOURCE_EXHAUSTED


class ApiServer:
    """chartd's services on a gRPC server, with the standard health and reflection services.

    ``containers`` (with ``status_of``), here or by :meth:`add_containers`,
    adds the Containers service. Calls run on ``workers`` threads, of which
    the calls that may wait take at most half (:mod:`engine.api.admission`).
    Bind with :meth:`bind`, then :meth:`start`; :meth:`stop` reports
    NOT_SERVING, refuses new calls and cancels the ones left after the grace
    period.
    """

    def __init__(
        self,
        eng: engine.Engine,
        *,
        version: str,
        containers: ContainerService | None = None,
        status_of: StatusOf | None = None,
        exporters: Mapping[str, Exporter] | None = None,
        workers: int = 128,
    ) -> None:
        self.engine = eng
        self.admission = Admission(workers)
        self.server = grpc.server(
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="chartd-rpc"),
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE),
                # Linux lets two listeners share a port with SO_REUSEPORT; a second
                # daemon must fail to bind instead of silently taking half the calls.
                ("grpc.so_reuseport", 0),
            ],
        )
        add_service(
            self.server,
            ENGINE,
            EngineServicer(eng, version=version, exporters=exporters),
            self.admission,
        )
        self.services: tuple[str, ...] = (ENGINE.full_name,)
        self.health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        if containers is not None:
            if status_of is None:
                raise InvalidParameter("the Containers service needs status_of")
            self.add_containers(containers, status_of)
        self._socket: Path | None = None

    def add_containers(self, containers: ContainerService, status_of: StatusOf) -> None:
        """Serve the Containers service on ``containers`` (before :meth:`start`)."""
        servicer = ContainersServicer(containers, self.engine, status_of=status_of)
        add_service(self.server, CONTAINERS, servicer, self.admission)
        self.services += (CONTAINERS.full_name,)
        # Asked of the class: a service that answers any attribute is not one with exec.
        if all(callable(getattr(type(containers), m, None)) for m in _EXEC_METHODS):
            execs: ExecService = containers  # type: ignore[assignment]
            add_service(self.server, EXEC, ExecServicer(execs), self.admission)
            self.services += (EXEC.full_name,)

    def bind(self, address: Address, tls: ServerTLS | None = None) -> None:
        """Listen on ``address``; with ``tls`` (TCP only), TLS or mutual TLS.

        A unix socket is created with mode 0600; a stale one (no daemon
        answers on it) is replaced; a live one is a Conflict.
        """
        if address.scheme == "unix":
            assert address.path is not None
            self._bind_unix(address.path)
            return
        if tls is not None:
            credentials = tls.credentials()
            bound = self._bind(lambda: self.server.add_secure_port(address.target, credentials))
        else:
            bound = self._bind(lambda: self.server.add_insecure_port(address.target))
        if not bound:
            raise Unavailable(f"cannot listen on {address}")

    def _bind(self, add: Callable[[], int]) -> int:
        try:
            return add()
        except RuntimeError as exc:  # grpc: "Failed to bind to address ..."
            raise Unavailable(f"cannot listen: {exc}") from None

    def _bind_unix(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() or path.is_symlink():
            if _answers(path):
                raise Conflict(f"another daemon is listening on unix://{path}")
            path.unlink()
        # The socket file is made by bind(2) with the process umask. The daemon binds
        # before any chart is registered, so no step of a saga can be making files
        # meanwhile: narrowing the umask for this one call is safe.
        previous = os.umask(0o177)
        try:
            bound = self._bind(lambda: self.server.add_insecure_port(f"unix://{path}"))
        finally:
            os.umask(previous)
        if not bound:
            raise Unavailable(f"cannot listen on unix://{path}")
        os.chmod(path, 0o600)
        self._socket = path

    def start(self) -> None:
        """Serve; health reports SERVING for the server and each service."""
        reflection.enable_server_reflection(
            (*self.services, health.SERVICE_NAME, reflection.SERVICE_NAME), self.server
        )
        self.server.start()
        for name in ("", *self.services):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    def stop(self, grace: float = 2.0) -> None:
        """Report NOT_SERVING, refuse new calls, cancel what runs after ``grace`` seconds."""
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()
        if self._socket is not None:
            with contextlib.suppress(FileNotFoundError):
                self._socket.unlink()
            self._socket = None


def _answers(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True
