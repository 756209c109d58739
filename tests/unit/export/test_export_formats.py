"""The minimal exports draw every state and every transition of the container chart."""

from __future__ import annotations

import json

import pytest

from engine.errors import InvalidParameter
from engine.export import FORMATS, export
from statecharts.container import load_chart


def test_json_has_the_whole_chart() -> None:
    chart = load_chart()
    document = json.loads(export(chart, "json"))
    assert document["chart"] == "container" and document["initial"] == chart.model.initial
    assert [s["path"] for s in document["states"]] == list(chart.model.states)
    assert len(document["transitions"]) == len(chart.model.transitions)
    assert len(document["rejections"]) == len(chart.model.rejections)


def test_dot_and_mermaid_draw_every_state_and_transition() -> None:
    chart = load_chart()
    dot, mermaid = export(chart, "dot"), export(chart, "mermaid")
    assert dot.startswith('digraph "container" {') and dot.rstrip().endswith("}")
    assert "subgraph cluster_running" in dot and "__start -> created;" in dot
    assert mermaid.startswith("stateDiagram-v2\n") and "[*] --> created" in mermaid
    for path in chart.model.states:
        node = path.replace(".", "__")
        assert node in dot and node in mermaid
    # One edge per pair of states, a label line per transition (via a transient state).
    edges = {(t.source, t.via or t.target or t.source) for t in chart.model.transitions}
    edges |= {(t.via, t.target) for t in chart.model.transitions if t.via}
    assert dot.count(" -> ") == len(edges) + 1  # and the initial arrow
    assert mermaid.count(" : ") == len(chart.model.transitions)


def test_unknown_format() -> None:
    assert list(FORMATS) == ["json", "dot", "mermaid", "svg", "plantuml", "scxml", "xstate"]
    with pytest.raises(InvalidParameter, match="unknown export format 'png'"):
        export(load_chart(), "png")
