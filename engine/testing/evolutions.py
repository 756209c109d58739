"""Random evolutions of a chart document: its next version, with the migration it declares.

:func:`evolutions` draws, from a chart document (as :func:`chart_documents`
makes them), the document of the chart's next version: one change of the
kinds a lifecycle goes through (a state renamed, split or merged with a
sibling, a parallel region added or removed, a compound level added or
removed), every reference to what changed rewritten, and the ``migrations``
lines the change needs (none where default entry completes the move).
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

import engine
from engine.errors import ChartError

__all__ = ["KINDS", "Evolution", "evolutions"]

KINDS = ("rename", "split", "merge", "add-region", "remove-region", "add-level", "remove-level")
"""The kinds of change :func:`evolutions` draws."""


@dataclass(frozen=True, slots=True)
class Evolution:
    """One change from a version to the next: its kind, the state it touched, the new document."""

    kind: str
    state: str
    document: dict[str, Any]


def _walk(states: dict[str, Any], parent: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    for name, doc in states.items():
        path = f"{parent}.{name}" if parent else name
        yield path, doc
        yield from _walk(doc.get("states") or {}, path)


def _kind(doc: dict[str, Any]) -> str:
    for key in ("history", "transient", "final", "parallel"):
        if doc.get(key):
            return key
    return "compound" if doc.get("states") else "atomic"


class _Doc:
    """A document being changed, found by state path."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.doc = copy.deepcopy(document)
        self._fresh = itertools.count()

    def states(self, *kinds: str) -> list[str]:
        return [p for p, d in _walk(self.doc["states"]) if not kinds or _kind(d) in kinds]

    def state(self, path: str) -> dict[str, Any]:
        found: dict[str, Any] = dict(_walk(self.doc["states"]))[path]
        return found

    def siblings(self, path: str) -> dict[str, Any]:
        parent = path.rpartition(".")[0]
        found: dict[str, Any] = self.state(parent)["states"] if parent else self.doc["states"]
        return found

    def fresh(self, parent: str) -> str:
        """A new state path under ``parent`` (``""``: the top)."""
        taken = set(self.states())
        while True:
            name = f"v{next(self._fresh)}"
            path = f"{parent}.{name}" if parent else name
            if path not in taken:
                return path

    def rename_refs(self, old: str, new: str) -> None:
        """Every reference to ``old`` (or under it) now names ``new``."""

        def swap(text: str) -> str:
            for prefix in ("", "done.state."):
                if text == prefix + old or text.startswith(prefix + old + "."):
                    return prefix + new + text[len(prefix + old) :]
            return text

        self._each_ref(swap)

    def _each_ref(self, swap: Callable[[str], str]) -> None:
        doc = self.doc
        doc["initial"] = swap(doc["initial"])
        for t in doc.get("transitions", []):
            for key in ("from", "to", "via", "event"):
                if isinstance(t.get(key), str):
                    t[key] = swap(t[key])
            failure = t.get("on_failure")
            if failure and failure.get("to"):
                failure["to"] = swap(failure["to"])
        for r in doc.get("rejections", []):
            r["in"] = swap(r["in"])
        for _, sd in _walk(doc["states"]):
            if sd.get("default"):
                sd["default"] = swap(sd["default"])

    def drop_refs(self, gone: str, instead: str) -> None:
        """References to ``gone`` (or under it) go: transitions from it, rejections in it
        are dropped; targets, initials and defaults point at ``instead``."""

        def inside(text: str | None) -> bool:
            return isinstance(text, str) and (text == gone or text.startswith(gone + "."))

        doc = self.doc
        doc["transitions"] = [
            t
            for t in doc.get("transitions", [])
            if not inside(t["from"]) and not inside(t.get("via"))
        ]
        doc["rejections"] = [r for r in doc.get("rejections", []) if not inside(r["in"])]
        self.rename_refs(gone, instead)
        for t in doc["transitions"]:
            if isinstance(t.get("event"), str) and t["event"].startswith("done.state."):
                target = t["event"].removeprefix("done.state.")
                if target not in self.states("compound", "parallel"):
                    t["event"] = "e0"

    def remove(self, path: str) -> None:
        del self.siblings(path)[path.rpartition(".")[2]]


@st.composite
def evolutions(draw: st.DrawFn, document: dict[str, Any]) -> Evolution:
    """The next version of ``document`` (a valid chart document): one drawn change.

    The new document has ``version`` one more and declares, under
    ``migrations``, the lines from the old version the change needs.
    """
    kinds = list(KINDS)
    while kinds:
        kind = draw(st.sampled_from(kinds))
        kinds.remove(kind)
        d = _Doc(document)
        lines: dict[str, str | None] = {}
        state = _CHANGES[kind](draw, d, lines)
        if state is None:
            continue
        d.doc["version"] = document.get("version", 1) + 1
        if lines:
            d.doc["migrations"] = {document.get("version", 1): {"states": lines}}
        try:
            engine.parse_chart(d.doc)
        except ChartError:
            continue  # the change broke something the generator cannot mend: another one
        return Evolution(kind, state, d.doc)
    # No change fits this chart: add a region to nothing, i.e. a new top-level state.
    d = _Doc(document)
    d.doc["states"][d.fresh("").rpartition(".")[2]] = {}
    d.doc["version"] = document.get("version", 1) + 1
    return Evolution("add-state", "", d.doc)


