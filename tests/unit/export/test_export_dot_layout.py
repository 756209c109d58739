"""The DOT export as Graphviz lays it out: no warning, no label over another, no loose state.

Issue 16: ``dot`` warned of edges ending inside their own cluster, labels of
parallel edges and loops overlapped, and transient states stood alone.
"""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import engine
from engine.export import to_dot

CONTAINER = Path(__file__).resolve().parents[3] / "statecharts" / "container" / "chart.yaml"

pytestmark = pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot")

Box = tuple[float, float, float, float, str]


def _texts(draw: str) -> list[tuple[float, float, float, float, str]]:
    """(x, y, width, size, text) of each text operation of an xdot draw string."""
    out = []
    size = 14.0
    for match in re.finditer(r"F (\S+) \d+ -[^ ]+|T (\S+) (\S+) (-?\d) (\S+) (\d+) -", draw):
        if match.group(1) is not None:
            size = float(match.group(1))
            continue
        x, y, align, width, n = match.group(2, 3, 4, 5, 6)
        text = draw[match.end() : match.end() + int(n)]
        left = float(x) - {"-1": 0.0, "0": float(width) / 2, "1": float(width)}[align]
        out.append((left, float(y), float(width), size, text))
    return out


def laid_out(source: str) -> tuple[str, list[Box]]:
    """Graphviz's warnings for ``source``, and the box of every label it draws."""
    done = subprocess.run(
        ["dot", "-Txdot"], input=source, capture_output=True, text=True, check=True, timeout=60
    )
    boxes: list[Box] = []
    for draw in re.findall(r'_[ht]?ldraw_="((?:[^"\\]|\\.)*)"', done.stdout):
        for left, y, width, size, text in _texts(draw.replace('\\"', '"')):
            boxes.append((left, y - 0.3 * size, left + width, y + 0.7 * size, text))
    return done.stderr, boxes


def overlapping(boxes: list[Box]) -> list[tuple[str, str]]:
    return [
        (a[4], b[4])
        for a, b in itertools.combinations(boxes, 2)
        if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
    ]


def test_the_container_chart_lays_out_cleanly() -> None:
    warnings, boxes = laid_out(to_dot(engine.load_chart(CONTAINER)))
    assert warnings == ""
    assert len(boxes) > 20
    assert overlapping(boxes) == []


def test_the_layout_check_sees_an_overlap() -> None:
    source = 'digraph { a -> b [label="one"]; a -> b [label="one"]; }'
    _, boxes = laid_out(source)
    assert [b[4] for b in boxes] == ["a", "b", "one", "one"] or overlapping(boxes)


def test_transient_states_are_connected() -> None:
    chart = engine.load_chart(CONTAINER)
    text = to_dot(chart)
    for state in ("starting", "removing"):
        assert re.search(rf"\b\w+ -> {state} \[", text), state
        assert re.search(rf"\b{state} -> \w+ \[", text), state
