"""OpenTelemetry behind the Observer port: traces and metrics of fires and steps.

In code, give the engine a :class:`Telemetry` observer; it uses the tracer
and meter providers passed to it, else the global ones::

    eng = engine.Engine.open(url, observer=Telemetry(tracer_provider=tp, meter_provider=mp))

``chartd serve --otel console|otlp`` builds its providers with
:func:`providers`. See docs/telemetry.md for the span and metric names.
"""

from engine.telemetry._observer import Telemetry
from engine.telemetry._providers import EXPORTERS, Providers, check_exporter, providers

__all__ = ["EXPORTERS", "Providers", "Telemetry", "check_exporter", "providers"]
