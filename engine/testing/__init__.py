"""The property-based test kit: Hypothesis strategies and chart-driven state machines.

Test a chart end to end, in your own suite::

    from engine.testing import state_machine
    TestDoor = state_machine(door_chart, door_bindings).TestCase

:func:`state_machine` drives a real :class:`engine.Engine` with random
events (legal and illegal, with random params), makes guards, steps and
compensations fail, crashes and reopens the engine, and after every step
checks the engine against the pure core (:func:`engine.step`) and the
invariants of a durable journal: see :mod:`engine.testing.harness` and
docs/testing.md.

Strategies: :func:`charts` and :func:`chart_documents` (valid random
charts), :func:`evolutions` (a chart's next version, with its migration),
:func:`events` (event sequences), :func:`params`,
:func:`actions` (what a :class:`Harness` can be made to do).

Needs Hypothesis (a test dependency of chartd).
"""

from engine.testing.evolutions import Evolution, evolutions
from engine.testing.faults import (
    CRASH_POINTS,
    Crash,
    Create,
    Fault,
    Fire,
    InjectedFault,
    Restart,
    Retry,
    SimulatedCrash,
)
from engine.testing.harness import GuardOracle, Harness, Invariant
from engine.testing.machine import BindingsFactory, state_machine
from engine.testing.standins import StandIns, leaks, stand_ins
from engine.testing.strategies import (
    UNKNOWN_EVENT,
    actions,
    chart_documents,
    charts,
    events,
    faults,
    fires,
    mixed,
    params,
)

__all__ = [
    "CRASH_POINTS",
    "UNKNOWN_EVENT",
    "BindingsFactory",
    "Crash",
    "Create",
    "Evolution",
    "Fault",
    "Fire",
    "GuardOracle",
    "Harness",
    "InjectedFault",
    "Invariant",
    "Restart",
    "Retry",
    "SimulatedCrash",
    "StandIns",
    "actions",
    "chart_documents",
    "charts",
    "events",
    "evolutions",
    "faults",
    "fires",
    "leaks",
    "mixed",
    "params",
    "stand_ins",
    "state_machine",
]
