"""Charts as text for other tools: JSON, Graphviz DOT, Mermaid (a first, minimal room).

Each format draws the resolved chart: every state (compound states as
clusters or composite states, the initial state marked), every transition
with its event and ``when`` condition. Not drawn yet: guards, steps,
rejections, history defaults, parallel regions as such (they draw as
compound states). The JSON form has all of it. PlantUML, SCXML, XState and
the HTML view of an entity arrive with the export issue.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from engine.core import Chart
from engine.errors import InvalidParameter
from engine.model.chart import ChartModel, Transition

__all__ = ["FORMATS", "export", "to_dot", "to_json", "to_mermaid"]


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


def _label(t: Transition) -> str:
    label = t.event or "(eventless)"
    if t.when:
        label += f" [{t.when}]"
    if t.target is None:
        label += " (internal)"
    return label


def _node(path: str) -> str:
    return path.replace(".", "__").replace("-", "_")


def _dot_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def to_dot(chart: Chart) -> str:
    """The chart as a Graphviz digraph; a compound state is a cluster with an anchor node."""
    model = chart.model
    lines = [
        f'digraph "{_dot_text(model.name)}" {{',
        "  compound=true;",
        '  node [shape=box, style=rounded, fontname="Helvetica"];',
        '  edge [fontname="Helvetica", fontsize=10];',
        "  __start [shape=point];",
    ]

    def draw(path: str, indent: str) -> None:
        state = model.states[path]
        if state.children:
            lines.append(f"{indent}subgraph cluster_{_node(path)} {{")
            lines.append(f'{indent}  label="{_dot_text(state.name)}";')
            # Edges to and from a compound state attach to this invisible anchor.
            lines.append(f'{indent}  {_node(path)} [shape=point, style=invis, label=""];')
            for child in state.children:
                draw(child, indent + "  ")
            lines.append(f"{indent}}}")
            return
        shape = ", peripheries=2" if state.kind == "final" else ""
        style = ", style=dashed" if state.transient else ""
        lines.append(f'{indent}{_node(path)} [label="{_dot_text(state.name)}"{shape}{style}];')

    for top in model.top:
        draw(top, "  ")
    lines.append(f"  __start -> {_node(model.initial)};")
    for t in model.transitions:
        target = t.target or t.source
        attrs = [f'label="{_dot_text(_label(t))}"']
        if model.states[t.source].children:
            attrs.append(f"ltail=cluster_{_node(t.source)}")
        if model.states[target].children and target != t.source:
            attrs.append(f"lhead=cluster_{_node(target)}")
        lines.append(f"  {_node(t.source)} -> {_node(target)} [{', '.join(attrs)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(chart: Chart) -> str:
    """The chart as a Mermaid ``stateDiagram-v2``, compound states as composite states."""
    model = chart.model
    lines = ["stateDiagram-v2"]

    def draw(path: str, indent: str) -> None:
        state = model.states[path]
        lines.append(f'{indent}state "{state.name}" as {_node(path)}')
        if state.children:
            lines.append(f"{indent}state {_node(path)} {{")
            if state.initial:
                lines.append(f"{indent}  [*] --> {_node(state.initial)}")
            for child in state.children:
                draw(child, indent + "  ")
            lines.append(f"{indent}}}")
        if state.kind == "final":
            lines.append(f"{indent}{_node(path)} --> [*]")

    for top in model.top:
        draw(top, "  ")
    lines.append(f"  [*] --> {_node(model.initial)}")
    for t in model.transitions:
        target = t.target or t.source
        lines.append(f"  {_node(t.source)} --> {_node(target)} : {_label(t)}")
    return "\n".join(lines) + "\n"


FORMATS: Mapping[str, Callable[[Chart], str]] = {
    "json": to_json,
    "dot": to_dot,
    "mermaid": to_mermaid,
}
"""Every export format, by name."""


def export(chart: Chart, fmt: str) -> str:
    """``chart`` in format ``fmt`` (one of :data:`FORMATS`)."""
    render = FORMATS.get(fmt)
    if render is None:
        raise InvalidParameter(f"unknown export format {fmt!r} (use one of: {', '.join(FORMATS)})")
    return render(chart)
