"""Valid random charts: chart documents drawn feature by feature, and the charts they parse to.

:func:`chart_documents` draws chart documents (plain dicts, as a user would
write them) that :func:`engine.parse_chart` accepts: compound, parallel,
final, history and transient states; transitions with and without events,
targets, ``when`` conditions, guards, saga steps, ``via``, ``set`` and
``on_failure``; declared rejections. Every feature can be switched off, so
that a test can stay inside the subset another interpreter supports (see
:mod:`engine.interop`). :func:`charts` parses them.

Names are short and systematic, so that a shrunk example reads well: states
``s0, s1, ...`` (unique in the whole chart), events ``e0, e1, ...``,
conditions ``c0, c1, ...``, guards ``g0, ...`` and steps ``t0, ...``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

import engine
from engine.errors import Category, ChartError

__all__ = ["REFUSAL_CATEGORIES", "chart_documents", "charts"]

REFUSAL_CATEGORIES = tuple(c.value for c in Category if c is not Category.SYSTEM)
"""The categories a drawn declared refusal (or injected fault) uses: a caller's errors.

System is left for the engine's own faults, such as a chart that never settles.
"""


@dataclass(frozen=True, slots=True)
class _Options:
    max_depth: int
    max_children: int
    max_transitions: int
    events: tuple[str, ...]
    conditions: tuple[str, ...]
    parallel: bool
    history: bool
    final: bool
    transient: bool
    eventless: bool
    targetless: bool
    rejections: bool
    steps: bool
    failures: bool
    follow_ups: bool
    done_events: bool
    nested_parallel: bool
    initial_in_region: bool


class _Tree:
    """The state tree being drawn: documents by path, so states can be found and removed."""

    def __init__(self) -> None:
        self.top: dict[str, dict[str, Any]] = {}
        self.docs: dict[str, dict[str, Any]] = {}
        self.kinds: dict[str, str] = {}
        self.parent: dict[str, str | None] = {}
        self._names = itertools.count()

    def name(self) -> str:
        return f"s{next(self._names)}"

    def add(self, parent: str | None, kind: str, doc: dict[str, Any]) -> str:
        name = self.name()
        path = f"{parent}.{name}" if parent else name
        siblings = self.docs[parent].setdefault("states", {}) if parent else self.top
        siblings[name] = doc
        self.docs[path] = doc
        self.kinds[path] = kind
        self.parent[path] = parent
        return path

    def remove(self, path: str) -> None:
        parent = self.parent[path]
        siblings = self.docs[parent]["states"] if parent else self.top
        del siblings[path.rpartition(".")[2]]
        for p in [p for p in self.docs if p == path or p.startswith(path + ".")]:
            del self.docs[p], self.kinds[p], self.parent[p]

    def paths(self, *kinds: str) -> list[str]:
        return [p for p, k in self.kinds.items() if k in kinds]

    def inside(self, parent: str, *kinds: str) -> list[str]:
        return [p for p in self.paths(*kinds) if p.startswith(parent + ".")]


def _draw_states(
    draw: st.DrawFn,
    tree: _Tree,
    opts: _Options,
    parent: str | None,
    depth: int,
    in_parallel: bool = False,
) -> None:
    """Draw 1..max_children ordinary children of ``parent`` (None: the top level)."""
    kinds = ["atomic"]
    if depth < opts.max_depth:
        kinds.append("compound")
        if opts.parallel and (opts.nested_parallel or not in_parallel):
            kinds.append("parallel")
    if opts.final:
        kinds.append("final")
    for _ in range(draw(st.integers(1, opts.max_children))):
        kind = draw(st.sampled_from(kinds))
        if kind == "atomic":
            tree.add(parent, "atomic", {})
        elif kind == "final":
            tree.add(parent, "final", {"final": True})
        elif kind == "compound":
            path = tree.add(parent, "compound", {})
            _draw_compound_children(draw, tree, opts, path, depth, in_parallel)
        else:
            path = tree.add(parent, "parallel", {"parallel": True})
            _draw_states(draw, tree, opts, path, depth + 1, True)


def _draw_compound_children(
    draw: st.DrawFn, tree: _Tree, opts: _Options, path: str, depth: int, in_parallel: bool
) -> None:
    _draw_states(draw, tree, opts, path, depth + 1, in_parallel)
    children = [p for p in tree.paths("atomic", "compound", "parallel", "final") if _child(path, p)]
    tree.docs[path]["initial"] = draw(st.sampled_from(children)).rpartition(".")[2]
    if opts.transient and draw(st.integers(0, 3)) == 0:
        tree.add(path, "transient", {"transient": True})
    if opts.history and draw(st.integers(0, 2)) == 0:
        doc: dict[str, Any] = {"history": draw(st.sampled_from(["shallow", "deep"]))}
        defaults = tree.inside(path, "atomic", "compound", "parallel", "final")
        if draw(st.booleans()):
            doc["default"] = draw(st.sampled_from(defaults))
        tree.add(path, "history", doc)


def _in_region(tree: _Tree, path: str) -> bool:
    parent = tree.parent[path]
    while parent is not None:
        if tree.kinds[parent] == "parallel":
            return True
        parent = tree.parent[parent]
    return False


def _child(parent: str, path: str) -> bool:
    return path.startswith(parent + ".") and "." not in path[len(parent) + 1 :]


def _follow_up(draw: st.DrawFn, opts: _Options, after: str) -> dict[str, Any] | None:
    """A follow-up on an event after ``after`` in ``opts.events``, or None if there is none.

    Follow-ups only ever move forward in the list, so a chain of them ends:
    a cycle would make the engine fire follow-ups without end.
    """
    later = opts.events[opts.events.index(after) + 1 :] if after in opts.events else ()
    if not later:
        return None
    then: dict[str, Any] = {"event": draw(st.sampled_from(later))}
    conditional: bool = draw(st.booleans())
    if opts.conditions and conditional:
        then["when"] = draw(st.sampled_from(opts.conditions))
    return then


def _condition(draw: st.DrawFn, opts: _Options) -> str | None:
    if not opts.conditions or draw(st.integers(0, 2)) != 0:
        return None
    name = draw(st.sampled_from(opts.conditions))
    return f"!{name}" if draw(st.booleans()) else name


@dataclass(frozen=True, slots=True)
class _Ends:
    """What the transitions of one drawn state tree draw their ends and events from."""

    sources: list[str]
    targets: list[str]
    failure_targets: list[str]
    transients: list[str]
    events: list[str]

    @classmethod
    def of(cls, tree: _Tree, opts: _Options) -> _Ends:
        events = list(opts.events)
        if opts.done_events:
            events += [f"done.state.{p}" for p in tree.paths("compound", "parallel")]
        return cls(
            sources=tree.paths("atomic", "compound", "parallel"),
            targets=tree.paths("atomic", "compound", "parallel", "final", "history"),
            failure_targets=tree.paths("atomic", "compound", "parallel", "final"),
            transients=tree.paths("transient"),
            events=events,
        )


_STEP_NAMES = ("t0", "t1", "t2", "t3")


@st.composite
def _documents(draw: st.DrawFn, opts: _Options) -> dict[str, Any]:
    tree = _Tree()
    _draw_states(draw, tree, opts, None, 0)
    if opts.transient and draw(st.integers(0, 2)) == 0:
        tree.add(None, "transient", {"transient": True})
    resting = tree.paths("atomic", "compound", "parallel", "final")
    if not opts.initial_in_region:
        resting = [p for p in resting if not _in_region(tree, p)]
    initial = draw(st.sampled_from(resting))
    ends = _Ends.of(tree, opts)
    count = draw(st.integers(0, opts.max_transitions)) if ends.sources else 0
    transitions = [_draw_transition(draw, opts, ends) for _ in range(count)]

    # A transient state must be the `via` of a transition with steps; drop the unused.
    used = {t["via"] for t in transitions if "via" in t}
    for path in ends.transients:
        if path not in used:
            tree.remove(path)

    rejections = _draw_rejections(draw, opts, tree) if opts.rejections else []
    document: dict[str, Any] = {
        "chart": "generated",
        "initial": initial,
        "states": tree.top,
        "transitions": transitions,
    }
    if rejections:
        document["rejections"] = rejections
    return _without_eventless_cycles(document)


def _draw_transition(draw: st.DrawFn, opts: _Options, ends: _Ends) -> dict[str, Any]:
    doc: dict[str, Any] = {"from": draw(st.sampled_from(ends.sources))}
    eventless = opts.eventless and draw(st.integers(0, 4)) == 0
    if not eventless:
        doc["event"] = draw(st.sampled_from(ends.events))
    targetless = opts.targetless and not eventless and draw(st.integers(0, 4)) == 0
    if not targetless:
        doc["to"] = draw(st.sampled_from(ends.targets))
    when = _condition(draw, opts)
    if when is not None:
        doc["when"] = when
    if opts.steps:
        _draw_saga(draw, opts, ends, doc)
    if opts.follow_ups and "event" in doc and draw(st.integers(0, 5)) == 0:
        then = _follow_up(draw, opts, doc["event"])
        if then is not None:
            doc["then"] = then
    return doc


def _draw_saga(draw: st.DrawFn, opts: _Options, ends: _Ends, doc: dict[str, Any]) -> None:
    """Add guards, steps, ``via``, ``set`` and ``on_failure`` to the transition ``doc``."""
    guards = draw(st.lists(st.sampled_from(("g0", "g1")), max_size=2, unique=True))
    steps = draw(st.lists(st.sampled_from(_STEP_NAMES), max_size=3))
    if guards:
        doc["guards"] = guards
    if steps:
        doc["steps"] = steps
        # Only an evented transition holds its `via` (eventless ones run inside a
        # step), and dropping an eventless one must not orphan a transient state.
        if ends.transients and "to" in doc and "event" in doc and draw(st.booleans()):
            doc["via"] = draw(st.sampled_from(ends.transients))
    if draw(st.integers(0, 3)) == 0:
        doc["set"] = {"flag": draw(st.booleans())}
    if opts.failures and steps and draw(st.integers(0, 2)) == 0:
        failure: dict[str, Any] = {"record": ["error"]}
        if draw(st.booleans()):
            failure["to"] = draw(st.sampled_from(ends.failure_targets))
        if len(steps) > 1 and draw(st.booleans()):
            failure["after"] = draw(st.sampled_from(steps[:-1]))
        if opts.follow_ups and "event" in doc and draw(st.integers(0, 2)) == 0:
            then = _follow_up(draw, opts, doc["event"])
            if then is not None:
                failure["then"] = then
        doc["on_failure"] = failure


def _draw_rejections(draw: st.DrawFn, opts: _Options, tree: _Tree) -> list[dict[str, Any]]:
    rejections: list[dict[str, Any]] = []
    seen: set[tuple[str, str, str | None]] = set()
    states = tree.paths("atomic", "compound", "parallel", "final", "transient")
    for _ in range(draw(st.integers(0, 3))):
        state = draw(st.sampled_from(states))
        event = draw(st.sampled_from(["*", *opts.events]))
        when = _condition(draw, opts)
        if (state, event, when) in seen:
            continue
        seen.add((state, event, when))
        rejection: dict[str, Any] = {
            "event": event,
            "in": state,
            "error": draw(st.sampled_from(REFUSAL_CATEGORIES)),
            "message": f"{{event}} is refused in {state}",
        }
        if when is not None:
            rejection["when"] = when
        rejections.append(rejection)
    return rejections


def _without_eventless_cycles(document: dict[str, Any]) -> dict[str, Any]:
    """The document, minus the last eventless transitions, until no eventless cycle is left.

    The loader refuses a cycle of eventless transitions (it would never end);
    dropping transitions keeps the draw instead of discarding it. Any other
    problem is a bug of this generator and is raised.
    """
    while True:
        try:
            engine.parse_chart(document)
            return document
        except ChartError as exc:
            if not all("eventless transitions form a cycle" in text for _, text in exc.problems):
                raise
        transitions = document["transitions"]
        last = max(i for i, t in enumerate(transitions) if "event" not in t)
        document = {**document, "transitions": transitions[:last] + transitions[last + 1 :]}


# Eighteen keyword-only parameters: each switches a feature of the public strategy (docs/testing.md,
# the differential tests stay inside another interpreter's subset with them); they are its API.
def chart_documents(
    *,
    max_depth: int = 2,
    max_children: int = 3,
    max_transitions: int = 8,
    events: Sequence[str] = ("e0", "e1", "e2"),
    conditions: Sequence[str] = ("c0", "c1"),
    parallel: bool = True,
    history: bool = True,
    final: bool = True,
    transient: bool = True,
    eventless: bool = True,
    targetless: bool = True,
    rejections: bool = True,
    steps: bool = True,
    failures: bool = True,
    follow_ups: bool = True,
    done_events: bool = True,
    nested_parallel: bool = True,
    initial_in_region: bool = True,
) -> st.SearchStrategy[dict[str, Any]]:
    """Valid chart documents (dicts), every feature on unless switched off.

    ``max_depth`` bounds the nesting of compound and parallel states,
    ``max_children`` the children of each, ``max_transitions`` the
    transitions. ``events`` and ``conditions`` are the names transitions and
    ``when`` draw from. ``done_events`` lets transitions listen to
    ``done.state.*``; ``steps`` adds guards, saga steps, ``via`` and ``set``;
    ``failures`` adds ``on_failure``; ``follow_ups`` adds ``then`` and
    ``on_failure.then``. ``nested_parallel`` allows a parallel state inside a
    region, ``initial_in_region`` an initial state inside a region.
    """
    opts = _Options(
        max_depth=max_depth,
        max_children=max_children,
        max_transitions=max_transitions,
        events=tuple(events),
        conditions=tuple(conditions),
        parallel=parallel,
        history=history,
        final=final,
        transient=transient,
        eventless=eventless,
        targetless=targetless,
        rejections=rejections,
        steps=steps,
        failures=failures,
        follow_ups=follow_ups,
        done_events=done_events,
        nested_parallel=nested_parallel,
        initial_in_region=initial_in_region,
    )
    return _documents(opts)


def charts(**options: Any) -> st.SearchStrategy[engine.Chart]:
    """Valid random charts: :func:`chart_documents` (same options), parsed."""
    return chart_documents(**options).map(engine.parse_chart)
