"""Properties of engine.step over random event sequences on several charts.

Whatever the events and their params, every step either refuses with a
typed error or yields a legal configuration; the memo never changes an
answer; snapshots survive JSON.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

import engine
from engine.errors import ChartdError
from statecharts.container import CHART_PATH

WORKSHOP = {
    "chart": "workshop",
    "initial": "idle",
    "states": {
        "idle": {},
        "busy": {
            "parallel": True,
            "states": {
                "saw": {
                    "initial": "off",
                    "states": {"off": {}, "on": {}, "done": {"final": True}},
                },
                "lamp": {
                    "initial": "dim",
                    "states": {"dim": {}, "bright": {}, "h": {"history": "shallow"}},
                },
            },
        },
        "resting": {"initial": "nap", "states": {"nap": {}, "deep": {}, "h": {"history": "deep"}}},
        "wait": {"transient": True},
        "closed": {"final": True},
    },
    "transitions": [
        {"event": "open", "from": "idle", "to": "busy", "via": "wait", "steps": ["unlock"]},
        {"event": "cut", "from": "busy.saw.off", "to": "busy.saw.on"},
        {"event": "cut", "from": "busy.saw.on", "to": "busy.saw.done", "when": "finished"},
        {"event": "light", "from": "busy.lamp.dim", "to": "busy.lamp.bright"},
        {"event": "light", "from": "busy.lamp.bright", "to": "busy.lamp.dim"},
        {"event": "done.state.busy.saw", "from": "busy.lamp.bright", "to": "busy.lamp.dim"},
        {"event": "rest", "from": "busy", "to": "resting.h"},
        {"event": "sleep", "from": "resting.nap", "to": "resting.deep"},
        {"event": "wake", "from": "resting", "to": "busy.lamp.h"},
        {"from": "resting.deep", "to": "idle", "when": "alarm"},
        {"event": "close", "from": ["idle", "resting"], "to": "closed"},
    ],
    "rejections": [
        {"event": "open", "in": "busy", "error": "not_modified", "message": "already open"},
        {"event": "*", "in": "closed", "error": "not_found", "message": "gone"},
        {
            "event": "light",
            "in": "resting.deep",
            "when": "!alarm",
            "error": "conflict",
            "message": "shh",
        },
    ],
}

CHARTS = {
    "container": lambda: engine.load_chart(CHART_PATH),
    "workshop": lambda: engine.parse_chart(WORKSHOP),
}


def conditions_of(chart: engine.Chart) -> list[str]:
    names = {t.when.name for t in chart.transitions if t.when}
    names |= {r.when.name for r in chart.rejections if r.when}
    return sorted(names)


def legal(chart: engine.Chart, snapshot: engine.Snapshot) -> None:
    config = set(snapshot.configuration)
    assert len(config) == len(snapshot.configuration)
    assert list(snapshot.configuration) == sorted(config, key=chart.states.index)
    top = [s for s in config if "." not in s]
    assert len(top) == 1, config
    for path in config:
        state = chart.state(path)
        assert state.kind != "history" and not state.transient, path
        if state.parent:
            assert state.parent in config, path
        children = [c for c in state.children if chart.state(c).kind != "history"]
        active = [c for c in children if c in config]
        if state.kind == "compound":
            assert len(active) == 1, (path, config)
        elif state.kind == "parallel":
            assert active == children, (path, config)


@st.composite
def runs(draw: st.DrawFn) -> tuple[str, list[tuple[str, dict[str, Any]]]]:
    name = draw(st.sampled_from(sorted(CHARTS)))
    chart = CHARTS[name]()
    events = [*sorted(e for e in chart.events if not e.startswith("done.")), "nonsense"]
    flags = conditions_of(chart)
    params = st.fixed_dictionaries({}, optional={f: st.booleans() for f in flags})
    return name, draw(st.lists(st.tuples(st.sampled_from(events), params), max_size=40))


@given(runs())
def test_every_step_is_legal_or_a_typed_refusal(run: tuple[str, list[Any]]) -> None:
    name, events = run
    chart = CHARTS[name]()
    fresh = CHARTS[name]()  # no memo shared with `chart`
    snapshot = chart.initial_snapshot({"id": "c0ffee", "name": "/box"})
    legal(chart, snapshot)
    for event, params in events:
        try:
            plan = engine.step(chart, snapshot, event, params)
        except ChartdError as refused:
            assert refused.message
            try:
                engine.step(fresh, snapshot, event, params)
            except ChartdError as again:
                assert type(again) is type(refused) and again.message == refused.message
            else:
                raise AssertionError("the memoised chart refused what a fresh one allows")
            continue
        twin = engine.step(fresh, snapshot, event, params)
        assert twin.snapshot == plan.snapshot
        assert [t.index for t in twin.transitions] == [t.index for t in plan.transitions]
        new = plan.snapshot
        legal(chart, new)
        assert new.version == snapshot.version + 1
        assert set(new.configuration) - set(snapshot.configuration) <= set(plan.entered)
        assert set(snapshot.configuration) - set(new.configuration) <= set(plan.exited)
        if plan.transient_snapshot is not None:
            assert any(chart.state(s).transient for s in plan.transient_snapshot.configuration)
        legal(chart, plan.failure_snapshot)
        assert engine.Snapshot.from_json(new.to_json()) == new
        snapshot = new
