"""How an attempt at a fire ends inside the runtime, before it becomes a result or an error."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from engine.errors import ChartdError, Conflict
from engine.ports import StepRow
from engine.runtime.journal import Cause

__all__ = ["Contended", "Renamed", "SagaFailed", "Stale", "Stranded"]


class Contended(Conflict):
    """Conflict after every retry lost a race: worth trying again later."""


class Stale(Exception):
    """The cached entity was older than the stored one: reload and decide again."""


class Renamed(Conflict):
    """The entity a fire by name guessed from the cache no longer has that name (or
    is finished): nothing was written; the fire looks the name up again."""


class SagaFailed(Exception):
    """A saga failed and was compensated; carries the error to raise and any follow-up
    (entity id, event, and the failed transition as its cause)."""

    def __init__(self, error: ChartdError, follow_up: tuple[str, str, Cause] | None) -> None:
        self.error = error
        self.follow_up = follow_up


@dataclass(frozen=True, slots=True)
class Stranded:
    """A saga of this engine whose end could not be recorded (the database did not answer).

    The journal still says ``running`` (or ``compensating``), and the entity
    may be held in its transient state. Recovery finishes it as it finishes a
    dead engine's, once the database answers, with what this engine knows
    that the journal may not: ``steps``, the latest row of each step (done,
    failed, compensated), and ``error``, the failure it could not record
    (None: every step completed, only the final commit is missing).
    """

    transition_id: str
    steps: Mapping[int, StepRow]
    error: ChartdError | None
