"""OpenTelemetry traces and metrics of a real engine on a real SQLite file.

The SDK's in-memory exporter and reader stand where a collector would be;
everything else is what runs in production: the engine, its journal, the
Telemetry observer and the SDK's providers.
"""

from __future__ import annotations

import itertools
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import engine
from engine import Bindings, Context, Step, errors
from engine.telemetry import Telemetry

JOB = """
chart: job
initial: idle
states:
  idle: {}
  starting: {transient: true}
  running: {}
transitions:
  - {event: start, from: idle, to: running, via: starting, steps: [fetch, mount, launch]}
  - {event: stop, from: running, to: idle}
rejections:
  - {event: start, in: running, error: not_modified, message: "the job is already running"}
"""

# A chart whose one step fires an event on another entity: nested fires.
PARENT = """
chart: parent
initial: idle
states: {idle: {}, busy: {}}
transitions:
  - {event: spawn, from: idle, to: busy, steps: [child]}
"""


@dataclass
class Observed:
    eng: engine.Engine
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    ran: list[str]

    def finished(self) -> list[ReadableSpan]:
        """The finished spans in the order they started."""
        return sorted(self.spans.get_finished_spans(), key=lambda s: s.start_time or 0)

    def points(self, name: str) -> dict[tuple[tuple[str, Any], ...], Any]:
        """The data points of metric ``name``, by their sorted attributes."""
        data = self.metrics.get_metrics_data()
        assert data is not None
        found = {}
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                assert sm.scope.name == "chartd"
                for metric in sm.metrics:
                    if metric.name == name:
                        for p in metric.data.data_points:
                            found[tuple(sorted((p.attributes or {}).items()))] = p
        return found


@pytest.fixture
def observed(tmp_path: Path) -> Iterator[Observed]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    ran: list[str] = []

    def step(name: str) -> Step:
        def do(ctx: Context) -> None:
            ran.append(f"do {name}")
            if ctx.params.get("fail") == name:
                raise errors.Unavailable(f"{name} is out of service")

        def undo(ctx: Context, payload: Any) -> None:
            ran.append(f"undo {name}")
            if ctx.params.get("fail_undo") == name:
                raise RuntimeError(f"cannot undo {name}")

        return Step(do, undo)

    observer = Telemetry(tracer_provider=tracer_provider, meter_provider=meter_provider)
    with engine.Engine.open(f"sqlite:///{tmp_path / 'chartd.db'}", observer=observer) as eng:
        eng.register(
            engine.parse_chart(JOB),
            Bindings(steps={n: step(n) for n in ("fetch", "mount", "launch")}),
        )
        eng.register(
            engine.parse_chart(PARENT),
            Bindings(steps={"child": Step(lambda ctx: eng.fire("worker", "start").event, None)}),
        )
        yield Observed(eng, spans, reader, ran)
    tracer_provider.shutdown()
    meter_provider.shutdown()


def test_a_committed_saga_is_a_fire_span_with_a_child_span_per_step(observed: Observed) -> None:
    job = observed.eng.create("job", "nightly")
    observed.eng.fire(job, "start")

    fire, *steps = observed.finished()
    assert fire.name == "chartd.fire job.start"
    assert fire.kind is SpanKind.INTERNAL
    assert fire.parent is None
    assert fire.status.status_code is StatusCode.UNSET
    assert dict(fire.attributes or {}) == {
        "chartd.chart": "job",
        "chartd.entity.id": job.id,
        "chartd.entity.name": job.name,
        "chartd.event": "start",
        "chartd.outcome": "committed",
    }
    assert [s.name for s in steps] == [
        "chartd.step fetch",
        "chartd.step mount",
        "chartd.step launch",
    ]
    for index, span in enumerate(steps):
        assert span.parent is not None and fire.context is not None
        assert span.parent.span_id == fire.context.span_id
        assert span.context is not None and span.context.trace_id == fire.context.trace_id
        assert dict(span.attributes or {}) == {
            "chartd.chart": "job",
            "chartd.entity.id": job.id,
            "chartd.step.name": ["fetch", "mount", "launch"][index],
            "chartd.step.phase": "do",
            "chartd.step.index": index,
            "chartd.outcome": "ok",
        }
    # Real times, nested: each step within the fire, one after the other.
    times = [(s.start_time or 0, s.end_time or 0) for s in steps]
    assert (fire.start_time or 0) <= times[0][0]
    assert all(start <= end for start, end in times)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(times))
    assert times[-1][1] <= (fire.end_time or 0)


