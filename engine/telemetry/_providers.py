"""SDK providers with exporters, for a process that owns its telemetry (``chartd serve``).

A library embedding the engine leaves this to the application: it passes
its own providers to :class:`~engine.telemetry.Telemetry`, or installs
global ones.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from engine.errors import InvalidParameter

__all__ = ["EXPORTERS", "Providers", "check_exporter", "providers"]

log = logging.getLogger("chartd.telemetry")

EXPORTERS = ("off", "console", "otlp")
"""Where ``chartd serve --otel`` sends spans and metrics: nowhere, stderr, an OTLP endpoint."""

_OTLP_PACKAGE = "opentelemetry-exporter-otlp"
# OTEL_EXPORTER_OTLP_PROTOCOL -> the exporter package's module. grpc is the default, as
# for the Python SDK's own "otlp" exporter.
_OTLP_MODULES = {
    "grpc": "opentelemetry.exporter.otlp.proto.grpc",
    "http/protobuf": "opentelemetry.exporter.otlp.proto.http",
}
# Signal (as the OTEL_EXPORTER_OTLP_<SIGNAL>_* variables spell it) -> module, class.
_OTLP_EXPORTERS = {
    "TRACES": ("trace_exporter", "OTLPSpanExporter"),
    "METRICS": ("metric_exporter", "OTLPMetricExporter"),
}


@dataclass(frozen=True, slots=True)
class Providers:
    """A tracer provider and a meter provider with their exporters; shut down to flush them.

    No tracer provider when spans go nowhere (only metrics are read, by a scrape).
    """

    tracer_provider: TracerProvider | None
    meter_provider: MeterProvider

    def shutdown(self) -> None:
        """Export what is buffered, then stop the exporters' threads."""
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


def sdk_disabled() -> bool:
    """Whether OTEL_SDK_DISABLED asks for no telemetry at all (as the SDK reads it)."""
    return os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


def _protocol(signal: str) -> str:
    name = f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL"
    protocol = os.environ.get(name) or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc"
    if protocol not in _OTLP_MODULES:
        raise InvalidParameter(
            f"OTLP protocol {protocol!r} (from {name} or OTEL_EXPORTER_OTLP_PROTOCOL) is not "
            f"supported: use {' or '.join(_OTLP_MODULES)}"
        )
    return protocol


def check_exporter(exporter: str) -> None:
    """Raise InvalidParameter unless ``exporter`` is one of EXPORTERS and can be set up here."""
    if exporter not in EXPORTERS:
        raise InvalidParameter(f"invalid --otel {exporter!r}: use {', '.join(EXPORTERS)}")
    if exporter == "otlp" and not sdk_disabled():
        for signal in _OTLP_EXPORTERS:
            module = _OTLP_MODULES[_protocol(signal)]
            try:
                found = importlib.util.find_spec(module) is not None
            except ModuleNotFoundError:
                found = False
            if not found:
                raise InvalidParameter(
                    f"--otel otlp needs the package {_OTLP_PACKAGE}, which is not installed: "
                    f"pip install {_OTLP_PACKAGE}"
                )


def _otlp(signal: str) -> Any:
    """An OTLP exporter of ``signal``; it reads its endpoint, headers and so on from OTEL_*."""
    module, name = _OTLP_EXPORTERS[signal]
    return getattr(importlib.import_module(f"{_OTLP_MODULES[_protocol(signal)]}.{module}"), name)()


def providers(
    exporter: str, *, version: str, metric_readers: Sequence[MetricReader] = ()
) -> Providers | None:
    """Providers exporting to ``exporter`` (see EXPORTERS), and read by ``metric_readers``.

    None when there is nothing to do: ``exporter`` off (or OTEL_SDK_DISABLED)
    and no reader. Readers alone (a Prometheus scrape) give a meter
    provider and no tracer provider. The resource is the SDK's
    (OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME) with service.name
    ``chartd`` unless one was given, and ``version``. Spans go through a
    batch processor and metrics are exported every OTEL_METRIC_EXPORT_INTERVAL
    (60 s by default) and at shutdown.
    """
    check_exporter(exporter)
    exporting = exporter != "off"
    if exporting and sdk_disabled():
        log.info("OTEL_SDK_DISABLED is true: no telemetry exported")
        exporting = False
    if not exporting and not metric_readers:
        return None
    resource = Resource.create({SERVICE_VERSION: version})
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: "chartd"}))
    readers = list(metric_readers)
    tracer_provider = None
    if exporting:
        spans, metrics = _exporters(exporter)
        tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        tracer_provider.add_span_processor(BatchSpanProcessor(spans))
        readers.append(PeriodicExportingMetricReader(metrics))
        log.info("telemetry: spans and metrics to %s", exporter)
    meter_provider = MeterProvider(
        resource=resource, metric_readers=readers, shutdown_on_exit=False
    )
    return Providers(tracer_provider, meter_provider)


def _exporters(exporter: str) -> tuple[SpanExporter, MetricExporter]:
    """The span and metric exporters of ``exporter`` (console or otlp)."""
    if exporter == "console":
        return ConsoleSpanExporter(out=sys.stderr), ConsoleMetricExporter(out=sys.stderr)
    return _otlp("TRACES"), _otlp("METRICS")
