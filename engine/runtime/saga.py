"""The saga runner: a decided plan's steps run, committed, or compensated and recorded.

Two paths. A plan whose steps all stay inside the database runs its steps and
commits once (:meth:`Saga.direct`). Any other writes ahead: one commit records
the transition ``running`` and the entity in its transient state, the steps
run with each end journaled, and a last commit writes the target
(:meth:`Saga.written`). A failed step, or a final commit refused, undoes the
completed steps newest first and records the failure (:meth:`Saga.fail`).

A saga whose end cannot be recorded because the database does not answer (a
full disk) is *stranded*: what this engine knows of it goes to
``Shared.stranded``, fires on the entity wait, and recovery finishes it as it
finishes a dead engine's once the database answers (:mod:`engine.runtime.recovery`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from engine import core
from engine.errors import ChartdError, Conflict, Unavailable
from engine.model.chart import FailurePolicy
from engine.ports import (
    EntityRow,
    EventRow,
    StepRow,
    TimerRow,
    TransitionRow,
    VersionConflict,
    Write,
)
from engine.runtime.bindings import Context, Step, writes_ahead
from engine.runtime.journal import (
    Cause,
    Origin,
    as_error,
    failed_event,
    json_checked,
    json_value,
    plan_json,
    transition_event,
)
from engine.runtime.outcomes import SagaFailed, Stale, Stranded
from engine.runtime.records import Entity, Result
from engine.runtime.registry import Registered
from engine.runtime.shared import Shared

__all__ = ["Fire", "Saga"]

log = logging.getLogger("chartd.engine")

_SCALARS = (str, int, float, bool, type(None))


@dataclass(slots=True)
class Fire:
    """One fire's state, from its decision to its end, as it travels through the saga."""

    reg: Registered
    row: EntityRow
    """The entity as this fire last read or wrote it (after the write-ahead: that row)."""
    plan: core.Plan
    ctx: Context
    steps: list[Step]
    key: str | None
    """The idempotency key."""
    written: bool = False
    """Whether the transition was written ahead (a saga) or commits once (direct)."""
    done: list[tuple[int, Any]] = field(default_factory=list)
    """(index, payload) of each step whose ``do`` returned, in order."""
    step_rows: list[StepRow] = field(default_factory=list)
    """The journal rows of the steps run so far."""
    origin: Origin = field(default_factory=Origin)
    """The fire's span and cause, journaled with it."""
    durable: bool = True
    """False: a direct transition's commit is queued, not waited for (``Engine.fire``)."""

    def transition_row(self, owner: str, **fields: Any) -> TransitionRow:
        """This fire's journal row, with ``fields`` (status and what goes with it) set."""
        plan = self.plan
        fields.setdefault("started_at", self.ctx.now)
        if isinstance(fields.get("plan"), dict):
            fields["plan"]["chart_version"] = self.reg.chart.version  # the journal shows it
        return TransitionRow(
            id=self.ctx.transition_id,
            entity_id=self.row.id,
            event=plan.event,
            params=dict(plan.params),
            version_from=plan.source.version,
            owner=owner,
            idempotency_key=self.key,
            trace=self.origin.trace,
            caused_by=self.origin.caused_by,
            **fields,
        )


