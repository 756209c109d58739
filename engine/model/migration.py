"""Moving an entity from one version of its chart to another: the declared mapping, applied.

A chart's document may declare, per older version, how that version's
entities become entities of this one (``migrations:``, keyed by the source
version). Everything here is pure: the runtime applies :func:`migrate` to each
entity's stored snapshot, and ``chartd chart check --migrates-from`` applies it
to every configuration the older version can reach.

The rules (docs/chart-language.md, "Versions and migrations"):

* a state maps to the same path unless a line says otherwise; a line maps a
  state and everything under it (``running: up`` sends ``running.paused`` to
  ``up.paused``), the longest matching line winning;
* the mapped leaves, with their ancestors, are completed by default entry,
  exactly as entering them would: a compound state without an active child
  enters its initial child, a parallel state enters every region (so a leaf
  that became compound, or gained a parallel sibling, needs no line);
* data: ``rename`` then ``drop`` then ``set``;
* history: a history state follows the state lines as any state does, unless
  a ``history`` line maps it (``null`` forgets it); a record whose states do
  not map under the history's parent is forgotten;
* timers: a pending timer keeps its event unless mapped (``null`` cancels it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.errors import Problem
from engine.model.chart import ChartModel, State
from engine.model.document import MigrationDocument

__all__ = [
    "Migration",
    "Moved",
    "declared",
    "leaves",
    "migrate",
    "source_problems",
    "target_problems",
]


@dataclass(frozen=True, slots=True)
class Migration:
    """How entities of version ``source`` become entities of version ``target``."""

    source: int
    target: int
    states: Mapping[str, str | None] = field(default_factory=dict)
    set: Mapping[str, Any] = field(default_factory=dict)
    rename: Mapping[str, str] = field(default_factory=dict)
    drop: tuple[str, ...] = ()
    history: Mapping[str, str | None] = field(default_factory=dict)
    timers: Mapping[str, str | None] = field(default_factory=dict)

    def state(self, path: str) -> str | None:
        """Where ``path`` goes: the longest line that maps it or an ancestor, else itself.

        None: the line drops it (``null``), as a removed region's states are.
        """
        probe = path
        while True:
            if probe in self.states:
                target = self.states[probe]
                return None if target is None else target + path[len(probe) :]
            probe, dot, _ = probe.rpartition(".")
            if not dot:
                return path

    def timer(self, event: str) -> str | None:
        """The event a pending timer of ``event`` fires after the move; None: cancelled."""
        return self.timers.get(event, event)


@dataclass(frozen=True, slots=True)
class Moved:
    """An entity's snapshot fields after the move."""

    configuration: tuple[str, ...]
    data: Mapping[str, Any]
    history: Mapping[str, tuple[str, ...]]


def declared(new: ChartModel, source: int) -> Migration:
    """The migration ``new`` declares from version ``source`` (every default if none)."""
    doc = new.document.migrations.get(source)
    if doc is None:
        return Migration(source, new.version)
    return Migration(
        source,
        new.version,
        states=dict(doc.states),
        set=dict(doc.data.set) if doc.data else {},
        rename=dict(doc.data.rename) if doc.data else {},
        drop=tuple(doc.data.drop) if doc.data else (),
        history=dict(doc.history),
        timers=dict(doc.timers),
    )


def target_problems(
    migrations: Mapping[int, MigrationDocument],
    version: int,
    states: Mapping[str, State],
    events: Iterable[str],
) -> list[Problem]:
    """What the ``migrations`` of a document at ``version`` map to that it lacks.

    Checked with the document alone; what a line maps *from* needs the older
    version (:func:`source_problems`).
    """
    known = set(events)
    out: list[Problem] = []
    for source, doc in migrations.items():
        at = f"migrations.{source}"
        if source >= version:
            out.append((at, f"a migration comes from an older version than this one ({version})"))
        for old, new in doc.states.items():
            state = states.get(new) if new is not None else None
            if new is None:
                continue
            if state is None:
                out.append((f"{at}.states.{old}", f"maps to {new!r}, which is not a state"))
            elif state.kind == "history" or state.transient:
                kind = "history" if state.kind == "history" else "transient"
                out.append(
                    (
                        f"{at}.states.{old}",
                        f"maps to the {kind} state {new!r}: no entity rests there",
                    )
                )
        for old, new in doc.history.items():
            if new is not None and (new not in states or states[new].kind != "history"):
                out.append((f"{at}.history.{old}", f"maps to {new!r}, which is no history state"))
        for old, new in doc.timers.items():
            if new is not None and new not in known:
                out.append(
                    (f"{at}.timers.{old}", f"maps to the event {new!r}, which no transition takes")
                )
    return out