def test_a_failed_saga_is_an_error_span_with_its_compensations(observed: Observed) -> None:
    job = observed.eng.create("job", "weekly")
    with pytest.raises(errors.Unavailable, match="launch is out of service"):
        observed.eng.fire(job, "start", {"fail": "launch", "fail_undo": "fetch"})
    assert observed.ran == [
        "do fetch",
        "do mount",
        "do launch",
        "undo mount",
        "undo fetch",
    ]

    fire, *children = observed.finished()
    assert fire.name == "chartd.fire job.start"
    assert fire.status.status_code is StatusCode.ERROR
    assert fire.status.description == "launch is out of service"
    assert fire.attributes is not None
    assert fire.attributes["chartd.outcome"] == "failed"
    assert fire.attributes["error.type"] == "unavailable"
    assert [e.name for e in fire.events] == ["exception"]
    assert fire.context is not None
    assert all(c.parent and c.parent.span_id == fire.context.span_id for c in children)
    summary = [
        (
            c.name,
            (c.attributes or {})["chartd.step.index"],
            (c.attributes or {})["chartd.outcome"],
            (c.attributes or {}).get("error.type"),
            c.status.status_code,
        )
        for c in children
    ]
    assert summary == [
        ("chartd.step fetch", 0, "ok", None, StatusCode.UNSET),
        ("chartd.step mount", 1, "ok", None, StatusCode.UNSET),
        ("chartd.step launch", 2, "error", "unavailable", StatusCode.ERROR),
        ("chartd.undo mount", 1, "ok", None, StatusCode.UNSET),
        ("chartd.undo fetch", 0, "error", "system", StatusCode.ERROR),
    ]
    assert [(c.attributes or {})["chartd.step.phase"] for c in children] == ["do"] * 3 + [
        "undo"
    ] * 2
    undo_fetch = children[-1]
    assert "undo of step fetch failed: RuntimeError: cannot undo fetch" in (
        undo_fetch.status.description or ""
    )


def test_a_rejection_has_no_step_spans_and_is_not_an_error(observed: Observed) -> None:
    job = observed.eng.create("job", "hourly")
    observed.eng.fire(job, "start")
    observed.spans.clear()
    with pytest.raises(errors.NotModified):
        observed.eng.fire(job, "start")

    [fire] = observed.finished()
    assert fire.name == "chartd.fire job.start"
    assert fire.attributes is not None
    assert fire.attributes["chartd.outcome"] == "rejected"
    assert fire.attributes["error.type"] == "not_modified"
    # The caller's mistake, not the service's: no error status, no exception event.
    assert fire.status.status_code is StatusCode.UNSET
    assert not fire.events


def test_an_idempotent_replay_runs_nothing_again(observed: Observed) -> None:
    job = observed.eng.create("job", "daily")
    observed.eng.fire(job, "start", idempotency_key="k1")
    observed.spans.clear()
    assert observed.eng.fire(job, "start", idempotency_key="k1").replayed

    [fire] = observed.finished()
    assert fire.attributes is not None
    assert fire.attributes["chartd.outcome"] == "replayed"
    assert "error.type" not in fire.attributes
    assert fire.status.status_code is StatusCode.UNSET


def test_a_fire_inside_a_step_is_a_child_of_that_step(observed: Observed) -> None:
    observed.eng.create("job", "worker")
    boss = observed.eng.create("parent", "boss")
    observed.eng.fire(boss, "spawn")

    spans = observed.finished()
    assert [s.name for s in spans] == [
        "chartd.fire parent.spawn",
        "chartd.step child",
        "chartd.fire job.start",
        "chartd.step fetch",
        "chartd.step mount",
        "chartd.step launch",
    ]
    ids = [s.context.span_id for s in spans if s.context]
    parents = [s.parent.span_id if s.parent else None for s in spans]
    assert parents == [None, ids[0], ids[1], ids[2], ids[2], ids[2]]


