"""Facts about a sound chart that ``chartd chart check`` reports.

Static checks read the model only. Conditions are not evaluated, so a
transition counts as possible whatever its ``when`` says: "reachable" is an
over-approximation, and "unreachable" and "dead end" are certain.

* :func:`reachable_states` and unreachable states;
* :func:`dead_ends`: resting states the entity can never leave;
* :func:`unhandled_pairs`: (state, event) pairs that fall to the default Conflict;
* :func:`nondeterministic_pairs`: transitions for one (source, event) whose
  ``when`` do not tell them apart, so only document order decides;
* :func:`binding_findings`: guards and steps without code, steps declared without
  compensation;
* :func:`rejection_field_findings`: rejection messages naming fields the data may lack.

:func:`explore` is the dynamic check: a bounded breadth-first walk over
the configurations an entity can reach, every event from every
configuration with every combination of condition values. It is generic in
the step function, because this package must not import the core: the
caller (the CLI) binds it to :func:`engine.step`.
"""

from __future__ import annotations

import string
from collections import deque
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

from engine.model.chart import ChartModel, Transition

__all__ = [
    "Exploration",
    "Finding",
    "Severity",
    "analyse",
    "binding_findings",
    "condition_names",
    "dead_ends",
    "exploration_findings",
    "explore",
    "nondeterministic_pairs",
    "reachable_states",
    "rejection_field_findings",
    "unhandled_pairs",
]

Severity = Literal["error", "warning", "note"]
S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing ``chartd chart check`` reports: how bad, what kind, where, and what.

    An ``error`` makes the chart unusable (exit status 1), a ``warning`` is
    probably a mistake (exit status 2), a ``note`` is information.
    """

    severity: Severity
    kind: str
    where: str
    message: str


def condition_names(model: ChartModel) -> list[str]:
    """Every name a ``when`` of the chart asks (transitions, rejections, follow-ups), sorted."""
    names = {t.when.name for t in model.transitions if t.when}
    names |= {r.when.name for r in model.rejections if r.when}
    for t in model.transitions:
        for then in (t.then, t.on_failure.then if t.on_failure else None):
            if then is not None and then.when is not None:
                names.add(then.when.name)
    return sorted(names)


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


def _resting_leaves(model: ChartModel, reached: Collection[str]) -> list[str]:
    """Reachable atomic and final states an entity rests in (not transient), document order."""
    return [
        path
        for path, state in model.states.items()
        if path in reached and state.kind in ("atomic", "final") and not state.transient
    ]


def unhandled_pairs(model: ChartModel) -> list[tuple[str, str]]:
    """(state, event) pairs, for reachable resting states, that fall to the default Conflict.

    A pair is handled when the state or one of its ancestors has a
    transition or a declared rejection for the event (conditions ignored).
    Transient states are skipped: no event is handled while a saga holds one;
    so are top-level final states, which refuse every event by definition
    (the core says so in its own message).
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
    for path in _resting_leaves(model, reached):
        state = model.states[path]
        if state.kind == "final" and state.parent is None:
            continue
        lineage = (path, *state.ancestors)
        for event in events:
            if not any((s, event) in handled or s in wildcard for s in lineage):
                out.append((path, event))
    return out


def dead_ends(model: ChartModel) -> list[str]:
    """Reachable, resting, non-final states that no transition ever leaves.

    A state is left by a transition (with or without an event) from it or
    from an ancestor whose target, entered by default, does not contain
    the state, or by a failure that leaves the entity elsewhere. A target
    that is a history state counts as a way out, whatever it restores.
    """
    reached = reachable_states(model)
    out: list[str] = []
    for path in _resting_leaves(model, reached):
        if model.states[path].kind == "final":
            continue
        lineage = {path, *model.states[path].ancestors}
        way_out = False
        for t in model.transitions:
            if t.source not in lineage:
                continue
            failure = t.on_failure.to if t.on_failure else None
            for target in (t.target, failure):
                if target is None:
                    continue
                if model.states[target].kind == "history" or path not in _entered(model, target):
                    way_out = True
        if not way_out:
            out.append(path)
    return out


def nondeterministic_pairs(model: ChartModel) -> list[tuple[Transition, Transition, str]]:
    """Transitions for one (source, event) that their ``when`` do not tell apart.

    For each pair (earlier, later), in document order (which decides: the
    first enabled one is taken), the later one is reported when both may be
    enabled at once: both unconditional, the earlier one unconditional, the
    same condition twice, or two different conditions (which may both hold).
    ``x`` then ``!x`` is exclusive, and an unconditional transition after
    conditional ones is their ``else``; an ``else`` after both ``x`` and
    ``!x`` can never be taken and is reported too. Each entry is (earlier,
    later, why).
    """
    groups: dict[tuple[str, str | None], list[Transition]] = {}
    for t in model.transitions:
        groups.setdefault((t.source, t.event), []).append(t)
    out: list[tuple[Transition, Transition, str]] = []
    for group in groups.values():
        for j, later in enumerate(group):
            polarity: dict[str, set[bool]] = {}
            for earlier in group[:j]:
                why = _overlap(earlier, later)
                if why is not None:
                    out.append((earlier, later, why))
                    break
                if earlier.when is not None:
                    polarity.setdefault(earlier.when.name, set()).add(earlier.when.negated)
            else:
                covered = [n for n, p in polarity.items() if len(p) == 2]
                if covered and later.when is None:
                    first = group[0]
                    out.append(
                        (
                            first,
                            later,
                            f"the transitions before it cover both {covered[0]} and "
                            f"!{covered[0]}: it is never taken",
                        )
                    )
    return out


