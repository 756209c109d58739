"""Chart: a validated chart compiled into lookup tables, and the step semantics.

The semantics follow SCXML's algorithm (selection per active atomic state
from the innermost state outwards, conflict removal between parallel
regions, exit and entry sets from the transition domain, history, eventless
transitions and ``done.state`` events until the configuration is stable),
with one addition: declared rejections, which refuse an event in a state
with a typed error instead of ignoring it.

An outcome depends only on (configuration, history, event) and on the
answers of the conditions it asked, so outcomes are memoised per chart in a
small decision tree per key: the hot path of :func:`step` is a dictionary
lookup, one call per condition asked, and two small allocations.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from engine.core.plan import Plan
from engine.core.snapshot import Snapshot
from engine.errors import ChartdError, Conflict, InvalidParameter, System, error_for
from engine.model.chart import ChartModel, Condition, Rejection, State, Transition

__all__ = ["Chart", "ConditionFn", "holds", "step"]

ConditionFn = Callable[[Snapshot, Mapping[str, Any]], bool]
"""A ``when`` condition: a pure function of the snapshot and the event's params."""

_ROOT = ""
_MAX_MICROSTEPS = 1000
_CACHE_LIMIT = 8192
_EMPTY: Mapping[str, Any] = {}


@dataclass(frozen=True, slots=True)
class _Outcome:
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