def test_metrics_count_every_fire_and_step_exactly(observed: Observed) -> None:
    eng = observed.eng
    job = eng.create("job", "counted")
    eng.fire(job, "start", idempotency_key="first")
    eng.fire(job, "start", idempotency_key="first")  # replayed
    with pytest.raises(errors.NotModified):
        eng.fire(job, "start")
    eng.fire(job, "stop")
    with pytest.raises(errors.Unavailable):
        eng.fire(job, "start", {"fail": "mount"})

    transitions = {k: p.value for k, p in observed.points("chartd.transitions").items()}
    job_start = (("chartd.chart", "job"), ("chartd.event", "start"))
    # A failed fire and a rejection carry error.type; the others do not.
    expected = {
        (*job_start, ("chartd.outcome", "committed")): 1,
        (*job_start, ("chartd.outcome", "replayed")): 1,
        (("chartd.chart", "job"), ("chartd.event", "stop"), ("chartd.outcome", "committed")): 1,
        (
            ("chartd.chart", "job"),
            ("chartd.event", "start"),
            ("chartd.outcome", "rejected"),
            ("error.type", "not_modified"),
        ): 1,
        (
            ("chartd.chart", "job"),
            ("chartd.event", "start"),
            ("chartd.outcome", "failed"),
            ("error.type", "unavailable"),
        ): 1,
    }
    assert transitions == {tuple(sorted(k)): v for k, v in expected.items()}
    durations = observed.points("chartd.transition.duration")
    assert durations.keys() == observed.points("chartd.transitions").keys()
    assert all(isinstance(p, HistogramDataPoint) and p.count == 1 for p in durations.values())
    assert all(p.sum > 0 for p in durations.values())

    steps = {
        (dict(k)["chartd.step.name"], dict(k)["chartd.step.phase"], dict(k)["chartd.outcome"]): (
            p.value
        )
        for k, p in observed.points("chartd.steps").items()
    }
    assert steps == {
        ("fetch", "do", "ok"): 2,
        ("mount", "do", "ok"): 1,
        ("launch", "do", "ok"): 1,
        ("mount", "do", "error"): 1,
        ("fetch", "undo", "ok"): 1,
    }
    step_durations = observed.points("chartd.step.duration")
    assert sum(p.count for p in step_durations.values()) == sum(steps.values())


def test_made_up_event_names_reach_no_metric_and_every_scrape_succeeds(
    observed: Observed,
) -> None:
    """A fire of an event the chart lacks is counted as ``(unknown)``: made-up names
    (a lone surrogate among them, which no exposition can encode) neither add series
    nor break the scrape endpoint, which answers every scrape after them."""
    from engine.telemetry import MetricsEndpoint  # noqa: PLC0415

    job = observed.eng.create("job", "hostile")
    made_up = ["nosuch", "\ud800", "x" * 10_000, "start\n", *(f"e{i}" for i in range(50))]
    for event in made_up:
        with pytest.raises(errors.InvalidParameter, match="unknown event"):
            observed.eng.fire(job, event)
    counted = {
        dict(k)["chartd.event"]: p.value for k, p in observed.points("chartd.transitions").items()
    }
    assert counted == {"(unknown)": len(made_up)}
    [fire] = [s for s in observed.finished() if s.name.startswith("chartd.fire")][-1:]
    assert fire.name == "chartd.fire job.(unknown)"
    endpoint = MetricsEndpoint(observed.metrics, "127.0.0.1", 0)
    try:
        for _ in range(2):  # the first scrape does not spoil the next
            with urllib.request.urlopen(endpoint.url, timeout=60) as answer:
                assert answer.status == 200
                text = answer.read().decode()
            assert 'chartd_event="(unknown)"' in text and "nosuch" not in text
    finally:
        endpoint.close()


def test_a_label_value_no_utf_8_can_hold_does_not_break_the_scrape() -> None:
    """Whatever reaches a label (here a lone surrogate), the exposition stays UTF-8."""
    from engine.telemetry import MetricsEndpoint, scrape_reader  # noqa: PLC0415

    reader = scrape_reader()
    counter = MeterProvider(metric_readers=[reader]).get_meter("chartd").create_counter("probe")
    counter.add(1, {"chart": "a\ud800b"})
    endpoint = MetricsEndpoint(reader, "127.0.0.1", 0)
    try:
        with urllib.request.urlopen(endpoint.url, timeout=60) as answer:
            assert answer.status == 200
            assert 'probe_total{chart="a?b"} 1.0' in answer.read().decode()
    finally:
        endpoint.close()