_Change = Callable[[st.DrawFn, _Doc, dict[str, "str | None"]], "str | None"]


def _rename(draw: st.DrawFn, d: _Doc, lines: dict[str, str | None]) -> str | None:
    paths = d.states("atomic", "compound", "parallel", "final")
    if not paths:
        return None
    old = draw(st.sampled_from(paths))
    parent = old.rpartition(".")[0]
    new = d.fresh(parent)
    siblings = d.siblings(old)
    name, new_name = old.rpartition(".")[2], new.rpartition(".")[2]
    siblings[new_name] = siblings.pop(name)
    if parent and d.state(parent).get("initial") == name:
        d.state(parent)["initial"] = new_name
    d.rename_refs(old, new)
    lines[old] = new
    return old


def _split(draw: st.DrawFn, d: _Doc, lines: dict[str, str | None]) -> str | None:
    """An atomic state becomes two siblings: its entities go to the first."""
    state = _rename(draw, d, lines)
    if state is None or _kind(d.state(lines[state] or "")) != "atomic":
        return None
    d.siblings(state)[d.fresh(state.rpartition(".")[0]).rpartition(".")[2]] = {}
    return state


def _merge(draw: st.DrawFn, d: _Doc, lines: dict[str, str | None]) -> str | None:
    """Two atomic siblings become one: the second's entities go to the first."""
    pairs = [
        (a, b)
        for a in d.states("atomic")
        for b in d.states("atomic")
        if a < b and a.rpartition(".")[0] == b.rpartition(".")[0]
    ]
    if not pairs:
        return None
    keep, gone = draw(st.sampled_from(pairs))
    parent = gone.rpartition(".")[0]
    if parent and d.state(parent).get("initial") == gone.rpartition(".")[2]:
        d.state(parent)["initial"] = keep.rpartition(".")[2]
    d.remove(gone)
    d.rename_refs(gone, keep)
    lines[gone] = keep
    return gone


def _add_region(draw: st.DrawFn, d: _Doc, lines: dict[str, str | None]) -> str | None:
    """A parallel state gains a region, or an atomic state becomes a parallel one of two."""
    paths = d.states("parallel", "atomic")
    if not paths:
        return None
    path = draw(st.sampled_from(paths))
    sd = d.state(path)
    if _kind(sd) == "atomic":
        sd["parallel"] = True
        sd["states"] = {}
        for _ in range(2):
            region = d.fresh(path)
            sd["states"][region.rpartition(".")[2]] = {}
        return path
    region = d.fresh(path)
    leaf = d.fresh(region).rpartition(".")[2]
    sd["states"][region.rpartition(".")[2]] = {"initial": leaf, "states": {leaf: {}}}
    return path


def _remove_region(draw: st.DrawFn, d: _Doc, lines: dict[str, str | None]) -> str | None:
    """A parallel state of several regions loses one: its states are dropped (``null``)."""
    regions = [
        r
        for p in d.states("parallel")
        for r in (f"{p}.{n}" for n in d.state(p).get("states", {}))
        if _kind(d.state(r)) != "history"
        and sum(_kind(x) != "history" for x in d.state(p)["states"].values()) > 1
    ]
    if not regions:
        return None
    region = draw(st.sampled_from(regions))
    parent = region.rpartition(".")[0]
    d.remove(region)
    d.drop_refs(region, parent)
    lines[region] = None
    return region


def _add_level(draw: st.DrawFn, d: _Doc, lines: dict[str, str | None]) -> str | None:
    """An atomic state becomes compound: its entities enter its initial child by default."""
    paths = d.states("atomic")
    if not paths:
        return None
    path = draw(st.sampled_from(paths))
    children = [d.fresh(path).rpartition(".")[2]]
    children.append(f"{children[0]}x")
    d.state(path).update(initial=children[0], states={c: {} for c in children})
    return path


def _remove_level(draw: st.DrawFn, d: _Doc, lines: dict[str, str | None]) -> str | None:
    """A compound state of atomic children only becomes atomic: theirs go to it."""
    paths = [
        p
        for p in d.states("compound")
        if all(_kind(c) in ("atomic", "history") for c in d.state(p)["states"].values())
    ]
    if not paths:
        return None
    path = draw(st.sampled_from(paths))
    children = list(d.state(path)["states"])
    for child in children:
        d.rename_refs(f"{path}.{child}", path)
        lines[f"{path}.{child}"] = path
    sd = d.state(path)
    del sd["states"], sd["initial"]
    return path


_CHANGES: dict[str, _Change] = {
    "rename": _rename,
    "split": _split,
    "merge": _merge,
    "add-region": _add_region,
    "remove-region": _remove_region,
    "add-level": _add_level,
    "remove-level": _remove_level,
}
