"""How an attempt at a fire ends inside the runtime, before it becomes a result or an error."""

from __future__ import annotations

from engine.errors import ChartdError, Conflict

__all__ = ["Contended", "SagaFailed", "Stale"]


class Contended(Conflict):
    """Conflict after every retry lost a race: worth trying again later."""


class Stale(Exception):
    """The cached entity was older than the stored one: reload and decide again."""


class SagaFailed(Exception):
    """A saga failed and was compensated; carries the error to raise and any follow-up."""

    def __init__(self, error: ChartdError, follow_up: tuple[str, str] | None) -> None:
        self.error = error
        self.follow_up = follow_up
