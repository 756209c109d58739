"""A chart as an XState v5 machine config (JSON): ``createMachine(config)`` runs it.

What maps to what (docs/export.md has the full table):

- states nest under ``states``; a compound state has ``initial`` (a child's
  key), a parallel state ``type: "parallel"``, a final one ``type: "final"``,
  a history state ``type: "history"`` with ``history: "shallow" | "deep"``
  and its default as ``target``;
- a transition is an entry in ``on[event]`` (``always`` when it is
  eventless), in document order, with an absolute ``target``
  (``#<chart>.<path>``) and ``reenter: true``: chartd's transitions are
  SCXML *external* transitions, which exit and re-enter their source when
  they target it or a descendant, and XState's default would not;
- ``done.state.<path>`` is XState's ``xstate.done.state.<chart>.<path>``;
- a ``when`` is a named guard: ``"c"`` or ``"!c"``, whose implementation is
  the negation of ``c``'s (XState's ``not()`` is code, not JSON);
- saga steps are named actions, in their order;
- a declared rejection is a targetless transition after the state's own
  transitions for that event, whose one action is
  ``{type: "chartd.reject", params: {error, message}}``: as in chartd, the
  innermost state decides and an ancestor's transition is not taken
  (a rejection of ``"*"`` is listed under every event of the chart);
- what XState has no place for travels in ``meta.chartd``: guards (chartd's
  guards are checks that may fail the event, not selectors), ``via``,
  ``set``, ``then``, ``on_failure``; a transient state's ``transient``;
  the chart's ``version``; and the chart's ``initial`` when it is nested
  deeper than the initials of its ancestors lead: XState's ``initial`` can
  only name a child, so the machine starts in the top-level ancestor.
"""

from __future__ import annotations

import json
from typing import Any

from engine.core import Chart
from engine.model.chart import ChartModel, Rejection, State, Transition

__all__ = ["REJECT_ACTION", "machine_config", "to_xstate"]

REJECT_ACTION = "chartd.reject"
"""The action a declared rejection runs in the XState machine; its params name the error."""

_DONE = "done.state."


def _target(model: ChartModel, path: str) -> str:
    return f"#{model.name}.{path}"


def _event(model: ChartModel, event: str) -> str:
    if event.startswith(_DONE):
        return f"xstate.done.state.{model.name}.{event[len(_DONE) :]}"
    return event


def _transition(model: ChartModel, t: Transition) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if t.target is not None:
        out["target"] = _target(model, t.target)
        out["reenter"] = True
    if t.when is not None:
        out["guard"] = str(t.when)
    if t.steps:
        out["actions"] = list(t.steps)
    if t.description:
        out["description"] = t.description.strip()
    chartd: dict[str, Any] = {}
    if t.guards:
        chartd["guards"] = list(t.guards)
    if t.via:
        chartd["via"] = t.via
    if t.assign:
        chartd["set"] = dict(t.assign)
    if t.then is not None:
        chartd["then"] = _follow_up(t.then.event, t.then.when)
    if t.on_failure is not None:
        policy = t.on_failure
        failure: dict[str, Any] = {}
        if policy.to is not None:
            failure["to"] = policy.to
        if policy.record:
            failure["record"] = list(policy.record)
        if policy.then is not None:
            failure["then"] = _follow_up(policy.then.event, policy.then.when)
        if policy.after is not None:
            failure["after"] = policy.after
        chartd["on_failure"] = failure
    if chartd:
        out["meta"] = {"chartd": chartd}
    return out


def _follow_up(event: str, when: object | None) -> dict[str, Any]:
    return {"event": event, **({"when": str(when)} if when is not None else {})}


def _rejection(r: Rejection) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if r.when is not None:
        out["guard"] = str(r.when)
    out["actions"] = [
        {"type": REJECT_ACTION, "params": {"error": r.category.value, "message": r.message}}
    ]
    return out


def _state(model: ChartModel, state: State, everything: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if state.kind == "parallel":
        out["type"] = "parallel"
    elif state.kind == "final":
        out["type"] = "final"
    elif state.kind == "history":
        out["type"] = "history"
        out["history"] = state.history or "shallow"
        if state.default is not None:
            out["target"] = _target(model, state.default)
    if state.initial is not None:
        out["initial"] = model.states[state.initial].name
    if state.description:
        out["description"] = state.description.strip()
    if state.transient:
        out["meta"] = {"chartd": {"transient": True}}
    on: dict[str, list[dict[str, Any]]] = {}
    always: list[dict[str, Any]] = []
    for t in model.transitions:
        if t.source != state.path:
            continue
        if t.event is None:
            always.append(_transition(model, t))
        else:
            on.setdefault(_event(model, t.event), []).append(_transition(model, t))
    for r in model.rejections:
        if r.state == state.path:
            for event in sorted(r.events) if r.events is not None else everything:
                on.setdefault(_event(model, event), []).append(_rejection(r))
    if on:
        out["on"] = on
    if always:
        out["always"] = always
    if state.children:
        out["states"] = {
            model.states[c].name: _state(model, model.states[c], everything) for c in state.children
        }
    return out


def machine_config(chart: Chart) -> dict[str, Any]:
    """The XState v5 machine config of ``chart``, as plain data (see the module docstring)."""
    model = chart.model
    # "*" means every event the chart knows; done.state events are internal, never refused.
    everything = sorted(e for e in model.events if not e.startswith(_DONE))
    top = model.initial.split(".")[0]
    config: dict[str, Any] = {"id": model.name, "initial": top}
    if model.description:
        config["description"] = model.description.strip()
    config["meta"] = {"chartd": {"version": model.version}}
    if not _reached_by_initials(model, top, model.initial):
        # XState's `initial` names a child, never a deeper state: the machine starts in the
        # top-level ancestor's own initial states, which are not the chart's.
        config["meta"]["chartd"]["initial"] = model.initial
    config["states"] = {
        model.states[p].name: _state(model, model.states[p], everything) for p in model.top
    }
    return config


def _reached_by_initials(model: ChartModel, top: str, initial: str) -> bool:
    """Whether entering ``top`` by the initials of its compound states enters ``initial``."""
    path = top
    while path != initial:
        state = model.states[path]
        child = initial[len(path) + 1 :].split(".", maxsplit=1)[0]
        if state.kind == "compound" and state.initial != f"{path}.{child}":
            return False
        path = f"{path}.{child}"
    return True


def to_xstate(chart: Chart) -> str:
    """The chart as an XState v5 machine config, JSON (see :func:`machine_config`)."""
    return json.dumps(machine_config(chart), indent=2, ensure_ascii=False) + "\n"
