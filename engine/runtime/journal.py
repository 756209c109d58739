"""What the journal and the outbox keep of a transition, built from a plan.

Pure functions shared by the saga runner and recovery, so that a transition
finished by recovery reads in the journal as one finished by its own engine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from engine import core
from engine.errors import ChartdError, InvalidParameter, System
from engine.ports import EntityRow, EventRow, SpanRef

__all__ = [
    "Cause",
    "Origin",
    "as_error",
    "failed_event",
    "json_value",
    "plan_json",
    "snapshot_dict",
    "transition_event",
]


@dataclass(frozen=True, slots=True)
class Cause:
    """The transition that caused a fire (its timer, its follow-up, its process's exit).

    ``span`` is where that transition sat in a trace; unless ``known``, the
    fire reads it from the journal when it is not given (a timer's cause).
    """

    transition_id: str
    span: SpanRef | None = None
    known: bool = False
    """Whether ``span`` is all there is to know (a follow-up's: None when it was not traced)."""


@dataclass(frozen=True, slots=True)
class Origin:
    """What the journal keeps of where a fire came from: its span, and its cause's id."""

    trace: SpanRef | None = None
    caused_by: str | None = None


_PLAIN = frozenset((str, int, float, bool, type(None)))


def json_value(value: Any, what: str) -> Any:
    """``value`` as it will read back from the journal; InvalidParameter if it is not JSON."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if type(value) is dict and all(type(k) is str and type(v) in _PLAIN for k, v in value.items()):
        # A flat object of plain values reads back as itself: no need for a round trip.
        return dict(value)
    return json.loads(json_checked(value, what))


def json_checked(value: Any, what: str) -> str:
    """``value`` as JSON text; InvalidParameter if it is not JSON (no copy is read back)."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise InvalidParameter(f"{what} must be JSON-able: {exc}") from None


def as_error(exc: BaseException, doing: str) -> ChartdError:
    """``exc`` in the error taxonomy: itself if it is one, else a System error naming it."""
    if isinstance(exc, ChartdError):
        return exc
    return System(f"{doing} failed: {type(exc).__name__}: {exc}")


def snapshot_dict(snapshot: core.Snapshot) -> dict[str, Any]:
    """A snapshot as the journal keeps it."""
    return {
        "configuration": list(snapshot.configuration),
        "data": dict(snapshot.data),
        "version": snapshot.version,
        "history": {k: list(v) for k, v in snapshot.history.items()},
    }


def plan_json(plan: core.Plan, *, full: bool) -> dict[str, Any]:
    """What the journal keeps of a plan: enough to finish or undo it after a crash.

    A transition that never writes ahead (not ``full``) cannot be found
    unfinished, so it keeps only what ``history`` shows.
    """
    if not full:
        return {
            "source": {"configuration": list(plan.source.configuration)},
            "steps": list(plan.steps),
        }
    policy = plan.on_failure
    then = policy.then if policy else None
    return {
        "source": snapshot_dict(plan.source),
        "target": snapshot_dict(plan.snapshot),
        "failure": list(plan.failure_configuration),
        "failure_from": plan.failure_from,
        "steps": list(plan.steps),
        "via": plan.via,
        "record": list(policy.record) if policy else [],
        "then": {"event": then.event, "when": str(then.when) if then.when else None}
        if then
        else None,
    }


def transition_event(
    row: EntityRow, event: str, moved: tuple[tuple[str, ...], tuple[str, ...]], tid: str, now: float
) -> EventRow:
    """The outbox's ``transition`` event: ``event`` moved the entity from ``moved[0]`` to
    ``moved[1]`` (configurations)."""
    source, target = moved
    return EventRow(
        row.id,
        row.name,
        row.chart,
        "transition",
        {"event": event, "from": list(source), "to": list(target)},
        tid,
        now,
    )


def failed_event(
    row: EntityRow, event: str, error: tuple[str, str], tid: str, now: float
) -> EventRow:
    """The outbox's ``transition.failed`` event: ``event`` failed with (category, message)."""
    category, message = error
    return EventRow(
        row.id,
        row.name,
        row.chart,
        "transition.failed",
        {"event": event, "category": category, "error": message},
        tid,
        now,
    )
