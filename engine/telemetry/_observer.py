"""The Observer port reported to OpenTelemetry: a span per fire and per step, four instruments."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from contextvars import Token
from dataclasses import dataclass

from opentelemetry import context, metrics, trace
from opentelemetry.context import Context
from opentelemetry.util.types import AttributeValue

from engine.errors import Category, ChartdError
from engine.ports import SpanRef

__all__ = ["DURATION_BUCKETS", "Telemetry"]

SCOPE = "chartd"

DURATION_BUCKETS: Sequence[float] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
"""Histogram bounds in seconds: a direct fire takes under a millisecond, a saga up to minutes."""


@dataclass(slots=True)
class _Open:
    """A span this thread started and has not ended, and the context it made current."""

    span: trace.Span
    token: Token[Context]
    fire: bool


def _error_type(error: BaseException) -> str:
    """The ``error.type`` attribute: the category of a chartd error, else the class's name."""
    if isinstance(error, ChartdError):
        return error.category.value
    cls = type(error)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


def _span_context(ref: SpanRef) -> trace.SpanContext:
    """The span context a journaled :class:`SpanRef` names, as a link's target."""
    return trace.SpanContext(
        int(ref.trace_id, 16),
        int(ref.span_id, 16),
        is_remote=True,
        trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
    )


def _is_fault(error: BaseException) -> bool:
    """Whether a refusal is the service's fault (status ERROR) rather than the caller's."""
    return not isinstance(error, ChartdError) or error.category is Category.SYSTEM


class Telemetry:
    """An :class:`~engine.ports.Observer` that reports to OpenTelemetry.

    Pass it to the engine: ``engine.Engine.open(url, observer=Telemetry())``.
    Each fire is a span ``chartd.fire <chart>.<event>``, made current while
    it runs, so each step's do (``chartd.step <name>``) and undo
    (``chartd.undo <name>``) is a child span of it, and so is the span of
    anything a step does that is traced. The fire's span is itself a child of
    whatever span was current when ``fire`` was called.

    Metrics: ``chartd.transitions`` and ``chartd.steps`` (counters),
    ``chartd.transition.duration`` and ``chartd.step.duration`` (histograms,
    in seconds). The providers are those given, else the global ones (no-ops
    until an SDK is installed as global).
    """

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        self._tracer = trace.get_tracer(SCOPE, tracer_provider=tracer_provider)
        meter = metrics.get_meter(SCOPE, meter_provider=meter_provider)
        self._transitions = meter.create_counter(
            "chartd.transitions",
            unit="{transition}",
            description="Fires of an event on an entity, by chart, event and outcome.",
        )
        self._transition_duration = meter.create_histogram(
            "chartd.transition.duration",
            unit="s",
            description="How long a fire took, from the call to its outcome.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._steps = meter.create_counter(
            "chartd.steps",
            unit="{step}",
            description="Saga steps run (phase do) and compensated (phase undo), by outcome.",
        )
        self._step_duration = meter.create_histogram(
            "chartd.step.duration",
            unit="s",
            description="How long a step's do or undo took.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        # The spans each thread has open, innermost last: the runtime's calls nest.
        self._local = threading.local()

    def _stack(self) -> list[_Open]:
        stack: list[_Open] | None = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    def _open(
        self,
        name: str,
        attributes: dict[str, AttributeValue],
        *,
        fire: bool,
        links: Sequence[trace.Link] = (),
    ) -> trace.Span:
        span = self._tracer.start_span(
            name, kind=trace.SpanKind.INTERNAL, attributes=attributes, links=links
        )
        token = context.attach(trace.set_span_in_context(span))
        self._stack().append(_Open(span, token, fire))
        return span

    def _close(self, *, fire: bool) -> trace.Span | None:
        """The innermost open span of this kind, made current no more; None if there is none.

        Spans opened after it whose end never came (a step that a
        ``KeyboardInterrupt`` went through) are ended here, as errors, so
        that the thread's context is what it was before the fire.
        """
        stack = self._stack()
        if not any(o.fire == fire for o in stack):
            return None
        while True:
            top = stack.pop()
            context.detach(top.token)
            if top.fire == fire:
                return top.span
            top.span.set_status(trace.StatusCode.ERROR, "its end was never reported")
            top.span.end()

    def transition_started(
        self, chart: str, entity_id: str, event: str, name: str, cause: SpanRef | None
    ) -> SpanRef | None:
        """Open the fire's span, linked to ``cause``'s, and make it current; where it sits.

        The span is a child of the current one (an RPC's, whose parent a
        ``traceparent`` may name); a fire with none starts a trace of its
        own. What is returned is the span's context, also when the tracer
        does not record: a no-op tracer hands on its parent's, so the journal
        keeps a caller's trace id even with tracing off.
        """
        links = [trace.Link(_span_context(cause))] if cause is not None else []
        span = self._open(
            f"chartd.fire {chart}.{event}",
            {
                "chartd.chart": chart,
                "chartd.entity.id": entity_id,
                "chartd.entity.name": name,
                "chartd.event": event,
            },
            fire=True,
            links=links,
        )
        ctx = span.get_span_context()
        if not ctx.is_valid:
            return None
        return SpanRef(trace.format_trace_id(ctx.trace_id), trace.format_span_id(ctx.span_id))

    def transition(
        self,
        chart: str,
        entity_id: str,
        event: str,
        outcome: str,
        seconds: float,
        error: BaseException | None,
    ) -> None:
        """End the fire's span with its outcome; count the fire and record its duration."""
        self._end(
            {"chartd.chart": chart, "chartd.event": event, "chartd.outcome": outcome},
            seconds,
            error,
            fire=True,
            fault=error is not None and (outcome == "failed" or _is_fault(error)),
        )

    def step_started(self, chart: str, entity_id: str, name: str, phase: str, index: int) -> None:
        """Open the span of a step's do or undo, a child of the current one (the fire's)."""
        self._open(
            f"chartd.{'step' if phase == 'do' else 'undo'} {name}",
            {
                "chartd.chart": chart,
                "chartd.entity.id": entity_id,
                "chartd.step.name": name,
                "chartd.step.phase": phase,
                "chartd.step.index": index,
            },
            fire=False,
        )

    # The Observer port's signature, pinned by tests/unit/test_public_api.py.
    def step(
        self,
        chart: str,
        entity_id: str,
        name: str,
        phase: str,
        outcome: str,
        seconds: float,
        error: BaseException | None,
    ) -> None:
        """End the step's span with its outcome; count the step and record its duration."""
        self._end(
            {
                "chartd.chart": chart,
                "chartd.step.name": name,
                "chartd.step.phase": phase,
                "chartd.outcome": outcome,
            },
            seconds,
            error,
            fire=False,
            fault=error is not None,
        )

    def _end(
        self,
        attributes: dict[str, AttributeValue],
        seconds: float,
        error: BaseException | None,
        *,
        fire: bool,
        fault: bool,
    ) -> None:
        """Count and time a fire or a step, then end its span; ``fault``: status ERROR.

        The metrics get the span's attributes less the entity id, whose
        every value would be a new time series.
        """
        if error is not None:
            attributes["error.type"] = _error_type(error)
        if fire:
            self._transitions.add(1, attributes)
            self._transition_duration.record(seconds, attributes)
        else:
            self._steps.add(1, attributes)
            self._step_duration.record(seconds, attributes)
        span = self._close(fire=fire)
        if span is None:
            return
        span.set_attributes(attributes)
        if fault and error is not None:
            span.record_exception(error)
            span.set_status(trace.StatusCode.ERROR, str(error))
        span.end()
