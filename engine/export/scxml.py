"""A chart as a W3C SCXML document, with what SCXML has no words for in a chartd namespace.

SCXML is the reference for chartd's semantics (docs/chart-language.md), so
the structure maps one to one: ``<state>`` (compound with ``initial``),
``<parallel>``, ``<final>``, ``<history type="shallow|deep">`` with its
default ``<transition>``, and ``<transition event cond target
type="external">`` in document order (chartd's transitions are SCXML's
external ones). An eventless transition has no ``event``, a targetless one
no ``target``; ``done.state.<path>`` is SCXML's own ``done.state.<id>``.

Conditions: the document declares ``datamodel="ecmascript"`` and one
``<data>`` per condition name, and a ``when`` is the expression ``name`` or
``name != true``: a name that is unset is false, as in chartd. (Not
``!name``: the negation is written so that Python datamodels, such as
python-statemachine's, read it as ECMAScript ones do.) ``set`` is
``<assign location expr>`` with the value as a JSON literal.

In the ``chartd`` namespace (:data:`NAMESPACE`): ``chartd:version`` on the
root; ``chartd:transient``, ``chartd:path`` (when the id is not the path)
and ``<chartd:description>`` on states; on states, their declared
rejections as ``<chartd:reject event error message when>`` after the
transitions (a state's transitions are tried first, then its rejections,
then its ancestor's). A ``<transition>``'s children are executable content,
which readers run or refuse (python-statemachine's reader stops at an
element it does not know, whatever its namespace), so what a transition
has beyond SCXML is in attributes of the namespace, which readers skip:
``chartd:guards`` and ``chartd:steps`` (space-separated, in order),
``chartd:via``, ``chartd:description``, ``chartd:then`` and
``chartd:then-when`` (the follow-up), and its failure policy as
``chartd:on-failure-to``, ``-record``, ``-after``, ``-then`` and
``-then-when``. Nothing of a chart is lost.

Ids are the dotted paths, which are NCNames already; anything else is made
one (:func:`engine.export._shared.ncname`) and numbered if two would clash.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from engine.core import Chart
from engine.export._shared import ncname, unique, xml_text
from engine.model.analysis import condition_names
from engine.model.chart import ChartModel, FollowUp, Rejection, State, Transition

__all__ = ["NAMESPACE", "SCXML_NAMESPACE", "to_scxml"]

SCXML_NAMESPACE = "http://www.w3.org/2005/07/scxml"
"""The W3C SCXML namespace, the document's default one."""

NAMESPACE = "https://chartd.dev/scxml"
"""The namespace of what SCXML has no element or attribute for (prefix ``chartd``)."""

_DONE = "done.state."


def _s(tag: str) -> str:
    return f"{{{SCXML_NAMESPACE}}}{tag}"


def _c(tag: str) -> str:
    return f"{{{NAMESPACE}}}{tag}"


class _Writer:
    def __init__(self, model: ChartModel) -> None:
        self.model = model
        self.ids = unique(model.states, ncname)

    def event(self, event: str) -> str:
        if event.startswith(_DONE):
            path = event[len(_DONE) :]
            return _DONE + self.ids.get(path, path)
        return event

    def state(self, parent: ET.Element, state: State) -> None:
        tag = {"parallel": "parallel", "final": "final", "history": "history"}.get(
            state.kind, "state"
        )
        el = ET.SubElement(parent, _s(tag), {"id": self.ids[state.path]})
        if self.ids[state.path] != state.path:
            el.set(_c("path"), state.path)
        if state.initial is not None:
            el.set("initial", self.ids[state.initial])
        if state.transient:
            el.set(_c("transient"), "true")
        if state.kind == "history":
            el.set("type", state.history or "shallow")
            default = state.default or self.model.states[state.parent or ""].initial
            if default is not None:
                ET.SubElement(el, _s("transition"), {"target": self.ids[default]})
            return
        if state.description:
            ET.SubElement(el, _c("description")).text = state.description.strip()
        for t in self.model.transitions:
            if t.source == state.path:
                self.transition(el, t)
        for r in self.model.rejections:
            if r.state == state.path:
                self.rejection(el, r)
        for child in state.children:
            self.state(el, self.model.states[child])

    def transition(self, parent: ET.Element, t: Transition) -> None:
        el = ET.SubElement(parent, _s("transition"))
        if t.event is not None:
            el.set("event", self.event(t.event))
        if t.when is not None:
            el.set("cond", f"{t.when.name} != true" if t.when.negated else t.when.name)
        if t.target is not None:
            el.set("target", self.ids[t.target])
            el.set("type", "external")
        if t.guards:
            el.set(_c("guards"), " ".join(t.guards))
        if t.steps:
            el.set(_c("steps"), " ".join(t.steps))
        if t.via is not None:
            el.set(_c("via"), self.ids[t.via])
        if t.description:
            el.set(_c("description"), t.description.strip())
        for key, value in t.assign.items():
            ET.SubElement(el, _s("assign"), {"location": key, "expr": json.dumps(value)})
        if t.then is not None:
            self.follow_up(el, "then", t.then)
        policy = t.on_failure
        if policy is not None:
            if policy.to is not None:
                el.set(_c("on-failure-to"), self.ids[policy.to])
            if policy.record:
                el.set(_c("on-failure-record"), " ".join(policy.record))
            if policy.after is not None:
                el.set(_c("on-failure-after"), policy.after)
            if policy.then is not None:
                self.follow_up(el, "on-failure-then", policy.then)

    def follow_up(self, el: ET.Element, name: str, then: FollowUp) -> None:
        el.set(_c(name), then.event)
        if then.when is not None:
            el.set(_c(f"{name}-when"), str(then.when))

    def rejection(self, parent: ET.Element, r: Rejection) -> None:
        events = " ".join(sorted(r.events)) if r.events is not None else "*"
        el = ET.SubElement(parent, _c("reject"), {"event": events, "error": r.category.value})
        if r.when is not None:
            el.set("when", str(r.when))
        el.set("message", r.message)

    def document(self) -> ET.Element:
        model = self.model
        root = ET.Element(
            _s("scxml"),
            {
                "version": "1.0",
                "name": model.name,
                "initial": self.ids[model.initial],
                "datamodel": "ecmascript",
                _c("version"): str(model.version),
            },
        )
        if model.description:
            ET.SubElement(root, _c("description")).text = model.description.strip()
        names = sorted(
            set(condition_names(model)) | {k for t in model.transitions for k in t.assign}
        )
        if names:
            datamodel = ET.SubElement(root, _s("datamodel"))
            for name in names:
                ET.SubElement(datamodel, _s("data"), {"id": ncname(name)})
        for top in model.top:
            self.state(root, model.states[top])
        return root


def to_scxml(chart: Chart) -> str:
    """The chart as an SCXML document (see the module docstring for the mapping)."""
    root = _Writer(chart.model).document()
    ET.indent(root)
    text = xml_text(root, {SCXML_NAMESPACE: "", NAMESPACE: "chartd"})
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + text + "\n"
