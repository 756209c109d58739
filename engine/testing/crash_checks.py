"""The checks of a fire the process died in: what reached the disk, and what recovery made of it.

A crash abandons the engine with only what reached its database (see
:mod:`engine.testing.crashable`); a new engine opens the same database and
recovers. Recovery must finish a transition whose every step is journaled
done, and compensate any other (every step not known undone, newest first);
a transition the dead engine had finished is left as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from engine.core import Plan, Snapshot
from engine.errors import Category
from engine.ports import TransitionRow
from engine.runtime import TransitionRecord
from engine.testing.expectations import FINISHED, Attempt, Observation, Oracle, failed_at, tally
from engine.testing.faults import Crash
from engine.testing.spy import Call

__all__ = ["Recovery", "check_recovery", "left_running"]


def left_running(
    attempt: Attempt, crash: Crash, journal: Sequence[TransitionRow]
) -> dict[str, TransitionRow]:
    """The transitions the crash left running or compensating on disk, by id: one at most."""
    pending = {t.id: t for t in journal if t.status in ("running", "compensating")}
    assert len(pending) <= 1, f"{_what(attempt, crash)}: {len(pending)} transitions left running"
    return pending


def _what(attempt: Attempt, crash: Crash) -> str:
    return f"{attempt.event!r} on {attempt.pre.entity.name}, crashed at {crash!r},"


@dataclass(frozen=True, slots=True)
class Recovery:
    """A crashed fire and what the next engine made of it.

    ``pending`` is what the crash left unfinished on disk (see
    :func:`left_running`), ``post`` the entity after recovery, and
    ``generation`` the engine that recovered.
    """

    attempt: Attempt
    crash: Crash
    pending: dict[str, TransitionRow]
    post: Observation
    generation: int

    @property
    def what(self) -> str:
        """How messages name the crashed fire."""
        return _what(self.attempt, self.crash)

    @property
    def later(self) -> list[Call]:
        """What recovery called: the calls the recovering engine made."""
        return [c for c in self.attempt.calls if c.generation == self.generation]


def check_recovery(oracle: Oracle, recovery: Recovery) -> Snapshot:
    """Check what recovery made of a crashed fire; the snapshot the entity must now have."""
    attempt, post, what = recovery.attempt, recovery.post, recovery.what
    pre = attempt.pre
    new = post.records[len(pre.records) :]
    decision = attempt.decide(oracle)
    tally(f"crash at {recovery.crash.at}")
    if not new:
        tally("crash: nothing was journaled")
        assert post.entity.snapshot == pre.snapshot, (
            f"{what}: nothing was journaled, but the entity changed to {post.snapshot}"
        )
        return post.snapshot
    assert isinstance(decision, Plan), f"{what}: the chart refuses it, yet {new} were journaled"
    record = new[0]
    assert len(new) == 1, f"{what}: journaled {len(new)} transitions (follow-ups ran?)"
    assert record.status in FINISHED, f"{what}: left {record.status} after recovery"
    assert record.version_from == pre.snapshot.version and record.idempotency_key == attempt.key, (
        f"{what}: journaled from version {record.version_from} with key {record.idempotency_key!r}"
    )
    later = recovery.later
    assert not [c for c in later if c.kind != "undo"], (
        f"{what}: recovery ran {', '.join(f'{c.kind} {c.name}' for c in later)}"
    )
    was = recovery.pending.get(record.id)
    if was is None:
        _finished_before(recovery, decision, record)
        return post.snapshot
    journaled = {s.index: s.status for s in was.steps}
    complete = was.status == "running" and all(
        journaled.get(i) == "done" for i in range(len(decision.steps))
    )
    tally("crash: recovery " + ("committed" if complete else "compensated"))
    if complete:
        _recovered_commit(recovery, decision, record)
    else:
        _recovered_compensation(oracle, recovery, decision, record, was)
    assert record.version_to == post.snapshot.version
    return post.snapshot


def _finished_before(recovery: Recovery, plan: Plan, record: TransitionRecord) -> None:
    """The old engine finished the transition before it died; recovery had nothing to do."""
    what = recovery.what
    tally("crash: finished before the crash")
    assert not recovery.later, f"{what}: recovery undid steps of a finished transition"
    if record.status == "committed":
        assert record.target == plan.snapshot.configuration, (
            f"{what}: committed to {record.target}, the plan says {plan.snapshot.configuration}"
        )
    else:
        configuration, _ = plan.failure_at(
            failed_at({s.index: s.status for s in record.steps}, len(plan.steps))
        )
        assert record.target == configuration, (
            f"{what}: failed to {record.target}, the plan's failure configuration is "
            f"{configuration}"
        )
    assert recovery.post.snapshot.configuration == record.target


def _recovered_commit(recovery: Recovery, plan: Plan, record: TransitionRecord) -> None:
    """Every step was journaled done: recovery committed with the last step's data."""
    what, later, post = recovery.what, recovery.later, recovery.post
    assert not later, f"{what}: recovery of a complete saga undid {later}"
    dos = [c for c in recovery.attempt.calls if c.kind == "do" and c.tid == record.id and c.ok]
    data = dos[-1].data if dos and dos[-1].data is not None else plan.snapshot.data
    assert dict(post.snapshot.data) == dict(data), (
        f"{what}: recovery committed the data {post.snapshot.data}, the last step left {data}"
    )
    assert record.status == "committed" and record.target == plan.snapshot.configuration, (
        f"{what}: every step was journaled done, so recovery must commit; it left "
        f"{record.status} at {record.target}"
    )
    assert post.snapshot.configuration == plan.snapshot.configuration
    assert post.snapshot.history == plan.snapshot.history


