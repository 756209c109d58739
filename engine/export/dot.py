"""A chart as a Graphviz digraph (DOT): compound states as clusters."""

from __future__ import annotations

from collections.abc import Mapping

from engine.core import Chart
from engine.export._shared import diagram_names, label
from engine.model.chart import ChartModel

__all__ = ["to_dot"]


def _text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def to_dot(chart: Chart) -> str:
    """The chart as a Graphviz digraph; a compound state is a cluster with an anchor node.

    Final states have a double border, transient states a dashed one,
    history states are small circles labelled ``H`` (shallow) or ``H*``
    (deep). Edges carry ``event [when]``, one line per transition they
    stand for; a targetless transition is a loop; a transition held in a
    transient state runs through it.
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
    for (tail, head), attrs in _edges(model, names).items():
        lines.append(f"  {tail} -> {head} [{', '.join(attrs)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _edges(model: ChartModel, names: Mapping[str, str]) -> dict[tuple[str, str], list[str]]:
    """One edge per (tail, head), labelled with every transition it stands for.

    Parallel edges and loops each with a label of their own overlap in
    Graphviz's layout; one label of several lines does not. A transition held
    in a transient state goes through it (source to the transient state, with
    the label; on to the target, dashed). An edge ends at a cluster's border
    (``lhead``/``ltail``) unless one end is inside the other's cluster, which
    Graphviz cannot draw (it warns and ignores it).
    """
    labels: dict[tuple[str, str], list[str]] = {}

    def add(tail: str, head: str, text: str | None) -> None:
        found = labels.setdefault((tail, head), [])
        if text is not None and text not in found:
            found.append(text)

    for t in model.transitions:
        target = t.target or t.source
        if t.via is not None:
            add(t.source, t.via, label(t))
            add(t.via, target, None)
        else:
            add(t.source, target, label(t))
    edges: dict[tuple[str, str], list[str]] = {}
    for (tail, head), texts in labels.items():
        attrs = [f'label="{_text(chr(10).join(texts))}"'] if texts else ["style=dashed"]
        if model.states[tail].children and not _within(head, tail):
            attrs.append(f"ltail=cluster_{names[tail]}")
        if model.states[head].children and not _within(tail, head):
            attrs.append(f"lhead=cluster_{names[head]}")
        edges[(names[tail], names[head])] = attrs
    return edges


def _within(path: str, ancestor: str) -> bool:
    """Whether ``path`` is ``ancestor`` or inside it."""
    return path == ancestor or path.startswith(ancestor + ".")
