"""Eventless cycles through parallel regions are refused (found by engine.testing.charts()).

Entering one region of a parallel state enters its sibling regions too, so
an eventless move from a region to its sibling re-enters the source: the
move is enabled again at once and the chart never settles. The loader used
to miss this (it counted only the target, its ancestors and its default
descendants as entered), and engine.step then raised System ("the chart
does not settle") on the first step.
"""

from __future__ import annotations

from typing import Any

import pytest

import engine
from engine.errors import ChartError

PARALLEL: dict[str, Any] = {
    "chart": "p",
    "initial": "on",
    "states": {
        "on": {
            "parallel": True,
            "states": {
                "left": {"initial": "a", "states": {"a": {}, "b": {}}},
                "right": {"initial": "x", "states": {"x": {}, "y": {}}},
            },
        },
        "off": {},
    },
}


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("on.left.a", "on.right.y"),  # into the sibling region: both re-entered
        ("on.left", "on.right"),
        ("on.left.a", "on.left"),  # to its own region: the whole parallel state re-entered
    ],
)
def test_an_eventless_move_that_re_enters_its_source_is_a_cycle(source: str, target: str) -> None:
    with pytest.raises(ChartError, match="eventless transitions form a cycle"):
        engine.parse_chart({**PARALLEL, "transitions": [{"from": source, "to": target}]})


def test_forward_eventless_moves_in_two_regions_are_no_cycle() -> None:
    chart = engine.parse_chart(
        {
            **PARALLEL,
            "transitions": [
                {"from": "on.left.a", "to": "on.left.b"},
                {"from": "on.right.x", "to": "on.right.y"},
            ],
        }
    )
    assert chart.initial_snapshot().configuration == (
        "on",
        "on.left",
        "on.left.b",
        "on.right",
        "on.right.y",
    )