def _recovered_compensation(
    oracle: Oracle, recovery: Recovery, plan: Plan, record: TransitionRecord, was: TransitionRow
) -> None:
    """Not every step was done: recovery undid every step not known undone, newest first."""
    what, later, pre, post = recovery.what, recovery.later, recovery.attempt.pre, recovery.post
    steps = oracle.steps_of(plan)
    journaled = {s.index: s.status for s in was.steps}
    owed = [
        i
        for i in reversed(range(len(steps)))
        if journaled.get(i) not in ("compensated", "failed") and steps[i].undo is not None
    ]
    assert [c.index for c in later] == owed, (
        f"{what}: recovery undid steps {[c.index for c in later]}; every step not "
        f"known undone, newest first, is {owed}"
    )
    broken = any(not c.ok for c in later)
    assert record.status == ("compensation_failed" if broken else "failed"), (
        f"{what}: recovery left {record.status}"
    )
    _recovered_error(recovery, record, was)
    configuration, policy = plan.failure_at(failed_at(journaled, len(steps)))
    assert post.snapshot.configuration == configuration, (
        f"{what}: recovered to {post.snapshot.configuration}, the plan's failure "
        f"configuration is {configuration}"
    )
    data = dict(pre.snapshot.data)
    if policy is not None and "error" in policy.record:
        data["error"] = record.error_message
    assert dict(post.snapshot.data) == data, (
        f"{what}: recovered with data {post.snapshot.data}, expected {data}"
    )
    assert post.snapshot.history == pre.snapshot.history


def _recovered_error(recovery: Recovery, record: TransitionRecord, was: TransitionRow) -> None:
    """The error a compensated recovery journals."""
    what = recovery.what
    # A saga that had failed already (journaled compensating, with its error) keeps
    # that error; one the crash interrupted fails as Unavailable, "interrupted".
    failed_before = was.status == "compensating" and was.error_message
    category = was.error_category if failed_before else Category.UNAVAILABLE.value
    assert record.error_category == category, (
        f"{what}: recovered as {record.error_category}, expected {category} "
        f"(it was {was.status} on disk)"
    )
    if failed_before:
        assert record.error_message == was.error_message, (
            f"{what}: recovery replaced the error {was.error_message!r} with "
            f"{record.error_message!r}"
        )
    else:
        assert "interrupted" in (record.error_message or ""), (
            f"{what}: an interrupted transition is journaled with {record.error_message!r}"
        )
