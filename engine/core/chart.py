"""Chart: a validated chart compiled for stepping, and :func:`step`: what an event does.

The tables come from :mod:`engine.core.tables` and the semantics (SCXML's,
with declared rejections) from :mod:`engine.core.macrostep`; this module
turns their outcome into a :class:`Plan`, or into the refusal's error.

An outcome depends only on (configuration, history, event) and on the
answers of the conditions it asked, so outcomes are memoised per chart in a
small decision tree per key: the hot path of :func:`step` is a dictionary
lookup, one call per condition asked, and two small allocations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.core.macrostep import (
    EMPTY,
    UNHANDLED,
    ConditionFn,
    ConditionInputs,
    Macrostep,
    Outcome,
    truth,
)
from engine.core.plan import Plan
from engine.core.snapshot import Snapshot
from engine.core.tables import ChartTables
from engine.errors import ChartdError, Conflict, InvalidParameter, error_for
from engine.model.chart import ChartModel, Condition, Rejection, State, Transition

__all__ = ["Chart", "ConditionFn", "holds", "step"]

_CACHE_LIMIT = 8192


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
        self._tables = ChartTables(model)
        self._has_history = self._tables.has_history
        self._memo: dict[tuple[Any, ...], _Ask | Outcome | Rejection] = {}
        # A new entity's start, when no condition decides it (see initial_snapshot).
        self._initial: tuple[tuple[str, ...], dict[str, Any], dict[str, Any]] | None = None

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
        return tuple(self._tables.states)

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
        return any(s in self._tables.top_final for s in configuration)

    def state(self, path: str) -> State:
        """The state at ``path``; NotFound names the chart if there is none."""
        try:
            return self._tables.states[path]
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
        fixed = self._initial
        if fixed is not None:
            configuration, assign, history = fixed
            return Snapshot(configuration, {**(data or {}), **assign}, 0, dict(history))
        inputs = ConditionInputs(dict(data or {}), EMPTY, conditions or {})
        run = Macrostep(self._tables, frozenset(), {}, inputs)
        run.enter_initial()
        run.settle()
        assign = run.assign or {}
        snapshot = Snapshot(run.sorted(run.config), {**(data or {}), **assign}, 0, run.history)
        if not run.asked and self._use_memo:
            # No condition was asked: every new entity starts the same way, whatever its
            # data, so a bulk create need not run the macrostep for each one.
            self._initial = (snapshot.configuration, dict(assign), dict(run.history))
        return snapshot

    def __repr__(self) -> str:
        return f"<Chart {self.name} v{self.version}: {len(self._tables.states)} states>"

    # -- stepping ----------------------------------------------------------------

    def _outcome(
        self,
        snapshot: Snapshot,
        event: str,
        params: Mapping[str, Any],
        conditions: Mapping[str, ConditionFn],
    ) -> Outcome | Rejection:
        key: tuple[Any, ...]
        if self._has_history:
            key = (snapshot.configuration, event, tuple(sorted(snapshot.history.items())))
        else:
            key = (snapshot.configuration, event)
        node = self._memo.get(key)
        known: dict[str, bool] = {}
        while type(node) is _Ask:
            known[node.name] = answer = truth(node.name, snapshot, params, conditions)
            node = node.branches.get(answer)
        if node is not None:
            return node  # type: ignore[return-value]
        inputs = ConditionInputs(snapshot.data, params, conditions, snapshot)
        run = Macrostep(
            self._tables, frozenset(snapshot.configuration), dict(snapshot.history), inputs
        )
        run.asked.update(known)  # asked on the way down the tree; ask no condition twice
        outcome = run.macrostep(event)
        self._remember(key, list(run.asked.items()), outcome)
        return outcome

    def _remember(
        self, key: tuple[Any, ...], asked: list[tuple[str, bool]], outcome: Outcome | Rejection
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
    branches: dict[bool, _Ask | Outcome | Rejection]


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
    leaves = [s for s in snapshot.configuration if s in chart._tables.leaf]
    where = ", ".join(leaves) or "(none)"
    if rejection is UNHANDLED:
        top_final = [s for s in leaves if chart._tables.states[s].kind == "final" and "." not in s]
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
    params = params if params is not None else EMPTY
    outcome = chart._outcome(snapshot, event, params, conditions or EMPTY)
    if isinstance(outcome, Rejection):
        raise _refusal(chart, snapshot, event, params, outcome, fields or EMPTY)
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
    value = truth(condition.name, snapshot, params or EMPTY, conditions or EMPTY)
    return value != condition.negated
