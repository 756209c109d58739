"""A chart as a Graphviz digraph (DOT): compound states as clusters."""

from __future__ import annotations

from engine.core import Chart
from engine.export._shared import diagram_names, label

__all__ = ["to_dot"]


def _text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def to_dot(chart: Chart) -> str:
    """The chart as a Graphviz digraph; a compound state is a cluster with an anchor node.

    Final states have a double border, transient states a dashed one,
    history states are small circles labelled ``H`` (shallow) or ``H*``
    (deep). Edges carry ``event [when]``; a targetless transition is a loop.
    """
    model = chart.model
    names = diagram_names(model)
    lines = [
        f'digraph "{_text(model.name)}" {{',
        "  compound=true;",
        '  node [shape=box, style=rounded, fontname="Helvetica"];',
        '  edge [fontname="Helvetica", fontsize=10];',
        "  __start [shape=point];",
    ]

    def draw(path: str, indent: str) -> None:
        state = model.states[path]
        node = names[path]
        if state.children:
            lines.append(f"{indent}subgraph cluster_{node} {{")
            lines.append(f'{indent}  label="{_text(state.name)}";')
            if state.kind == "parallel":
                lines.append(f"{indent}  style=dashed;")
            # Edges to and from a compound state attach to this invisible anchor.
            lines.append(f'{indent}  {node} [shape=point, style=invis, label=""];')
            for child in state.children:
                draw(child, indent + "  ")
            lines.append(f"{indent}}}")
            return
        if state.kind == "history":
            mark = "H*" if state.history == "deep" else "H"
            lines.append(f'{indent}{node} [label="{mark}", shape=circle, fontsize=10];')
            return
        shape = ", peripheries=2" if state.kind == "final" else ""
        style = ', style="rounded,dashed"' if state.transient else ""
        lines.append(f'{indent}{node} [label="{_text(state.name)}"{shape}{style}];')

    for top in model.top:
        draw(top, "  ")
    lines.append(f"  __start -> {names[model.initial]};")
    for t in model.transitions:
        target = t.target or t.source
        attrs = [f'label="{_text(label(t))}"']
        if model.states[t.source].children:
            attrs.append(f"ltail=cluster_{names[t.source]}")
        if model.states[target].children and target != t.source:
            attrs.append(f"lhead=cluster_{names[target]}")
        lines.append(f"  {names[t.source]} -> {names[target]} [{', '.join(attrs)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"
