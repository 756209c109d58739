"""Rows <-> records: the column values the store writes for each record, and back.

JSON columns hold compact, key-sorted JSON; an entity's configuration is also
stored as ``|state|state|`` so that a query by state is a LIKE on one column.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

from engine.ports import EntityRow, EventRow, SpanRef, StepRow, TimerRow, TransitionRow

ENTITY_CHANGES = (
    "name",
    "states",
    "configuration",
    "data",
    "history",
    "version",
    "updated_at",
    "chart_version",
    "live",
)
"""The columns an update of an entity writes."""

ENTITY_VALUE_CHANGES = tuple(c for c in ENTITY_CHANGES if c not in ("name", "live"))
"""The columns an update writes that leaves the entity's name and liveness as they are."""

# What the fire was (entity, event, params, idempotency key) never changes; leaving
# the key out also spares SQLite rewriting its unique index on every update.
TRANSITION_CHANGES = (
    "status",
    "owner",
    "version_to",
    "plan",
    "error_category",
    "error_message",
    "compensation_errors",
    "started_at",
    "finished_at",
)
"""The columns an update of a journal entry writes."""


_ENCODER = json.JSONEncoder(separators=(",", ":"), sort_keys=True)
# JSONEncoder.encode builds its C encoder anew on every call, which costs as much
# as encoding a small plan; this one is built once. Without a markers dict it does
# not look for cycles: every value here was built by the engine or checked by
# json.dumps already, and a cycle would still fail, with RecursionError.
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
_C_ENCODE = (
    _c_make_encoder(
        None,
        _ENCODER.default,
        json.encoder.encode_basestring_ascii,
        None,
        ":",
        ",",
        True,
        False,
        True,
    )
    if _c_make_encoder is not None
    else None
)


def dumps(value: Any) -> str:
    """``value`` as the compact, key-sorted JSON a JSON column holds."""
    if not value and isinstance(value, dict | list | tuple):
        return "{}" if isinstance(value, dict) else "[]"
    if _C_ENCODE is None:
        return _ENCODER.encode(value)
    return "".join(_C_ENCODE(value, 0))


def loads(text: str | None) -> Any:
    """The value of a JSON column (None for NULL)."""
    return None if text is None else json.loads(text)


@functools.lru_cache(maxsize=4096)
def _configuration(configuration: tuple[str, ...]) -> str:
    # A chart has few configurations and every write stores one: encode each once.
    return dumps(list(configuration))


@functools.lru_cache(maxsize=4096)
def _states(configuration: tuple[str, ...]) -> str:
    return "|" + "|".join(configuration) + "|"


# -- entities ------------------------------------------------------------------------------


def entity_changes(r: EntityRow, *, keys: bool = True) -> dict[str, Any]:
    """The values of :data:`ENTITY_CHANGES` for ``r`` (without ``keys``: of
    :data:`ENTITY_VALUE_CHANGES`)."""
    values = {
        "states": _states(r.configuration),
        "configuration": _configuration(r.configuration),
        "data": dumps(r.data),
        "history": dumps({k: list(v) for k, v in r.history.items()}),
        "version": r.version,
        "updated_at": r.updated_at,
        "chart_version": r.chart_version or None,
    }
    if keys:
        values["name"], values["live"] = r.name, r.live
    return values


def entity_values(r: EntityRow, seq: int) -> dict[str, Any]:
    """Every column of a new entity, numbered ``seq``."""
    return {
        "id": r.id,
        "seq": seq,
        "chart": r.chart,
        "created_at": r.created_at,
        "node": r.node,
        **entity_changes(r),
    }


