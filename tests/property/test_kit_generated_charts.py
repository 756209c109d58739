"""The test kit against random charts: every feature of the language, faults and crashes.

Each example draws a valid chart (compound, parallel, final, history and
transient states; eventless, targetless and conditional transitions;
guards, sagas, ``via``, ``set``, ``on_failure``, follow-ups; rejections),
gives its names stand-in code, and runs a random list of actions on a real
engine, checking after each one (engine.testing.Harness).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engine
from engine.testing import Crash, Create, Fault, Fire, Harness, StandIns, actions, charts

# The ci profile's 300 charts, each with up to 15 actions; 30 in the dev profile.
EXAMPLES = settings.default.max_examples if settings.default.max_examples >= 200 else 30


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(chart=charts(), data=st.data())
def test_every_generated_chart_keeps_the_engine_invariants(
    chart: engine.Chart, data: st.DataObject
) -> None:
    stand_ins = StandIns(chart)
    with Harness(chart, stand_ins.bindings, invariants=[stand_ins.check]) as harness:
        harness.check()
        for action in data.draw(actions(chart, max_size=15), label="actions"):
            harness.apply(action)
            harness.check()


@settings(max_examples=max(10, EXAMPLES // 4), deadline=None)
@given(chart=charts(), data=st.data())
def test_internal_steps_commit_once_and_keep_the_invariants(
    chart: engine.Chart, data: st.DataObject
) -> None:
    """Steps that act only on the entity's data: no write-ahead, one commit, one version."""
    stand_ins = StandIns(chart, external=False)
    with Harness(chart, stand_ins.bindings) as harness:
        for action in data.draw(actions(chart, max_size=10), label="actions"):
            harness.apply(action)
            harness.check()


def test_the_harness_counts_a_saga_twice_and_an_internal_transition_once() -> None:
    chart = engine.parse_chart(
        {
            "chart": "counted",
            "initial": "a",
            "states": {"a": {}, "b": {}, "hold": {"transient": True}},
            "transitions": [
                {"event": "go", "from": "a", "to": "b", "via": "hold", "steps": ["s"]},
                {"event": "back", "from": "b", "to": "a"},
            ],
        }
    )
    stand_ins = StandIns(chart)
    with Harness(chart, stand_ins.bindings, invariants=[stand_ins.check]) as harness:
        harness.apply(Create())
        harness.apply(Fire(0, "go"))
        harness.apply(Fire(0, "back"))
        harness.check()
        [entity] = harness.entities
        assert harness.engine.get(entity).version == 3  # write-ahead, commit; commit


@pytest.mark.parametrize(
    ("fault", "ends_in"),
    [
        (Fault(step=0), "a"),
        (Fault(step=2), "broken"),
        # Recovery: interrupted up to `after`, or after it (its end is journaled waited).
        (Fault(crash=Crash("do", 1)), "a"),
        (Fault(crash=Crash("done", 1)), "a"),  # s1 acted; the engine never heard it did
        (Fault(crash=Crash("do", 2)), "broken"),
        (Fault(step=2, crash=Crash("undo", 1)), "broken"),  # failed, then died undoing
    ],
)
def test_a_failure_policy_after_a_step_applies_from_there_also_on_recovery(
    fault: Fault, ends_in: str
) -> None:
    chart = engine.parse_chart(
        {
            "chart": "pivot",
            "initial": "a",
            "states": {"a": {}, "b": {}, "broken": {}, "hold": {"transient": True}},
            "transitions": [
                {
                    "event": "go",
                    "from": "a",
                    "to": "b",
                    "via": "hold",
                    "steps": ["s0", "s1", "s2"],
                    "on_failure": {"after": "s1", "to": "broken", "record": ["error"]},
                },
            ],
        }
    )
    stand_ins = StandIns(chart)
    with Harness(chart, stand_ins.bindings, invariants=[stand_ins.check]) as harness:
        harness.apply(Create())
        harness.apply(Fire(0, "go", fault=fault))
        harness.check()
        [entity] = harness.entities
        assert harness.engine.get(entity).configuration == (ends_in,)
