"""chartd: an explicit state-machine engine for control planes.

Declare a lifecycle as a chart, then ask what an event does::

    chart = engine.load_chart("statecharts/container/chart.yaml")
    snapshot = chart.initial_snapshot({"id": "4f1c", "name": "/web"})
    plan = engine.step(chart, snapshot, "start")   # pure: nothing has run
    plan.steps          # the saga to run, in order
    plan.snapshot       # where the entity will be

Errors live in :mod:`engine.errors`; each has a ``.category``.
"""

from engine import errors
from engine._engine import Engine
from engine._loading import load_chart, parse_chart
from engine.core import Chart, ConditionFn, Plan, Snapshot, step
from engine.runtime import (
    Bindings,
    Context,
    Entity,
    Event,
    Page,
    Result,
    Step,
    StepRecord,
    TransitionRecord,
)

__all__ = [
    "Bindings",
    "Chart",
    "ConditionFn",
    "Context",
    "Engine",
    "Entity",
    "Event",
    "Page",
    "Plan",
    "Result",
    "Snapshot",
    "Step",
    "StepRecord",
    "TransitionRecord",
    "errors",
    "load_chart",
    "parse_chart",
    "step",
]
