"""Differential testing: chartd's core and pytransitions' HierarchicalMachine agree.

Random charts within the semantics both support (engine.interop.pytransitions
.differences names what lies outside, docs/testing.md explains each
mismatch), random event sequences with random condition values: after
every event both are in the same configuration, or both refuse it (an
unknown event as InvalidParameter, anything else as Conflict).

The generator switches off what pytransitions lacks (history, eventless
transitions, rejections, done.state events, follow-ups, nested parallel
states, an initial state inside a region); what remains outside the subset
is pruned from each drawn chart: transitions that enter a region from
outside it, or that two regions take together, and final states inside
regions.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engine
from engine.errors import ChartdError
from engine.interop.pytransitions import Reference, differences
from engine.testing import chart_documents, events


def _walk(states: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    for name, doc in states.items():
        path = f"{prefix}{name}"
        yield path, doc
        yield from _walk(doc.get("states", {}), path + ".")


def within_the_common_subset(document: dict[str, Any]) -> dict[str, Any]:
    """The document with what pytransitions runs differently taken out."""
    document = copy.deepcopy(document)
    chart = engine.parse_chart(document)
    for path, doc in _walk(document["states"]):
        state = chart.state(path)
        if doc.get("final") and any(chart.state(a).kind == "parallel" for a in state.ancestors):
            del doc["final"]  # pytransitions fails on a transition beside a final region
    chart = engine.parse_chart(document)
    found = differences(chart)
    assert all(d.index is not None for d in found), found  # the generator avoids the rest
    dropped = {d.index for d in found}
    document["transitions"] = [t for i, t in enumerate(document["transitions"]) if i not in dropped]
    used = {t.get("via") for t in document["transitions"]}
    for path, doc in list(_walk(document["states"])):
        if doc.get("transient") and path not in used:
            siblings = document["states"]
            for part in path.split(".")[:-1]:
                siblings = siblings[part]["states"]
            del siblings[path.rpartition(".")[2]]
    return document


COMMON = chart_documents(
    max_depth=3,
    max_transitions=12,
    history=False,
    eventless=False,
    rejections=False,
    done_events=False,
    follow_ups=False,
    nested_parallel=False,
    initial_in_region=False,
).map(within_the_common_subset)


def ours(
    chart: engine.Chart, snapshot: engine.Snapshot, event: str, params: dict[str, Any]
) -> engine.Snapshot | str:
    """The core's next snapshot, or the category of its refusal."""
    try:
        return engine.step(chart, snapshot, event, params).snapshot
    except ChartdError as refused:
        return refused.category.value


def theirs(reference: Reference, event: str, params: dict[str, Any]) -> tuple[str, ...] | str:
    """pytransitions' next configuration, or the category of its refusal."""
    try:
        return reference.fire(event, params)
    except ChartdError as refused:
        return refused.category.value


@settings(
    max_examples=settings.default.max_examples * 5,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(document=COMMON, data=st.data())
def test_the_core_and_pytransitions_agree_on_every_step(
    document: dict[str, Any], data: st.DataObject
) -> None:
    chart = engine.parse_chart(document)
    assert differences(chart) == []
    reference = Reference(chart)
    snapshot = chart.initial_snapshot()
    assert reference.configuration == snapshot.configuration
    for event, params in data.draw(events(chart, max_size=15), label="events"):
        core = ours(chart, snapshot, event, params)
        other = theirs(reference, event, params)
        found = core if isinstance(core, str) else core.configuration
        assert found == other, (
            f"{event!r} with {params} in {snapshot.configuration}: chartd {found}, "
            f"pytransitions {other}"
        )
        if not isinstance(core, str):
            snapshot = core


def test_the_subset_still_has_parallel_states_and_conditions() -> None:
    """The pruning leaves something to compare: transitions in regions, conditions, no targets."""
    seen = {"parallel": 0, "when": 0, "targetless": 0}

    @settings(max_examples=200, deadline=None, database=None, derandomize=True)
    @given(document=COMMON)
    def count(document: dict[str, Any]) -> None:
        chart = engine.parse_chart(document)
        parallel = [s for s in chart.model.states.values() if s.kind == "parallel"]
        inside = [
            t for t in chart.transitions if any(t.source.startswith(p.path) for p in parallel)
        ]
        seen["parallel"] += bool(inside)
        seen["when"] += any(t.when for t in chart.transitions)
        seen["targetless"] += any(t.target is None for t in chart.transitions)

    count()
    assert all(n >= 10 for n in seen.values()), seen
