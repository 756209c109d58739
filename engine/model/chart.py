"""The validated chart: states by dotted path, transitions and rejections resolved.

A :class:`ChartModel` is what :func:`engine.model.validate.build` returns
when a document is sound. Every state reference in it is an existing dotted
path, so the core never has to check a name again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from engine.errors import Category
from engine.model.document import ChartDocument
from engine.model.schema import EMPTY, ChartSchema

__all__ = [
    "ChartModel",
    "Condition",
    "FailurePolicy",
    "FollowUp",
    "Rejection",
    "State",
    "StateKind",
    "Transition",
]

StateKind = Literal["atomic", "compound", "parallel", "final", "history"]


@dataclass(frozen=True, slots=True)
class Condition:
    """A ``when``: the name looked up, and whether its truth is negated (``!name``)."""

    name: str
    negated: bool = False

    def __str__(self) -> str:
        return f"!{self.name}" if self.negated else self.name


@dataclass(frozen=True, slots=True)
class State:
    """One state of a chart, named by its dotted path (``running.paused``)."""

    path: str
    kind: StateKind
    parent: str | None
    children: tuple[str, ...]
    initial: str | None = None
    transient: bool = False
    history: Literal["shallow", "deep"] | None = None
    default: str | None = None
    order: int = 0
    description: str | None = None

    @property
    def name(self) -> str:
        """The last component of the path."""
        return self.path.rpartition(".")[2]

    @property
    def ancestors(self) -> tuple[str, ...]:
        """Proper ancestors, innermost first."""
        parts = self.path.split(".")
        return tuple(".".join(parts[:i]) for i in range(len(parts) - 1, 0, -1))


@dataclass(frozen=True, slots=True)
class FollowUp:
    """An event the runtime fires after a failed saga, if ``when`` holds."""

    event: str
    when: Condition | None = None


@dataclass(frozen=True, slots=True)
class FailurePolicy:
    """What a failed saga leaves: ``to`` (None: the source), data to record, a follow-up.

    With ``after`` (one of the transition's steps), the policy applies only to
    a failure once that step has completed; a failure up to and including it
    compensates back to the source and records nothing (the step is the
    saga's point of no return, e.g. stopping the old process of a restart).
    """

    to: str | None = None
    record: tuple[str, ...] = ()
    then: FollowUp | None = None
    after: str | None = None


@dataclass(frozen=True, slots=True, eq=False)
class Transition:
    """One transition from one source state (a multi-source document entry is split).

    Transitions compare by identity: each one is a place in one chart.

    ``index`` is the position of the entry in the document's ``transitions``;
    ``event`` is None for an eventless transition and ``target`` is None for
    a targetless one, which runs its steps and changes no state. ``then`` is
    an event the runtime fires on the entity once this transition commits.
    """

    index: int
    source: str
    event: str | None
    target: str | None
    via: str | None = None
    when: Condition | None = None
    guards: tuple[str, ...] = ()
    steps: tuple[str, ...] = ()
    assign: Mapping[str, Any] = field(default_factory=dict)
    on_failure: FailurePolicy | None = None
    description: str | None = None
    then: FollowUp | None = None

    def __str__(self) -> str:
        event = self.event or "(eventless)"
        target = self.target or "(targetless)"
        when = f" when {self.when}" if self.when else ""
        return f"{self.source} --{event}{when}--> {target}"


@dataclass(frozen=True, slots=True)
class Rejection:
    """A declared refusal of ``events`` (None: every event) in ``state``."""

    index: int
    state: str
    events: frozenset[str] | None
    category: Category
    message: str
    when: Condition | None = None

    def matches(self, event: str) -> bool:
        """Whether this rejection is declared for ``event``."""
        return self.events is None or event in self.events


@dataclass(frozen=True, slots=True)
class ChartModel:
    """A sound chart: states in document order, transitions and rejections resolved."""

    name: str
    version: int
    initial: str
    states: Mapping[str, State]
    transitions: tuple[Transition, ...]
    rejections: tuple[Rejection, ...]
    events: frozenset[str]
    document: ChartDocument
    description: str | None = None
    schema: ChartSchema = EMPTY
    """What the entities' data and the events' params must hold (``schema:``)."""
    affinity: Literal["node"] | None = None
    """``node``: an entity belongs to the node (engine) that created it (``affinity:``)."""

    @property
    def top(self) -> tuple[str, ...]:
        """The top-level states, in document order."""
        return tuple(p for p, s in self.states.items() if s.parent is None)
