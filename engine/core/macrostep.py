"""The macrostep: what one event does to a configuration, computed from a chart's tables.

This is SCXML's algorithm (selection per active atomic state from the
innermost state outwards, conflict removal between parallel regions, exit
and entry sets from the transition domain, history, eventless transitions
and ``done.state`` events until the configuration is stable), with one
addition: declared rejections, which refuse an event in a state with a typed
error instead of ignoring it. Its result is an :class:`Outcome`, which
:class:`engine.core.chart.Chart` memoises and turns into a plan.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.core.snapshot import Snapshot
from engine.core.tables import ROOT, ChartTables
from engine.errors import Conflict, System
from engine.model.chart import Condition, Rejection, State, Transition

__all__ = [
    "EMPTY",
    "UNHANDLED",
    "ConditionFn",
    "ConditionInputs",
    "Macrostep",
    "Outcome",
    "truth",
]

ConditionFn = Callable[[Snapshot, Mapping[str, Any]], bool]
"""A ``when`` condition: a pure function of the snapshot and the event's params."""

EMPTY: Mapping[str, Any] = {}
"""The empty mapping shared by every step without params, conditions or history."""

_MAX_MICROSTEPS = 1000


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an event does in one (configuration, history): everything but the data."""

    configuration: tuple[str, ...]
    history: Mapping[str, tuple[str, ...]]
    transitions: tuple[Transition, ...]
    guards: tuple[str, ...]
    steps: tuple[str, ...]
    exited: tuple[str, ...]
    entered: tuple[str, ...]
    via: str | None
    transient_configuration: tuple[str, ...] | None
    failure_configuration: tuple[str, ...]
    assign: Mapping[str, Any] | None


# A sentinel for "no transition and no rejection": the default Conflict.
UNHANDLED = Rejection(index=-1, state="", events=None, category=Conflict.category, message="")


def truth(
    name: str,
    snapshot: Snapshot,
    params: Mapping[str, Any],
    conditions: Mapping[str, ConditionFn],
) -> bool:
    """The value of condition ``name``: its function, else the params, else the data."""
    fn = conditions.get(name)
    if fn is not None:
        return bool(fn(snapshot, params))
    if name in params:
        return bool(params[name])
    return bool(snapshot.data.get(name))


@dataclass(slots=True)
class ConditionInputs:
    """What a macrostep's conditions are asked about: the data, the event's params, the bindings.

    ``snapshot`` is the snapshot the event was fired at: conditions see it
    whatever microstep asks. None until a condition is first asked of a new
    entity, which has no snapshot yet.
    """

    data: Mapping[str, Any]
    params: Mapping[str, Any] = field(default_factory=dict)
    conditions: Mapping[str, ConditionFn] = field(default_factory=dict)
    snapshot: Snapshot | None = None


class Macrostep:
    """One macrostep's working state; thrown away afterwards."""

    def __init__(
        self,
        tables: ChartTables,
        config: frozenset[str],
        history: dict[str, tuple[str, ...]],
        inputs: ConditionInputs,
    ) -> None:
        """Start from ``config`` and ``history``; conditions are asked of ``inputs``."""
        self.tables = tables
        self.config: set[str] = set(config)
        self.history = history
        self.inputs = inputs
        self.asked: dict[str, bool] = {}
        self.taken: list[Transition] = []
        self.exited: list[str] = []
        self.entered: list[str] = []
        self.internal: deque[str] = deque()
        self.assign: dict[str, Any] | None = None
        self.via: str | None = None
        self.transient: tuple[str, ...] | None = None

    def sorted(self, states: Iterable[str]) -> tuple[str, ...]:
        """``states`` in document order."""
        return tuple(sorted(states, key=self.tables.order.__getitem__))

    # -- conditions ----------------------------------------------------------------

    def holds(self, condition: Condition | None) -> bool:
        """Whether ``condition`` holds; each name is asked once a step, and recorded."""
        if condition is None:
            return True
        value = self.asked.get(condition.name)
        if value is None:
            inputs = self.inputs
            if inputs.snapshot is None:
                inputs.snapshot = Snapshot(self.sorted(self.config), inputs.data)
            value = truth(condition.name, inputs.snapshot, inputs.params, inputs.conditions)
            self.asked[condition.name] = value
        return value != condition.negated

    # -- selection -------------------------------------------------------------------

    def select(self, event: str | None, *, external: bool) -> list[Transition]:
        """The enabled transitions for ``event`` (None: eventless), conflicts removed.

        For an external event, a rejection reached before any enabled
        transition is raised.
        """
        tables = self.tables
        chosen: list[Transition] = []
        for leaf in self.sorted(s for s in self.config if s in tables.leaf):
            for state in tables.lineage[leaf]:
                picked = None
                for t in tables.by_source.get((state, event), ()):
                    if self.holds(t.when):
                        picked = t
                        break
                if picked is not None:
                    if picked not in chosen:
                        chosen.append(picked)
                    break
                if external and event is not None:
                    rejection = self.rejection(state, event)
                    if rejection is not None:
                        raise _Refused(rejection)
        return self.remove_conflicts(chosen)

    def rejection(self, state: str, event: str) -> Rejection | None:
        """The first rejection declared in ``state`` that refuses ``event`` now, if any."""
        for r in self.tables.rejections.get(state, ()):
            if r.matches(event) and self.holds(r.when):
                return r
        return None

    def exit_set(self, t: Transition) -> set[str]:
        """The active states taking ``t`` exits: those inside its domain."""
        domain = self.tables.domain_of(t)
        if domain is None:
            return set()
        return {s for s in self.config if self.tables.is_descendant(s, domain)}

    def remove_conflicts(self, chosen: list[Transition]) -> list[Transition]:
        """``chosen`` without the transitions whose exit sets clash with an earlier or inner one."""
        if len(chosen) < 2:
            return chosen
        kept: list[Transition] = []
        for t1 in chosen:
            preempted = False
            beaten: list[Transition] = []
            for t2 in kept:
                if self.exit_set(t1) & self.exit_set(t2):
                    if self.tables.is_descendant(t1.source, t2.source):
                        beaten.append(t2)
                    else:
                        preempted = True
                        break
            if not preempted:
                kept = [t for t in kept if t not in beaten]
                kept.append(t1)
        return kept

    # -- entering and exiting --------------------------------------------------------

    def add_descendants(self, path: str, into: set[str]) -> None:
        """Add what entering ``path`` enters below it: initials, regions, recorded history."""
        states = self.tables.states
        state = states[path]
        if state.kind == "history":
            assert state.parent is not None
            recorded = self.history.get(path)
            targets: Iterable[str]
            if recorded:
                targets = recorded
            else:
                default = state.default or states[state.parent].initial
                assert default is not None
                targets = (default,)
            for target in targets:
                self.add_descendants(target, into)
                self.add_ancestors(target, state.parent, into)
            return
        into.add(path)
        if state.kind == "compound":
            assert state.initial is not None
            self.add_descendants(state.initial, into)
            self.add_ancestors(state.initial, path, into)
        elif state.kind == "parallel":
            self.fill_regions(state, into)

    def fill_regions(self, state: State, into: set[str]) -> None:
        """Enter every region of the parallel ``state`` that nothing in ``into`` enters yet."""
        for region in state.children:
            if self.tables.states[region].kind == "history":
                continue
            if not any(s == region or s.startswith(region + ".") for s in into):
                self.add_descendants(region, into)

    def add_ancestors(self, path: str, stop: str, into: set[str]) -> None:
        """Add the ancestors of ``path`` below ``stop``, with the other regions they need."""
        for anc in self.tables.states[path].ancestors:
            if anc == stop:
                return
            into.add(anc)
            state = self.tables.states[anc]
            if state.kind == "parallel":
                self.fill_regions(state, into)

    def microstep(self, transitions: list[Transition]) -> None:
        """Take ``transitions`` together: record history, exit, enter, queue ``done.state``."""
        tables = self.tables
        states = tables.states
        leaving: set[str] = set()
        for t in transitions:
            leaving |= self.exit_set(t)
        exit_order = sorted(leaving, key=lambda s: -tables.order[s])
        for path in exit_order:
            for h in tables.history_children.get(path, ()):
                if h.history == "deep":
                    kept = [s for s in self.config if s in tables.leaf and s.startswith(path + ".")]
                else:
                    kept = [s for s in self.config if states[s].parent == path]
                self.history[h.path] = self.sorted(kept)
        self.config -= leaving
        entering: set[str] = set()
        for t in transitions:
            if t.target is None:
                continue
            domain = tables.domain_of(t)
            assert domain is not None
            self.add_descendants(t.target, entering)
            self.add_ancestors(t.target, domain, entering)
        entering -= self.config
        self.config |= entering
        self.exited.extend(exit_order)
        entered = self.sorted(entering)
        self.entered.extend(entered)
        for t in transitions:
            self.taken.append(t)
            if t.assign:
                self.assign = {**(self.assign or {}), **t.assign}
        for path in entered:
            state = states[path]
            if state.kind != "final" or state.parent is None:
                continue
            parent = states[state.parent]
            self.internal.append(f"done.state.{parent.path}")
            grand = states[parent.parent] if parent.parent else None
            if (
                grand is not None
                and grand.kind == "parallel"
                and all(self.in_final(region) for region in grand.children)
            ):
                self.internal.append(f"done.state.{grand.path}")

    def in_final(self, path: str) -> bool:
        """Whether the state at ``path`` is done: in a final child, or all regions done."""
        states = self.tables.states
        state = states[path]
        if state.kind == "history":
            return True
        if state.kind == "compound":
            return any(c in self.config and states[c].kind == "final" for c in state.children)
        if state.kind == "parallel":
            return all(self.in_final(c) for c in state.children)
        return False

    def enter_initial(self) -> None:
        """Enter the chart's initial state, as a new entity does."""
        entering: set[str] = set()
        self.add_descendants(self.tables.initial, entering)
        self.add_ancestors(self.tables.initial, ROOT, entering)
        self.config |= entering

    def settle(self) -> None:
        """Take eventless transitions, then internal events, until nothing is enabled."""
        for _ in range(_MAX_MICROSTEPS):
            enabled = self.select(None, external=False)
            if not enabled and self.internal:
                enabled = self.select(self.internal.popleft(), external=False)
                if not enabled:
                    continue
            if not enabled:
                return
            self.microstep(enabled)
        raise System(
            f"chart {self.tables.name!r}: more than {_MAX_MICROSTEPS} eventless or internal "
            "transitions in one step; the chart does not settle"
        )

    def hold(self, t: Transition) -> None:
        """Record the configuration held while ``t``'s saga runs (its ``via``).

        It is the move from the source to ``via``, with its own domain: ``via``
        may lie outside the transition's domain (a transient top-level state
        for a move inside ``running``), and then more is exited while it holds.
        """
        assert t.via is not None
        self.via = t.via
        self.transient = self.move(frozenset(self.config), t.source, t.via)

    def move(self, config: frozenset[str], source: str, target: str) -> tuple[str, ...]:
        """The configuration after a plain move from ``source`` to ``target`` in ``config``."""
        back = Macrostep(self.tables, config, dict(self.history), ConditionInputs(self.inputs.data))
        back.microstep([Transition(index=-1, source=source, event=None, target=target)])
        return back.sorted(back.config)

    def failure_configuration(self, source: frozenset[str], first: Transition) -> tuple[str, ...]:
        """Where a failed saga of ``first`` leaves it: ``on_failure.to``, or ``source``."""
        policy = first.on_failure
        if policy is None or policy.to is None:
            return self.sorted(source)
        return self.move(source, first.source, policy.to)

    def macrostep(self, event: str) -> Outcome | Rejection:
        """What external ``event`` does: the outcome, or the rejection that refuses it."""
        source = frozenset(self.config)
        try:
            enabled = self.select(event, external=True)
        except _Refused as refused:
            return refused.rejection
        if not enabled:
            return UNHANDLED
        with_via = next((t for t in enabled if t.via is not None), None)
        if with_via is not None:
            self.hold(with_via)
        self.microstep(enabled)
        self.settle()
        return Outcome(
            configuration=self.sorted(self.config),
            history=dict(self.history) if self.tables.has_history else EMPTY,
            transitions=tuple(self.taken),
            guards=tuple(g for t in self.taken for g in t.guards),
            steps=tuple(s for t in self.taken for s in t.steps),
            exited=tuple(self.exited),
            entered=tuple(self.entered),
            via=self.via,
            transient_configuration=self.transient,
            failure_configuration=self.failure_configuration(source, enabled[0]),
            assign=self.assign,
        )


class _Refused(Exception):
    def __init__(self, rejection: Rejection) -> None:
        self.rejection = rejection
