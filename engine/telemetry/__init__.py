"""OpenTelemetry behind the Observer port: traces and metrics of fires and steps.

In code, give the engine a :class:`Telemetry` observer; it uses the tracer
and meter providers passed to it, else the global ones::

    eng = engine.Engine.open(url, observer=Telemetry(tracer_provider=tp, meter_provider=mp))

``chartd serve --otel console|otlp`` builds its providers with
:func:`providers`; ``--metrics-addr`` adds a :func:`scrape_reader` to them
and serves it with :class:`MetricsEndpoint`; :class:`StoreGauges` counts
entities by state and pending timers. See docs/telemetry.md for the span
and metric names.
"""

from engine.telemetry._census import StoreGauges
from engine.telemetry._observer import Telemetry
from engine.telemetry._prometheus import MetricsEndpoint, MetricsTLS, scrape_reader
from engine.telemetry._providers import EXPORTERS, Providers, check_exporter, providers

__all__ = [
    "EXPORTERS",
    "MetricsEndpoint",
    "MetricsTLS",
    "Providers",
    "StoreGauges",
    "Telemetry",
    "check_exporter",
    "providers",
    "scrape_reader",
]
