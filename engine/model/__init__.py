"""The chart as pure data: the document's shape, its validation, the resolved model.

Imports nothing that does I/O; reading files is :func:`engine.load_chart`'s job.
"""

from engine.model.chart import (
    ChartModel,
    Condition,
    FailurePolicy,
    FollowUp,
    Rejection,
    State,
    StateKind,
    Transition,
)
from engine.model.document import ChartDocument
from engine.model.text import parse_text
from engine.model.validate import build, parse_document

__all__ = [
    "ChartDocument",
    "ChartModel",
    "Condition",
    "FailurePolicy",
    "FollowUp",
    "Rejection",
    "State",
    "StateKind",
    "Transition",
    "build",
    "parse_document",
    "parse_text",
]
