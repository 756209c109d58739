"""``state_machine(chart, bindings)``: a Hypothesis state machine that tests a chart end to end."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import engine
from engine.ports import Store
from engine.runtime import Bindings
from engine.testing.faults import Create, Fault, Fire, Restart, Retry
from engine.testing.harness import GuardOracle, Harness, Invariant
from engine.testing.standins import StandIns
from engine.testing.strategies import mixed

__all__ = ["BindingsFactory", "state_machine"]


BindingsFactory = Callable[[], "Bindings | tuple[Bindings, Sequence[Invariant]]"]
"""Builds the bindings for one run, and optionally the invariants that check their state."""


# Twelve parameters: the public options of state_machine, pinned by tests/unit/test_public_api.py.
def state_machine(
    chart: engine.Chart,
    bindings: Bindings | BindingsFactory | None = None,
    *,
    faults: bool | st.SearchStrategy[Fault | None] = True,
    crashes: bool | None = None,
    url: str | Callable[[], str] | None = None,
    params: Mapping[str, st.SearchStrategy[Any]] | None = None,
    data: st.SearchStrategy[dict[str, Any]] | None = None,
    guard_oracles: Mapping[str, GuardOracle] | None = None,
    invariants: Sequence[Invariant] = (),
    max_entities: int = 3,
    wrap_store: Callable[[Store], Store] | None = None,
    events: Sequence[str] | None = None,
) -> type[RuleBasedStateMachine]:
    """A state machine that drives a real :class:`engine.Engine` with ``chart`` and checks it.

    Use it in your own suite::

        from engine.testing import state_machine
        TestMyChart = state_machine(chart, bindings).TestCase

    Each run opens an engine on a database of its own (a SQLite file in a
    temporary directory; ``url``, a URL or a function returning one, to use
    another), creates up to ``max_entities`` entities (data drawn from
    ``data``), fires every event the chart knows and one it does not, with
    random params for its ``when`` conditions (plus ``params``: name ->
    strategy), repeats keyed fires, restarts the engine, and with
    ``faults`` makes guards, steps and undos fail and (``crashes``,
    default: as ``faults``) the process die anywhere in a fire. After each
    step it checks what the engine did against :func:`engine.step` and the
    invariants at rest (see :mod:`engine.testing.harness`), plus
    ``invariants`` (functions of the engine that raise AssertionError).
    ``faults`` may also be a strategy of fault plans (:func:`faults`), to
    aim at a kind of failure.

    ``bindings`` default to :class:`StandIns` for the chart, with their leak
    check. Bindings that keep state (a fake file system, a ledger of what
    steps made) should start each run afresh: pass a function that builds
    them, returning the bindings or (bindings, invariants that check that
    state); :func:`stand_ins` is one such function.
    ``guard_oracles`` map a guard's name to what it must answer
    (:data:`GuardOracle`). ``wrap_store`` wraps the engine's store, to test
    a store or to break one on purpose. ``events`` limits the events fired
    (default: every event the chart knows, and an unknown one).
    """
    inject = faults is not False
    crash = inject if crashes is None else crashes
    setup = _Setup(
        chart=chart,
        bindings=bindings,
        url=url,
        faults=inject,
        crashes=crash,
        guard_oracles=guard_oracles,
        invariants=invariants,
        wrap_store=wrap_store,
        events=events,
        max_entities=max_entities,
    )
    create_actions = st.builds(Create, data=data if data is not None else st.just({}))
    # Hypothesis picks among rules evenly; a restart costs a database open, so fires,
    # retries and restarts are one rule whose strategy weighs them.
    any_action = mixed(
        chart,
        max_entities=max_entities,
        extra_params=params,
        with_faults=faults,
        crashes=crash,
        events=events,
    )
    return _chart_machine(setup, create_actions, any_action)


@dataclass(frozen=True, slots=True)
class _Setup:
    """What each run of a state machine builds its harness from."""

    chart: engine.Chart
    bindings: Bindings | BindingsFactory | None
    url: str | Callable[[], str] | None
    faults: bool
    crashes: bool
    guard_oracles: Mapping[str, GuardOracle] | None
    invariants: Sequence[Invariant]
    wrap_store: Callable[[Store], Store] | None
    events: Sequence[str] | None
    max_entities: int

    def harness(self) -> Harness:
        """A harness for one run, with bindings (and their checks) of its own if built per run."""
        checks = list(self.invariants)
        extra: Sequence[Invariant]
        code: Bindings
        if self.bindings is None:
            # Stand-ins of its own for each run: their ledger is this run's.
            stand_ins = StandIns(self.chart)
            code, extra = stand_ins.bindings, [stand_ins.check]
        elif callable(self.bindings):
            built = self.bindings()
            code, extra = built if isinstance(built, tuple) else (built, [])
        else:
            code, extra = self.bindings, []
        checks.extend(extra)
        return Harness(
            self.chart,
            code,
            url=self.url() if callable(self.url) else self.url,
            faults=self.faults,
            crashes=self.crashes,
            guard_oracles=self.guard_oracles,
            invariants=checks,
            wrap_store=self.wrap_store,
            events=self.events,
        )


def _chart_machine(
    setup: _Setup,
    create_actions: st.SearchStrategy[Create],
    any_action: st.SearchStrategy[Create | Fire | Retry | Restart],
) -> type[RuleBasedStateMachine]:
    """The state machine class: its rules draw from the given strategies."""
    max_entities = setup.max_entities

    class ChartMachine(RuleBasedStateMachine):
        """Random creates, fires (with faults), retries and restarts of one chart's entities."""

        def __init__(self) -> None:
            super().__init__()
            self.harness = setup.harness()

        @precondition(lambda self: len(self.harness.entities) < max_entities)
        @rule(action=create_actions)
        def create(self, action: Create) -> None:
            self.harness.apply(action)

        @precondition(lambda self: bool(self.harness.entities))
        @rule(action=any_action)
        def act(self, action: Fire | Retry | Restart) -> None:
            self.harness.apply(action)

        @invariant()
        def at_rest(self) -> None:
            self.harness.check()

        def teardown(self) -> None:
            self.harness.close()

    ChartMachine.__name__ = ChartMachine.__qualname__ = f"{_camel(setup.chart.name)}Machine"
    return ChartMachine


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.replace("-", "_").split("_"))
