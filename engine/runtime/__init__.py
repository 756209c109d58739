"""The runtime: the durable Engine that executes plans (sagas, journal, recovery, timers)."""

from engine.runtime.bindings import Bindings, Context, Guard, Step
from engine.runtime.engine import Engine, SystemClock
from engine.runtime.records import Entity, Event, Page, Result, StepRecord, TransitionRecord

__all__ = [
    "Bindings",
    "Context",
    "Engine",
    "Entity",
    "Event",
    "Guard",
    "Page",
    "Result",
    "Step",
    "StepRecord",
    "SystemClock",
    "TransitionRecord",
]
