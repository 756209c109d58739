"""The Engine service: thin forwarding to :class:`engine.Engine`."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import grpc

import engine
from engine.api import _fields, paging
from engine.api._convert import (
    chart_message,
    entity_message,
    event_message,
    plain,
    transition_message,
)
from engine.api.chartd.v1 import engine_pb2, engine_pb2_grpc
from engine.api.status import CODES, reason
from engine.errors import ChartdError, InvalidParameter, NotFound

__all__ = ["API_VERSION", "EngineServicer", "Exporter"]

API_VERSION = "chartd.v1"

Exporter = Callable[[engine.Chart], str]
"""Renders a chart in one format (JSON, DOT, SVG, Mermaid, ...); given by the composition root."""

# A bulk call's units: its request and response stay far below the message limit.
_MOST_UNITS = 1000
_MOST_AT_ONCE = 64

WATCH_SLICE = 0.5  # seconds a stream waits for events before it checks its client is there


class EngineServicer(engine_pb2_grpc.EngineServicer):
    """Serves ``chartd.v1.Engine`` on ``eng``; ``exporters`` by format name."""

    def __init__(
        self, eng: engine.Engine, *, version: str, exporters: Mapping[str, Exporter] | None = None
    ) -> None:
        self.engine = eng
        self.version = version
        self.exporters = dict(exporters or {})

    def Version(
        self, request: engine_pb2.VersionRequest, context: grpc.ServicerContext
    ) -> engine_pb2.VersionResponse:
        return engine_pb2.VersionResponse(version=self.version, api_version=API_VERSION)

    def ListCharts(
        self, request: engine_pb2.ListChartsRequest, context: grpc.ServicerContext
    ) -> engine_pb2.ListChartsResponse:
        charts = self.engine.charts()
        return engine_pb2.ListChartsResponse(
            charts=[chart_message(charts[name]) for name in sorted(charts)]
        )

    def GetChart(
        self, request: engine_pb2.GetChartRequest, context: grpc.ServicerContext
    ) -> engine_pb2.GetChartResponse:
        name = _fields.check_text(request.name, "chart name")
        chart = self.engine.charts().get(name)
        if chart is None:
            raise NotFound(f"no chart {name!r} is registered")
        export = ""
        if request.format:
            fmt = _fields.check_text(request.format, "format", limit=32)
            render = self.exporters.get(fmt)
            if render is None:
                known = ", ".join(sorted(self.exporters)) or "none"
                raise InvalidParameter(f"unknown export format {fmt!r} (use one of: {known})")
            export = render(chart)
        return engine_pb2.GetChartResponse(chart=chart_message(chart), export=export)

    def CreateEntity(
        self, request: engine_pb2.CreateEntityRequest, context: grpc.ServicerContext
    ) -> engine_pb2.Entity:
        chart = _fields.check_text(request.chart, "chart")
        name = _fields.check_text(request.name, "entity name")
        _fields.check_struct(request.data, "data")
        return entity_message(self.engine.create(chart, name, plain(request.data)))

    def Fire(
        self, request: engine_pb2.FireRequest, context: grpc.ServicerContext
    ) -> engine_pb2.FireResponse:
        _fields.check_struct(request.params, "params")
        entity = self._entity(request.entity, request.chart)
        event = _fields.check_text(request.event, "event")
        key = _fields.optional_text(request.idempotency_key, "idempotency key", limit=300)
        result = self.engine.fire(entity, event, plain(request.params), idempotency_key=key)
        return _fire_response(result)

    def CreateMany(
        self, request: engine_pb2.CreateManyRequest, context: grpc.ServicerContext
    ) -> engine_pb2.CreateManyResponse:
        chart = _fields.check_text(request.chart, "chart")
        _check_units(len(request.items), "items")
        # A bad name is that unit's error (the engine checks it), not the call's.
        items = [(item.name, plain(item.data)) for item in request.items]
        results = []
        for outcome in self.engine.create_many(chart, items):
            if isinstance(outcome, ChartdError):
                results.append(engine_pb2.CreateManyResult(error=_unit_error(outcome)))
            else:
                results.append(engine_pb2.CreateManyResult(entity=entity_message(outcome)))
        return engine_pb2.CreateManyResponse(results=results)

    def FireMany(
        self, request: engine_pb2.FireManyRequest, context: grpc.ServicerContext
    ) -> engine_pb2.FireManyResponse:
        _check_units(len(request.requests), "requests")
        if request.concurrency > _MOST_AT_ONCE:
            raise InvalidParameter(
                f"concurrency must be at most {_MOST_AT_ONCE}, got {request.concurrency}"
            )
        units: list[tuple[str, str, dict[str, object], str | None] | ChartdError] = []
        for r in request.requests:
            try:
                ref = _fields.check_text(r.entity, "entity name or ID")
                if r.chart:  # a name several charts use: resolve it in its chart
                    ref = self.engine.get(ref, _fields.check_text(r.chart, "chart")).id
                event = _fields.check_text(r.event, "event")
                key = _fields.optional_text(r.idempotency_key, "idempotency key", limit=300)
                units.append((ref, event, plain(r.params), key))
            except ChartdError as exc:
                units.append(exc)
        fired = iter(
            self.engine.fire_many(
                [u for u in units if not isinstance(u, ChartdError)],
                concurrency=request.concurrency or 16,
            )
        )
        results = []
        for unit in units:
            outcome = unit if isinstance(unit, ChartdError) else next(fired)
            if isinstance(outcome, ChartdError):
                results.append(engine_pb2.FireManyResult(error=_unit_error(outcome)))
            else:
                results.append(engine_pb2.FireManyResult(response=_fire_response(outcome)))
        return engine_pb2.FireManyResponse(results=results)

    def GetEntity(
        self, request: engine_pb2.GetEntityRequest, context: grpc.ServicerContext
    ) -> engine_pb2.Entity:
        return entity_message(self._entity(request.entity, request.chart))

    def ListEntities(
        self, request: engine_pb2.ListEntitiesRequest, context: grpc.ServicerContext
    ) -> engine_pb2.ListEntitiesResponse:
        chart = _fields.optional_text(request.chart, "chart")
        status = _fields.optional_text(request.status, "status")
        _fields.check_map(request.labels, "label")
        limit = paging.page_size(request.page_size, most=1000) or 100
        after = _fields.page_token(request.page_token)
        page = self.engine.list(chart, status, after=after, limit=limit)
        wanted = dict(request.labels)
        # Every entity of the page is read (the next token moves past those the labels
        # leave out), but only those that fit in one response are sent.
        read = ((i, entity_message(e)) for i, e in enumerate(page.items) if _has_labels(e, wanted))
        sent, more = paging.fill(read, lambda pair: pair[1].ByteSize(), None)
        next_after = page.after
        if more:
            # The position of the last entity sent: the page it ends, listed again.
            next_after = self.engine.list(chart, status, after=after, limit=sent[-1][0] + 1).after
        return engine_pb2.ListEntitiesResponse(
            entities=[message for _, message in sent],
            next_page_token="" if next_after is None else str(next_after),
        )

    def GetHistory(
        self, request: engine_pb2.GetHistoryRequest, context: grpc.ServicerContext
    ) -> engine_pb2.GetHistoryResponse:
        entity = self._entity(request.entity, request.chart)
        limit = paging.page_size(request.page_size)
        after = _fields.page_token(request.page_token)
        journal = (transition_message(t) for t in self.engine.history(entity) if t.seq > after)
        page, more = paging.fill(journal, lambda t: t.ByteSize(), limit)
        return engine_pb2.GetHistoryResponse(
            transitions=page, next_page_token=str(page[-1].seq) if more else ""
        )

    def GetSequence(
        self, request: engine_pb2.GetSequenceRequest, context: grpc.ServicerContext
    ) -> engine_pb2.GetSequenceResponse:
        return engine_pb2.GetSequenceResponse(sequence=self.engine.sequence())

    def Watch(
        self, request: engine_pb2.WatchRequest, context: grpc.ServicerContext
    ) -> Iterator[engine_pb2.Event]:
        last = _fields.sequence(request.since, "since")
        kind = _fields.optional_text(request.type, "event type")
        chart = _fields.optional_text(request.chart, "chart")
        entity = _fields.optional_text(request.entity, "entity")
        # Filtered here rather than by the engine, so the position moves past every
        # event read: a quiet filter does not rescan the same events again and again.
        while context.is_active():
            for ev in self.engine.watch(last, timeout=WATCH_SLICE):
                last = ev.seq
                if (
                    (kind is None or ev.type == kind)
                    and (chart is None or ev.chart == chart)
                    and (entity is None or entity in (ev.entity_id, ev.entity_name))
                ):
                    yield event_message(ev)
                if not context.is_active():
                    return

    def MigrateChart(
        self, request: engine_pb2.MigrateChartRequest, context: grpc.ServicerContext
    ) -> Iterator[engine_pb2.MigrateChartProgress]:
        chart = _fields.check_text(request.chart, "chart name")
        plan = self.engine.migration_plan(chart, request.to_version or None)
        yield engine_pb2.MigrateChartProgress(
            version=plan.version, plan=plan.lines(), entities=plan.entities
        )
        if plan.illegal or plan.problems:
            raise InvalidParameter(
                f"cannot migrate {chart} to version {plan.version}: see the plan"
            )
        if request.dry_run:
            yield engine_pb2.MigrateChartProgress(version=plan.version, done=True)
            return
        # The migration runs on a thread of its own; its progress comes back through a
        # queue, so this stream sends each batch's count as it commits.
        # (moved, total) after each batch; then the report, or the error that ended it.
        told: queue.Queue[Any] = queue.Queue()

        def run() -> None:
            try:
                told.put(
                    self.engine.migrate(
                        chart,
                        plan.version,
                        batch=request.batch or 500,
                        progress=lambda moved, total: told.put((moved, total)),
                    )
                )
            except BaseException as exc:  # handed to the stream, which raises it
                told.put(exc)

        threading.Thread(target=run, name="chartd-migrate", daemon=True).start()
        while True:
            item = told.get()
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, tuple):
                yield engine_pb2.MigrateChartProgress(
                    version=plan.version, entities=item[1], moved=item[0]
                )
                continue
            yield engine_pb2.MigrateChartProgress(
                version=plan.version,
                entities=plan.entities,
                moved=item.moved,
                done=True,
                waiting=item.waiting,
            )
            return

    def _entity(self, ref: str, chart: str) -> engine.Entity:
        return self.engine.get(
            _fields.check_text(ref, "entity name or ID"), _fields.optional_text(chart, "chart")
        )


def _fire_response(result: engine.Result) -> engine_pb2.FireResponse:
    return engine_pb2.FireResponse(
        entity=entity_message(result.entity),
        event=result.event,
        transition_id=result.transition_id or "",
        steps=list(result.steps),
        replayed=result.replayed,
    )


def _unit_error(error: ChartdError) -> engine_pb2.UnitError:
    """One unit's error as a failed call's status would carry it."""
    return engine_pb2.UnitError(
        reason=reason(error.category), message=error.message, code=CODES[error.category].value[0]
    )


def _check_units(count: int, what: str) -> None:
    if count > _MOST_UNITS:
        raise InvalidParameter(f"at most {_MOST_UNITS} {what} per call, got {count}")


def _has_labels(entity: engine.Entity, wanted: Mapping[str, str]) -> bool:
    if not wanted:
        return True
    labels = entity.data.get("labels")
    if not isinstance(labels, Mapping):
        return False
    return all(labels.get(k) == v for k, v in wanted.items())