def to_entity(r: Mapping[str, Any]) -> EntityRow:
    """The entity a row holds."""
    return EntityRow(
        id=r["id"],
        chart=r["chart"],
        name=r["name"],
        configuration=tuple(loads(r["configuration"])),
        data=loads(r["data"]),
        history={k: tuple(v) for k, v in loads(r["history"]).items()},
        version=r["version"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
        seq=r["seq"],
        live=bool(r["live"]),
        chart_version=r["chart_version"] or 0,
        node=r["node"],
    )


# -- the journal ---------------------------------------------------------------------------


def transition_values(tr: TransitionRow) -> dict[str, Any]:
    """Every column of a journal entry but its seq, which the store assigns."""
    return {
        "id": tr.id,
        "entity_id": tr.entity_id,
        "event": tr.event,
        "params": dumps(tr.params),
        "status": tr.status,
        "version_from": tr.version_from,
        "version_to": tr.version_to,
        "plan": dumps(tr.plan),
        "owner": tr.owner,
        "idempotency_key": tr.idempotency_key,
        "error_category": tr.error_category,
        "error_message": tr.error_message,
        "compensation_errors": dumps(list(tr.compensation_errors)),
        "started_at": tr.started_at,
        "finished_at": tr.finished_at,
        "trace_id": tr.trace.trace_id if tr.trace else None,
        "span_id": tr.trace.span_id if tr.trace else None,
        "caused_by": tr.caused_by,
    }


def transition_changes(tr: TransitionRow) -> dict[str, Any]:
    """The values of :data:`TRANSITION_CHANGES` for ``tr``, and its id as ``b_id``."""
    values = transition_values(tr)
    changes = {name: values[name] for name in TRANSITION_CHANGES}
    changes["b_id"] = tr.id
    return changes


def to_transition(r: Mapping[str, Any], steps: tuple[StepRow, ...]) -> TransitionRow:
    """The journal entry a row holds, with its ``steps``."""
    return TransitionRow(
        id=r["id"],
        entity_id=r["entity_id"],
        event=r["event"],
        params=loads(r["params"]),
        status=r["status"],
        version_from=r["version_from"],
        version_to=r["version_to"],
        plan=loads(r["plan"]),
        owner=r["owner"],
        idempotency_key=r["idempotency_key"],
        error_category=r["error_category"],
        error_message=r["error_message"],
        compensation_errors=tuple(loads(r["compensation_errors"])),
        started_at=r["started_at"],
        finished_at=r["finished_at"],
        seq=r["seq"],
        steps=steps,
        trace=SpanRef(r["trace_id"], r["span_id"]) if r["trace_id"] and r["span_id"] else None,
        caused_by=r["caused_by"],
    )


def step_values(s: StepRow) -> dict[str, Any]:
    """Every column of a step."""
    return {
        "transition_id": s.transition_id,
        "index": s.index,
        "name": s.name,
        "status": s.status,
        "payload": dumps(s.payload),
        "error": s.error,
        "effects": None if s.effects is None else dumps(s.effects),
        "started_at": s.started_at,
        "finished_at": s.finished_at,
        "compensated_at": s.compensated_at,
        "compensation_error": s.compensation_error,
    }


def to_step(r: Mapping[str, Any]) -> StepRow:
    """The step a row holds."""
    return StepRow(
        transition_id=r["transition_id"],
        index=r["index"],
        name=r["name"],
        status=r["status"],
        payload=loads(r["payload"]),
        error=r["error"],
        effects=loads(r["effects"]),
        started_at=r["started_at"],
        finished_at=r["finished_at"],
        compensated_at=r["compensated_at"],
        compensation_error=r["compensation_error"],
    )


# -- timers and the outbox -----------------------------------------------------------------


def timer_values(tm: TimerRow) -> dict[str, Any]:
    """Every column of a timer."""
    return {
        "id": tm.id,
        "entity_id": tm.entity_id,
        "event": tm.event,
        "params": dumps(tm.params),
        "due_at": tm.due_at,
        "status": tm.status,
        "created_by": tm.created_by,
        "fired_transition": tm.fired_transition,
        "error": tm.error,
        # Written (set or spent) by a commit: whatever claim it had is over.
        "claimed_by": None,
        "claimed_until": None,
    }


def to_timer(r: Mapping[str, Any]) -> TimerRow:
    """The timer a row holds."""
    return TimerRow(
        id=r["id"],
        entity_id=r["entity_id"],
        event=r["event"],
        params=loads(r["params"]),
        due_at=r["due_at"],
        created_by=r["created_by"],
        status=r["status"],
        fired_transition=r["fired_transition"],
        error=r["error"],
    )


def event_values(e: EventRow, seq: int) -> dict[str, Any]:
    """Every column of an outbox event, numbered ``seq``."""
    return {
        "seq": seq,
        "entity_id": e.entity_id,
        "entity_name": e.entity_name,
        "chart": e.chart,
        "type": e.type,
        "attributes": dumps(e.attributes),
        "transition_id": e.transition_id,
        "created_at": e.created_at,
    }


def to_event(r: Mapping[str, Any]) -> EventRow:
    """The outbox event a row holds."""
    return EventRow(
        entity_id=r["entity_id"],
        entity_name=r["entity_name"],
        chart=r["chart"],
        type=r["type"],
        attributes=loads(r["attributes"]),
        transition_id=r["transition_id"],
        created_at=r["created_at"],
        seq=r["seq"],
    )