class Chart:
    """A chart ready to run: the validated model plus the tables the core looks things up in.

    Build one with :func:`engine.load_chart` or :func:`engine.parse_chart`.
    A Chart is immutable apart from its internal memo of computed outcomes,
    and may be shared between threads.
    """

    def __init__(self, model: ChartModel, *, memo: bool = True) -> None:
        """Compile ``model``; ``memo=False`` computes every step afresh (for benchmarks)."""
        self.model = model
        self._use_memo = memo
        states = model.states
        self._states: Mapping[str, State] = states
        self._order = {path: s.order for path, s in states.items()}
        # The state itself, then its ancestors outwards: the order of selection.
        self._lineage = {path: (path, *s.ancestors) for path, s in states.items()}
        self._leaf = frozenset(p for p, s in states.items() if s.kind in ("atomic", "final"))
        self._history_children: dict[str, tuple[State, ...]] = {}
        for s in states.values():
            if s.kind == "history" and s.parent:
                self._history_children.setdefault(s.parent, ())
                self._history_children[s.parent] += (s,)
        self._by_source: dict[tuple[str, str | None], tuple[Transition, ...]] = {}
        for t in model.transitions:
            key = (t.source, t.event)
            self._by_source[key] = (*self._by_source.get(key, ()), t)
        self._rejections: dict[str, tuple[Rejection, ...]] = {}
        for r in model.rejections:
            self._rejections[r.state] = (*self._rejections.get(r.state, ()), r)
        self._domain = {t: self._transition_domain(t.source, t.target) for t in model.transitions}
        self._memo: dict[tuple[Any, ...], _Ask | _Outcome | Rejection] = {}
        self._has_history = bool(self._history_children)
        self._top_final = frozenset(
            p for p, s in states.items() if s.kind == "final" and s.parent is None
        )

    # -- public ------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The chart's name (``chart:`` in the document)."""
        return self.model.name

    @property
    def version(self) -> int:
        """The chart's version (``version:`` in the document)."""
        return self.model.version

    @property
    def states(self) -> tuple[str, ...]:
        """Every state path, history pseudo-states included, in document order."""
        return tuple(self._states)

    @property
    def events(self) -> frozenset[str]:
        """Every event the chart knows, ``done.state.*`` included."""
        return self.model.events

    @property
    def transitions(self) -> tuple[Transition, ...]:
        """Every transition, one per source state, in document order."""
        return self.model.transitions

    @property
    def rejections(self) -> tuple[Rejection, ...]:
        """Every declared rejection, one per state, in document order."""
        return self.model.rejections

    def finished(self, configuration: tuple[str, ...]) -> bool:
        """Whether ``configuration`` is in a top-level final state: the entity is done."""
        return any(s in self._top_final for s in configuration)

    def state(self, path: str) -> State:
        """The state at ``path``; NotFound names the chart if there is none."""
        try:
            return self._states[path]
        except KeyError:
            raise error_for("not_found", f"chart {self.name!r} has no state {path!r}") from None

    def initial_snapshot(
        self,
        data: Mapping[str, Any] | None = None,
        *,
        conditions: Mapping[str, ConditionFn] | None = None,
    ) -> Snapshot:
        """The snapshot of a new entity: the initial configuration, settled, at version 0.

        Eventless transitions enabled in the initial configuration are taken,
        as in SCXML, so the snapshot is stable.
        """
        run = _Run(self, frozenset(), {}, dict(data or {}), _EMPTY, conditions or {})
        run.enter_initial()
        run.settle()
        assign = run.assign or {}
        return Snapshot(run.sorted(run.config), {**(data or {}), **assign}, 0, run.history)

    def __repr__(self) -> str:
        return f"<Chart {self.name} v{self.version}: {len(self._states)} states>"

    # -- structure ---------------------------------------------------------------

    def _is_descendant(self, state: str, ancestor: str) -> bool:
        return ancestor == _ROOT or state.startswith(ancestor + ".")

    def _transition_domain(self, source: str, target: str | None) -> str | None:
        """SCXML's transition domain: the innermost compound proper ancestor holding both."""
        if target is None:
            return None
        for anc in (*self._states[source].ancestors, _ROOT):
            if anc == _ROOT or (
                self._states[anc].kind == "compound" and self._is_descendant(target, anc)
            ):
                return anc
        return _ROOT  # pragma: no cover - the loop always ends at the root

    # -- stepping ----------------------------------------------------------------

    def _outcome(
        self,
        snapshot: Snapshot,
        event: str,
        params: Mapping[str, Any],
        conditions: Mapping[str, ConditionFn],
    ) -> _Outcome | Rejection:
        key: tuple[Any, ...]
        if self._has_history:
            key = (snapshot.configuration, event, tuple(sorted(snapshot.history.items())))
        else:
            key = (snapshot.configuration, event)
        node = self._memo.get(key)
        known: dict[str, bool] = {}
        while type(node) is _Ask:
            known[node.name] = answer = _truth(node.name, snapshot, params, conditions)
            node = node.branches.get(answer)
        if node is not None:
            return node  # type: ignore[return-value]
        run = _Run(
            self,
            frozenset(snapshot.configuration),
            dict(snapshot.history),
            snapshot.data,
            params,
            conditions,
            snapshot,
        )
        run.asked.update(known)  # asked on the way down the tree; ask no condition twice
        outcome = run.macrostep(event)
        self._remember(key, list(run.asked.items()), outcome)
        return outcome

    def _remember(
        self, key: tuple[Any, ...], asked: list[tuple[str, bool]], outcome: _Outcome | Rejection
    ) -> None:
        """File ``outcome`` under ``key`` and the answers the computation got, in order.

        The computation is deterministic, so the first condition it asks for
        a key is always the same one, and each answer decides the next
        question: the memo is a decision tree per key.
        """
        if not self._use_memo:
            return
        if len(self._memo) >= _CACHE_LIMIT:
            self._memo.clear()
        if not asked:
            self._memo.setdefault(key, outcome)
            return
        node = self._memo.get(key)
        if node is None:
            node = self._memo[key] = _Ask(asked[0][0], {})
        for i, (name, value) in enumerate(asked):
            if type(node) is not _Ask or node.name != name:
                return  # a condition function that is not pure: do not memoise
            if i == len(asked) - 1:
                node.branches.setdefault(value, outcome)
                return
            nxt = node.branches.get(value)
            if nxt is None:
                nxt = node.branches[value] = _Ask(asked[i + 1][0], {})
            node = nxt


@dataclass(slots=True)
class _Ask:
    """A memo node: the condition to ask next, and where each answer leads."""

    name: str
    branches: dict[bool, _Ask | _Outcome | Rejection]


