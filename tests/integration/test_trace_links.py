"""Where each transition sits in a trace, journaled; what the runtime fires links to its cause.

A real engine on a SQLite file and on PostgreSQL, the Telemetry observer
with the SDK's in-memory exporter. A timer fired by another engine (as after
a daemon restart) still links to the span of the fire that set it: the link
is read from the journal, not from memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from clock import FakeClock
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import format_span_id, format_trace_id

import engine
from engine import Bindings, Context, Step, errors
from engine.telemetry import Telemetry

LEASE = """
chart: lease
initial: idle
states: {idle: {}, held: {}, expired: {}, closed: {}, broken: {}}
transitions:
  - {event: take, from: idle, to: held, steps: [arm]}
  - {event: expire, from: held, to: expired, then: {event: close}}
  - {event: close, from: expired, to: closed}
  - event: break
    from: held
    to: closed
    steps: [fail]
    on_failure: {to: broken, then: {event: mend}}
  - {event: mend, from: broken, to: held}
"""


@dataclass
class Traced:
    eng: engine.Engine
    spans: InMemorySpanExporter
    provider: TracerProvider

    def span(self, record: engine.TransitionRecord) -> ReadableSpan:
        """The span this engine exported for the journaled ``record``."""
        assert record.span_id is not None
        [found] = [
            s
            for s in self.spans.get_finished_spans()
            if s.name.startswith("chartd.fire ")
            and format_span_id(s.context.span_id) == record.span_id
        ]
        return found


def _arm(ctx: Context) -> None:
    ctx.schedule("expire", 60)


def _fail(ctx: Context) -> None:
    raise errors.Unavailable("the lock is jammed")


@pytest.fixture
def opened(shared_store_url: str) -> Iterator[tuple[FakeClock, list[Traced]]]:
    """A way to open engines on one database (as daemons one after the other), closed after."""
    clock = FakeClock(1_000_000.0)
    engines: list[Traced] = []
    yield clock, engines
    for t in engines:
        t.eng.close()
        t.provider.shutdown()


def _open(url: str, clock: FakeClock, engines: list[Traced]) -> Traced:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    eng = engine.Engine.open(
        url, clock=clock, timers=False, observer=Telemetry(tracer_provider=provider)
    )
    steps = {"arm": Step(_arm, lambda ctx, p: None), "fail": Step(_fail, lambda ctx, p: None)}
    eng.register(engine.parse_chart(LEASE), Bindings(steps=steps))
    traced = Traced(eng, spans, provider)
    engines.append(traced)
    return traced


def test_a_timer_fired_after_a_restart_and_its_follow_up_link_to_their_causes(
    shared_store_url: str, opened: tuple[FakeClock, list[Traced]]
) -> None:
    clock, engines = opened
    first = _open(shared_store_url, clock, engines)
    lease = first.eng.create("lease", "l1")
    taken = first.eng.fire(lease, "take")
    [take] = first.eng.history(lease)
    take_span = first.span(take)
    assert (take.trace_id, take.span_id, take.caused_by) == (
        format_trace_id(take_span.context.trace_id),
        format_span_id(take_span.context.span_id),
        None,
    )
    assert take.id == taken.transition_id
    first.eng.close()

    second = _open(shared_store_url, clock, engines)
    clock.advance(61)
    assert second.eng.run_due_timers() == 1
    take, expire, close = second.eng.history(lease)
    assert [t.event for t in (take, expire, close)] == ["take", "expire", "close"]
    assert (expire.caused_by, close.caused_by) == (take.id, expire.id)
    for caused, cause in ((expire, take), (close, expire)):
        span = second.span(caused)
        assert span.parent is None  # a trace of its own, linked to where it came from
        [link] = span.links
        assert format_trace_id(link.context.trace_id) == cause.trace_id
        assert format_span_id(link.context.span_id) == cause.span_id
        assert caused.trace_id != cause.trace_id


def test_a_failed_saga_is_journaled_with_its_trace_and_its_follow_up_links_to_it(
    shared_store_url: str, opened: tuple[FakeClock, list[Traced]]
) -> None:
    clock, engines = opened
    traced = _open(shared_store_url, clock, engines)
    lease = traced.eng.create("lease", "l2")
    traced.eng.fire(lease, "take")
    with pytest.raises(errors.Unavailable):
        traced.eng.fire(lease, "break")
    _, broke, mend = traced.eng.history(lease)
    assert (broke.event, broke.status, mend.event) == ("break", "failed", "mend")
    assert broke.trace_id == format_trace_id(traced.span(broke).context.trace_id)
    assert mend.caused_by == broke.id
    [link] = traced.span(mend).links
    assert format_span_id(link.context.span_id) == broke.span_id


def test_a_fire_names_its_cause_and_a_bad_cause_is_refused(
    shared_store_url: str, opened: tuple[FakeClock, list[Traced]]
) -> None:
    clock, engines = opened
    traced = _open(shared_store_url, clock, engines)
    a, b = traced.eng.create("lease", "a"), traced.eng.create("lease", "b")
    cause = traced.eng.fire(a, "take").transition_id
    assert cause is not None
    traced.eng.fire(b, "take", caused_by=cause)
    [caused] = traced.eng.history(b)
    assert caused.caused_by == cause
    [link] = traced.span(caused).links
    assert format_span_id(link.context.span_id) == traced.eng.history(a)[0].span_id
    # A cause the journal does not hold is kept, with no link.
    other = traced.eng.create("lease", "c")
    traced.eng.fire(other, "take", caused_by="no-such-transition")
    [unknown] = traced.eng.history(other)
    assert unknown.caused_by == "no-such-transition"
    assert not traced.span(unknown).links
    for bad in ("", "x" * 65, 7):
        with pytest.raises(errors.InvalidParameter, match="caused_by"):
            traced.eng.fire(a, "expire", caused_by=bad)  # type: ignore[arg-type]


def test_fire_many_runs_every_unit_in_the_callers_trace(
    shared_store_url: str, opened: tuple[FakeClock, list[Traced]]
) -> None:
    clock, engines = opened
    traced = _open(shared_store_url, clock, engines)
    names = [f"m{i}" for i in range(6)]
    traced.eng.create_many("lease", [(n, None) for n in names])
    tracer = traced.provider.get_tracer("test")
    with tracer.start_as_current_span("batch job") as job:
        results = traced.eng.fire_many([(n, "take") for n in names], concurrency=4)
    assert not [r for r in results if isinstance(r, errors.ChartdError)]
    fires = [s for s in traced.spans.get_finished_spans() if s.name == "chartd.fire lease.take"]
    assert len(fires) == len(names)
    assert {s.parent.span_id if s.parent else None for s in fires} == {
        job.get_span_context().span_id
    }
    trace = format_trace_id(job.get_span_context().trace_id)
    assert {traced.eng.history(n)[0].trace_id for n in names} == {trace}
