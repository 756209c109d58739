"""What changed between two versions of a chart: states, transitions, rejections and steps.

:func:`diff` compares two sound models and lists each difference once, in a
stable order (states, transitions, rejections, steps; in document order).
``chartd chart diff OLD NEW`` prints it; registering a version number again
with other content is refused with it.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from engine.model.chart import ChartModel, Rejection, State, Transition

__all__ = ["Change", "diff", "document_differences"]

What = Literal["state", "transition", "rejection", "step"]
How = Literal["added", "removed", "changed"]


@dataclass(frozen=True, slots=True)
class Change:
    """One difference: what kind of thing, how it changed, which one, and in what."""

    what: What
    how: How
    name: str
    detail: str = ""

    def __str__(self) -> str:
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.what} {self.name} {self.how}{detail}"


def diff(old: ChartModel, new: ChartModel) -> list[Change]:
    """Every state, transition, rejection and step added, removed or changed from old to new."""
    out = _compare(
        "state",
        {p: (p, _state_facts(s)) for p, s in old.states.items()},
        {p: (p, _state_facts(s)) for p, s in new.states.items()},
    )
    out += _compare("transition", _keyed(old.transitions, _tkey), _keyed(new.transitions, _tkey))
    out += _compare("rejection", _keyed(old.rejections, _rkey), _keyed(new.rejections, _rkey))
    out += _compare("step", _steps(old), _steps(new))
    return out


def document_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The top-level keys of two chart documents (as JSON) whose values differ, sorted."""
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def _state_facts(s: State) -> dict[str, Any]:
    return {
        "kind": s.kind,
        "initial": s.initial,
        "transient": s.transient,
        "history": s.history,
        "default": s.default,
    }


def _tkey(t: Transition) -> tuple[str, str]:
    event = t.event or "(eventless)"
    when = f" when {t.when}" if t.when else ""
    return f"{t.source} --{event}{when}-->", _facts_text(
        {
            "to": t.target,
            "via": t.via,
            "guards": list(t.guards),
            "steps": list(t.steps),
            "set": dict(t.assign),
            "then": str(t.then.event) if t.then else None,
            "on_failure": _failure(t),
        }
    )


def _failure(t: Transition) -> Any:
    f = t.on_failure
    if f is None:
        return None
    return {"to": f.to, "record": list(f.record), "after": f.after, "then": f.then and f.then.event}


def _rkey(r: Rejection) -> tuple[str, str]:
    events = ", ".join(sorted(r.events)) if r.events is not None else "*"
    when = f" when {r.when}" if r.when else ""
    return f"{events} in {r.state}{when}", f"{r.category.value}: {r.message}"


def _facts_text(facts: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in facts.items() if v not in (None, [], {}))


def _keyed(items: Iterable[Any], key: Any) -> dict[Hashable, tuple[str, Any]]:
    """Items by their key; the n-th item of a repeated key is told apart by n."""
    out: dict[Hashable, tuple[str, Any]] = {}
    for item in items:
        name, facts = key(item)
        n = sum(1 for k in out if isinstance(k, tuple) and k[0] == name)
        out[(name, n)] = (name, facts)
    return out


def _steps(model: ChartModel) -> dict[Hashable, tuple[str, Any]]:
    """Each step name, with the transitions that run it."""
    used: dict[str, list[str]] = {}
    for t in model.transitions:
        for step in t.steps:
            used.setdefault(step, []).append(_tkey(t)[0].removesuffix("-->").strip())
    return {name: (name, ", ".join(where)) for name, where in used.items()}


def _compare(
    what: What,
    old: Mapping[Hashable, tuple[str, Any]],
    new: Mapping[Hashable, tuple[str, Any]],
) -> list[Change]:
    out: list[Change] = []
    for key, (name, facts) in old.items():
        if key not in new:
            out.append(Change(what, "removed", name))
        elif new[key][1] != facts:
            out.append(Change(what, "changed", name, _changed(facts, new[key][1])))
    out += [Change(what, "added", name) for key, (name, _) in new.items() if key not in old]
    return out


def _changed(old: Any, new: Any) -> str:
    if isinstance(old, dict) and isinstance(new, dict):
        return ", ".join(f"{k}: {old.get(k)} -> {new.get(k)}" for k in old if old[k] != new.get(k))
    return f"{old} -> {new}"