class Saga:
    """Runs plans for one engine: its steps, its commits, its compensations."""

    def __init__(self, shared: Shared, timers_added: Callable[[float], None]) -> None:
        self._s = shared
        self._timers_added = timers_added  # wakes the housekeeping room for a new timer

    def run(self, fire: Fire) -> Result:
        """Run the decided ``fire`` to its end; raise SagaFailed or Stale if it did not commit."""
        if writes_ahead(fire.steps, fire.plan.via):
            return self.written(fire)
        return self.direct(fire)

    def direct(self, fire: Fire) -> Result:
        """A transition that needs no write-ahead: run its steps, then commit once."""
        if any(s.external for s in fire.steps):
            # Steps outside the database (a signal, an exit's cleanup) take a while: a
            # leader of the group commit does not wait for this fire's unit meanwhile.
            with self._s.commit.idle():
                self._run_steps(fire)
        else:
            self._run_steps(fire)
        return self._finish(fire)

    def written(self, fire: Fire) -> Result:
        """Write ahead, run the steps, commit; or compensate and record the failure."""
        s, row, plan = self._s, fire.row, fire.plan
        now = s.clock.now()
        held = plan.transient_configuration or row.configuration
        ahead = replace(row, configuration=held, version=row.version + 1, updated_at=now)
        record = fire.transition_row(
            s.id, status="running", version_to=None, plan=plan_json(plan, full=True), started_at=now
        )
        pending = [StepRow(record.id, i, name) for i, name in enumerate(plan.steps)]
        try:
            s.commit.commit(
                Write(
                    entity=ahead,
                    expect_version=row.version,
                    transitions=[record],
                    steps=pending,
                    keys_changed=False,
                )
            )
        except VersionConflict:
            raise Stale() from None
        s.cache[row.id] = ahead
        fire.row, fire.written = ahead, True
        with s.commit.idle():
            self._run_steps(fire)
        try:
            return self._finish(fire)
        except Unavailable as exc:
            # Every step ran; only the record of it is missing. Undoing the steps would
            # lose work the database merely failed to hear of: recovery commits it.
            raise SagaFailed(self._strand(fire, fire.step_rows, None, exc), None) from exc
        except Stale:
            raise self._moved(fire) from None
        except ChartdError as exc:
            # The final commit was refused (a new name taken meanwhile, say): undo.
            raise self.fail(fire, exc, exc) from exc

    def _moved(self, fire: Fire) -> SagaFailed:
        """Someone changed the entity while the saga ran: undo, and say so."""
        row = fire.row
        error = Conflict(
            f"{row.name} was changed by another writer while {fire.plan.event!r} ran; "
            "its steps were undone"
        )
        fire.row = self._s.row(row.id)
        return self.fail(fire, error, error, entity_write=False)

    def _run_steps(self, fire: Fire) -> None:
        """Run the steps in order, their journal rows in ``fire.step_rows``; or raise SagaFailed.

        In a saga (``fire.written``) each step's end is journaled without
        waiting, but for the failure policy's ``after`` step (waited: recovery
        must know it completed); otherwise the rows go with the one commit. A
        step whose ``do`` returned counts as done, and is undone on failure,
        even if what it left (payload, data, events, timers) is unusable.
        """
        s, plan, ctx, row = self._s, fire.plan, fire.ctx, fire.row
        last = len(plan.steps) - 1
        for i, (name, step) in enumerate(zip(plan.steps, fire.steps, strict=True)):
            ctx.step, ctx.step_index = name, i
            # Each step's effects hold every step's so far: recovery finishes a saga from
            # the last step's, so only it (and the point of no return) journals them;
            # the others' are only checked to be JSON, so that a step that left something
            # else fails as itself.
            kept = fire.written and i in (last, plan.failure_from - 1)
            s.observer.step_started(row.chart, row.id, name, "do", i)
            begun = s.clock.now()
            clock = time.perf_counter()
            took_effect = False
            try:
                raw = step.do(ctx)
                took_effect = True
                payload = json_value(raw, f"the payload of step {name}")
                effects = _effects(ctx, name, copy=kept)
            except Exception as exc:
                error = as_error(exc, f"step {name}")
                s.observer.step(
                    row.chart, row.id, name, "do", "error", time.perf_counter() - clock, error
                )
                if took_effect:
                    fire.done.append((i, None))
                failed = StepRow(
                    ctx.transition_id, i, name, "failed", None, error.message, None, begun,
                    s.clock.now(),
                )  # fmt: skip
                fire.step_rows.append(failed)
                if fire.written:
                    s.commit.later(Write(steps=[failed]))
                raise self.fail(fire, error, exc) from exc
            s.observer.step(row.chart, row.id, name, "do", "ok", time.perf_counter() - clock, None)
            fire.done.append((i, payload))
            finished = StepRow(
                ctx.transition_id, i, name, "done", payload, None,
                effects if kept else None, begun, s.clock.now(),
            )  # fmt: skip
            fire.step_rows.append(finished)
            if fire.written and i == plan.failure_from - 1:
                assert effects is not None  # kept: the point of no return
                self._checkpoint(fire, finished, effects["data"])
            elif fire.written:
                s.commit.later(Write(steps=[finished]))

    def _checkpoint(self, fire: Fire, finished: StepRow, data: Any) -> None:
        """The saga's point of no return (the failure policy's ``after`` step) is reached.

        Recovery must know for sure that the step completed, so its end is on
        disk before the next step runs, and with it the entity's data as the
        steps left it: what happened so far (a restart's old process stopped,
        its exit code) is what readers see while the rest of the saga runs. If
        it cannot be written, the saga goes no further.
        """
        s, row = self._s, fire.row
        mark = replace(row, data=data, version=row.version + 1, updated_at=s.clock.now())
        write = Write(entity=mark, expect_version=row.version, steps=[finished], keys_changed=False)
        try:
            s.commit.commit(write)
        except VersionConflict:
            raise self._moved(fire) from None
        except ChartdError as exc:
            raise self.fail(fire, exc, exc) from exc
        s.cache[row.id] = fire.row = mark

    def _finish(self, fire: Fire) -> Result:
        """The success commit: the target snapshot, the data, events, timers; or raise Stale."""
        s, row, plan, ctx = self._s, fire.row, fire.plan, fire.ctx
        now = s.clock.now()
        target = plan.snapshot
        # Data that no step touched was JSON when it was stored: no need to check it again.
        data = target.data if ctx.data == target.data else json_value(ctx.data, "entity data")
        # Built field by field: dataclasses.replace costs more than the rest of this.
        after = EntityRow(
            id=row.id,
            chart=row.chart,
            name=ctx.new_name or row.name,
            configuration=target.configuration,
            data=data,
            history=dict(target.history),
            version=row.version + 1,
            created_at=row.created_at,
            updated_at=now,
            seq=row.seq,
            live=not fire.reg.chart.finished(target.configuration),
            chart_version=row.chart_version,
            node=row.node,
        )
        journal = plan_json(plan, full=fire.written)
        journal["committed"] = list(target.configuration)
        record = fire.transition_row(
            s.id, status="committed", version_to=after.version, plan=journal, finished_at=now
        )
        write = Write(
            entity=after,
            expect_version=row.version,
            keys_changed=after.name != row.name or after.live != row.live,
        )
        if fire.written:
            write.transition_updates.append(record)
        else:
            write.transitions.append(record)
            write.steps.extend(fire.step_rows)
        moved = (plan.source.configuration, target.configuration)
        write.events.append(transition_event(row, plan.event, moved, ctx.transition_id, now))
        _add_effects(write, fire, now)
        if fire.durable or fire.written:
            try:
                s.commit.commit(write)
            except VersionConflict:
                raise Stale() from None
        else:
            # Its caller waits for a later commit, which carries this one (batches commit
            # in the order queued). Should it fail alone, the next fire's version check
            # finds the cached row stale, as it finds another engine's change.
            s.commit.later(write)
        s.cache[row.id] = after
        if ctx.timers:
            self._timers_added(min(due for _, _, due, _ in ctx.timers))
        return Result(Entity.from_row(after), plan.event, ctx.transition_id, plan.steps)

    def compensate(
        self,
        row: EntityRow,
        ctx: Context,
        steps: Sequence[tuple[str, Step]],
        undo: Sequence[tuple[int, Any]],
        *,
        journal: bool,
    ) -> list[StepRow]:
        """Undo ``undo`` ((index, payload) into ``steps``) in the order given; the row of each.

        With ``journal`` each row is also queued for the journal at once (a
        saga, or recovery); otherwise the caller commits them (a direct
        transition).
        """
        s = self._s
        rows: list[StepRow] = []
        for i, payload in undo:
            name, step = steps[i]
            if step.undo is None:
                continue
            ctx.step, ctx.step_index = name, i
            s.observer.step_started(row.chart, row.id, name, "undo", i)
            clock = time.perf_counter()
            message: str | None = None
            error: ChartdError | None = None
            try:
                step.undo(ctx, payload)
            except Exception as exc:
                error = as_error(exc, f"undo of step {name}")
                message = error.message
                # The step's name goes with the message, whatever raised it.
                if not message.startswith(f"undo of step {name}"):
                    message = f"undo of step {name}: {message}"
            outcome = "ok" if error is None else "error"
            s.observer.step(
                row.chart, row.id, name, "undo", outcome, time.perf_counter() - clock, error
            )
            result = StepRow(
                ctx.transition_id,
                i,
                name,
                "compensated" if message is None else "compensation_failed",
                payload,
                compensated_at=s.clock.now(),
                compensation_error=message,
            )
            rows.append(result)
            if journal:
                s.commit.later(Write(steps=[result]))
        return rows

    def fail(
        self, fire: Fire, error: ChartdError, cause: BaseException, *, entity_write: bool = True
    ) -> SagaFailed:
        """Compensate the completed steps newest first, record the failure, return it to raise.

        Where the entity goes depends on the step that failed (its row in
        ``fire.step_rows``), or on none having failed (a refused final
        commit). ``cause`` is what the step raised: the failure policy may
        record its fields. Without ``entity_write`` the entity is left as it
        is (another writer moved it) and only the journal records the failure.
        """
        if fire.written:
            self._journal_compensating(fire, error)
        steps = list(zip(fire.plan.steps, fire.steps, strict=True))
        undone = self.compensate(
            fire.row, fire.ctx, steps, list(reversed(fire.done)), journal=fire.written
        )
        errors = [r.compensation_error for r in undone if r.compensation_error]
        after, policy = self._failure_row(fire, error, cause)
        recorded = self._record_failure(fire, after, error, undone, entity_write=entity_write)
        if errors:
            error.compensation_errors = tuple(errors)  # type: ignore[attr-defined]
        error.transition_id = fire.ctx.transition_id  # type: ignore[attr-defined]
        # A failure left to recovery fires no follow-up: the entity is not placed yet.
        then = policy.then if policy and recorded else None
        if then is not None and core.holds(
            then.when,
            core.Snapshot(after.configuration, after.data, after.version),
            fire.plan.params,
            fire.reg.bindings.conditions,
        ):
            origin = Cause(fire.ctx.transition_id, fire.origin.trace, known=True)
            return SagaFailed(error, (fire.row.id, then.event, origin))
        return SagaFailed(error, None)

    def _journal_compensating(self, fire: Fire, error: ChartdError) -> None:
        """On disk before any undo runs: if this engine dies while compensating,
        recovery finishes the undo and keeps the error that caused it."""
        record = fire.transition_row(
            self._s.id,
            status="compensating",
            version_to=None,
            plan=plan_json(fire.plan, full=True),
            error_category=error.category.value,
            error_message=error.message,
        )
        try:
            self._s.commit.commit(Write(transition_updates=[record]))
        except ChartdError as exc:
            log.error(
                "could not journal the failure of %s on %s: %s",
                fire.plan.event,
                fire.row.name,
                exc,
            )

    def _failure_row(
        self, fire: Fire, error: ChartdError, cause: BaseException
    ) -> tuple[EntityRow, FailurePolicy | None]:
        """The entity after the failure, and the failure policy that placed it."""
        plan, row = fire.plan, fire.row
        failed = next((r.index for r in fire.step_rows if r.status == "failed"), len(plan.steps))
        configuration, policy = plan.failure_at(failed)
        data = dict(plan.source.data)
        for name in policy.record if policy else ():
            data[name] = error.message if name == "error" else getattr(cause, name, None)
        after = replace(
            row,
            configuration=configuration,
            live=not fire.reg.chart.finished(configuration),
            data=json_value(data, "entity data"),
            history=dict(plan.source.history),
            version=row.version + 1,
            updated_at=self._s.clock.now(),
        )
        return after, policy

    def _record_failure(
        self,
        fire: Fire,
        after: EntityRow,
        error: ChartdError,
        undone: list[StepRow],
        *,
        entity_write: bool,
    ) -> bool:
        """Commit the failed transition (with ``entity_write``, the entity as ``after``); whether
        it was. A failure the database would not take is stranded, for recovery to record."""
        s, row, plan, tid = self._s, fire.row, fire.plan, fire.ctx.transition_id
        now = after.updated_at
        errors = [r.compensation_error for r in undone if r.compensation_error]
        journal = plan_json(plan, full=fire.written)
        journal["committed"] = list(after.configuration)
        record = fire.transition_row(
            s.id,
            status="compensation_failed" if errors else "failed",
            version_to=after.version if entity_write else None,
            plan=journal,
            error_category=error.category.value,
            error_message=error.message,
            compensation_errors=tuple(errors),
            finished_at=now,
        )
        write = Write(entity=after, expect_version=row.version) if entity_write else Write()
        if fire.written:
            write.transition_updates.append(record)
        else:
            write.transitions.append(record)
            # A step's compensation row replaces its done row: same (transition, index).
            write.steps.extend(fire.step_rows)
            write.steps.extend(undone)
        write.events.append(
            failed_event(row, plan.event, (error.category.value, error.message), tid, now)
        )
        try:
            s.commit.commit(write)
        except (VersionConflict, ChartdError) as exc:
            s.cache.pop(row.id, None)
            if isinstance(exc, ChartdError) and fire.written and entity_write:
                self._strand(fire, [*fire.step_rows, *undone], error, exc)
            else:  # the entity moved, or nothing was written ahead to finish
                log.error("could not record the failure of %s on %s: %s", plan.event, row.name, exc)
            return False
        if entity_write:
            s.cache[row.id] = after
        return True

    def _strand(
        self,
        fire: Fire,
        steps: Sequence[StepRow],
        error: ChartdError | None,
        cause: ChartdError,
    ) -> Unavailable:
        """Leave a written-ahead saga to recovery; the error its caller gets.

        ``steps`` are the journal rows of its steps as this engine knows them
        (a later row of a step replaces an earlier one: an undo's its do's),
        ``error`` the failure it could not record, ``cause`` why not.
        """
        s, row, event = self._s, fire.row, fire.plan.event
        known = {r.index: r for r in steps}
        s.stranded[row.id] = Stranded(fire.ctx.transition_id, known, error)
        s.cache.pop(row.id, None)
        log.error(
            "%s on %s could not be recorded (%s); it is finished once the database answers",
            event,
            row.name,
            cause.message,
        )
        return Unavailable(
            f"{event!r} on {row.name} could not be recorded: {cause.message}; "
            "the engine finishes it once the database answers"
        )


