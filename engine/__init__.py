"""chartd: an explicit state-machine engine for control planes.

Declare a lifecycle as a chart, then ask what an event does::

    chart = engine.load_chart("container")   # a file, or an installed chart's name
    snapshot = chart.initial_snapshot({"id": "4f1c", "name": "/web"})
    plan = engine.step(chart, snapshot, "start")   # pure: nothing has run
    plan.steps          # the saga to run, in order
    plan.snapshot       # where the entity will be

Errors live in :mod:`engine.errors`; each has a ``.category``.

The public names are imported on first use (:mod:`engine._lazy`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from engine import errors
from engine._lazy import lazy_exports

if TYPE_CHECKING:
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

# Where each public name lives.
_HOMES = {
    "Engine": "engine._engine",
    "load_chart": "engine._loading",
    "parse_chart": "engine._loading",
    **dict.fromkeys(("Chart", "ConditionFn", "Plan", "Snapshot", "step"), "engine.core"),
    **dict.fromkeys(
        (
            "Bindings",
            "Context",
            "Entity",
            "Event",
            "Page",
            "Result",
            "Step",
            "StepRecord",
            "TransitionRecord",
        ),
        "engine.runtime",
    ),
}

# A library's loggers stay silent unless the application configures logging (the
# daemon does): without a handler, Python's last resort would print the engine's
# warnings (a recovery after a simulated crash, say) on the stderr of any script.
logging.getLogger("chartd").addHandler(logging.NullHandler())


__getattr__, __dir__ = lazy_exports(__name__, _HOMES, __all__)
