"""Pure semantics: ``step(chart, snapshot, event) -> Plan``. No I/O, no clock, no threads."""

from engine.core.chart import Chart, ConditionFn, holds, step
from engine.core.plan import Plan
from engine.core.snapshot import Snapshot

__all__ = ["Chart", "ConditionFn", "Plan", "Snapshot", "holds", "step"]
