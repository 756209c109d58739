"""What the engine hands back: entities, results, journal entries, events, pages."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from engine.core import Snapshot
from engine.ports import EntityRow, EventRow, StepRow, TransitionRow, innermost

__all__ = ["Entity", "Event", "Page", "Result", "StepRecord", "TransitionRecord"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Entity:
    """One entity as last committed."""

    id: str
    chart: str
    name: str
    configuration: tuple[str, ...]
    data: Mapping[str, Any]
    version: int
    history: Mapping[str, tuple[str, ...]]
    created_at: float
    updated_at: float
    chart_version: int = 0
    """The version of its chart the entity runs on (0: not known, created before versions)."""
    node: str | None = None
    """The node it belongs to (its chart has ``affinity: node``); None: any node."""

    @property
    def snapshot(self) -> Snapshot:
        """The entity's snapshot, as the core sees it."""
        return Snapshot(self.configuration, self.data, self.version, self.history)

    @property
    def state(self) -> str:
        """The innermost active state(s), comma-separated: ``running.paused``."""
        return innermost(self.configuration)

    def in_state(self, path: str) -> bool:
        """Whether ``path`` is active (ancestors count: a paused entity is ``running``)."""
        return path in self.configuration

    @classmethod
    def from_row(cls, row: EntityRow) -> Entity:
        """The public view of a stored row."""
        return cls(
            row.id,
            row.chart,
            row.name,
            row.configuration,
            row.data,
            row.version,
            row.history,
            row.created_at,
            row.updated_at,
            row.chart_version,
            row.node,
        )


@dataclass(frozen=True, slots=True)
class Result:
    """What a committed fire did. A failed fire raises instead."""

    entity: Entity
    event: str
    transition_id: str | None
    steps: tuple[str, ...]
    replayed: bool = False

    @property
    def configuration(self) -> tuple[str, ...]:
        """The entity's configuration after the transition."""
        return self.entity.configuration


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One step of a journaled transition, and its compensation if it ran."""

    index: int
    name: str
    status: str
    payload: Any
    error: str | None
    started_at: float | None
    finished_at: float | None
    compensated_at: float | None
    compensation_error: str | None

    @classmethod
    def from_row(cls, row: StepRow) -> StepRecord:
        """The public view of a stored step row."""
        return cls(
            row.index,
            row.name,
            row.status,
            row.payload,
            row.error,
            row.started_at,
            row.finished_at,
            row.compensated_at,
            row.compensation_error,
        )


@dataclass(frozen=True, slots=True)
class TransitionRecord:
    """One journaled fire: what was asked, what happened, with its steps."""

    id: str
    seq: int
    event: str
    params: Mapping[str, Any]
    status: str
    source: tuple[str, ...]
    target: tuple[str, ...] | None
    version_from: int
    version_to: int | None
    error_category: str | None
    error_message: str | None
    compensation_errors: tuple[str, ...]
    idempotency_key: str | None
    started_at: float
    finished_at: float | None
    steps: tuple[StepRecord, ...]
    trace_id: str | None = None
    """The W3C trace id of the fire (32 hex digits), when it was traced."""
    span_id: str | None = None
    """The fire's own span in that trace (16 hex digits)."""
    caused_by: str | None = None
    """The transition whose timer, follow-up or process fired this one, if one did."""
    chart_version: int = 0
    """The version of the chart the transition ran under (for ``chart.migrate``: the new one)."""

    @classmethod
    def from_row(cls, row: TransitionRow) -> TransitionRecord:
        """The public view of a stored transition row."""
        plan = row.plan
        target = plan.get("committed")
        return cls(
            row.id,
            row.seq,
            row.event,
            row.params,
            row.status,
            tuple(plan["source"]["configuration"]),
            tuple(target) if target is not None else None,
            row.version_from,
            row.version_to,
            row.error_category,
            row.error_message,
            row.compensation_errors,
            row.idempotency_key,
            row.started_at,
            row.finished_at,
            tuple(StepRecord.from_row(s) for s in row.steps),
            row.trace.trace_id if row.trace else None,
            row.trace.span_id if row.trace else None,
            row.caused_by,
            plan.get("chart_version", 0),
        )


@dataclass(frozen=True, slots=True)
class Event:
    """One outbox event; ``seq`` is global and gap-free: resume a watch from it."""

    seq: int
    type: str
    entity_id: str
    entity_name: str
    chart: str
    attributes: Mapping[str, Any]
    transition_id: str | None
    time: float

    @classmethod
    def from_row(cls, row: EventRow) -> Event:
        """The public view of a stored outbox row."""
        return cls(
            row.seq,
            row.type,
            row.entity_id,
            row.entity_name,
            row.chart,
            row.attributes,
            row.transition_id,
            row.created_at,
        )


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing; pass ``after`` to the next call, None at the end."""

    items: tuple[T, ...]
    after: int | None