def _effects(ctx: Context, step: str, *, copy: bool = True) -> dict[str, Any] | None:
    """What the steps so far asked for, checked to be JSON; journaled for recovery.

    Without ``copy`` they are only checked (None): no copy is made that nobody keeps.
    """
    if (
        not (ctx.events or ctx.timers or ctx.cancelled or ctx.cancel_all)
        and ctx.data == ctx.target.data
        and all(isinstance(v, _SCALARS) for v in ctx.data.values())
    ):
        if not copy:
            return None
        # The data as it was stored, of plain values: JSON already, and a shallow
        # copy is as good as the round trip's deep one against later steps' changes.
        return {
            "data": dict(ctx.data),
            "events": [],
            "timers": [],
            "cancel": [],
            "cancel_all": False,
        }
    effects = {
        "data": ctx.data,
        "events": [[t, a] for t, a in ctx.events],
        "timers": [list(t) for t in ctx.timers],
        "cancel": None if ctx.cancel_all else sorted(ctx.cancelled or ()),
        "cancel_all": ctx.cancel_all,
    }
    what = f"the data, events or timers left by step {step}"
    if copy:
        kept: dict[str, Any] = json_value(effects, what)
        return kept
    json_checked(effects, what)
    return None


def _add_effects(write: Write, fire: Fire, now: float) -> None:
    """The events, timers and timer cancellations the steps asked for, added to ``write``."""
    row, ctx = fire.row, fire.ctx
    tid = ctx.transition_id
    write.events.extend(
        EventRow(row.id, row.name, row.chart, t, json_value(a, f"event {t}"), tid, now)
        for t, a in ctx.events
    )
    write.timers.extend(TimerRow(i, row.id, e, p, due, tid) for i, e, due, p in ctx.timers)
    if ctx.cancel_all or ctx.cancelled:
        write.cancel_timers = (row.id, None if ctx.cancel_all else frozenset(ctx.cancelled or ()))
