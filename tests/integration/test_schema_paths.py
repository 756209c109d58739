"""A chart's schema is checked by the engine, so every way in gets it: create, create_many,
fire, fire_many, a timer, a follow-up. A refused value runs nothing and writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import engine
from engine import Bindings, Context, Step
from engine.errors import InvalidParameter

JOB = engine.parse_chart(
    """
chart: job
initial: idle
states:
  idle: {}
  busy: {transient: true}
  done: {}
transitions:
  - {event: run, from: idle, to: done, via: busy, steps: [work], then: {event: tidy}}
  - {event: tidy, from: done}
  - {event: later, from: idle, steps: [remind]}
  - {event: ping, from: [idle, done]}
schema:
  data:
    required: [cmd]
    additionalProperties: false
    properties:
      name: {type: string, const: "/{entity}", default: "/{entity}"}
      cmd: {type: array, minItems: 1, items: {type: string}}
  params:
    run:
      additionalProperties: false
      properties: {force: {type: boolean}, timeout: {type: integer, minimum: 0}}
    ping:
      additionalProperties: false
      properties: {count: {type: integer}}
    tidy:
      required: [why]
"""
)


class Work:
    def __init__(self) -> None:
        self.ran: list[str] = []

    def bindings(self) -> Bindings:
        def work(ctx: Context) -> None:
            self.ran.append(ctx.event)

        def remind(ctx: Context) -> None:
            ctx.schedule("ping", 0, {"count": "many"})

        return Bindings(
            steps={"work": Step(work, lambda ctx, payload: None), "remind": Step(remind)}
        )


@pytest.fixture
def eng(tmp_path: Path) -> Iterator[engine.Engine]:
    with engine.Engine.open(f"sqlite:///{tmp_path / 'chartd.db'}", timers=False) as opened:
        yield opened


def test_create_and_create_many_check_the_data(eng: engine.Engine) -> None:
    eng.register(JOB, Work().bindings())
    with pytest.raises(InvalidParameter, match=r"^invalid entity data: cmd: expected an array"):
        eng.create("job", "a", {"cmd": "sleep 5"})
    with pytest.raises(InvalidParameter, match=r"^invalid entity data: name: expected '/b'"):
        eng.create("job", "b", {"cmd": ["x"], "name": "/a"})
    assert eng.create("job", "c", {"cmd": ["x"]}).data == {"cmd": ["x"], "name": "/c"}
    results = eng.create_many("job", [("d", {"cmd": ["x"]}), ("e", {"cmd": [1]}), ("f", None)])
    assert isinstance(results[0], engine.Entity) and results[0].data["name"] == "/d"
    assert [str(r) for r in results[1:]] == [
        "invalid entity data: cmd[0]: expected a string, got an integer (1)",
        "invalid entity data: cmd: required, but missing",
    ]
    names = [e.name for e in eng.list("job").items]
    assert names == ["c", "d"]


def test_fire_and_fire_many_check_the_params_before_anything_runs(eng: engine.Engine) -> None:
    work = Work()
    eng.register(JOB, work.bindings())
    job = eng.create("job", "a", {"cmd": ["x"]})
    since = eng.sequence()
    with pytest.raises(InvalidParameter, match=r"^invalid params of 'run': force: expected a bool"):
        eng.fire(job, "run", {"force": "no"})
    with pytest.raises(InvalidParameter, match=r"^invalid params of 'run': unknown key 'forse'"):
        eng.fire(job, "run", {"forse": True}, idempotency_key="k1")
    results = eng.fire_many([(job.id, "run", {"timeout": -1}), (job.id, "ping", {"count": 2})])
    assert str(results[0]) == "invalid params of 'run': timeout: must be at least 0, got -1"
    assert isinstance(results[1], engine.Result)
    assert work.ran == []  # nothing of a refused fire ran
    assert [t.event for t in eng.history(job)] == ["ping"]  # nor was it journaled
    assert [e.type for e in eng.watch(since, timeout=0)] == ["transition"]


def test_a_follow_up_and_a_timer_are_checked_as_any_fire(eng: engine.Engine) -> None:
    eng.register(JOB, Work().bindings())
    job = eng.create("job", "a", {"cmd": ["x"]})
    # `run` commits; its follow-up `tidy` has no `why`: refused, and the run stands.
    assert eng.fire(job, "run").entity.state == "done"
    assert [t.event for t in eng.history(job)] == ["run"]
    other = eng.create("job", "b", {"cmd": ["x"]})
    eng.fire(other, "later")  # schedules `ping` with a count that is not an integer
    assert eng.run_due_timers() == 1
    assert [t.event for t in eng.history(other)] == ["later"]


def test_a_chart_without_a_schema_takes_any_data(eng: engine.Engine) -> None:
    plain: dict[str, Any] = JOB.model.document.model_dump(by_alias=True, exclude_none=True)
    del plain["schema"]
    eng.register(engine.parse_chart({**plain, "chart": "plain"}), Work().bindings())
    assert eng.create("plain", "a", {"cmd": "sleep 5"}).data == {"cmd": "sleep 5"}
