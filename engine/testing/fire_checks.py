"""The checks of a fire the engine finished (returned or raised), against the core's plan.

A fire the chart refuses must change nothing and run nothing; a repeated
idempotency key must replay the recorded result (or refuse a key reused
for another request) and change nothing. Otherwise the fire, and each
follow-up the core decides after it, is a :class:`Run` checked against its
plan: the guards, then a saga that commits or one that fails and is undone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from engine.core import Plan, Snapshot
from engine.errors import Category, ChartdError, InvalidParameter, System, error_for
from engine.runtime import Result, TransitionRecord
from engine.runtime.engine import MAX_FOLLOW_UPS
from engine.testing.expectations import (
    Attempt,
    Expected,
    Follow,
    Observation,
    Oracle,
    as_engine_error,
    group,
    same_category,
    same_error,
    tally,
)
from engine.testing.spy import Call

__all__ = ["FireCheck", "Run"]


@dataclass(slots=True)
class Run:
    """One decided run (the harness's fire, or a follow-up) and the calls the engine made for it."""

    source: Snapshot
    plan: Plan
    what: str  # how messages name the run
    main: bool  # the harness's fire, not a follow-up
    key: str | None = None
    outcome: Result | ChartdError | None = None  # what fire returned or raised (main only)
    record: TransitionRecord | None = None
    tid: str | None = None
    calls: list[Call] = field(default_factory=list)

    def claim(self, new: Sequence[TransitionRecord], by_tid: dict[str, list[Call]]) -> Run:
        """Take the run's journal entry (the first of ``new``) and its calls out of ``by_tid``."""
        self.record = new[0] if new else None
        self.tid = self.record.id if self.record is not None else _first_unclaimed(by_tid, new)
        self.calls = by_tid.pop(self.tid, []) if self.tid is not None else []
        return self

    @property
    def kind(self) -> str:
        """How statistics name the run."""
        return "fire" if self.main else "follow-up"

    @property
    def guards(self) -> list[Call]:
        """The guards that ran, in order."""
        return [c for c in self.calls if c.kind == "guard"]

    @property
    def dos(self) -> list[Call]:
        """The steps that ran, in order."""
        return [c for c in self.calls if c.kind == "do"]

    @property
    def undos(self) -> list[Call]:
        """The undos that ran, in order."""
        return [c for c in self.calls if c.kind == "undo"]

    @property
    def failed(self) -> Call | None:
        """The step that failed, if one did."""
        return next((c for c in self.dos if not c.ok), None)


def _first_unclaimed(by_tid: dict[str, list[Call]], new: Sequence[TransitionRecord]) -> str | None:
    """The first transition that ran code but was not journaled (a guard refused it)."""
    journaled = {r.id for r in new}
    return next((tid for tid in by_tid if tid not in journaled), None)


class FireCheck:
    """The checks of ``attempt``: ``post`` is the entity after it, ``outcome`` what fire gave."""

    def __init__(
        self,
        oracle: Oracle,
        attempt: Attempt,
        post: Observation,
        outcome: Result | ChartdError,
    ) -> None:
        self.oracle = oracle
        self.attempt = attempt
        self.post = post
        self.outcome = outcome
        pre = attempt.pre
        self.what = f"{attempt.event!r} on {pre.entity.name} in {pre.entity.state!r}"

    def verify(self) -> Snapshot | None:
        """Check the fire; the snapshot the entity must now have (None: it must not change)."""
        attempt, pre, post, what = self.attempt, self.attempt.pre, self.post, self.what
        recorded = pre.keyed(attempt.key) if attempt.key is not None else None
        if recorded is not None:
            tally("fire: a repeated idempotency key")
            self._replay(recorded)
            return None
        decision = attempt.decide(self.oracle)
        if isinstance(decision, ChartdError):
            tally(f"fire: refused by the chart ({decision.category.value})")
            same_error(self.outcome, decision, f"{what}: the core refuses")
            _unchanged(pre, post, f"{what}, refused by the chart,")
            assert not attempt.calls, f"{what} was refused by the chart but ran {self._ran()}"
            return None
        new = post.records[len(pre.records) :]
        by_tid = group(attempt.calls)
        run = Run(pre.snapshot, decision, what, main=True, key=attempt.key, outcome=self.outcome)
        expected = self._run(run.claim(new, by_tid))
        follows = 0
        # The engine fires at most MAX_FOLLOW_UPS follow-ups in a chain, then stops.
        while expected.follow is not None and follows < MAX_FOLLOW_UPS:
            follows += 1
            follow_event, follow_params, snapshot = expected.follow
            taken = new[expected.records :]
            decision = self.oracle.decide(snapshot, follow_event, follow_params, attempt.fields)
            if isinstance(decision, ChartdError):
                break  # the engine logs a refused follow-up; nothing more happens
            run = Run(snapshot, decision, f"the follow-up {follow_event!r} of {what}", main=False)
            expected = self._run(run.claim(taken, by_tid))
            new = taken
        assert len(new) == expected.records, (
            f"{what}: the journal has {len(new) - expected.records} unexpected entries"
        )
        assert post.snapshot == expected.snapshot, (
            f"{what}: the entity is stored as {post.snapshot}, expected {expected.snapshot}"
        )
        return expected.snapshot

    def _ran(self) -> str:
        return ", ".join(f"{c.kind} {c.name}" for c in self.attempt.calls) or "nothing"

    def _replay(self, recorded: TransitionRecord) -> None:
        """A repeated key: the recorded result (or a refusal of another request), no change."""
        what, outcome = self.what, self.outcome
        _unchanged(self.attempt.pre, self.post, f"{what}, a repeated idempotency key,")
        assert not self.attempt.calls, f"{what}: a repeated key ran {self._ran()}"
        if recorded.event != self.attempt.event or dict(recorded.params) != self.attempt.params:
            assert isinstance(outcome, InvalidParameter), (
                f"{what}: a key used for another request must be refused, got {outcome!r}"
            )
        elif recorded.status == "committed":
            assert isinstance(outcome, Result) and outcome.replayed, (
                f"{what}: a repeated key must replay the result, got {outcome!r}"
            )
            assert outcome.transition_id == recorded.id and outcome.entity == self.post.entity, (
                f"{what}: the replay returned {outcome}"
            )
        else:
            assert recorded.error_category is not None
            recorded_error = error_for(recorded.error_category, recorded.error_message or "")
            same_error(outcome, recorded_error, f"{what}: a repeated key of a failed fire")

    # -- one run ---------------------------------------------------------------------------

    def _run(self, run: Run) -> Expected:
        """Check one decided run against its plan; what it must leave."""
        self._guards(run)
        refused = next((c for c in run.guards if not c.ok), None)
        if refused is not None:
            return self._refused(run, refused)
        assert len(run.guards) == len(run.plan.guards), (
            f"{run.what}: ran {len(run.guards)} of the guards {run.plan.guards}"
        )
        record = self._journaled(run)
        committed = run.failed is None and not run.undos
        tally(f"{run.kind}: " + ("committed" if committed else "failed and compensated"))
        if committed:
            return self._committed(run, record)
        return self._failed(run, record)

    def _guards(self, run: Run) -> None:
        """The guards ran in the plan's order, each answering as its oracle says."""
        guards, plan, what = run.guards, run.plan, run.what
        assert [c.name for c in guards] == list(plan.guards[: len(guards)]), (
            f"{what}: guards ran as {[c.name for c in guards]}, the plan says {plan.guards}"
        )
        for call in guards:
            if call.expected is not None and not call.injected:
                assert not call.ok, (
                    f"{what}: guard {call.name} let the event through; its oracle says "
                    f"it must refuse with {call.expected.value}"
                )
                assert isinstance(call.error, ChartdError), (
                    f"{what}: guard {call.name} raised {call.error!r}, its oracle says "
                    f"{call.expected.value}"
                )
                assert call.error.category == call.expected, (
                    f"{what}: guard {call.name} refused with {call.error.category.value}, its "
                    f"oracle says {call.expected.value}"
                )
            elif not call.ok and not call.injected and call.name in self.oracle.guarded:
                raise AssertionError(
                    f"{what}: guard {call.name} refused ({call.error!r}); its oracle lets the "
                    "event through"
                )

    def _refused(self, run: Run, refused: Call) -> Expected:
        """A guard refused: nothing ran after it, nothing was journaled, fire raised its error."""
        what = run.what
        assert refused is run.guards[-1] and not run.dos and not run.undos, (
            f"{what}: guard {refused.name} refused but the fire went on: {self._ran()}"
        )
        assert run.record is None, f"{what}: a guard refused but the journal has {run.record}"
        error = as_engine_error(refused.error, f"guard {refused.name}")
        tally(f"{run.kind}: a guard refused")
        if run.main:
            same_error(run.outcome, error, f"{what}: guard {refused.name} refused")
        return Expected(run.source, 0, error)

    def _journaled(self, run: Run) -> TransitionRecord:
        """The steps ran in the plan's order, and the run is journaled as asked."""
        dos, plan, source, record, what = run.dos, run.plan, run.source, run.record, run.what
        assert [c.name for c in dos] == list(plan.steps[: len(dos)]) and [
            c.index for c in dos
        ] == list(range(len(dos))), (
            f"{what}: steps ran as {[c.name for c in dos]}, the plan says {plan.steps}"
        )
        assert record is not None, f"{what}: nothing was journaled"
        assert record.id == run.tid and record.event == plan.event, (
            f"{what}: the journal's entry is {record.event!r} {record.id}"
        )
        assert dict(record.params) == dict(plan.params) and record.idempotency_key == run.key, (
            f"{what}: journaled with params {record.params} and key {record.idempotency_key!r}"
        )
        assert record.source == source.configuration, (
            f"{what}: journaled from {record.source}, it was in {source.configuration}"
        )
        assert record.version_from == source.version, (
            f"{what}: journaled from version {record.version_from}, it was at {source.version}"
        )
        return record

    def _committed(self, run: Run, record: TransitionRecord) -> Expected:
        """Every step ran once and the plan's target was committed with the last step's data."""
        dos, plan, source, what = run.dos, run.plan, run.source, run.what
        assert len(dos) == len(plan.steps), (
            f"{what}: committed after {len(dos)} of the steps {plan.steps}"
        )
        data = dos[-1].data if dos and dos[-1].data is not None else dict(plan.snapshot.data)
        after = Snapshot(
            plan.snapshot.configuration,
            data,
            source.version + self.oracle.bump(plan),
            plan.snapshot.history,
        )
        assert record.status == "committed", f"{what}: journaled as {record.status}"
        assert record.target == after.configuration, (
            f"{what}: journaled to {record.target}, the plan says {after.configuration}"
        )
        assert record.version_to == after.version, (
            f"{what}: journaled to version {record.version_to}, expected {after.version}"
        )
        statuses = [(s.name, s.status) for s in record.steps]
        assert statuses == [(n, "done") for n in plan.steps], (
            f"{what}: committed with steps {statuses}"
        )
        if run.main:
            outcome = run.outcome
            assert isinstance(outcome, Result), f"{what}: committed, but fire raised {outcome!r}"
            assert not outcome.replayed and outcome.transition_id == record.id, (
                f"{what}: fire returned {outcome}"
            )
            assert outcome.entity.snapshot == after, (
                f"{what}: fire returned {outcome.entity.snapshot}, expected {after}"
            )
        follow: Follow | None = None
        for t in plan.transitions:
            if t.then is not None and self.oracle.holds(t.then.when, after, plan.params):
                follow = (t.then.event, {}, after)
                break
        return Expected(after, 1, None, follow)

    def _failed(self, run: Run, record: TransitionRecord) -> Expected:
        """The completed steps were undone, and the plan's failure configuration committed."""
        dos, undos, plan, source, what = run.dos, run.undos, run.plan, run.source, run.what
        steps = self.oracle.steps_of(plan)
        done = [c.index for c in dos if c.ok]
        owed = [i for i in reversed(done) if steps[i].undo is not None]
        assert [c.index for c in undos] == owed, (
            f"{what}: after a failure the undos ran for steps {[c.index for c in undos]}, "
            f"the completed steps newest first are {owed}"
        )
        failed = run.failed
        error = self._failure(run)
        self._failure_journaled(run, record, error)
        configuration, policy = plan.failure_at(len(plan.steps) if failed is None else failed.index)
        data = dict(source.data)
        for name in policy.record if policy else ():
            if name == "error":
                data[name] = record.error_message
            else:
                data[name] = getattr(error if failed is None else failed.error, name, None)
        reached = len(plan.steps) if failed is None else failed.index
        after = Snapshot(
            configuration, data, source.version + self.oracle.bump(plan, reached), source.history
        )
        assert record.target == after.configuration, (
            f"{what}: a failed saga is journaled to {record.target}, the plan's failure "
            f"configuration is {after.configuration}"
        )
        assert record.version_to == after.version, (
            f"{what}: a failed saga is journaled to version {record.version_to}, "
            f"expected {after.version}"
        )
        if run.main:
            same_category(run.outcome, error, f"{what}: the saga failed")
        follow: Follow | None = None
        then = policy.then if policy else None
        if then is not None and self.oracle.holds(
            then.when, Snapshot(after.configuration, after.data, after.version), plan.params
        ):
            follow = (then.event, {}, after)
        return Expected(after, 1, error, follow)

    def _failure(self, run: Run) -> ChartdError:
        """The error a failed saga failed with: its step's, or the refused final commit's."""
        failed, outcome = run.failed, run.outcome
        if failed is not None:
            assert failed is run.dos[-1], f"{run.what}: steps ran after step {failed.name} failed"
            return as_engine_error(failed.error, f"step {failed.name}")
        # Every step ran, then the final commit was refused: the saga was undone.
        assert isinstance(outcome, ChartdError) or not run.main, (
            f"{run.what}: undone after every step, but fire returned {outcome!r}"
        )
        return outcome if isinstance(outcome, ChartdError) else System("refused")

    def _failure_journaled(self, run: Run, record: TransitionRecord, error: ChartdError) -> None:
        """A failed saga's journal entry: its status, error, and each undone step's row."""
        failed, undos, what = run.failed, run.undos, run.what
        broken = any(not c.ok for c in undos)
        assert record.status == ("compensation_failed" if broken else "failed"), (
            f"{what}: a failed saga is journaled as {record.status}"
        )
        assert record.error_category == error.category.value, (
            f"{what}: journaled with category {record.error_category}, the error is "
            f"{error.category.value}"
        )
        if failed is not None:
            assert record.error_message == error.message or (
                error.category is Category.SYSTEM and failed.name in (record.error_message or "")
            ), f"{what}: journaled the error {record.error_message!r}, raised {error.message!r}"
        by_index = {s.index: s for s in record.steps}
        for call in undos:
            row = by_index.get(call.index)
            want = "compensated" if call.ok else "compensation_failed"
            assert row is not None and row.status == want, (
                f"{what}: step {call.name} is journaled {row.status if row else 'nowhere'}, "
                f"its undo {'succeeded' if call.ok else 'failed'}"
            )
        if failed is not None:
            row = by_index.get(failed.index)
            assert row is not None and row.status == "failed", (
                f"{what}: the failed step {failed.name} is journaled "
                f"{row.status if row else 'nowhere'}"
            )


def _unchanged(pre: Observation, post: Observation, what: str) -> None:
    assert post.entity == pre.entity, f"{what} changed the entity: {post.entity}"
    assert post.records == pre.records, f"{what} changed the journal"
    assert post.outbox == pre.outbox, f"{what} wrote events"
