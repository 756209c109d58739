"""A chart as a PlantUML state diagram (``@startuml`` ... ``@enduml``).

Compound states are composite states with their ``[*] -->`` initial arrow;
a parallel state's regions are separated by ``--``; final states point to
``[*]``; a transition to a history state points to ``parent[H]`` (shallow)
or ``parent[H*]`` (deep); transient states carry the ``<<transient>>``
stereotype. A transition's label is ``event [when] / steps``, with
``(internal)`` for a targetless one (drawn as a loop) and ``via`` the
transient state held while its steps run. Guards, rejections and failure
policies are not drawn: the SCXML, XState and JSON forms carry them.
"""

from __future__ import annotations

from engine.core import Chart
from engine.export._shared import diagram_names, label
from engine.model.chart import Transition

__all__ = ["to_plantuml"]


def _text(text: str) -> str:
    # A label ends at the line's end and a name's quotes end at a quote.
    return text.replace("\n", " ").replace('"', "'")


def transition_label(t: Transition) -> str:
    """``event [when] / steps`` (and ``via`` the transient state) for PlantUML."""
    text = label(t)
    if t.steps:
        text += " / " + ", ".join(t.steps)
    if t.via:
        text += f" via {t.via}"
    return _text(text)


def to_plantuml(chart: Chart) -> str:
    """The chart as a PlantUML state diagram (see the module docstring)."""
    model = chart.model
    names = diagram_names(model)
    lines = ["@startuml", f"title {_text(model.name)} v{model.version}", "hide empty description"]

    def draw(path: str, indent: str) -> None:
        state = model.states[path]
        if state.kind == "history":
            return  # drawn where it is targeted, as parent[H] or parent[H*]
        stereotype = " <<transient>>" if state.transient else ""
        head = f'{indent}state "{_text(state.name)}" as {names[path]}{stereotype}'
        children = [c for c in state.children if model.states[c].kind != "history"]
        if not children:
            lines.append(head)
        else:
            lines.append(head + " {")
            if state.initial is not None:
                lines.append(f"{indent}  [*] --> {names[state.initial]}")
            for i, child in enumerate(children):
                if state.kind == "parallel" and i > 0:
                    lines.append(f"{indent}  --")
                draw(child, indent + "  ")
            lines.append(f"{indent}}}")
        if state.kind == "final":
            lines.append(f"{indent}{names[path]} --> [*]")

    for top in model.top:
        draw(top, "")
    lines.append(f"[*] --> {names[model.initial]}")

    def end(path: str) -> str:
        state = model.states[path]
        if state.kind == "history" and state.parent is not None:
            return f"{names[state.parent]}[{'H*' if state.history == 'deep' else 'H'}]"
        return names[path]

    for t in model.transitions:
        lines.append(f"{names[t.source]} --> {end(t.target or t.source)} : {transition_label(t)}")
    lines.append("@enduml")
    return "\n".join(lines) + "\n"
