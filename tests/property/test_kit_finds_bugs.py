"""The kit catches bugs: plant one in a copy of a chart's code, the kit finds it and shrinks it.

Each test breaks one thing the engine relies on and runs the kit's state
machine (engine.testing.state_machine) expecting it to fail, then looks at
the falsifying example as the actions the kit applied (seen through the
public ``Harness.apply``, not read from Hypothesis's report): it must be
small (a create and a few fires) and the failure must name what went wrong.
Runs are derandomized, so each test finds its bug the same way every time
(Hypothesis seeds them from the source of the machine's class).

The chart is a small job lifecycle (a start saga of three steps, a stop saga
of two, a guarded signal): the kit runs the container chart in
test_kit_container.py; here a small chart keeps finding and shrinking quick.

The planted defects:

* a compensation that is skipped (an undo that does nothing);
* an undo that needs its payload (it is None after a crash: the undo contract);
* a guard that lets an illegal event through (its oracle says refuse);
* a journal write that is dropped (a store that silently loses one commit);
* a step that changes the entity's data behind the engine's back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test

import engine
from engine.errors import InvalidParameter
from engine.ports import Store, Write
from engine.testing import (
    BindingsFactory,
    Crash,
    Create,
    Fault,
    Fire,
    Harness,
    Restart,
    Retry,
    StandIns,
    stand_ins,
    state_machine,
)

Action = Create | Fire | Retry | Restart

CHART = engine.parse_chart(
    """
chart: job
initial: idle
states:
  idle: {}
  starting: {transient: true}
  running:
    initial: active
    states: {active: {}, paused: {}}
  stopping: {transient: true}
  done: {final: true}
transitions:
  - {event: start, from: idle, to: running, via: starting, steps: [workdir, sandbox, launch],
     on_failure: {record: [error]}}
  - {event: pause, from: running.active, to: running.paused, steps: [freeze]}
  - {event: resume, from: running.paused, to: running.active, steps: [thaw]}
  - {event: signal, from: running, guards: [valid_signal], steps: [deliver]}
  - {event: stop, from: running, to: idle, via: stopping, steps: [halt, cleanup]}
  - {event: finish, from: idle, to: done}
rejections:
  - {event: start, in: running, error: not_modified, message: "the job is already running"}
  - {event: "*", in: done, error: not_found, message: "the job is gone"}
