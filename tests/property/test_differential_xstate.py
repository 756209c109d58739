"""Differential testing: chartd's core and XState v5 run the exported machine alike.

Each drawn chart is exported with :func:`engine.export.to_xstate`, created
in a real XState (``npm install xstate@5`` into a temporary directory, once
per module) by tests/property/xstate_runner.cjs, and driven with the same
event sequences and condition values as :func:`engine.step`: after the
start and after every event, both are in the same configuration.

The shared subset (docs/export.md, "XState"): a refusal by chartd counts
as "nothing changed", since XState ignores an event nothing handles; an
unknown event is one of those. Left out, because XState decides
differently (each is a documented difference):

- conditions of eventless transitions that change from event to event:
  XState, like SCXML, looks for enabled eventless transitions after every
  event, even one nothing takes; chartd only after a transition is taken.
  They agree when such conditions depend on the entity's data only, so
  their values are drawn once per sequence, as data;
- ``done.state`` events (XState raises them by other rules for final
  states directly inside parallel regions) and follow-ups (runtime matters);
- transitions whose SCXML domain (a compound state, chartd's) lies above two
  or more parallel states around the source and target: chartd exits and
  re-enters the other regions, XState (whose domain may be a parallel
  state) leaves them be;
- rejections on, inside or above a parallel state: chartd refuses the whole
  event when one region refuses it, XState lets the other regions move;
- a transition on or above a parallel state for an event that a transition
  inside it also takes: chartd, as SCXML, looks outwards from every active
  leaf, so a region that has no transition of its own reaches the outer
  one; XState asks the outer state only when no region took the event;
- an initial state that the initials of its ancestors do not lead to
  (XState's ``initial`` names a child only): the drawn ancestors' initials
  are set to lead there.

Each example sends a batch of sequences to one long-lived Node process, so
that the test costs one round trip per chart, not one Node start.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engine
from engine.errors import ChartdError, ChartError
from engine.export import to_xstate
from engine.model.analysis import condition_names
from engine.testing import chart_documents, events

RUNNER = Path(__file__).with_name("xstate_runner.cjs")


class XState:
    """A Node process with xstate@5 that runs exported machines on event sequences."""

    def __init__(self, modules: Path) -> None:
        self.process = subprocess.Popen(
            ["node", str(RUNNER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "NODE_PATH": str(modules)},
        )

    def run(
        self,
        chart: engine.Chart,
        runs: list[tuple[dict[str, bool], list[tuple[str, dict[str, bool]]]]],
    ) -> list[list[list[str]]]:
        """The active state paths after the start and after each event, per run.

        A run is the condition values held throughout (from the start) and
        the sequence of events with the values of the others at each event.
        """
        assert self.process.stdin is not None and self.process.stdout is not None
        request = {
            "config": json.loads(to_xstate(chart)),
            "conditions": condition_names(chart.model),
            "runs": runs,
        }
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        answer = json.loads(self.process.stdout.readline())
        assert "error" not in answer, answer["error"]
        traces: list[list[list[str]]] = answer["traces"]
        return traces

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def xstate(tmp_path_factory: pytest.TempPathFactory, prerequisites: Any) -> Iterator[XState]:
    prerequisites.command("node", "nodejs")
    npm = prerequisites.command("npm", "npm")
    where = tmp_path_factory.mktemp("xstate")
    subprocess.run(
        [npm, "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(where), "xstate@5"],
        check=True,
        timeout=300,
    )
    runner = XState(where / "node_modules")
    yield runner
    runner.close()


def _walk(states: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    for name, doc in states.items():
        path = f"{prefix}{name}"
        yield path, doc
        yield from _walk(doc.get("states", {}), path + ".")


def _proper_ancestors(path: str) -> list[str]:
    """Innermost first, and "" for the root."""
    parts = path.split(".")
    return [".".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)] + [""]


def _inside(path: str, ancestor: str) -> bool:
    return ancestor == "" or path.startswith(ancestor + ".")


def _exits_other_regions(docs: dict[str, dict[str, Any]], source: str, target: str) -> bool:
    """Whether chartd's move exits regions that XState's leaves alone.

    chartd's transition domain is SCXML's: the innermost *compound* proper
    ancestor of the source that holds the target. XState's is the innermost
    proper ancestor of any kind. When parallel states lie between the two
    below the first one, chartd exits (and re-enters at their initial
    states) the other regions of that one, XState does not.
    """

    def compound(path: str) -> bool:
        return "states" in docs[path] and not docs[path].get("parallel")

    ours = next(
        a for a in _proper_ancestors(source) if a == "" or (compound(a) and _inside(target, a))
    )
    theirs = next(a for a in _proper_ancestors(target) if _inside(source, a))
    return theirs != ours and theirs.rpartition(".")[0] != ours


def within_the_shared_subset(document: dict[str, Any]) -> dict[str, Any]:
    """The document with what XState decides differently taken out (module docstring)."""
    document = copy.deepcopy(document)
    docs = dict(_walk(document["states"]))
    parts = document["initial"].split(".")
    for i in range(1, len(parts)):
        ancestor = docs[".".join(parts[:i])]
        if not ancestor.get("parallel"):
            ancestor["initial"] = parts[i]
    parallel = [p for p, doc in docs.items() if doc.get("parallel")]

    def near_a_region(state: str) -> bool:
        return any(
            state == p or state.startswith(p + ".") or p.startswith(state + ".") for p in parallel
        )

    rejections = [r for r in document.get("rejections", []) if not near_a_region(r["in"])]
    document["rejections"] = rejections
    document["transitions"] = [
        t
        for t in document["transitions"]
        if "to" not in t or not _exits_other_regions(docs, t["from"], t["to"])
    ]
    inner = {
        (p, t.get("event"))
        for p in parallel
        for t in document["transitions"]
        if t["from"].startswith(p + ".")
    }
    document["transitions"] = [
        t
        for t in document["transitions"]
        if not any(
            (p, t.get("event")) in inner and (p == t["from"] or p.startswith(t["from"] + "."))
            for p in parallel
        )
    ]
    return _sound(document)


def _sound(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` made valid again: unused transient states and eventless cycles dropped.

    The transitions dropped may leave a transient state unused, and the
    initials set may close a cycle of eventless transitions.
    """
    while True:
        try:
            engine.parse_chart(document)
            return document
        except ChartError as exc:
            texts = [text for _, text in exc.problems]
        used = {t.get("via") for t in document["transitions"]}
        unused = [p for p, doc in _walk(document["states"]) if doc.get("transient")]
        unused = [p for p in unused if p not in used]
        if unused:
            for path in unused:
                siblings = document["states"]
                for part in path.split(".")[:-1]:
                    siblings = siblings[part]["states"]
                del siblings[path.rpartition(".")[2]]
            document["rejections"] = [r for r in document["rejections"] if r["in"] not in unused]
            continue
        assert all("eventless transitions form a cycle" in t for t in texts), texts
        transitions = document["transitions"]
        last = max(i for i, t in enumerate(transitions) if "event" not in t)
        document["transitions"] = transitions[:last] + transitions[last + 1 :]


