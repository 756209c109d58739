"""Promises of docs/engine.md and docs/chart-language.md, each on a real engine.

Idempotency while the first fire runs elsewhere, timers that count only if
the transition commits, a fire during recovery, a saga without ``via`` raced
by two engines, and the names in a rejection's message. Engines that share
a database run on the SQLite file and PostgreSQL (``shared_store_url``);
two engines in one process stand for two processes, and one whose clock is
an hour ahead sees the other's heartbeat as a dead engine's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from clock import FakeClock

import engine
from engine import Bindings, Context, Step, errors

WAIT = 10.0


class Background:
    """A call on a thread of its own: what it returned or raised, once it ended."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self._thread.start()

    def _run(self, call: Callable[[], Any]) -> None:
        try:
            self.result = call()
        except BaseException as exc:
            self.error = exc

    def join(self) -> Background:
        self._thread.join(WAIT)
        assert not self._thread.is_alive(), "the call did not end"
        return self


class Gate:
    """Holds a step until released; ``entered`` is set once it is held there."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self._open = threading.Event()

    def hold(self) -> None:
        self.entered.set()
        assert self._open.wait(WAIT), "the gate was never opened"

    def wait_entered(self) -> None:
        assert self.entered.wait(WAIT), "nothing reached the gate"

    def release(self) -> None:
        self._open.set()


# -- idempotency -------------------------------------------------------------------------

JOB = engine.parse_chart(
    """
chart: job
initial: idle
states: {idle: {}, starting: {transient: true}, running: {}}
transitions:
  - {event: start, from: idle, to: running, via: starting, steps: [fetch, launch]}
  - {event: deploy, from: idle, to: running, steps: [fetch, launch]}
"""
)


def job_bindings(calls: list[str], gate: Gate | None = None) -> Bindings:
    """Steps that record their do and undo in ``calls``; fetch waits at ``gate`` if given."""

    def step(name: str) -> Step:
        def do(ctx: Context) -> None:
            calls.append(f"do {name}")
            if gate is not None and name == "fetch":
                gate.hold()

        def undo(ctx: Context, payload: Any) -> None:
            calls.append(f"undo {name}")

        return Step(do, undo)

    return Bindings(steps={name: step(name) for name in ("fetch", "launch")})


class TwoEngines:
    """Engines a and b on one database with the job chart and an entity "web".

    a's fetch step waits at ``gate``; each engine's steps are recorded in
    ``a_calls`` and ``b_calls``.
    """

    def __init__(self, url: str, open_engine: Callable[..., engine.Engine]) -> None:
        self.gate = Gate()
        self.a_calls: list[str] = []
        self.b_calls: list[str] = []
        self.a = open_engine(url, timers=False)
        self.b = open_engine(url, timers=False)
        self.a.register(JOB, job_bindings(self.a_calls, self.gate))
        self.b.register(JOB, job_bindings(self.b_calls))
        self.a.create("job", "web")


def test_a_key_repeated_while_its_first_fire_runs_elsewhere_gets_conflict(
    shared_store_url: str, open_engine: Callable[..., engine.Engine]
) -> None:
    two = TwoEngines(shared_store_url, open_engine)
    first = Background(lambda: two.a.fire("web", "start", {"n": 1}, idempotency_key="k1"))
    try:
        two.gate.wait_entered()

        with pytest.raises(errors.Conflict, match="'k1' is still in progress on web"):
            two.b.fire("web", "start", {"n": 1}, idempotency_key="k1")
        assert two.b_calls == []
    finally:
        two.gate.release()
    assert first.join().error is None
    # Finished, the key replays what it recorded.
    again = two.b.fire("web", "start", {"n": 1}, idempotency_key="k1")
    assert again.replayed and again.transition_id == first.result.transition_id
    assert two.b_calls == []


# -- timers ------------------------------------------------------------------------------

ALARM = engine.parse_chart(
    """
chart: alarm
initial: idle
states: {idle: {}, arming: {transient: true}, armed: {}}
transitions:
  - {event: arm, from: idle, to: armed, guards: [plan], steps: [ring_later, check]}
  - {event: arm_saga, from: idle, to: armed, via: arming, steps: [ring_later, check]}
  - {event: disarm, from: armed, to: idle, steps: [silence, check]}
