"""Every crash point of a saga, one by one: the kit's crash simulation and the engine's recovery.

Not random: each case crashes a start saga of three steps at one point,
keeping 0..3 of its unflushed journal writes, and the harness checks that
recovery did what the journal on disk calls for. Where the entity ends up
is asserted here too, so that a kit that quietly stopped crashing would
fail.
"""

from __future__ import annotations

import itertools

import pytest

import engine
from engine.testing import CRASH_POINTS, Crash, Create, Fault, Fire, Harness, StandIns

CHART = engine.parse_chart(
    """
chart: job
initial: idle
states:
  idle: {}
  starting: {transient: true}
  running: {}
  broken: {}
transitions:
  - {event: start, from: idle, to: running, via: starting, guards: [quota],
     steps: [workdir, sandbox, launch], on_failure: {to: broken, record: [error]}}
  - {event: fix, from: broken, to: idle}
"""
)

# One guard; the undos (the last step fails) are of steps 0 and 1; commits take no index.
CASES = [
    (at, index, keep)
    for at, index, keep in itertools.product(CRASH_POINTS, range(3), range(4))
    if not (at == "guard" and index > 0)
    and not (at in ("undo", "undone") and index > 1)
    and not (at.startswith(("write-ahead", "commit")) and index > 0)
]


@pytest.mark.parametrize(("at", "index", "keep"), CASES)
def test_a_crash_anywhere_in_a_saga_is_recovered(at: str, index: int, keep: int) -> None:
    # A failing last step sends the saga through its undos, where the undo points are.
    step = 2 if at in ("undo", "undone") else None
    stand_ins = StandIns(CHART)
    with Harness(CHART, stand_ins.bindings, invariants=[stand_ins.check]) as harness:
        harness.apply(Create())
        fault = Fault(step=step, crash=Crash(at, index, keep))  # type: ignore[arg-type]
        harness.apply(Fire(0, "start", fault=fault))
        harness.check()
        [entity] = harness.entities
        stored = harness.engine.get(entity)
        assert harness.generation == 2, "the engine did not crash and reopen"
        records = harness.engine.history(entity)
        if at in ("guard", "write-ahead"):
            # Killed before anything was journaled: nothing happened.
            assert records == [] and stored.state == "idle" and stand_ins.made == {}
            return
        [record] = records
        assert record.status in ("committed", "failed")
        if record.status == "committed":
            assert stored.state == "running"
        else:
            assert stored.state == "broken" and stored.data["error"]
            assert stand_ins.made == {}


def test_a_crash_before_the_write_ahead_leaves_nothing() -> None:
    stand_ins = StandIns(CHART)
    with Harness(CHART, stand_ins.bindings) as harness:
        harness.apply(Create())
        harness.apply(Fire(0, "start", fault=Fault(crash=Crash("write-ahead"))))
        harness.check()
        [entity] = harness.entities
        assert harness.engine.history(entity) == []
        assert harness.engine.get(entity).state == "idle"


def test_a_crash_after_every_step_was_journaled_is_finished_by_recovery() -> None:
    stand_ins = StandIns(CHART)
    with Harness(CHART, stand_ins.bindings) as harness:
        harness.apply(Create())
        harness.apply(Fire(0, "start", fault=Fault(crash=Crash("commit-flushed"))))
        harness.check()
        [entity] = harness.entities
        [record] = harness.engine.history(entity)
        assert record.status == "committed"
        assert [s.status for s in record.steps] == ["done"] * 3
        assert len(stand_ins.made) == 3  # what the steps made stays: the start happened
