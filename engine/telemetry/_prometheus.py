"""The engine's metrics for Prometheus to scrape: ``chartd serve --metrics-addr HOST:PORT``.

The instruments are the OpenTelemetry ones (:class:`~engine.telemetry.Telemetry`,
:class:`~engine.telemetry.StoreGauges`); an SDK reader that is read on demand stands beside
any exporter's, and each scrape turns what it reads into Prometheus's text
format, named as OpenTelemetry's Prometheus compatibility rules name them:
``chartd.transition.duration`` (unit ``s``) is ``chartd_transition_duration_seconds``,
the counter ``chartd.transitions`` is ``chartd_transitions_total``, an
attribute ``chartd.chart`` is the label ``chartd_chart``. prometheus-client's
WSGI application serves them, over HTTP or over mutual TLS.
"""

from __future__ import annotations

import logging
import re
import socket
import ssl
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from opentelemetry.sdk.metrics.export import (
    Gauge,
    Histogram,
    InMemoryMetricReader,
    Metric,
    Sum,
)
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    make_wsgi_app,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

from engine.errors import Unavailable

__all__ = ["MetricsEndpoint", "MetricsTLS", "scrape_reader"]

log = logging.getLogger("chartd.telemetry")

_TIMEOUT = 10.0  # seconds a connection may take to handshake, ask, and read its answer

_INVALID = re.compile(r"[^a-zA-Z0-9_:]")
# OpenTelemetry units in Prometheus's words; an annotation in braces says nothing there.
_UNITS = {"s": "seconds", "ms": "milliseconds", "By": "bytes", "1": "ratio"}


def scrape_reader() -> InMemoryMetricReader:
    """A reader the SDK collects from only when asked (each scrape), with cumulative totals."""
    return InMemoryMetricReader()


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True, slots=True)
class MetricsTLS:
    """The daemon's certificate and key, and the CA whose clients may scrape (mutual TLS)."""

    cert: Path
    key: Path
    client_ca: Path


def _name(metric: Metric) -> str:
    """The Prometheus name of an OpenTelemetry metric: legal characters, the unit's word."""
    name = _INVALID.sub("_", metric.name)
    unit = _UNITS.get(metric.unit or "", "")
    if unit and not name.endswith("_" + unit):
        name = f"{name}_{unit}"
    return name


def _labels(points: Sequence[Any]) -> list[str]:
    """Every attribute any point has, in first-seen order: a family's label names."""
    seen: dict[str, None] = {}
    for p in points:
        for key in p.attributes or {}:
            seen.setdefault(key, None)
    return list(seen)


def _values(point: Any, keys: Sequence[str]) -> list[str]:
    # A label a point lacks is empty, which Prometheus reads as absent.
    attributes = point.attributes or {}
    # A value no UTF-8 can hold (a lone surrogate) would fail every scrape from then on.
    return [_encodable(str(attributes.get(k, ""))) for k in keys]


def _encodable(text: str) -> str:
    return text.encode("utf-8", "replace").decode("utf-8")


def _family(metric: Metric) -> Any:
    """One OpenTelemetry metric as a Prometheus metric family (None for a kind not kept)."""
    data, name, doc = metric.data, _name(metric), metric.description or metric.name
    points: list[Any] = list(data.data_points)
    keys = _labels(points)
    labels = [_INVALID.sub("_", k) for k in keys]
    if isinstance(data, Sum) and data.is_monotonic:
        counter = CounterMetricFamily(name.removesuffix("_total"), doc, labels=labels)
        for p in points:
            counter.add_metric(_values(p, keys), p.value)
        return counter
    if isinstance(data, Sum | Gauge):
        gauge = GaugeMetricFamily(name, doc, labels=labels)
        for p in points:
            gauge.add_metric(_values(p, keys), p.value)
        return gauge
    if isinstance(data, Histogram):
        histogram = HistogramMetricFamily(name, doc, labels=labels)
        for p in points:
            running, buckets = 0, []
            for bound, count in zip(p.explicit_bounds, p.bucket_counts, strict=False):
                running += count
                buckets.append((_bound(bound), running))
            buckets.append(("+Inf", p.count))
            histogram.add_metric(_values(p, keys), buckets, p.sum)
        return histogram
    return None


def _bound(value: float) -> str:
    return repr(float(value))


class _Collector(Collector):
    """Reads the SDK's metrics at each scrape and hands them over as Prometheus families."""

    def __init__(self, reader: InMemoryMetricReader) -> None:
        self._reader = reader

    def collect(self) -> Iterator[Any]:
        """The families of every metric the reader holds now."""
        data = self._reader.get_metrics_data()
        if data is None:
            return
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    family = _family(metric)
                    if family is not None:
                        yield family


class _Quiet(WSGIRequestHandler):
    """A request handler that does not write a line per scrape on stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        """Nothing: a scrape every few seconds is no news."""


class _Server(ThreadingMixIn, WSGIServer):
    """prometheus-client's application on a server that handshakes TLS off the accept loop.

    A client that connects and says nothing holds only its own thread, for
    ``_TIMEOUT`` seconds: prometheus-client's own server handshakes in its
    accept loop, where one such client would stop every scrape.
    """

    daemon_threads = True
    tls: ssl.SSLContext | None = None

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Serve one connection, on its own thread: handshake (TLS), then the request."""
        request.settimeout(_TIMEOUT)
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        with self.tls.wrap_socket(request, server_side=True) as secured:
            super().finish_request(secured, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that failed the handshake or went away: logged quietly, not printed."""
        log.debug("metrics request from %s failed", client_address, exc_info=True)


def _tls_context(tls: MetricsTLS) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(tls.cert), str(tls.key))
    context.load_verify_locations(cafile=str(tls.client_ca))
    context.verify_mode = ssl.CERT_REQUIRED
    return context


class MetricsEndpoint:
    """An HTTP(S) server of the metrics at ``/metrics``, on threads of its own.

    With ``tls`` it serves HTTPS to clients whose certificate
    ``tls.client_ca`` signed, and nobody else; without, plain HTTP, which
    belongs on loopback only (``chartd serve`` refuses any other host
    without mutual TLS): the metrics name charts, events and error kinds,
    and a scrape reads the database. Besides the engine's metrics it serves
    prometheus-client's ``process_*``, ``python_gc_*`` and ``python_info``.
    """

    def __init__(
        self, reader: InMemoryMetricReader, host: str, port: int, tls: MetricsTLS | None = None
    ) -> None:
        registry = CollectorRegistry(auto_describe=False)
        for standard in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            registry.register(standard)
        registry.register(_Collector(reader))
        try:
            family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
            bound: type[_Server] = type("_Bound", (_Server,), {"address_family": family})
            self._server = bound((host, port), _Quiet)
            self._server.set_app(make_wsgi_app(registry))
            if tls is not None:
                self._server.tls = _tls_context(tls)
        except (OSError, ssl.SSLError) as exc:
            reason = exc.strerror or str(exc)
            raise Unavailable(
                f"cannot serve metrics on {_hostport(host, port)}: {reason}"
            ) from None
        self.scheme = "http" if self._server.tls is None else "https"
        self.host, self.port = host, int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="chartd-metrics", daemon=True
        )
        self._thread.start()
        self._closed = threading.Event()

    @property
    def url(self) -> str:
        """Where Prometheus scrapes, e.g. ``http://127.0.0.1:9464/metrics``."""
        return f"{self.scheme}://{_hostport(self.host, self.port)}/metrics"

    def close(self) -> None:
        """Stop serving (a scrape in progress finishes); idempotent."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