def _overlap(earlier: Transition, later: Transition) -> str | None:
    """Why ``earlier`` and ``later`` may both be enabled at once (None: they may not)."""
    a, b = earlier.when, later.when
    if a is None and b is None:
        return "both are unconditional: the later one is never taken"
    if a is None:
        return "the earlier one is unconditional: the later one is never taken"
    if b is None:
        return None  # the later one is the `else` of the earlier ones
    if a.name == b.name:
        if a.negated == b.negated:
            return f"both are taken when {a}: the later one is never taken"
        return None
    return f"both are enabled when {a} and {b} hold: document order picks the earlier one"


def binding_findings(
    model: ChartModel,
    *,
    guards: Collection[str],
    steps: Collection[str],
    without_undo: Collection[str],
) -> list[Finding]:
    """What the code bound to the chart's names leaves open.

    ``guards`` and ``steps`` are the names that have code; ``without_undo``
    the steps that act outside the database and have no compensation. A
    name without code is an error (the engine refuses to register the
    chart). A step without compensation is a note: ``undo=None`` declares
    that it needs none (if a later step of its saga fails, what it did
    stays done).
    """
    used_guards: dict[str, list[int]] = {}
    used_steps: dict[str, list[int]] = {}
    for t in model.transitions:
        for g in t.guards:
            used_guards.setdefault(g, []).append(t.index)
        for s in t.steps:
            used_steps.setdefault(s, []).append(t.index)
    out: list[Finding] = []
    for name, where in sorted(used_guards.items()):
        if name not in guards:
            out.append(
                Finding(
                    "error", "unbound", f"guard {name}", f"guard {name!r} has no code" + _at(where)
                )
            )
    for name, where in sorted(used_steps.items()):
        if name not in steps:
            out.append(
                Finding(
                    "error", "unbound", f"step {name}", f"step {name!r} has no code" + _at(where)
                )
            )
        elif name in without_undo:
            out.append(
                Finding(
                    "note",
                    "uncompensated",
                    f"step {name}",
                    f"step {name!r} acts outside the database and declares no compensation "
                    "(undo=None): if a later step fails, what it did stays done" + _at(where),
                )
            )
    return out


ENGINE_FIELDS = frozenset({"id", "entity", "event", "state"})
"""What the engine gives every rejection message, whatever the data: the entity's id and
name, the event and the rejecting state."""


def rejection_field_findings(model: ChartModel) -> list[Finding]:
    """Rejection messages naming a ``{field}`` the entity's data may lack.

    A message is filled from the event's params, the entity's data and
    :data:`ENGINE_FIELDS`; a field none of them has is shown as written
    (``{name}``). A field is known to be there when the chart declares it
    (top-level ``data:``), a transition sets it (``set:``), or the params
    schema of every event the rejection names requires it.
    """
    known = ENGINE_FIELDS | set(model.document.data)
    known |= {k for t in model.transitions for k in t.assign}
    users: dict[str, set[int]] = {}
    for r in model.rejections:
        for name in _message_fields(r.message) - known - _required_params(model, r.events):
            users.setdefault(name, set()).add(r.index)
    return [
        Finding(
            "warning",
            "unfilled",
            f"{{{name}}}",
            f"{{{name}}} in the messages of "
            + ", ".join(f"rejections[{i}]" for i in sorted(where))
            + f": the entity's data may lack {name!r}, and the message then shows "
            f"{{{name}}} as written (declare it in the chart's 'data:' if every entity has it)",
        )
        for name, where in sorted(users.items())
    ]


def _required_params(model: ChartModel, events: Iterable[str] | None) -> frozenset[str]:
    """The params every one of ``events`` requires (none for a rejection of every event)."""
    if events is None:
        return frozenset()
    required = [
        frozenset(node.required) if (node := model.schema.params.get(e)) else frozenset()
        for e in events
    ]
    return frozenset.intersection(*required) if required else frozenset()


def _message_fields(message: str) -> set[str]:
    """The field names a ``str.format`` message uses (``{name}``, ``{a.b}``: ``a``)."""
    try:
        parsed = list(string.Formatter().parse(message))
    except ValueError:
        return set()  # not a format string: the core shows it as written
    return {field.split(".")[0].split("[")[0] for _, field, _, _ in parsed if field}


def _at(indices: Iterable[int]) -> str:
    unique = sorted(set(indices))
    return " (" + ", ".join(f"transitions[{i}]" for i in unique) + ")"