"""
)


def alarm_bindings() -> Bindings:
    """``params.fail`` makes the last step fail; ``params.deny`` the guard, after it scheduled."""

    def plan(ctx: Context) -> None:
        ctx.schedule("ring", 30)
        if ctx.params.get("deny"):
            raise errors.Forbidden("no alarms today")

    def ring_later(ctx: Context) -> None:
        ctx.schedule("ring", 60)

    def silence(ctx: Context) -> None:
        ctx.cancel_timers("ring")

    def check(ctx: Context) -> None:
        if ctx.params.get("fail"):
            raise errors.Unavailable("the alarm panel does not answer")

    return Bindings(
        guards={"plan": plan},
        steps={
            "ring_later": Step(ring_later, lambda ctx, payload: None, external=False),
            "silence": Step(silence, lambda ctx, payload: None, external=False),
            "check": Step(check, external=False),
        },
    )


def timers(eng: engine.Engine, name: str) -> list[tuple[str, str]]:
    return [(t.event, t.status) for t in eng.store.timers(eng.get(name).id)]


@pytest.mark.parametrize("arm", ["arm", "arm_saga"], ids=["direct", "saga"])
def test_timers_are_scheduled_and_cancelled_only_by_a_transition_that_commits(
    store_url: str, open_engine: Callable[..., engine.Engine], arm: str
) -> None:
    clock = FakeClock(1_700_000_000.0)
    eng = open_engine(store_url, clock=clock, timers=False)
    eng.register(ALARM, alarm_bindings())
    eng.create("alarm", "door")

    with pytest.raises(errors.Unavailable):
        eng.fire("door", arm, {"fail": True})
    with pytest.raises(errors.Forbidden):
        eng.fire("door", "arm", {"deny": True})
    assert timers(eng, "door") == []

    eng.fire("door", arm)
    scheduled = timers(eng, "door")
    assert ("ring", "pending") in scheduled and {s for _, s in scheduled} == {"pending"}

    with pytest.raises(errors.Unavailable):
        eng.fire("door", "disarm", {"fail": True})
    assert timers(eng, "door") == scheduled

    eng.fire("door", "disarm")
    assert {s for _, s in timers(eng, "door")} == {"cancelled"}
    clock.advance(3600)
    assert eng.run_due_timers() == 0


# -- recovery ----------------------------------------------------------------------------

FILES = engine.parse_chart(
    """
chart: files
initial: idle
states: {idle: {}, making: {transient: true}, made: {}}
transitions:
  - {event: make, from: idle, to: made, via: making, steps: [a, b]}
"""
)


def test_a_fire_on_an_entity_being_recovered_gets_unavailable(
    tmp_path: Any, open_engine: Callable[..., engine.Engine]
) -> None:
    url = f"sqlite:///{tmp_path / 'chartd.db'}"
    running, undoing = Gate(), Gate()

    def held(gate: Gate | None) -> Step:
        def do(ctx: Context) -> None:
            if gate is not None and ctx.step == "b":
                gate.hold()

        def undo(ctx: Context, payload: Any) -> None:
            if gate is undoing:
                undoing.hold()

        return Step(do, undo)

    # Engine a runs the saga and stops in step b; engine b, whose clock is an hour
    # ahead, takes it for dead and recovers the saga, holding in the first undo.
    a = open_engine(url, timers=False)
    a.register(FILES, Bindings(steps={"a": held(running), "b": held(running)}))
    a.create("files", "victim")
    saga = Background(lambda: a.fire("victim", "make"))
    b = open_engine(url, clock=FakeClock(time.time() + 3600), timers=False)
    try:
        running.wait_entered()
        recovery = Background(
            lambda: b.register(FILES, Bindings(steps={"a": held(undoing), "b": held(undoing)}))
        )
        undoing.wait_entered()

        fire = Background(lambda: b.fire("victim", "make")).join()

        assert isinstance(fire.error, errors.Unavailable), fire.error or fire.result
        assert "victim is being recovered" in fire.error.message
    finally:
        undoing.release()
        running.release()
    assert recovery.join().error is None
    assert b.get("victim").configuration == ("idle",)
    assert isinstance(saga.join().error, errors.Conflict)  # its entity moved under it
    assert b.fire("victim", "make").entity.configuration == ("made",)


# -- sagas without via -------------------------------------------------------------------


def test_a_saga_without_via_raced_by_another_engine_undoes_its_steps_and_gets_conflict(
    shared_store_url: str, open_engine: Callable[..., engine.Engine]
) -> None:
    two = TwoEngines(shared_store_url, open_engine)
    early = Background(lambda: two.a.fire("web", "deploy"))
    try:
        two.gate.wait_entered()
        # Without a transient state the entity rests in its source state while a's
        # steps run: b starts the same saga on the bumped version, and commits it.
        assert two.b.get("web").configuration == ("idle",)
        late = two.b.fire("web", "deploy")
    finally:
        two.gate.release()
    error = early.join().error

    assert isinstance(error, errors.Conflict), error
    assert "was changed by another writer while 'deploy' ran" in error.message
    assert two.a_calls == ["do fetch", "do launch", "undo launch", "undo fetch"]
    assert two.b_calls == ["do fetch", "do launch"]
    assert two.a.get("web").configuration == ("running",)
    failed: str = error.transition_id  # type: ignore[attr-defined]
    assert {t.id: t.status for t in two.a.history("web")} == {
        failed: "failed",
        late.transition_id: "committed",
    }


# -- rejection messages ------------------------------------------------------------------

DOOR = engine.parse_chart(
    """
chart: door
initial: shut
states: {shut: {}, open: {}}
transitions:
  - {event: open, from: shut, to: open}
rejections:
  - {event: open, in: open, error: not_modified,
     message: "{owner}'s door is {state} already ({event})"}
"""
)


def test_a_rejection_message_takes_a_name_from_the_params_before_the_data(
    tmp_path: Any, open_engine: Callable[..., engine.Engine]
) -> None:
    eng = open_engine(f"sqlite:///{tmp_path / 'chartd.db'}", timers=False)
    eng.register(DOOR)
    door = eng.create("door", "front", {"owner": "ann"})
    eng.fire(door, "open")

    with pytest.raises(errors.NotModified) as from_data:
        eng.fire(door, "open")
    with pytest.raises(errors.NotModified) as from_params:
        eng.fire(door, "open", {"owner": "bob"})

    assert from_data.value.message == "ann's door is open already (open)"
    assert from_params.value.message == "bob's door is open already (open)"
