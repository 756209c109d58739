"""Between the engine's values and the API's messages."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf import struct_pb2, timestamp_pb2

import engine
from engine.api.chartd.v1 import engine_pb2

__all__ = [
    "chart_message",
    "entity_message",
    "event_message",
    "plain",
    "plain_value",
    "struct",
    "timestamp",
    "transition_message",
    "value",
]


def timestamp(seconds: float | None) -> timestamp_pb2.Timestamp | None:
    """A Timestamp of epoch seconds; None (field left unset) for None or 0."""
    if not seconds:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int(float(seconds) * 1e9))
    return ts


def struct(data: Mapping[str, Any] | None) -> struct_pb2.Struct:
    """A Struct of JSON-able data."""
    s = struct_pb2.Struct()
    if data:
        s.update(data)
    return s


def value(data: Any) -> struct_pb2.Value:
    """A Value of any JSON-able data."""
    return struct({"v": data}).fields["v"]


def plain(message: struct_pb2.Struct) -> dict[str, Any]:
    """A Struct as plain data, whole numbers as ints.

    A Struct keeps every number as a double; the engine's data (exit codes,
    pids, counts) is integers, so a whole number comes back as an int.
    """
    return {k: plain_value(v) for k, v in message.fields.items()}


def plain_value(v: struct_pb2.Value) -> Any:
    """A Value as plain data (see :func:`plain`)."""
    kind = v.WhichOneof("kind")
    if kind == "struct_value":
        return plain(v.struct_value)
    if kind == "list_value":
        return [plain_value(x) for x in v.list_value.values]
    if kind == "number_value":
        n = v.number_value
        return int(n) if n.is_integer() and abs(n) < 2**53 else n
    if kind == "string_value":
        return v.string_value
    if kind == "bool_value":
        return v.bool_value
    return None


def chart_message(chart: engine.Chart) -> engine_pb2.Chart:
    """The API's view of a registered chart."""
    model = chart.model
    return engine_pb2.Chart(
        name=chart.name,
        version=chart.version,
        description=(model.description or "").strip(),
        initial=model.initial,
        states=list(model.states),
        events=sorted(model.events),
    )


def entity_message(e: engine.Entity) -> engine_pb2.Entity:
    """The API's view of an entity."""
    return engine_pb2.Entity(
        id=e.id,
        chart=e.chart,
        name=e.name,
        configuration=list(e.configuration),
        state=e.state,
        data=struct(e.data),
        version=e.version,
        created_at=timestamp(e.created_at),
        updated_at=timestamp(e.updated_at),
        history=struct({k: list(v) for k, v in e.history.items()}),
        chart_version=e.chart_version,
    )


def transition_message(t: engine.TransitionRecord) -> engine_pb2.Transition:
    """The API's view of one journaled transition and its steps."""
    return engine_pb2.Transition(
        id=t.id,
        seq=t.seq,
        event=t.event,
        params=struct(t.params),
        status=t.status,
        source=list(t.source),
        target=list(t.target or ()),
        version_from=t.version_from,
        version_to=t.version_to,
        error_category=t.error_category or "",
        error_message=t.error_message or "",
        compensation_errors=list(t.compensation_errors),
        idempotency_key=t.idempotency_key or "",
        started_at=timestamp(t.started_at),
        finished_at=timestamp(t.finished_at),
        chart_version=t.chart_version,
        steps=[
            engine_pb2.Step(
                index=s.index,
                name=s.name,
                status=s.status,
                payload=value(s.payload),
                error=s.error or "",
                started_at=timestamp(s.started_at),
                finished_at=timestamp(s.finished_at),
                compensated_at=timestamp(s.compensated_at),
                compensation_error=s.compensation_error or "",
            )
            for s in t.steps
        ],
        trace_id=t.trace_id or "",
        caused_by=t.caused_by or "",
    )


def event_message(ev: engine.Event) -> engine_pb2.Event:
    """The API's view of an outbox event."""
    return engine_pb2.Event(
        seq=ev.seq,
        type=ev.type,
        entity_id=ev.entity_id,
        entity_name=ev.entity_name,
        chart=ev.chart,
        attributes=struct(ev.attributes),
        transition_id=ev.transition_id or "",
        time=timestamp(ev.time),
    )
