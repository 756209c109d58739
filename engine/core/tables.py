"""The lookup tables a chart model is compiled into, which the step semantics consult.

The model says what the chart is; the tables answer the questions a
macrostep asks in the shape it asks them (the transitions leaving a state
on an event, a state's lineage, a transition's domain), computed once per
chart rather than once per step.
"""

from __future__ import annotations

from collections.abc import Mapping

from engine.model.chart import ChartModel, Rejection, State, Transition

__all__ = ["ROOT", "ChartTables"]

ROOT = ""
"""The chart's implicit root: the ancestor of every top-level state."""


class ChartTables:
    """The lookup tables of one chart model; immutable once built."""

    __slots__ = (
        "by_source",
        "domain",
        "has_history",
        "history_children",
        "initial",
        "leaf",
        "lineage",
        "name",
        "order",
        "rejections",
        "states",
        "top_final",
    )

    def __init__(self, model: ChartModel) -> None:
        """Compile the tables of ``model``."""
        states = model.states
        self.name = model.name
        self.initial = model.initial
        self.states: Mapping[str, State] = states
        self.order = {path: s.order for path, s in states.items()}
        # The state itself, then its ancestors outwards: the order of selection.
        self.lineage = {path: (path, *s.ancestors) for path, s in states.items()}
        self.leaf = frozenset(p for p, s in states.items() if s.kind in ("atomic", "final"))
        self.history_children: dict[str, tuple[State, ...]] = {}
        for s in states.values():
            if s.kind == "history" and s.parent:
                self.history_children.setdefault(s.parent, ())
                self.history_children[s.parent] += (s,)
        self.by_source: dict[tuple[str, str | None], tuple[Transition, ...]] = {}
        for t in model.transitions:
            key = (t.source, t.event)
            self.by_source[key] = (*self.by_source.get(key, ()), t)
        self.rejections: dict[str, tuple[Rejection, ...]] = {}
        for r in model.rejections:
            self.rejections[r.state] = (*self.rejections.get(r.state, ()), r)
        self.domain = {t: self.transition_domain(t.source, t.target) for t in model.transitions}
        self.has_history = bool(self.history_children)
        self.top_final = frozenset(
            p for p, s in states.items() if s.kind == "final" and s.parent is None
        )

    def is_descendant(self, state: str, ancestor: str) -> bool:
        """Whether ``state`` lies strictly inside ``ancestor`` (everything lies in the root)."""
        return ancestor == ROOT or state.startswith(ancestor + ".")

    def transition_domain(self, source: str, target: str | None) -> str | None:
        """SCXML's transition domain: the innermost compound proper ancestor holding both."""
        if target is None:
            return None
        for anc in (*self.states[source].ancestors, ROOT):
            if anc == ROOT or (
                self.states[anc].kind == "compound" and self.is_descendant(target, anc)
            ):
                return anc
        return ROOT  # pragma: no cover - the loop always ends at the root

    def domain_of(self, t: Transition) -> str | None:
        """The domain of ``t``, from the table or, for a move made up on the way, computed."""
        found = self.domain.get(t)
        if found is None and t.target is not None:
            return self.transition_domain(t.source, t.target)
        return found