"""
)
DATA = st.just({"name": "/web"})
# Derandomized: each test finds its bug the same way every time. No explain phase: it
# replays the shrunk example hundreds of times to annotate it, which these tests do not read.
# Each in a fresh interpreter under pytest-xdist (tests/conftest.py): they assert how far
# Hypothesis shrinks, which a worker's earlier tests were seen to change.
pytestmark = pytest.mark.own_process

FIND = settings(
    max_examples=300,
    stateful_step_count=10,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.generate, Phase.shrink],
    report_multiple_bugs=False,  # one bug planted: shrink it as soon as it is found
    suppress_health_check=[HealthCheck.too_slow],
)


def falsify(
    machine: type[RuleBasedStateMachine], monkeypatch: pytest.MonkeyPatch
) -> tuple[str, list[Action]]:
    """Run ``machine`` until it fails; the error's message and the actions of the example.

    The kit's machine applies each action with :meth:`Harness.apply` on a
    harness of its own per run, which is watched here. Hypothesis runs the
    shrunk example last, to report it: the actions applied to the last
    harness are the example's.
    """
    applied: list[Action] = []
    last: list[Harness] = []
    apply = Harness.apply

    def recording(harness: Harness, action: Action) -> None:
        if not last or last[0] is not harness:
            last[:] = [harness]  # a new run
            applied.clear()
        applied.append(action)
        apply(harness, action)

    monkeypatch.setattr(Harness, "apply", recording)
    with pytest.raises(AssertionError) as caught:
        run_state_machine_as_test(machine, settings=FIND)
    return str(caught.value), list(applied)


def small(actions: Sequence[Action], at_most: int = 5) -> bool:
    """A shrunk example: a create and a few actions (of up to 10).

    Hypothesis may stop shrinking at a local minimum with a redundant step
    or two in it: "small" leaves that room, and each test checks that the
    actions that matter are there.
    """
    return any(isinstance(a, Create) for a in actions) and 2 <= len(actions) <= at_most


def fault_of(action: Action) -> Fault | None:
    return action.fault if isinstance(action, Fire) else None


def planted(**broken: Callable[[engine.Step], engine.Step]) -> BindingsFactory:
    """Fresh stand-ins for each run, with the named steps replaced by a broken copy."""

    def change(made: StandIns) -> engine.Bindings:
        steps = dict(made.bindings.steps)
        for name, breaks in broken.items():
            steps[name] = breaks(steps[name])
        return engine.Bindings(guards=made.bindings.guards, steps=steps)

    return stand_ins(CHART, change=change)


def undo_forgotten(honest: engine.Step) -> engine.Step:
    """The defect: the undo does nothing, what the step made stays."""
    return engine.Step(honest.do, lambda ctx, payload: None)


def test_a_skipped_compensation_is_found_as_a_leak(monkeypatch: pytest.MonkeyPatch) -> None:
    machine = state_machine(
        CHART,
        planted(workdir=undo_forgotten),
        data=DATA,
        faults=st.none() | st.builds(Fault, step=st.integers(0, 2)),  # a step fails
        crashes=False,
        max_entities=1,
        events=["start", "stop"],
    )
    message, actions = falsify(machine, monkeypatch)
    assert "leaked" in message and "workdir" in message
    assert small(actions), actions
    # A later step of the saga failed.
    assert any((f := fault_of(a)) and f.step is not None for a in actions), actions


def undo_needs_payload(honest: engine.Step) -> engine.Step:
    """The defect: the undo finds what to remove in its payload, which a crash loses."""
    undo = honest.undo
    assert undo is not None

    def undo_with_payload_only(ctx: engine.Context, payload: Any) -> None:
        if payload is not None:
            undo(ctx, payload)

    return engine.Step(honest.do, undo_with_payload_only)


def test_an_undo_that_needs_its_payload_is_found_after_a_crash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Aimed at crashes inside the start saga, some of whose journal is lost.
    crash = st.builds(
        Crash,
        at=st.sampled_from(["do", "done", "commit"]),
        index=st.integers(0, 2),
        keep=st.integers(0, 2),
    )
    machine = state_machine(
        CHART,
        planted(sandbox=undo_needs_payload),
        data=DATA,
        faults=st.none() | st.builds(Fault, crash=crash),
        max_entities=1,
        events=["start"],
    )
    message, actions = falsify(machine, monkeypatch)
    assert "leaked" in message and "sandbox" in message
    assert small(actions), actions
    assert any((f := fault_of(a)) and f.crash is not None for a in actions), actions


SIGNALS = ("SIGTERM", "SIGKILL", "SIGHUP")


def refuse_unknown_signals(snapshot: engine.Snapshot, params: Mapping[str, Any]) -> str | None:
    """The oracle of valid_signal: an unknown signal is an invalid parameter."""
    return "invalid_parameter" if params.get("signal", "SIGTERM") not in SIGNALS else None


def leaky_valid_signal(ctx: engine.Context) -> None:
    """The defect: a guard meant to refuse unknown signals lets one through."""
    signal = ctx.params.get("signal", "SIGTERM")
    if signal not in SIGNALS and signal != "SIGBOGUS":
        raise InvalidParameter(f"invalid signal {signal!r}")


def test_a_guard_that_lets_an_illegal_event_through_is_found(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def with_leaky_guard(made: StandIns) -> engine.Bindings:
        guards = {**made.bindings.guards, "valid_signal": leaky_valid_signal}
        return engine.Bindings(guards=guards, steps=made.bindings.steps)

    machine = state_machine(
        CHART,
        stand_ins(CHART, change=with_leaky_guard),
        data=DATA,
        faults=False,
        params={"signal": st.sampled_from(["SIGBOGUS", *SIGNALS, "SIGWHAT"])},
        guard_oracles={"valid_signal": refuse_unknown_signals},
        max_entities=1,
        events=["start", "signal"],
    )
    message, actions = falsify(machine, monkeypatch)
    assert "guard valid_signal let the event through" in message, message
    assert small(actions), actions
    signals = [a.params.get("signal") for a in actions if isinstance(a, Fire)]
    assert "SIGBOGUS" in signals, actions


class LosesOneCommit:
    """A store that silently loses the first commit of a transition (it says it committed)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.lost = False

    def apply(self, batch: Sequence[Write]) -> list[Exception | None]:
        kept = []
        for unit in batch:
            done = [t for t in unit.transition_updates if t.status == "committed"]
            if done and not self.lost:
                self.lost = True  # the defect: this unit never reaches the database
                continue
            kept.append(unit)
        self.store.apply(kept)
        return [None] * len(batch)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def test_a_dropped_journal_write_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    wrap: Callable[[Store], Store] = LosesOneCommit  # type: ignore[assignment]
    machine = state_machine(
        CHART, data=DATA, faults=False, wrap_store=wrap, max_entities=1, events=["start", "stop"]
    )
    message, actions = falsify(machine, monkeypatch)
    # Seen at once: the engine says committed, the database still says running.
    assert "journaled as running" in message or "is stored as" in message, message
    assert small(actions, at_most=3), actions


def changes_data_behind_the_engines_back(honest: engine.Step) -> engine.Step:
    """The defect: the step changes the data the engine decided from, not ``ctx.data``."""

    def sneaky(ctx: engine.Context) -> Any:
        ctx.source.data["mounted"] = True  # type: ignore[index]
        return honest.do(ctx)

    return engine.Step(sneaky, honest.undo)


def test_data_changed_behind_the_engines_back_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    machine = state_machine(
        CHART,
        planted(workdir=changes_data_behind_the_engines_back),
        data=DATA,
        faults=st.none() | st.builds(Fault, step=st.integers(0, 2)),
        crashes=False,
        max_entities=1,
        events=["start", "stop"],
    )
    message, actions = falsify(machine, monkeypatch)
    assert "mounted" in message, message
    assert small(actions), actions