def _truth(
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


class _Run:
    """One macrostep's working state; thrown away afterwards."""

    def __init__(
        self,
        chart: Chart,
        config: frozenset[str],
        history: dict[str, tuple[str, ...]],
        data: Mapping[str, Any],
        params: Mapping[str, Any],
        conditions: Mapping[str, ConditionFn],
        snapshot: Snapshot | None = None,
    ) -> None:
        self.chart = chart
        self.config: set[str] = set(config)
        self.history = history
        self.data = data
        self.params = params
        self.conditions = conditions
        self.snapshot = snapshot
        # Conditions see the snapshot the event was fired at, whatever microstep asks.
        self.asked: dict[str, bool] = {}
        self.taken: list[Transition] = []
        self.exited: list[str] = []
        self.entered: list[str] = []
        self.internal: deque[str] = deque()
        self.assign: dict[str, Any] | None = None
        self.via: str | None = None
        self.transient: tuple[str, ...] | None = None

    def sorted(self, states: Iterable[str]) -> tuple[str, ...]:
        return tuple(sorted(states, key=self.chart._order.__getitem__))

    # -- conditions ----------------------------------------------------------------

    def holds(self, condition: Condition | None) -> bool:
        """Whether ``condition`` holds; each name is asked once a step, and recorded."""
        if condition is None:
            return True
        value = self.asked.get(condition.name)
        if value is None:
            if self.snapshot is None:
                self.snapshot = Snapshot(self.sorted(self.config), self.data)
            value = _truth(condition.name, self.snapshot, self.params, self.conditions)
            self.asked[condition.name] = value
        return value != condition.negated

    # -- selection -------------------------------------------------------------------

    def select(self, event: str | None, *, external: bool) -> list[Transition]:
        """The enabled transitions for ``event`` (None: eventless), conflicts removed.

        For an external event, a rejection reached before any enabled
        transition is raised.
        """
        chart = self.chart
        chosen: list[Transition] = []
        for leaf in self.sorted(s for s in self.config if s in chart._leaf):
            for state in chart._lineage[leaf]:
                picked = None
                for t in chart._by_source.get((state, event), ()):
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
        for r in self.chart._rejections.get(state, ()):
            if r.matches(event) and self.holds(r.when):
                return r
        return None

    def domain(self, t: Transition) -> str | None:
        found = self.chart._domain.get(t)
        if found is None and t.target is not None:
            return self.chart._transition_domain(t.source, t.target)
        return found

    def exit_set(self, t: Transition) -> set[str]:
        domain = self.domain(t)
        if domain is None:
            return set()
        return {s for s in self.config if self.chart._is_descendant(s, domain)}

    def remove_conflicts(self, chosen: list[Transition]) -> list[Transition]:
        if len(chosen) < 2:
            return chosen
        kept: list[Transition] = []
        for t1 in chosen:
            preempted = False
            beaten: list[Transition] = []
            for t2 in kept:
                if self.exit_set(t1) & self.exit_set(t2):
                    if self.chart._is_descendant(t1.source, t2.source):
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
        chart = self.chart
        state = chart._states[path]
        if state.kind == "history":
            assert state.parent is not None
            recorded = self.history.get(path)
            targets: Iterable[str]
            if recorded:
                targets = recorded
            else:
                default = state.default or chart._states[state.parent].initial
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
        for region in state.children:
            if self.chart._states[region].kind == "history":
                continue
            if not any(s == region or s.startswith(region + ".") for s in into):
                self.add_descendants(region, into)

    def add_ancestors(self, path: str, stop: str, into: set[str]) -> None:
        for anc in self.chart._states[path].ancestors:
            if anc == stop:
                return
            into.add(anc)
            state = self.chart._states[anc]
            if state.kind == "parallel":
                self.fill_regions(state, into)

    def microstep(self, transitions: list[Transition]) -> None:
        chart = self.chart
        leaving: set[str] = set()
        for t in transitions:
            leaving |= self.exit_set(t)
        exit_order = sorted(leaving, key=lambda s: -chart._order[s])
        for path in exit_order:
            for h in chart._history_children.get(path, ()):
                if h.history == "deep":
                    kept = [s for s in self.config if s in chart._leaf and s.startswith(path + ".")]
                else:
                    kept = [s for s in self.config if chart._states[s].parent == path]
                self.history[h.path] = self.sorted(kept)
        self.config -= leaving
        entering: set[str] = set()
        for t in transitions:
            if t.target is None:
                continue
            domain = self.domain(t)
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
            state = chart._states[path]
            if state.kind != "final" or state.parent is None:
                continue
            parent = chart._states[state.parent]
            self.internal.append(f"done.state.{parent.path}")
            grand = chart._states[parent.parent] if parent.parent else None
            if (
                grand is not None
                and grand.kind == "parallel"
                and all(self.in_final(region) for region in grand.children)
            ):
                self.internal.append(f"done.state.{grand.path}")

    def in_final(self, path: str) -> bool:
        state = self.chart._states[path]
        if state.kind == "history":
            return True
        if state.kind == "compound":
            return any(
                c in self.config and self.chart._states[c].kind == "final" for c in state.children
            )
        if state.kind == "parallel":
            return all(self.in_final(c) for c in state.children)
        return False

    def enter_initial(self) -> None:
        entering: set[str] = set()
        self.add_descendants(self.chart.model.initial, entering)
        self.add_ancestors(self.chart.model.initial, _ROOT, entering)
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
            f"chart {self.chart.name!r}: more than {_MAX_MICROSTEPS} eventless or internal "
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
        back = _Run(self.chart, config, dict(self.history), self.data, {}, {})
        back.microstep([Transition(index=-1, source=source, event=None, target=target)])
        return back.sorted(back.config)

    def failure_configuration(self, source: frozenset[str], first: Transition) -> tuple[str, ...]:
        policy = first.on_failure
        if policy is None or policy.to is None:
            return self.sorted(source)
        return self.move(source, first.source, policy.to)

    def macrostep(self, event: str) -> _Outcome | Rejection:
        source = frozenset(self.config)
        try:
            enabled = self.select(event, external=True)
        except _Refused as refused:
            return refused.rejection
        if not enabled:
            return _DEFAULT
        with_via = next((t for t in enabled if t.via is not None), None)
        if with_via is not None:
            self.hold(with_via)
        self.microstep(enabled)
        self.settle()
        return _Outcome(
            configuration=self.sorted(self.config),
            history=dict(self.history) if self.chart._has_history else _EMPTY,
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


# A sentinel for "no transition and no rejection": the default Conflict.
_DEFAULT = Rejection(index=-1, state="", events=None, category=Conflict.category, message="")


class _Fields(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _refusal(
    chart: Chart,
    snapshot: Snapshot,
    event: str,
    params: Mapping[str, Any],
    rejection: Rejection,
    fields: Mapping[str, Any],
) -> ChartdError:
    leaves = [s for s in snapshot.configuration if s in chart._leaf]
    where = ", ".join(leaves) or "(none)"
    if rejection is _DEFAULT:
        top_final = [s for s in leaves if chart._states[s].kind == "final" and "." not in s]
        if top_final:
            return Conflict(
                f"event {event!r} is not allowed: the entity is in the final state "
                f"{top_final[0]!r} and accepts no more events"
            )
        return Conflict(f"event {event!r} is not allowed in state {where!r}")
    names = _Fields({**fields, **snapshot.data, **params, "event": event, "state": rejection.state})
    try:
        message = rejection.message.format_map(names)
    except (ValueError, AttributeError, IndexError, KeyError):
        message = rejection.message
    return error_for(rejection.category, message)


def step(
    chart: Chart,
    snapshot: Snapshot,
    event: str,
    params: Mapping[str, Any] | None = None,
    *,
    conditions: Mapping[str, ConditionFn] | None = None,
    fields: Mapping[str, Any] | None = None,
) -> Plan:
    """What ``event`` does to an entity in ``snapshot``: a :class:`Plan`, or the refusal.

    Pure: no I/O, no clock, nothing runs. ``params`` are the event's
    parameters (they feed ``when`` conditions and rejection messages);
    ``conditions`` binds condition names to pure functions; ``fields`` are
    more names a rejection message may use (the entity's ``id``, say), below
    the data and the params.

    Raises the declared rejection's error; Conflict naming the event and the
    state when nothing handles the event; InvalidParameter for an event the
    chart does not know.
    """
    if event not in chart.model.events:
        known = ", ".join(sorted(e for e in chart.model.events if not e.startswith("done.")))
        raise InvalidParameter(f"unknown event {event!r} for chart {chart.name!r} (known: {known})")
    params = params if params is not None else _EMPTY
    outcome = chart._outcome(snapshot, event, params, conditions or _EMPTY)
    if isinstance(outcome, Rejection):
        raise _refusal(chart, snapshot, event, params, outcome, fields or _EMPTY)
    data = snapshot.data if outcome.assign is None else {**snapshot.data, **outcome.assign}
    history = outcome.history if chart._has_history else snapshot.history
    target = Snapshot(outcome.configuration, data, snapshot.version + 1, history)
    first = outcome.transitions[0]
    return Plan(
        chart.model.name,
        event,
        params,
        snapshot,
        target,
        outcome.transitions,
        outcome.guards,
        outcome.steps,
        outcome.exited,
        outcome.entered,
        outcome.via,
        outcome.transient_configuration,
        outcome.failure_configuration,
        first.on_failure,
    )


def holds(
    condition: Condition | None,
    snapshot: Snapshot,
    params: Mapping[str, Any] | None = None,
    conditions: Mapping[str, ConditionFn] | None = None,
) -> bool:
    """Whether a ``when`` holds for ``snapshot`` and ``params``, as :func:`step` decides it."""
    if condition is None:
        return True
    truth = _truth(condition.name, snapshot, params or _EMPTY, conditions or _EMPTY)
    return truth != condition.negated
