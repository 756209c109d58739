"""Static facts about a sound chart: what is reachable, which refusals are implicit.

Conditions are not evaluated here: a transition counts as possible whatever
its ``when`` says, so "reachable" is an over-approximation and "unreachable"
is certain.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.model.chart import ChartModel

__all__ = ["Finding", "analyse", "reachable_states", "unhandled_pairs"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing ``chartd chart check`` reports: where, what, and how bad."""

    severity: str  # "error" or "warning"
    kind: str
    where: str
    message: str


def _entered(model: ChartModel, target: str) -> set[str]:
    """The target, its ancestors, and every default descendant entering it can enter."""
    states = model.states
    out = {target, *states[target].ancestors}
    todo = [target, *states[target].ancestors]
    while todo:
        state = states[todo.pop()]
        if state.kind == "compound" and state.initial:
            new = {state.initial, *states[state.initial].ancestors} - out
        elif state.kind == "parallel":
            new = {c for c in state.children if states[c].kind != "history"} - out
        elif state.kind == "history" and state.parent:
            default = state.default or states[state.parent].initial
            new = {default} - out if default else set()
        else:
            new = set()
        out |= new
        todo.extend(new)
    return out


def reachable_states(model: ChartModel) -> set[str]:
    """The states an entity can occupy, from the initial state through any transition."""
    reached = _entered(model, model.initial)
    changed = True
    while changed:
        changed = False
        for t in model.transitions:
            if t.source not in reached:
                continue
            failure = t.on_failure.to if t.on_failure else None
            for target in (t.target, t.via, failure):
                if target is not None and not _entered(model, target) <= reached:
                    reached |= _entered(model, target)
                    changed = True
        for path, state in model.states.items():
            # What a history state restores was reachable anyway; the pseudo-state itself
            # counts as reached once its parent is.
            if state.kind == "history" and state.parent in reached and path not in reached:
                reached.add(path)
                changed = True
    return reached


def unhandled_pairs(model: ChartModel) -> list[tuple[str, str]]:
    """(state, event) pairs, for reachable resting states, that fall to the default Conflict.

    A pair is handled when the state or one of its ancestors has a
    transition or a declared rejection for the event (conditions ignored).
    Transient states are skipped: no event is handled while a saga holds one.
    """
    reached = reachable_states(model)
    handled: set[tuple[str, str]] = {(t.source, t.event) for t in model.transitions if t.event}
    wildcard: set[str] = set()
    for r in model.rejections:
        if r.events is None:
            wildcard.add(r.state)
        else:
            handled.update((r.state, e) for e in r.events)
    events = sorted(e for e in model.events if not e.startswith("done.state."))
    out: list[tuple[str, str]] = []
    for path, state in model.states.items():
        if path not in reached or state.kind not in ("atomic", "final") or state.transient:
            continue
        lineage = (path, *state.ancestors)
        for event in events:
            if not any((s, event) in handled or s in wildcard for s in lineage):
                out.append((path, event))
    return out


def analyse(model: ChartModel) -> list[Finding]:
    """Every finding about a sound chart: unreachable states, unhandled (state, event) pairs."""
    findings: list[Finding] = []
    reached = reachable_states(model)
    for path, state in model.states.items():
        if path not in reached and state.kind != "history":
            findings.append(
                Finding("warning", "unreachable", path, f"state {path!r} can never be entered")
            )
    for path, event in unhandled_pairs(model):
        findings.append(
            Finding(
                "warning",
                "unhandled",
                f"{path} + {event}",
                f"event {event!r} in {path!r} has neither a transition nor a declared "
                "rejection: it falls to the default Conflict",
            )
        )
    return findings
