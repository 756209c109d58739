"""The oracle: what the pure core says a fire must do, and the terms the checks compare in.

:class:`Oracle` asks :func:`engine.step` (on a chart compiled apart from
the engine's, with the user's conditions) what an event does to a stored
snapshot. :class:`Observation` is an entity as stored with its journal,
:class:`Attempt` one fire the harness made, :class:`Expected` what one run
must leave. The error comparisons say how what the engine raised must
match what the core or a failing guard or step raised; :func:`tally` and
:func:`note` tell Hypothesis what the checks saw.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import hypothesis
import hypothesis.errors

from engine import core
from engine.core import Chart, Plan, Snapshot
from engine.errors import ChartdError, System
from engine.model.chart import Condition
from engine.runtime import Bindings, Entity, Step, TransitionRecord
from engine.runtime.bindings import writes_ahead
from engine.testing.spy import Call

__all__ = [
    "FINISHED",
    "Attempt",
    "Expected",
    "Follow",
    "Observation",
    "Oracle",
    "as_engine_error",
    "failed_at",
    "group",
    "note",
    "raises",
    "same_category",
    "same_error",
    "tally",
]

FINISHED = ("committed", "failed", "compensation_failed")
"""The statuses of a transition that is over."""

_PASSED = ("done", "compensated", "compensation_failed")  # a step whose do had completed

Follow = tuple[str, Mapping[str, Any], Snapshot]
"""A follow-up the core decides: its event, params, and the snapshot it starts from."""


class Oracle:
    """The core, asked what the engine must do with a chart and the user's bindings.

    ``guarded`` names the guards that have a guard oracle: each must refuse
    exactly when its oracle says so.
    """

    def __init__(self, chart: Chart, bindings: Bindings, guarded: Iterable[str] = ()) -> None:
        # The same model compiled apart, so the engine's memo is not shared.
        self.chart = Chart(chart.model)
        self.conditions = bindings.conditions
        self.steps = bindings.steps
        self.guarded = frozenset(guarded)  # the guards that have a guard oracle

    def initial_snapshot(self, data: Mapping[str, Any], name: str) -> Snapshot:
        """A new entity's snapshot with ``data``; raises what the chart refuses it with.

        The chart's schema sees no ID (the engine makes it): a ``const`` or
        ``default`` that names ``{id}`` is not predicted.
        """
        data = self.chart.model.schema.check_data(data, entity=name, id="")
        return self.chart.initial_snapshot(data, conditions=self.conditions)

    def decide(
        self, snapshot: Snapshot, event: str, params: Mapping[str, Any], fields: Mapping[str, Any]
    ) -> Plan | ChartdError:
        """The plan for ``event`` on ``snapshot``, or the error the chart refuses it with."""
        try:
            params = self.chart.model.schema.check_params(
                event, params, entity=str(fields["entity"]), id=str(fields["id"])
            )
            return core.step(
                self.chart, snapshot, event, params, conditions=self.conditions, fields=fields
            )
        except ChartdError as refused:
            return refused

    def fit(self, event: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """``params`` without the names the event's schema does not take.

        The kit draws one set of params for every event; a chart whose
        schema closes an event's params would refuse nearly every fire of it
        for a name meant for another event, before any step ran.
        """
        keys = self.chart.model.schema.keys_of(event)
        return {k: v for k, v in params.items() if keys is None or k in keys}

    def holds(self, when: Condition | None, snapshot: Snapshot, params: Mapping[str, Any]) -> bool:
        """Whether a ``when`` holds, as the core decides it."""
        return core.holds(when, snapshot, params, self.conditions)

    def steps_of(self, plan: Plan) -> list[Step]:
        """The user's steps ``plan`` runs, in order."""
        return [self.steps[n] for n in plan.steps]

    def bump(self, plan: Plan, done: int | None = None) -> int:
        """How much a run of ``plan`` moves the version, ``done`` of its steps completed.

        One for a direct transition; two for a saga (write-ahead, end), three
        once its point of no return (``on_failure.after``) was reached. ``done``
        None: every step.
        """
        if not writes_ahead(self.steps_of(plan), plan.via):
            return 1
        done = len(plan.steps) if done is None else done
        return 3 if 0 < plan.failure_from <= done else 2