SHARED = chart_documents(max_depth=3, done_events=False, follow_ups=False, failures=False).map(
    within_the_shared_subset
)
SEQUENCES = 8


def eventless_conditions(chart: engine.Chart) -> list[str]:
    """The conditions an eventless transition asks: held still for a whole sequence."""
    return sorted({t.when.name for t in chart.transitions if t.event is None and t.when})


def ours(
    chart: engine.Chart, held: dict[str, bool], sequence: list[tuple[str, dict[str, bool]]]
) -> list[list[str]]:
    """chartd's configurations after the start and after each event (a refusal: unchanged).

    ``held`` is the entity's data: the values of the eventless transitions'
    conditions, which the events' params leave alone.
    """
    snapshot = chart.initial_snapshot(held)
    trace = [sorted(snapshot.configuration)]
    for event, params in sequence:
        with contextlib.suppress(ChartdError):
            snapshot = engine.step(chart, snapshot, event, params).snapshot
        trace.append(sorted(snapshot.configuration))
    return trace


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=SHARED, data=st.data())
def test_chartd_and_xstate_agree_on_every_step(
    xstate: XState, document: dict[str, Any], data: st.DataObject
) -> None:
    chart = engine.parse_chart(document)
    held_names = eventless_conditions(chart)
    runs = []
    for i in range(SEQUENCES):
        held = {name: data.draw(st.booleans(), label=name) for name in held_names}
        drawn = data.draw(events(chart, max_size=12), label=f"events {i}")
        sequence = [(e, {k: v for k, v in p.items() if k not in held}) for e, p in drawn]
        runs.append((held, sequence))
    theirs = xstate.run(chart, runs)
    for (held, sequence), trace in zip(runs, theirs, strict=True):
        expected = ours(chart, held, sequence)
        for i, (mine, other) in enumerate(zip(expected, trace, strict=True)):
            assert mine == other, (
                f"after {sequence[:i]} (held: {held}): chartd {mine}, XState {other}\n"
                + to_xstate(chart)
            )


def test_the_subset_still_has_what_it_is_for() -> None:
    """The pruning leaves regions, history, eventless and targetless moves, and rejections."""
    seen = dict.fromkeys(("parallel", "history", "eventless", "targetless", "rejections"), 0)

    @settings(max_examples=200, deadline=None, database=None, derandomize=True)
    @given(document=SHARED)
    def count(document: dict[str, Any]) -> None:
        chart = engine.parse_chart(document)
        kinds = {s.kind for s in chart.model.states.values()}
        seen["parallel"] += "parallel" in kinds
        seen["history"] += any(
            t.target and chart.state(t.target).kind == "history" for t in chart.transitions
        )
        seen["eventless"] += any(t.event is None for t in chart.transitions)
        seen["targetless"] += any(t.target is None for t in chart.transitions)
        seen["rejections"] += bool(chart.rejections)

    count()
    assert all(n >= 5 for n in seen.values()), seen