def source_problems(old: ChartModel, migration: Migration) -> list[str]:
    """What ``migration`` maps from that version ``old`` lacks (it points nowhere)."""
    out = [
        f"migrations.{migration.source}.states.{path}: version {old.version} has no state {path!r}"
        for path in migration.states
        if path not in old.states
    ]
    out += [
        f"migrations.{migration.source}.history.{path}: version {old.version} has no history "
        f"state {path!r}"
        for path in migration.history
        if path not in old.states or old.states[path].kind != "history"
    ]
    return out


def leaves(configuration: Iterable[str]) -> list[str]:
    """The innermost active states of ``configuration``, in its order."""
    active = list(configuration)
    return [p for p in active if not any(o.startswith(p + ".") for o in active)]


class Illegal(ValueError):
    """The move leaves no legal configuration of the new version; the message says why."""


def migrate(
    new: ChartModel,
    migration: Migration,
    configuration: Iterable[str],
    data: Mapping[str, Any],
    history: Mapping[str, tuple[str, ...]],
) -> Moved:
    """The snapshot fields of an entity moved by ``migration`` into ``new``; Illegal if none."""
    active: set[str] = set()
    old_leaves = leaves(configuration)
    for leaf in old_leaves:
        target = migration.state(leaf)
        if target is None:
            continue
        state = new.states.get(target)
        if state is None:
            raise Illegal(f"{leaf} maps to {target!r}, which version {new.version} lacks")
        if state.kind == "history" or state.transient:
            raise Illegal(f"{leaf} maps to {target!r}, where no entity rests")
        active.add(target)
        active.update(state.ancestors)
    if not active:
        raise Illegal(
            f"every state of {', '.join(old_leaves)} is dropped: nothing holds the entity"
        )
    _complete(new, active)
    problem = _illegal(new, active)
    if problem is not None:
        raise Illegal(problem)
    return Moved(
        tuple(p for p in new.states if p in active),
        _data(migration, data),
        _history(new, migration, history),
    )


def _complete(new: ChartModel, active: set[str]) -> None:
    """Enter by default what ``active`` leaves open: initial children, every region."""
    todo = sorted(active, key=len)
    while todo:
        state = new.states[todo.pop()]
        if state.kind == "compound" and not any(c in active for c in state.children):
            entered = _default(new, state)
            active.add(entered)
            todo.append(entered)
        elif state.kind == "parallel":
            for region in state.children:
                if region not in active and new.states[region].kind != "history":
                    active.add(region)
                    todo.append(region)


def _default(new: ChartModel, state: State) -> str:
    """The child a compound state enters by default (a history's default, if it starts there)."""
    assert state.initial is not None
    initial = new.states[state.initial]
    if initial.kind == "history":
        return _child_towards(state.path, initial.default or state.path)
    return initial.path


def _child_towards(parent: str, descendant: str) -> str:
    rest = descendant[len(parent) + 1 :].split(".", maxsplit=1)[0]
    return f"{parent}.{rest}"


def _illegal(new: ChartModel, active: set[str]) -> str | None:
    """Why ``active`` is no configuration an entity of ``new`` can rest in, or None."""
    for path in sorted(active):
        state = new.states[path]
        children = [c for c in state.children if c in active]
        if state.kind == "compound" and len(children) > 1:
            parent = new.states[state.parent] if state.parent else None
            if parent is not None and parent.kind == "parallel":
                return (
                    f"region {path!r} of the parallel state {parent.path!r} is left with "
                    f"{' and '.join(children)} at once, where it holds one"
                )
            return f"{' and '.join(children)} are both active in {path!r}, which holds one"
        if state.kind == "parallel":
            missing = [
                c for c in state.children if c not in active and new.states[c].kind != "history"
            ]
            if missing:
                return f"region {missing[0]!r} of the parallel state {path!r} is left incomplete"
    return None


def _data(migration: Migration, data: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(data)
    for old, new in migration.rename.items():
        if old in out:
            out[new] = out.pop(old)
    for name in migration.drop:
        out.pop(name, None)
    out.update(migration.set)
    return out


def _history(
    new: ChartModel, migration: Migration, history: Mapping[str, tuple[str, ...]]
) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for old, recorded in history.items():
        path = migration.history[old] if old in migration.history else migration.state(old)
        state = new.states.get(path) if path is not None else None
        if path is None or state is None or state.kind != "history" or state.parent is None:
            continue  # its state is gone, or it is declared forgotten
        inside = state.parent + "."
        mapped = [migration.state(p) for p in recorded]
        if all(p is not None and p.startswith(inside) and p in new.states for p in mapped):
            out[path] = tuple(p for p in new.states if p in mapped)
    return out
