"""Charts for other tools: JSON, Graphviz DOT and SVG, Mermaid, PlantUML, SCXML, XState.

One module per format, one function per format (``to_<format>(chart) ->
str``), all in :data:`FORMATS`; :func:`export` picks one by name. Every
export is deterministic: states in document order, transitions in document
order, nothing ordered by a hash. docs/export.md says what each format is
for and what maps to what.

- ``json``: the chart as data (:func:`describe`): states, transitions with
  guards and steps, rejections;
- ``dot``, ``svg``, ``mermaid``, ``plantuml``: diagrams of states and
  transitions (``svg`` runs Graphviz's ``dot``);
- ``scxml`` and ``xstate``: machines other interpreters run, with what they
  have no place for in a ``chartd`` namespace or ``meta``: nothing is lost.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from engine.core import Chart
from engine.errors import InvalidParameter
from engine.export._shared import diagram_names, label
from engine.export.dot import to_dot
from engine.export.plantuml import to_plantuml
from engine.export.scxml import to_scxml
from engine.export.svg import to_svg
from engine.export.xstate import to_xstate
from engine.model.chart import ChartModel

__all__ = [
    "FORMATS",
    "export",
    "to_dot",
    "to_json",
    "to_mermaid",
    "to_plantuml",
    "to_scxml",
    "to_svg",
    "to_xstate",
]


def describe(model: ChartModel) -> dict[str, Any]:
    """The chart as plain data: states, transitions (with guards and steps), rejections."""
    return {
        "chart": model.name,
        "version": model.version,
        "description": (model.description or "").strip(),
        "initial": model.initial,
        "states": [
            {
                "path": s.path,
                "kind": s.kind,
                **({"initial": s.initial} if s.initial else {}),
                **({"transient": True} if s.transient else {}),
                **({"history": s.history} if s.history else {}),
            }
            for s in model.states.values()
        ],
        "transitions": [
            {
                "event": t.event,
                "from": t.source,
                "to": t.target,
                **({"via": t.via} if t.via else {}),
                **({"when": str(t.when)} if t.when else {}),
                **({"guards": list(t.guards)} if t.guards else {}),
                **({"steps": list(t.steps)} if t.steps else {}),
            }
            for t in model.transitions
        ],
        "rejections": [
            {
                "event": sorted(r.events) if r.events is not None else "*",
                "in": r.state,
                **({"when": str(r.when)} if r.when else {}),
                "error": r.category.value,
                "message": r.message,
            }
            for r in model.rejections
        ],
    }


def to_json(chart: Chart) -> str:
    """The chart as JSON (see :func:`describe`)."""
    return json.dumps(describe(chart.model), indent=2) + "\n"


def to_mermaid(chart: Chart) -> str:
    """The chart as a Mermaid ``stateDiagram-v2``, compound states as composite states."""
    model = chart.model
    names = diagram_names(model)
    lines = ["stateDiagram-v2"]

    def draw(path: str, indent: str) -> None:
        state = model.states[path]
        lines.append(f'{indent}state "{state.name}" as {names[path]}')
        if state.children:
            lines.append(f"{indent}state {names[path]} {{")
            if state.initial:
                lines.append(f"{indent}  [*] --> {names[state.initial]}")
            for child in state.children:
                draw(child, indent + "  ")
            lines.append(f"{indent}}}")
        if state.kind == "final":
            lines.append(f"{indent}{names[path]} --> [*]")

    for top in model.top:
        draw(top, "  ")
    lines.append(f"  [*] --> {names[model.initial]}")
    for t in model.transitions:
        target = t.target or t.source
        lines.append(f"  {names[t.source]} --> {names[target]} : {label(t)}")
    return "\n".join(lines) + "\n"


FORMATS: Mapping[str, Callable[[Chart], str]] = {
    "json": to_json,
    "dot": to_dot,
    "mermaid": to_mermaid,
    "svg": to_svg,
    "plantuml": to_plantuml,
    "scxml": to_scxml,
    "xstate": to_xstate,
}
"""Every export format, by name."""


def export(chart: Chart, fmt: str) -> str:
    """``chart`` in format ``fmt`` (one of :data:`FORMATS`)."""
    render = FORMATS.get(fmt)
    if render is None:
        raise InvalidParameter(f"unknown export format {fmt!r} (use one of: {', '.join(FORMATS)})")
    return render(chart)