def analyse(model: ChartModel) -> list[Finding]:
    """Every static finding about a sound chart (bindings and exploration come apart)."""
    findings: list[Finding] = []
    reached = reachable_states(model)
    for path, state in model.states.items():
        if path not in reached and state.kind != "history":
            findings.append(
                Finding("warning", "unreachable", path, f"state {path!r} can never be entered")
            )
    for path in dead_ends(model):
        findings.append(
            Finding(
                "warning",
                "dead-end",
                path,
                f"state {path!r} is not final, but no transition ever leaves it",
            )
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
    for earlier, later, why in nondeterministic_pairs(model):
        event = later.event or "(eventless)"
        findings.append(
            Finding(
                "warning",
                "nondeterministic",
                f"{later.source} + {event}",
                f"transitions[{earlier.index}] and transitions[{later.index}] both take "
                f"{event!r} from {later.source!r}: {why}",
            )
        )
    return findings


# -- bounded exploration ------------------------------------------------------------------


@dataclass(slots=True)
class Exploration(Generic[S]):
    """What :func:`explore` found.

    ``configurations`` are the distinct keys reached (the initial one
    included); ``complete`` says the walk ended before the limit; ``states``
    every state active in a configuration reached, transient ones held by a
    saga included; ``failures`` every (key, event, message) for which the
    step raised System (a chart that never settles, say).
    """

    configurations: list[Hashable] = field(default_factory=list)
    complete: bool = True
    states: set[str] = field(default_factory=set)
    failures: list[tuple[Hashable, str, str]] = field(default_factory=list)
    steps: int = 0


Step = Callable[[S, str, Mapping[str, bool]], tuple[Sequence[S], Sequence[str], str | None]]
"""One event from one configuration: (successors, conditions asked in order, fault).

Called with the condition values to use (a name not given is false). A
refusal has no successors; ``fault`` is the message of a fault (a chart
that never settles, say), else None.
"""


def explore(
    initial: S,
    events: Sequence[str],
    step: Step[S],
    *,
    key: Callable[[S], Hashable],
    states: Callable[[S], Iterable[str]],
    limit: int,
) -> Exploration[S]:
    """Breadth-first, every event from every configuration with every condition outcome.

    Condition values are enumerated lazily: each decision path of a step is
    explored once, by fixing the conditions it asked and flipping them one
    at a time. ``key`` says when two states are the same configuration;
    ``states`` which chart states a successor has active. The walk stops
    after ``limit`` configurations (``complete`` is then False).
    """
    result: Exploration[S] = Exploration()
    seen: dict[Hashable, None] = {key(initial): None}
    result.states.update(states(initial))
    queue: deque[S] = deque([initial])
    while queue:
        current = queue.popleft()
        for event in events:
            for successor in _outcomes(current, event, step, result, key):
                result.states.update(states(successor))
                k = key(successor)
                if k in seen:
                    continue
                if len(seen) >= limit:
                    result.complete = False
                    continue
                seen[k] = None
                queue.append(successor)
    result.configurations = list(seen)
    return result


def _outcomes(
    current: S,
    event: str,
    step: Step[S],
    result: Exploration[S],
    key: Callable[[S], Hashable],
) -> list[S]:
    out: list[S] = []
    pending: list[dict[str, bool]] = [{}]
    while pending:
        values = pending.pop()
        result.steps += 1
        successors, asked, fault = step(current, event, values)
        if fault is not None:
            result.failures.append((key(current), event, fault))
        out.extend(successors)
        fixed = dict(values)
        for name in asked:
            if name in fixed:
                continue
            # This path took `name` as false; the other path takes it as true.
            pending.append({**fixed, name: True})
            fixed[name] = False
    return out


def exploration_findings(
    model: ChartModel,
    found: Exploration[S],
    describe: Callable[[Hashable], str],
    *,
    limit: int,
) -> list[Finding]:
    """Findings of an exploration: faults (errors), states never reached, and what was done."""
    out: list[Finding] = []
    seen: set[tuple[Hashable, str]] = set()
    for where, event, message in found.failures:
        if (where, event) in seen:
            continue
        seen.add((where, event))
        out.append(
            Finding(
                "error",
                "fault",
                f"{describe(where)} + {event}",
                f"event {event!r} in {describe(where)}: {message}",
            )
        )
    count = len(found.configurations)
    if found.complete:
        static = reachable_states(model)
        for path, state in model.states.items():
            if state.kind == "history" or path in found.states or path not in static:
                continue
            out.append(
                Finding(
                    "warning",
                    "unreachable",
                    path,
                    f"state {path!r} is never entered: no sequence of events and condition "
                    "values leads there",
                )
            )
        out.append(
            Finding(
                "note",
                "explored",
                "",
                f"explored every reachable configuration: {count} "
                f"({found.steps} steps, every event and condition value)",
            )
        )
    else:
        out.append(
            Finding(
                "note",
                "explored",
                "",
                f"explored {count} configurations and stopped at the limit ({limit}): "
                "raise --max-configurations to explore them all",
            )
        )
    return out
