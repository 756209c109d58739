"""Plan: what one event would do, as a value. Nothing in it has run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.core.snapshot import Snapshot
from engine.model.chart import FailurePolicy, Transition

__all__ = ["Plan"]


@dataclass(frozen=True, slots=True)
class Plan:
    """The outcome of :func:`engine.step`: the transitions an event selects and their effects.

    The runtime executes a plan: it runs ``guards``, holds the entity in
    ``transient_snapshot`` (if the transition has a ``via``) while it runs
    ``steps`` in order, and commits ``snapshot``; if a step fails, it
    compensates the completed steps and commits ``failure_snapshot``.

    ``transitions`` lists every transition taken, the event's first and the
    eventless or ``done.state`` ones after; ``guards`` and ``steps`` are
    theirs, concatenated in that order. ``exited`` and ``entered`` list the
    states left and entered, in the order it happens.
    """

    chart: str
    event: str
    params: Mapping[str, Any]
    source: Snapshot
    snapshot: Snapshot
    transitions: tuple[Transition, ...]
    guards: tuple[str, ...]
    steps: tuple[str, ...]
    exited: tuple[str, ...]
    entered: tuple[str, ...]
    via: str | None
    transient_configuration: tuple[str, ...] | None
    failure_configuration: tuple[str, ...]
    on_failure: FailurePolicy | None

    @property
    def transition(self) -> Transition:
        """The transition the event itself selected."""
        return self.transitions[0]

    @property
    def changes_state(self) -> bool:
        """Whether the configuration changes (False for targetless transitions)."""
        return self.snapshot.configuration != self.source.configuration

    @property
    def transient_snapshot(self) -> Snapshot | None:
        """The snapshot held while the steps run, or None without a ``via``."""
        if self.transient_configuration is None:
            return None
        return Snapshot(
            self.transient_configuration,
            self.source.data,
            self.source.version + 1,
            self.source.history,
        )

    @property
    def failure_snapshot(self) -> Snapshot:
        """Where a failed saga leaves the entity: the source, or ``on_failure.to``.

        That is, once the failure policy applies; see :meth:`failure_at`.
        """
        return Snapshot(
            self.failure_configuration,
            self.source.data,
            self.source.version + 1,
            self.source.history,
        )

    @property
    def failure_from(self) -> int:
        """The index of the first step whose failure ``on_failure`` applies to.

        0 unless the policy names a step ``after`` which it applies (the
        event's own transition's steps come first in ``steps``).
        """
        policy = self.on_failure
        if policy is None or policy.after is None:
            return 0
        return self.transition.steps.index(policy.after) + 1

    def failure_at(self, failed: int) -> tuple[tuple[str, ...], FailurePolicy | None]:
        """The configuration a saga failing at step index ``failed`` leaves, and its policy.

        ``failed`` is ``len(steps)`` for a failure after every step (a
        refused final commit). Before ``failure_from`` no policy applies:
        the entity goes back to the source configuration.
        """
        if failed < self.failure_from:
            return self.source.configuration, None
        return self.failure_configuration, self.on_failure

    def describe(self) -> str:
        """One line a person can read, e.g. for logs and ``chartd chart show``."""
        moves = "; ".join(str(t) for t in self.transitions)
        steps = f" steps={list(self.steps)}" if self.steps else ""
        return f"{self.chart}: {self.event}: {moves}{steps}"
