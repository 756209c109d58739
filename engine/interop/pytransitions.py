"""The pytransitions bridge: machine definitions in and out, and a reference interpreter.

pytransitions (``transitions.extensions.HierarchicalMachine``) takes a
machine as a dict of keyword arguments::

    {"states": [...], "transitions": [...], "initial": "idle", "auto_transitions": False}

:func:`to_pytransitions` writes a chart in that form and
:func:`from_pytransitions` reads one into a chart. :class:`Reference` runs a
chart on a real ``HierarchicalMachine``, the reference interpreter the
property tests compare :func:`engine.step` with.

What carries over, and what does not
------------------------------------
A definition carries a machine's *structure and decisions*: states (nested
with ``children``/``initial``, ``parallel`` regions, ``final``), and
transitions (``trigger``, ``source``, ``dest``, ``dest: None`` for an internal
transition, one ``conditions`` or ``unless`` name as ``when``). pytransitions
has no history states, no eventless transitions, no declared refusals and no
``done.state`` events; chartd's guards, saga steps, ``via``, ``set``,
``then`` and ``on_failure`` are runtime matters with no pytransitions
counterpart, and pytransitions' callbacks (``before``, ``after``,
``on_enter``, ...) are code with no chartd counterpart. With ``strict=True``
(the default) anything that would change how the machine decides is
refused with InvalidParameter naming it; with ``strict=False`` it is dropped.
docs/testing.md lists where the two interpreters decide differently.

State paths: chartd writes ``running.paused``; pytransitions joins names with
``NestedState.separator``, ``_`` by default. A name that contains the
separator is refused (pass ``separator=`` to use another one).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from transitions.core import MachineError
from transitions.extensions.nesting import HierarchicalMachine, NestedState

import engine
from engine.errors import Conflict, InvalidParameter
from engine.model.chart import ChartModel, State

__all__ = ["Difference", "Reference", "differences", "from_pytransitions", "to_pytransitions"]

# Attributes a pytransitions model gets or needs for itself: a condition or a
# trigger of that name would be shadowed by, or would shadow, the machine's own.
_RESERVED = frozenset({"state", "trigger", "to", "machine"})
_RESERVED_PREFIXES = ("is_", "may_", "to_")
# Callbacks: code, which a chart names as guards and steps and binds apart.
_STATE_CALLBACKS = ("on_enter", "on_exit", "on_final", "on_timeout", "timeout")
_TRANSITION_CALLBACKS = ("before", "after", "prepare")


# -- where the two interpreters differ ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Difference:
    """One reason pytransitions would not decide as chartd does on a chart.

    ``index`` is the document index of the transition concerned (None: the
    chart as a whole); ``kind`` names the mismatch as docs/testing.md lists
    it; ``message`` says what, for a person.
    """

    kind: str
    message: str
    index: int | None = None


def differences(chart: engine.Chart, *, separator: str = ".") -> list[Difference]:
    """Every feature of ``chart`` that pytransitions' HierarchicalMachine runs differently.

    Empty means that, for every sequence of events and condition values,
    pytransitions moves between the same configurations as
    :func:`engine.step`, and refuses the same events (as far as the
    differential property test has searched; docs/testing.md).
    """
    model = chart.model
    out: list[Difference] = []
    for path, state in model.states.items():
        if separator in state.name:
            out.append(Difference("names", f"the state name {path!r} contains {separator!r}"))
        if state.kind == "history":
            out.append(Difference("history", f"{path!r} is a history state"))
        if state.kind == "parallel" and any(
            model.states[a].kind == "parallel" for a in state.ancestors
        ):
            out.append(Difference("nested-parallel", f"{path!r} is a parallel state in a region"))
        if state.kind == "final" and any(
            model.states[a].kind == "parallel" for a in state.ancestors
        ):
            out.append(Difference("final-in-region", f"the final state {path!r} is in a region"))
    if model.rejections:
        out.append(Difference("rejections", "declared rejections"))
    if any(model.states[a].kind == "parallel" for a in model.states[model.initial].ancestors):
        out.append(
            Difference("initial-region", f"the initial state {model.initial!r} is in a region")
        )
    triggers = {t.event for t in model.transitions if t.event is not None}
    unknown = sorted(e for e in model.events - triggers if not e.startswith("done.state."))
    if unknown:
        out.append(Difference("not-a-trigger", f"events no transition takes: {', '.join(unknown)}"))
    conditions = {t.when.name for t in model.transitions if t.when}
    for name in sorted(conditions | triggers):
        if (
            name in _RESERVED
            or name.startswith(_RESERVED_PREFIXES)
            or (name in conditions and name in triggers)
        ):
            out.append(Difference("names", f"{name!r} would clash with an attribute of the model"))
    for t in model.transitions:
        if t.event is None:
            out.append(Difference("eventless", f"transitions[{t.index}] is eventless", t.index))
        elif t.event.startswith("done.state."):
            out.append(
                Difference("done-event", f"transitions[{t.index}] waits for {t.event!r}", t.index)
            )
        if t.target is not None:
            for region in _regions_entered(model, t.source, t.target):
                out.append(
                    Difference(
                        "region",
                        f"transitions[{t.index}] ({t}) enters or leaves the region {region!r} "
                        "without staying inside it",
                        t.index,
                    )
                )
    out.extend(_regions_reacting_together(model))
    return out


def _region_of(model: ChartModel, parallel: str, path: str) -> str | None:
    """The region of ``parallel`` that ``path`` is (or is inside), or None."""
    for region in model.states[parallel].children:
        if path == region or path.startswith(region + "."):
            return region
    return None


def _regions_entered(model: ChartModel, source: str, target: str) -> list[str]:
    """Regions a move from ``source`` to ``target`` enters or re-enters without staying inside.

    chartd (SCXML) never takes a parallel state as a transition's domain, so
    such a move exits and re-enters the whole parallel state, every region;
    pytransitions enters only the region of the target.
    """
    regions: list[str] = []
    for anc in model.states[target].ancestors:
        if model.states[anc].kind != "parallel":
            continue
        region = _region_of(model, anc, target)
        assert region is not None
        inside = source.startswith(region + ".") and target != region
        if not inside:
            regions.append(region)
    return regions


def _regions_reacting_together(model: ChartModel) -> list[Difference]:
    """Transitions in a parallel state's regions that pytransitions combines otherwise.

    Two regions taking the same event: pytransitions runs both transitions
    one after the other, each on the configuration computed before the first
    (it may even drop a region from the state), where chartd removes the
    conflicts the SCXML way. A targetless transition in a region on an event
    that the parallel state (or an ancestor) also takes: pytransitions
    counts the event handled, chartd lets the other regions take the outer
    transition too (a targetless transition exits nothing, so nothing
    conflicts).
    """
    out: list[Difference] = []
    for parallel, state in model.states.items():
        if state.kind != "parallel":
            continue
        outer = {
            t.event
            for t in model.transitions
            if t.source == parallel or t.source in state.ancestors
        }
        first_region: dict[str, str] = {}
        for t in model.transitions:
            if t.event is None or not t.source.startswith(parallel + "."):
                continue
            region = _region_of(model, parallel, t.source)
            assert region is not None
            seen = first_region.setdefault(t.event, region)
            if seen != region:
                out.append(
                    Difference(
                        "regions-together",
                        f"transitions[{t.index}]: {t.event!r} is taken in the regions "
                        f"{seen!r} and {region!r} of {parallel!r}",
                        t.index,
                    )
                )
            elif t.target is None and t.event in outer:
                out.append(
                    Difference(
                        "regions-together",
                        f"transitions[{t.index}]: {t.event!r} is taken without a target in "
                        f"{region!r} and by {parallel!r} or an ancestor",
                        t.index,
                    )
                )
    return out


# -- export ----------------------------------------------------------------------------


def to_pytransitions(
    chart: engine.Chart, *, separator: str = "_", strict: bool = True
) -> dict[str, Any]:
    """The keyword arguments of a ``HierarchicalMachine`` that runs ``chart``'s decisions.

    ``HierarchicalMachine(model=m, **to_pytransitions(chart))`` (with
    ``NestedState.separator == separator``) moves between the same states on
    the same events and ``when`` conditions (read as attributes of the
    model). With ``strict``, InvalidParameter lists every
    :func:`differences` of the chart; otherwise what pytransitions cannot
    express (history, eventless transitions, rejections) is dropped and the
    rest exported as it is.
    """
    model = chart.model
    if strict:
        found = differences(chart, separator=separator)
        if found:
            raise InvalidParameter(
                f"pytransitions would not run chart {chart.name!r} as chartd does: "
                + "; ".join(d.message for d in found)
            )
    clash = [p for p, s in model.states.items() if separator in s.name]
    if clash:
        raise InvalidParameter(
            f"state names contain the separator {separator!r}: {', '.join(clash)} "
            "(pass another separator)"
        )
    transitions: list[dict[str, Any]] = []
    by_index: dict[int, dict[str, Any]] = {}
    for t in model.transitions:
        if t.event is None:
            continue
        source = _join(t.source, separator)
        entry = by_index.get(t.index)
        if entry is not None:
            # One document entry with several sources stays one pytransitions entry.
            entry["source"] = [*_listed(entry["source"]), source]
            continue
        entry = {"trigger": t.event, "source": source, "dest": _dest(model, t.target, separator)}
        if t.when is not None:
            entry["unless" if t.when.negated else "conditions"] = [t.when.name]
        by_index[t.index] = entry
        transitions.append(entry)
    return {
        "states": [
            _state(model, p, separator) for p in model.top if model.states[p].kind != "history"
        ],
        "transitions": transitions,
        "initial": _join(model.initial, separator),
        "auto_transitions": False,
    }


def _join(path: str, separator: str) -> str:
    return path.replace(".", separator)


def _listed(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _dest(model: ChartModel, target: str | None, separator: str) -> str | None:
    if target is None:
        return None
    state = model.states[target]
    if state.kind == "history" and state.parent is not None:
        # Without history, entering the history state is entering its parent afresh.
        return _join(state.parent, separator)
    return _join(target, separator)


def _state(model: ChartModel, path: str, separator: str) -> str | dict[str, Any]:
    state: State = model.states[path]
    children = [c for c in state.children if model.states[c].kind != "history"]
    if state.kind == "compound":
        assert state.initial is not None
        return {
            "name": state.name,
            "children": [_state(model, c, separator) for c in children],
            "initial": model.states[state.initial].name,
        }
    if state.kind == "parallel":
        return {"name": state.name, "parallel": [_state(model, c, separator) for c in children]}
    if state.kind == "final":
        return {"name": state.name, "final": True}
    return state.name


# -- import ----------------------------------------------------------------------------


def from_pytransitions(
    definition: Mapping[str, Any],
    *,
    name: str = "imported",
    separator: str = "_",
    strict: bool = True,
) -> engine.Chart:
    """The chart of a ``HierarchicalMachine`` definition (its keyword arguments as a dict).

    Reads ``states`` (names, dicts with ``children``/``states``,
    ``initial``, ``parallel``, ``final``, ``transitions`` scoped to the
    state), ``transitions`` (dicts or lists ``[trigger, source, dest]``,
    ``source`` ``"*"`` for every state, ``dest`` ``"="`` for the source
    itself and None for an internal transition, at most one
    ``conditions``/``unless`` name) and ``initial``. Callbacks are refused
    (``strict``) or dropped. The chart is validated as any other: a
    ChartError names the path of each problem.
    """
    reader = _Reader(separator, strict)
    states = reader.states(definition.get("states", []), None)
    # A state's own transitions come first: pytransitions tries a state's scope before the
    # machine's, so they win over the machine's for the same source.
    reader.pending.extend((raw, None) for raw in definition.get("transitions", []))
    initial = definition.get("initial")
    if initial is None:
        raise InvalidParameter("the definition has no 'initial' state")
    if isinstance(initial, list | tuple):
        raise InvalidParameter(
            "a list of initial states (a parallel top level) has no chartd equivalent: "
            "wrap the regions in one parallel state"
        )
    if not isinstance(initial, str):
        raise InvalidParameter(f"initial must be a state name, not {type(initial).__name__}")
    reader.finish()
    document: dict[str, Any] = {
        "chart": name,
        "initial": _split(initial, separator),
        "states": states,
        "transitions": reader.transitions,
    }
    return engine.parse_chart(document)


def _split(path: str, separator: str) -> str:
    return ".".join(path.split(separator))


class _Reader:
    """Turns pytransitions' states and transitions into chart document entries."""

    def __init__(self, separator: str, strict: bool) -> None:
        self.separator = separator
        self.strict = strict
        self.paths: list[str] = []
        self.finals: set[str] = set()
        self.pending: list[tuple[Any, str | None]] = []
        self.transitions: list[dict[str, Any]] = []
        # (entry, sources, dest, scope): finished once every state is known.
        self.unresolved: list[tuple[dict[str, Any], list[str], Any, str | None]] = []

    def refuse(self, what: str) -> None:
        if self.strict:
            raise InvalidParameter(f"{what} has no chartd equivalent (strict=False drops it)")

    def states(self, raw: Any, parent: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for item in _listed(raw) if raw is not None else []:
            if isinstance(item, str):
                head, _, rest = item.partition(self.separator)
                if rest:
                    # "A_a" declares A (if new) with a child a, as pytransitions reads it,
                    # but with no initial child: pytransitions then rests in A itself.
                    self.refuse(f"state {item!r}: a parent declared by its child's name")
                    child = self.states([rest], self._path(parent, head))
                    merged = out.setdefault(head, {"states": {}})
                    merged.setdefault("states", {}).update(child)
                    self._add(parent, head)
                    merged.setdefault("initial", next(iter(merged["states"])))
                    continue
                self._add(parent, item)
                out[item] = {}
            elif isinstance(item, Mapping):
                key, doc = self.state(item, parent)
                out[key] = doc
            else:
                raise InvalidParameter(
                    f"state {item!r}: only names and dicts can be imported, not "
                    f"{type(item).__name__}"
                )
        return out

    def state(self, raw: Mapping[str, Any], parent: str | None) -> tuple[str, dict[str, Any]]:
        name = raw.get("name")
        if not isinstance(name, str):
            raise InvalidParameter(f"a state needs a string 'name', got {name!r}")
        path = self._add(parent, name)
        for key in _STATE_CALLBACKS:
            if raw.get(key):
                self.refuse(f"state {path!r}: the callback {key!r}")
        doc: dict[str, Any] = {}
        if raw.get("final"):
            doc["final"] = True
            self.finals.add(path)
        regions = raw.get("parallel")
        if regions:
            doc["parallel"] = True
            doc["states"] = self.states(regions, path)
        else:
            children = raw.get("children", raw.get("states"))
            if children:
                doc["states"] = self.states(children, path)
                initial = raw.get("initial")
                if initial is None:
                    raise InvalidParameter(
                        f"state {path!r} has children but no initial one: pytransitions then "
                        "rests in the parent itself, which a chart cannot do"
                    )
                if isinstance(initial, list | tuple):
                    raise InvalidParameter(
                        f"state {path!r}: several initial children: use 'parallel' instead"
                    )
                doc["initial"] = _split(str(initial), self.separator)
        for t in _listed(raw.get("transitions") or []):
            self.pending.append((t, path))
        return name, doc

    def _path(self, parent: str | None, name: str) -> str:
        return f"{parent}.{name}" if parent else name

    def _add(self, parent: str | None, name: str) -> str:
        path = self._path(parent, name)
        if path not in self.paths:
            self.paths.append(path)
        return path

    def transition(self, raw: Any, scope: str | None) -> None:
        if isinstance(raw, list | tuple):
            keys = ("trigger", "source", "dest", "conditions", "unless", "before", "after")
            raw = dict(zip(keys, raw, strict=False))
        if not isinstance(raw, Mapping):
            raise InvalidParameter(f"a transition is a dict or a list, not {type(raw).__name__}")
        trigger = raw.get("trigger")
        if not isinstance(trigger, str):
            raise InvalidParameter(f"a transition needs a string 'trigger', got {trigger!r}")
        for key in _TRANSITION_CALLBACKS:
            if raw.get(key):
                self.refuse(f"transition {trigger!r}: the callback {key!r}")
        conditions = [("", c) for c in _listed(raw.get("conditions") or [])]
        conditions += [("!", c) for c in _listed(raw.get("unless") or [])]
        if any(not isinstance(c, str) for _, c in conditions):
            raise InvalidParameter(
                f"transition {trigger!r}: only named conditions (model attributes) can be "
                "imported, not callables"
            )
        if len(conditions) > 1:
            raise InvalidParameter(
                f"transition {trigger!r}: a chart transition has one 'when' condition, "
                f"this one has {len(conditions)}"
            )
        sources = raw.get("source")
        dest = raw.get("dest")
        entry: dict[str, Any] = {"event": trigger}
        if conditions:
            entry["when"] = conditions[0][0] + conditions[0][1]
        if sources == "*":
            # Every state, as pytransitions expands the wildcard (parents included).
            listed: Iterable[str] = ["*"]
        else:
            listed = [self._scoped(scope, s) for s in _listed(sources)]
        self.transitions.append(entry)
        self.unresolved.append((entry, list(listed), dest, scope))

    def finish(self) -> None:
        """Resolve wildcards and reflexive targets, once every state is known."""
        for raw, scope in self.pending:
            self.transition(raw, scope)
        for entry, listed, dest, scope in self.unresolved:
            # pytransitions' wildcard is every state; a chart's final state has no way out.
            every = [p for p in self.paths if p not in self.finals]
            sources = every if listed == ["*"] else listed
            if dest == "=":
                index = next(i for i, t in enumerate(self.transitions) if t is entry)
                self.transitions[index : index + 1] = [
                    {**entry, "from": s, "to": s} for s in sources
                ]
                continue
            entry["from"] = sources
            if dest is not None:
                entry["to"] = self._scoped(scope, dest)
        self.unresolved.clear()

    def _scoped(self, scope: str | None, ref: str) -> str:
        path = _split(ref, self.separator)
        return f"{scope}.{path}" if scope else path


# -- the reference interpreter ----------------------------------------------------------


class _DottedState(NestedState):
    """Nested state names joined with '.', as chartd writes them (no chartd name has one)."""

    separator = "."


class _Machine(HierarchicalMachine):
    state_cls = _DottedState


class _Model:
    """The model pytransitions drives: its ``state``, and the conditions as attributes."""

    state: Any


class Reference:
    """A chart run by pytransitions' ``HierarchicalMachine``, one event at a time.

    Raises InvalidParameter if the chart uses what pytransitions cannot run
    as chartd does (see :func:`to_pytransitions`). ``fire`` answers as
    :func:`engine.step` would: the new configuration, or the refusal as a
    typed error (pytransitions' ``MachineError``, and an event whose every
    transition's conditions fail, as Conflict; an unknown trigger as
    InvalidParameter).
    """

    def __init__(self, chart: engine.Chart) -> None:
        self.chart = chart
        self._order = {p: s.order for p, s in chart.model.states.items()}
        self._conditions = sorted({t.when.name for t in chart.transitions if t.when})
        self._model = _Model()
        self._machine = _Machine(model=self._model, **to_pytransitions(chart, separator="."))

    @property
    def configuration(self) -> tuple[str, ...]:
        """The active states, ancestors included, in document order (as a Snapshot has them)."""
        active: set[str] = set()
        for leaf in _leaves(self._model.state):
            parts = leaf.split(".")
            active.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
        return tuple(sorted(active, key=self._order.__getitem__))

    def fire(self, event: str, params: Mapping[str, Any] | None = None) -> tuple[str, ...]:
        """Trigger ``event`` with the conditions' values taken from ``params`` (absent: false)."""
        params = params or {}
        for name in self._conditions:
            # pytransitions compares a condition's value with True: give it a bool.
            setattr(self._model, name, bool(params.get(name, False)))
        try:
            taken = self._machine.trigger_event(self._model, event)
        except MachineError as exc:
            raise Conflict(f"pytransitions: {exc.value}") from None
        except AttributeError as exc:
            raise InvalidParameter(f"pytransitions: {exc}") from None
        if not taken:
            raise Conflict(f"pytransitions: no transition for {event!r} has its conditions met")
        return self.configuration


def _leaves(state: Any) -> list[str]:
    if isinstance(state, str):
        return [state]
    if isinstance(state, Sequence):
        return [leaf for s in state for leaf in _leaves(s)]
    raise TypeError(f"unexpected pytransitions state {state!r}")