@dataclass(slots=True)
class Observation:
    """One entity as stored, its journal, and the size of the outbox."""

    entity: Entity
    records: list[TransitionRecord]
    outbox: int

    @property
    def snapshot(self) -> Snapshot:
        """The entity's stored snapshot."""
        return self.entity.snapshot

    def keyed(self, key: str) -> TransitionRecord | None:
        """The journaled transition with idempotency key ``key``, if any."""
        return next((r for r in self.records if r.idempotency_key == key), None)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One fire the harness made: the entity before it, the request, and what the engine called.

    ``calls`` is the list the spy fills during the fire (and, after a
    crash, during recovery).
    """

    entity_id: str
    fields: Mapping[str, Any]  # what the engine gives the core about the entity
    pre: Observation
    event: str
    params: dict[str, Any]
    key: str | None
    calls: list[Call]

    def decide(self, oracle: Oracle) -> Plan | ChartdError:
        """What the core says this fire must do, from the entity as it was before."""
        return oracle.decide(self.pre.snapshot, self.event, self.params, self.fields)


@dataclass(slots=True)
class Expected:
    """What one run (a fire, or a follow-up) must leave: the snapshot, how many records."""

    snapshot: Snapshot
    records: int = 0
    error: ChartdError | None = None
    follow: Follow | None = None


def failed_at(journaled: Mapping[int, str], count: int) -> int:
    """The index of the step a saga failed at (or a crash interrupted): the first not done."""
    return next((i for i in range(count) if journaled.get(i) not in _PASSED), count)


def group(calls: Sequence[Call]) -> dict[str, list[Call]]:
    """``calls`` by transition, each in the order they were made."""
    out: dict[str, list[Call]] = {}
    for c in calls:
        out.setdefault(c.tid, []).append(c)
    return out


# -- errors --------------------------------------------------------------------------------


def as_engine_error(exc: BaseException | None, doing: str) -> ChartdError:
    """What the engine raises for ``exc`` raised by a guard or step (its rules)."""
    if isinstance(exc, ChartdError):
        return exc
    return System(f"{doing} failed: {type(exc).__name__}: {exc}")


def same_category(outcome: object, expected: ChartdError, what: str) -> None:
    """``outcome`` is an error of ``expected``'s category."""
    assert isinstance(outcome, ChartdError), f"{what}, yet fire returned {outcome!r}"
    assert outcome.category == expected.category, (
        f"{what} with {expected.category.value}, yet fire raised "
        f"{outcome.category.value}: {outcome.message}"
    )


def same_error(outcome: object, expected: ChartdError, what: str) -> None:
    """``outcome`` is an error of ``expected``'s category and message."""
    same_category(outcome, expected, what)
    assert isinstance(outcome, ChartdError)
    assert outcome.message == expected.message, (
        f"{what} with {expected.message!r}, yet fire raised {outcome.message!r}"
    )


class raises:
    """Assert that the block raises an error of the same category and message as ``expected``."""

    def __init__(self, expected: ChartdError) -> None:
        self.expected = expected

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> bool:
        same_error(exc, self.expected, "the chart refuses")
        return True


# -- what Hypothesis reports ------------------------------------------------------------------


def note(text: str) -> None:
    """Print ``text`` with a falsifying example (outside a test: nothing)."""
    with contextlib.suppress(hypothesis.errors.InvalidArgument):
        hypothesis.note(text)


def tally(label: str) -> None:
    """Count what happened, for ``--hypothesis-show-statistics`` (outside a test: nothing)."""
    with contextlib.suppress(hypothesis.errors.InvalidArgument):
        hypothesis.event(label)
