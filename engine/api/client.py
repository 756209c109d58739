"""A client of the daemon: a channel to it and the stubs of its services.

::

    with Client("unix:///run/user/1000/chartd.sock") as c:
        c.containers.Start(containers_pb2.StartContainerRequest(container="web"))

A failed call raises :class:`grpc.RpcError`; :func:`engine.api.status.to_error`
turns it into the :class:`~engine.errors.ChartdError` the daemon raised.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import grpc
from grpc_health.v1 import health_pb2

from engine.api.address import Address, default_host, parse_address
from engine.api.chartd.v1 import (
    containers_pb2,
    containers_pb2_grpc,
    engine_pb2,
    engine_pb2_grpc,
    exec_pb2_grpc,
)
from engine.api.tls import ClientTLS
from engine.errors import Unavailable

__all__ = ["Client"]


class Client:
    """A connection to a chartd daemon at ``host`` (default :func:`default_host`).

    A ``tcp://`` host is reached over TLS when ``tls_ca`` (the CA that signed
    the daemon's certificate) or a client certificate (``tls_cert`` and
    ``tls_key``, for a daemon that requires one) is given, in the clear
    otherwise (a daemon started with ``--insecure``, on loopback).
    ``metadata`` goes with every call: the CLI's trace context
    (``traceparent``, ``tracestate``), for one.
    """

    def __init__(
        self,
        host: str | None = None,
        *,
        tls_ca: Path | None = None,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        metadata: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.address: Address = parse_address(host or default_host())
        tls = ClientTLS(tls_ca, tls_cert, tls_key)
        if self.address.scheme == "tcp" and tls.wanted:
            self._raw = grpc.secure_channel(self.address.target, tls.credentials())
        else:
            self._raw = grpc.insecure_channel(self.address.target)
        self.channel: grpc.Channel = self._raw
        if metadata:
            self.channel = grpc.intercept_channel(self._raw, _WithMetadata(tuple(metadata)))
        self.engine = engine_pb2_grpc.EngineStub(self.channel)
        self.containers = containers_pb2_grpc.ContainersStub(self.channel)
        self.exec = exec_pb2_grpc.ExecStub(self.channel)
        # The health stub's published types lack its methods: the one call, typed here.
        self.health_check: grpc.UnaryUnaryMultiCallable[
            health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse
        ] = self.channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel; calls in flight are cancelled."""
        self._raw.close()

    def list_containers(
        self, request: containers_pb2.ListContainersRequest
    ) -> list[containers_pb2.ContainerSummary]:
        """Every container a List request matches, page after page."""
        return _every_page(self.containers.List, request, "containers")

    def history(self, request: engine_pb2.GetHistoryRequest) -> list[engine_pb2.Transition]:
        """An entity's whole journal, page after page."""
        return _every_page(self.engine.GetHistory, request, "transitions")

    def wait_ready(self, timeout: float = 10.0, service: str = "") -> None:
        """Return once the daemon reports SERVING; Unavailable after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while True:
            try:
                answer = self.health_check(
                    health_pb2.HealthCheckRequest(service=service),
                    timeout=max(0.1, deadline - time.monotonic()),
                )
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
                last = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
            except grpc.RpcError as exc:
                last = str(exc.code()) if isinstance(exc, grpc.Call) else repr(exc)
            if time.monotonic() >= deadline:
                raise Unavailable(f"the daemon at {self.address} is not serving ({last})")
            time.sleep(0.05)


class _Details(NamedTuple):
    """A call's details with other metadata (grpc's ClientCallDetails is an interface)."""

    method: str
    timeout: float | None
    metadata: Sequence[tuple[str, str | bytes]] | None
    credentials: grpc.CallCredentials | None
    wait_for_ready: bool | None
    compression: grpc.Compression | None


class _WithMetadata(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Adds fixed metadata to every unary and server-streaming call (chartd has no other)."""

    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self._metadata = metadata

    def _details(self, details: grpc.ClientCallDetails) -> _Details:
        return _Details(
            details.method,
            details.timeout,
            (*(details.metadata or ()), *self._metadata),
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        """The call, with the metadata."""
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        """The call, with the metadata."""
        return continuation(self._details(details), request)


def _every_page(call: Callable[[Any], Any], request: Any, field: str) -> list[Any]:
    """The items of ``field`` on every page of a paged listing, from ``request`` on."""
    page = type(request)()
    page.CopyFrom(request)
    items: list[Any] = []
    while True:
        answer = call(page)
        items.extend(getattr(answer, field))
        if not answer.next_page_token:
            return items
        page.page_token = answer.next_page_token
