"""From a chart document to a sound :class:`ChartModel`, or every problem at once.

Each problem is reported with its path in the document
(``transitions[3].to: unknown state 'runing' (did you mean 'running'?)``),
and all of them are collected before raising, so that one run of
``chartd chart check`` shows the whole list.
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from pydantic import ValidationError

from engine.errors import ChartError, Problem
from engine.model.chart import (
    ChartModel,
    Condition,
    FailurePolicy,
    FollowUp,
    Rejection,
    State,
    Transition,
)
from engine.model.document import ChartDocument, StateDocument
from engine.model.migration import target_problems
from engine.model.schema import compile_schema
from engine.model.schema import problems as schema_problems

__all__ = ["build", "parse_document"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_EVENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]*$")
_CONDITION = re.compile(r"^(!?)\s*([A-Za-z_][A-Za-z0-9_]*)$")
ANY_EVENT = "*"


def parse_document(data: Mapping[str, Any], *, source: str | None = None) -> ChartDocument:
    """Check the shape of ``data``; a ChartError names the path of every defect."""
    if not isinstance(data, Mapping):
        raise ChartError([("", f"a chart is a mapping, not {type(data).__name__}")], source=source)
    try:
        return ChartDocument.model_validate(data)
    except ValidationError as exc:
        raise ChartError(
            [(_loc(err["loc"]), _pydantic_text(err)) for err in exc.errors()], source=source
        ) from None


def _loc(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _pydantic_text(err: Any) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if err["type"] == "missing":
        return "required key is missing"
    return str(err["msg"]).removeprefix("Value error, ")


def build(document: ChartDocument | Mapping[str, Any], *, source: str | None = None) -> ChartModel:
    """Validate a document's meaning and resolve it into a :class:`ChartModel`.

    Raises :class:`~engine.errors.ChartError` listing every problem found:
    those of the document's shape and, with the defective parts left out,
    those of its meaning (an unknown key in one transition hides no unknown
    target state in another).
    """
    if isinstance(document, ChartDocument):
        return _Builder(document).run(source)
    try:
        doc = parse_document(document, source=source)
    except ChartError as shape:
        meaning = _meaning_problems(document) if isinstance(document, Mapping) else []
        raise ChartError([*shape.problems, *meaning], source=source) from None
    return _Builder(doc).run(source)


_ITEMS = ("transitions", "rejections")
_INDEX = re.compile(r"\b(transitions|rejections)\[(\d+)\]")


def _meaning_problems(data: Mapping[str, Any]) -> list[Problem]:
    """The problems of meaning of a document whose shape is wrong, found without its defects.

    A transition or rejection with a defect is left out whole (paths keep
    their indices in the document); a state's defective key is left out, a
    state that is not a mapping is taken as empty. When what is left still
    has no valid shape (say ``initial`` is missing), there is nothing to add.
    """
    salvaged: dict[str, Any] = {k: copy.deepcopy(v) for k, v in data.items()}
    left_out: dict[str, set[int]] = {key: set() for key in _ITEMS}
    try:
        ChartDocument.model_validate(salvaged)
    except ValidationError as exc:
        for err in exc.errors():
            if not _leave_out(salvaged, err["loc"], left_out):
                return []
    for key in _ITEMS:
        if isinstance(salvaged.get(key), list):
            salvaged[key] = [x for i, x in enumerate(salvaged[key]) if i not in left_out[key]]
    try:
        doc = ChartDocument.model_validate(salvaged)
        _Builder(doc).run(None)
    except ValidationError:
        return []
    except ChartError as meaning:
        kept = {
            key: [i for i in range(len(data.get(key) or ())) if i not in left_out[key]]
            for key in _ITEMS
        }

        def original(match: re.Match[str]) -> str:
            key, index = match.group(1), int(match.group(2))
            return f"{key}[{kept[key][index]}]" if index < len(kept[key]) else match.group(0)

        return [(_INDEX.sub(original, p), _INDEX.sub(original, t)) for p, t in meaning.problems]
    return []


def _leave_out(
    data: dict[str, Any], loc: Sequence[int | str], left_out: dict[str, set[int]]
) -> bool:
    """Take the part at ``loc`` out of ``data``; False if it is one a chart cannot do without."""
    if len(loc) >= 2 and loc[0] in _ITEMS and isinstance(loc[1], int):
        left_out[str(loc[0])].add(loc[1])
        return True
    if len(loc) >= 1 and loc[0] == "migrations":
        data.pop("migrations", None)
        return True
    if len(loc) == 1 and loc[0] in ("description", "version", "data", *_ITEMS):
        data.pop(str(loc[0]), None)
        return True
    if len(loc) >= 2 and loc[0] == "states":
        return _leave_out_of_states(data.get("states"), list(loc[1:]))
    return False


def _leave_out_of_states(states: Any, loc: list[int | str]) -> bool:
    """Within ``states``: a defective key of a state out, a state that is no mapping empty."""
    while isinstance(states, dict) and loc and loc[0] in states:
        name, rest = loc[0], loc[1:]
        if not isinstance(states[name], dict):
            states[name] = {}
            return True
        if len(rest) >= 2 and rest[0] == "states":
            states, loc = states[name]["states"], rest[1:]
            continue
        if len(rest) >= 1 and isinstance(rest[0], str):
            states[name].pop(rest[0], None)
            return True
        return False
    return False


class _Builder:
    def __init__(self, doc: ChartDocument) -> None:
        self.doc = doc
        self.problems: list[Problem] = []
        self.states: dict[str, State] = {}
        self.doc_path: dict[str, str] = {}

    def problem(self, path: str, text: str) -> None:
        self.problems.append((path, text))

    # -- states ---------------------------------------------------------------

    def add_states(
        self, states: Mapping[str, StateDocument], parent: str | None, doc_path: str
    ) -> None:
        for name, sd in states.items():
            where = f"{doc_path}.{name}"
            path = f"{parent}.{name}" if parent else name
            if not _NAME.match(name):
                self.problem(where, f"invalid state name {name!r}: use letters, digits, '_' or '-'")
                continue
            children = tuple(f"{path}.{child}" for child in sd.states if _NAME.match(child))
            kind = self.kind_of(sd, where, parent)
            self.states[path] = State(
                path=path,
                kind=kind,
                parent=parent,
                children=children,
                initial=None,  # resolved once every state is known
                transient=sd.transient,
                history=sd.history,
                default=None,
                order=len(self.states),
                description=sd.description,
            )
            self.doc_path[path] = where
            self.add_states(sd.states, path, f"{where}.states")

    def kind_of(self, sd: StateDocument, where: str, parent: str | None) -> Any:
        flags = [k for k in ("parallel", "final", "history") if getattr(sd, k)]
        if len(flags) > 1:
            self.problem(where, f"a state cannot be both {flags[0]} and {flags[1]}")
        if sd.history and sd.states:
            self.problem(f"{where}.states", "a history state has no children")
        if sd.history and parent is None:
            self.problem(
                f"{where}.history", "a history state must be the child of a compound state"
            )
        if sd.final and sd.states:
            self.problem(f"{where}.states", "a final state has no children")
        if sd.parallel and not sd.states:
            self.problem(f"{where}.states", "a parallel state needs at least one region")
        if sd.transient and (sd.states or sd.final or sd.history):
            self.problem(f"{where}.transient", "a transient state must be atomic")
        if sd.initial is not None and (sd.parallel or not sd.states):
            self.problem(f"{where}.initial", "only a compound state has an initial child")
        if sd.default is not None and not sd.history:
            self.problem(f"{where}.default", "only a history state has a default")
        if sd.history:
            return "history"
        if sd.final:
            return "final"
        if sd.parallel:
            return "parallel"
        if sd.states:
            if sd.initial is None:
                self.problem(f"{where}.initial", "a compound state needs an initial child")
            return "compound"
        return "atomic"

    def resolve_state_details(self) -> None:
        """Fill in initial children and history defaults, now every path is known."""
        for path, state in list(self.states.items()):
            sd = self.state_doc(path)
            initial = default = None
            if state.kind == "compound" and sd.initial is not None:
                where = f"{self.doc_path[path]}.initial"
                initial = self.resolve_relative(path, sd.initial, where)
                if initial is not None and self.states[initial].transient:
                    self.problem(where, f"the initial state {initial!r} cannot be transient")
            if state.kind == "history" and sd.default is not None and state.parent:
                where = f"{self.doc_path[path]}.default"
                default = self.resolve(sd.default, where)
                if default is not None and not default.startswith(state.parent + "."):
                    self.problem(where, f"the default must be inside {state.parent!r}")
                    default = None
            if (
                state.kind == "history"
                and state.parent
                and self.states[state.parent].kind != "compound"
            ):
                self.problem(
                    f"{self.doc_path[path]}.history",
                    "a history state must be the child of a compound state",
                )
            self.states[path] = replace(state, initial=initial, default=default)

    def state_doc(self, path: str) -> StateDocument:
        parts = path.split(".")
        sd = self.doc.states[parts[0]]
        for part in parts[1:]:
            sd = sd.states[part]
        return sd

    def resolve_relative(self, parent: str, ref: str, where: str) -> str | None:
        full = f"{parent}.{ref}"
        if full in self.states:
            return full
        children = [p.removeprefix(parent + ".") for p in self.states if p.startswith(parent + ".")]
        close = difflib.get_close_matches(ref, children, n=1, cutoff=0.7)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        self.problem(where, f"{ref!r} is not a child of {parent!r}{hint}")
        return None

    def resolve(self, ref: str, where: str) -> str | None:
        if ref in self.states:
            return ref
        self.problem(where, f"unknown state {ref!r}{self.hint(ref)}")
        return None

    def hint(self, ref: str) -> str:
        leaf = ref.rpartition(".")[2]
        by_leaf = [p for p in self.states if p.rpartition(".")[2] == leaf]
        close = by_leaf or difflib.get_close_matches(ref, list(self.states), n=1, cutoff=0.7)
        return f" (did you mean {close[0]!r}?)" if close else ""

    # -- transitions and rejections ---------------------------------------------

    def condition(self, text: str | None, where: str) -> Condition | None:
        if text is None:
            return None
        match = _CONDITION.match(text.strip())
        if not match:
            self.problem(where, f"invalid condition {text!r}: a name, optionally negated with '!'")
            return None
        return Condition(match.group(2), negated=bool(match.group(1)))

    def event_name(self, name: str, where: str) -> None:
        if not _EVENT.match(name):
            self.problem(where, f"invalid event name {name!r}")

    def build_transitions(self) -> list[Transition]:
        out: list[Transition] = []
        via_users: dict[str, bool] = {}
        for i, td in enumerate(self.doc.transitions):
            where = f"transitions[{i}]"
            if td.event is not None:
                self.event_name(td.event, f"{where}.event")
            target = self.resolve(td.to, f"{where}.to") if td.to is not None else None
            if target is not None and self.states[target].transient:
                self.problem(
                    f"{where}.to",
                    f"{target!r} is transient: name it in 'via', it is held only while steps run",
                )
            if td.event is None and td.to is None:
                self.problem(where, "an eventless transition needs a target ('to')")
            via = None
            if td.via is not None:
                via = self.resolve(td.via, f"{where}.via")
                if via is not None and not self.states[via].transient:
                    self.problem(f"{where}.via", f"{via!r} is not a transient state")
                    via = None
                elif via is not None:
                    if not td.steps:
                        self.problem(
                            f"{where}.via", "a transition held in a transient state needs steps"
                        )
                    via_users[via] = via_users.get(via, False) or bool(td.steps)
            for key in td.set:
                if not _NAME.match(key):
                    self.problem(f"{where}.set.{key}", f"invalid data key {key!r}")
            for j, name in enumerate((*td.guards, *td.steps)):
                if not _NAME.match(name):
                    kind = "guards" if j < len(td.guards) else "steps"
                    index = j if j < len(td.guards) else j - len(td.guards)
                    self.problem(f"{where}.{kind}[{index}]", f"invalid name {name!r}")
            policy = self.failure_policy(td.on_failure, f"{where}.on_failure", td.steps)
            then = None
            if td.then is not None:
                self.event_name(td.then.event, f"{where}.then.event")
                then = FollowUp(td.then.event, self.condition(td.then.when, f"{where}.then.when"))
            when = self.condition(td.when, f"{where}.when")
            for k, ref in enumerate(td.source):
                source = self.resolve(
                    ref, f"{where}.from[{k}]" if len(td.source) > 1 else f"{where}.from"
                )
                if source is None:
                    continue
                kind = self.states[source].kind
                if kind in ("final", "history") or self.states[source].transient:
                    what = "transient" if self.states[source].transient else kind
                    self.problem(
                        f"{where}.from", f"a transition cannot leave the {what} state {source!r}"
                    )
                    continue
                out.append(
                    Transition(
                        index=i,
                        source=source,
                        event=td.event,
                        target=target,
                        via=via,
                        when=when,
                        guards=tuple(td.guards),
                        steps=tuple(td.steps),
                        assign=dict(td.set),
                        on_failure=policy,
                        description=td.description,
                        then=then,
                    )
                )
        for path, state in self.states.items():
            if state.transient and not via_users.get(path, False):
                self.problem(
                    self.doc_path[path],
                    "a transient state must be the 'via' of a transition with steps",
                )
        return out

    def failure_policy(
        self, fd: Any, where: str, steps: Sequence[str] = ()
    ) -> FailurePolicy | None:
        if fd is None:
            return None
        if fd.after is not None and fd.after not in steps:
            known = ", ".join(repr(s) for s in steps) or "none"
            self.problem(
                f"{where}.after",
                f"{fd.after!r} is not one of this transition's steps (its steps: {known})",
            )
        to = self.resolve(fd.to, f"{where}.to") if fd.to is not None else None
        if to is not None and (self.states[to].transient or self.states[to].kind == "history"):
            self.problem(f"{where}.to", f"a failure cannot leave the entity in {to!r}")
        then = None
        if fd.then is not None:
            self.event_name(fd.then.event, f"{where}.then.event")
            then = FollowUp(fd.then.event, self.condition(fd.then.when, f"{where}.then.when"))
        return FailurePolicy(to=to, record=tuple(fd.record), then=then, after=fd.after)

    def build_rejections(self) -> list[Rejection]:
        out: list[Rejection] = []
        seen: dict[tuple[str, str, str | None], int] = {}
        for i, rd in enumerate(self.doc.rejections):
            where = f"rejections[{i}]"
            events = None if ANY_EVENT in rd.event else frozenset(rd.event)
            for j, name in enumerate(rd.event):
                if name != ANY_EVENT:
                    self.event_name(name, f"{where}.event[{j}]")
            when = self.condition(rd.when, f"{where}.when")
            for k, ref in enumerate(rd.states):
                state = self.resolve(
                    ref, f"{where}.in[{k}]" if len(rd.states) > 1 else f"{where}.in"
                )
                if state is None:
                    continue
                for name in rd.event:
                    key = (state, name, str(when) if when else None)
                    if key in seen:
                        self.problem(
                            where,
                            f"duplicate rejection of {name!r} in {state!r} "
                            f"(first declared in rejections[{seen[key]}])",
                        )
                    seen.setdefault(key, i)
                out.append(Rejection(i, state, events, rd.error, rd.message, when))
        return out

    def check_eventless_cycles(self, transitions: list[Transition]) -> None:
        """Refuse cycles of eventless transitions.

        The data is constant within one step, so once such a cycle is entered
        its conditions stay true and it never ends.
        """
        edges: dict[str, set[str]] = {}
        for t in transitions:
            if t.event is None and t.target is not None:
                for entered in self.entered_by(t.target, t.source):
                    edges.setdefault(t.source, set()).add(entered)
        # A transition from an ancestor of an entered state is enabled again too.
        closure: dict[str, set[str]] = {}
        for source, targets in edges.items():
            expanded: set[str] = set()
            for target in targets:
                expanded.add(target)
                expanded.update(self.states[target].ancestors)
            closure[source] = expanded & set(edges)
        state_on_stack: dict[str, int] = {}
        done: set[str] = set()

        def visit(node: str, stack: list[str]) -> list[str] | None:
            state_on_stack[node] = len(stack)
            stack.append(node)
            for nxt in sorted(closure.get(node, ())):
                if nxt in state_on_stack:
                    return [*stack[state_on_stack[nxt] :], nxt]
                if nxt not in done:
                    found = visit(nxt, stack)
                    if found:
                        return found
            stack.pop()
            del state_on_stack[node]
            done.add(node)
            return None

        for node in sorted(closure):
            if node not in done:
                cycle = visit(node, [])
                if cycle:
                    index = min(
                        t.index for t in transitions if t.event is None and t.source in cycle
                    )
                    self.problem(
                        f"transitions[{index}]",
                        "eventless transitions form a cycle that never ends: " + " -> ".join(cycle),
                    )
                    return

    def entered_by(self, target: str, source: str) -> set[str]:
        """What a move from ``source`` to ``target`` may enter (an over-approximation).

        The target, its ancestors and default descendants, and every region of
        a parallel ancestor below the move's domain: entering one region
        enters its siblings too (from a region to its sibling, the source
        region itself is entered again).
        """
        out = {target, *self.states[target].ancestors}
        todo = [target]
        domain = next(
            (
                a
                for a in self.states[source].ancestors
                if self.states[a].kind == "compound" and target.startswith(a + ".")
            ),
            None,
        )
        for anc in self.states[target].ancestors:
            if anc == domain:
                break
            if self.states[anc].kind == "parallel":
                regions = [c for c in self.states[anc].children if self.states[c].kind != "history"]
                todo.extend(regions)
                out.update(regions)
        while todo:
            state = self.states[todo.pop()]
            if state.kind == "compound" and state.initial:
                todo.append(state.initial)
                out.update(self._between(state.path, state.initial))
            elif state.kind == "parallel":
                regions = [c for c in state.children if self.states[c].kind != "history"]
                todo.extend(regions)
                out.update(regions)
            elif state.kind == "history" and state.parent:
                # Whatever the parent last held: any of its descendants.
                out.update(p for p in self.states if p.startswith(state.parent + "."))
        return out

    def _between(self, ancestor: str, descendant: str) -> set[str]:
        return {
            a
            for a in (descendant, *self.states[descendant].ancestors)
            if a.startswith(ancestor + ".")
        }

    # -- the whole ---------------------------------------------------------------

    def run(self, source: str | None) -> ChartModel:
        doc = self.doc
        if not _NAME.match(doc.chart):
            self.problem(
                "chart", f"invalid chart name {doc.chart!r}: use letters, digits, '_' or '-'"
            )
        for i, field_name in enumerate(doc.data):
            if not _NAME.match(field_name):
                self.problem(f"data[{i}]", f"invalid data field {field_name!r}")
        self.add_states(doc.states, None, "states")
        self.resolve_state_details()
        initial = self.resolve(doc.initial, "initial")
        if initial is not None:
            kind = self.states[initial].kind
            if kind == "history" or self.states[initial].transient:
                self.problem("initial", f"an entity cannot start in the {kind} state {initial!r}")
        transitions = self.build_transitions()
        rejections = self.build_rejections()
        if not self.problems:
            self.check_eventless_cycles(transitions)
        events = {t.event for t in transitions if t.event is not None}
        events.update(e for r in rejections if r.events for e in r.events)
        events.update(
            t.on_failure.then.event for t in transitions if t.on_failure and t.on_failure.then
        )
        events.update(t.then.event for t in transitions if t.then)
        for state in self.states.values():
            if state.kind in ("compound", "parallel"):
                events.add(f"done.state.{state.path}")
        self.problems.extend(schema_problems(doc.schema_, frozenset(events)))
        self.problems.extend(target_problems(doc.migrations, doc.version, self.states, events))
        if self.problems:
            raise ChartError(self.problems, source=source)
        assert initial is not None
        return ChartModel(
            name=doc.chart,
            version=doc.version,
            initial=initial,
            states=self.states,
            transitions=tuple(transitions),
            rejections=tuple(rejections),
            events=frozenset(events),
            document=doc,
            description=doc.description,
            schema=compile_schema(doc.schema_),
            affinity=doc.affinity,
        )
