"""Recovery: the transitions that dead engines left unfinished, finished or undone.

An engine that dies mid-saga leaves its transition ``running`` (or
``compensating``) in the journal. Another engine (or the same database
opened again) claims it with a version-checked commit, so that exactly one
engine recovers it, then commits it if every step was journaled done, or
undoes every step not known to be undone, newest first, and records the
failure. Engines heartbeat so that a live one's sagas are never taken.

A live engine's own saga is recovered the same way when its end could not be
recorded (it is *stranded*, see :mod:`engine.runtime.saga`): the sweep finds
it once the database answers, and what the engine knows of its steps and of
its failure, newer than the journal, goes with it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from engine import core
from engine.errors import ChartdError, Unavailable
from engine.ports import (
    EntityRow,
    EventRow,
    StepRow,
    TimerRow,
    TransitionRow,
    VersionConflict,
    Write,
)
from engine.runtime.bindings import Context
from engine.runtime.journal import failed_event, transition_event
from engine.runtime.outcomes import Stranded
from engine.runtime.registry import Registered
from engine.runtime.saga import Saga
from engine.runtime.shared import Shared

__all__ = ["Recovery"]

log = logging.getLogger("chartd.engine")


class Recovery:
    """Finds and finishes other engines' unfinished transitions, and keeps this one's heartbeat."""

    def __init__(self, shared: Shared, saga: Saga) -> None:
        self._s = shared
        self._saga = saga

    def beat(self) -> None:
        """Tell other engines this one is alive."""
        s = self._s
        s.store.heartbeat(s.id, os.getpid(), s.host, s.clock.now())

    def alive(self) -> set[str]:
        """Engines that may still be running a saga: never recover theirs.

        On this host a process that exists is alive (unless it stopped
        beating long ago: its pid was reused); elsewhere, a recent beat.
        """
        s = self._s
        now, lease = s.clock.now(), s.limits.lease
        alive = {s.id}
        for owner, (pid, host, beat) in s.store.owners().items():
            if host == s.host:
                if _pid_alive(pid) and now - beat <= 6 * lease:
                    alive.add(owner)
            elif now - beat <= lease:
                alive.add(owner)
        return alive

    def recover(self, chart: str | None = None) -> int:
        """See :meth:`engine.Engine.recover`; this engine's stranded sagas are recovered too."""
        s = self._s
        alive = self.alive()
        stranded = {k.transition_id for k in s.stranded.values()}
        count = 0
        unfinished = s.store.unfinished()
        for tr in unfinished:
            if tr.owner in alive and tr.id not in stranded:
                continue
            row = s.store.entity(tr.entity_id)
            if row is None or (chart is not None and row.chart != chart):
                continue
            if row.node is not None and row.node != s.node:
                # Its steps acted on another machine: only that node can finish or
                # undo them, when it comes back; until then the entity waits.
                continue
            if s.registry.get(row.chart) is None:
                continue
            try:
                reg = s.registered(row)
            except ChartdError as exc:  # its version needs code this engine was not given
                log.warning("transition %s of %s left unfinished: %s", tr.id, row.name, exc)
                continue
            s.locks.acquire(row.id)
            s.recovering.add(row.id)
            try:
                known = s.stranded.get(row.id)
                claimed = self._claim(tr, alive, stranded)
                if claimed is not None:
                    mine = known if known is not None and known.transition_id == tr.id else None
                    self._recover_one(reg, *claimed, mine)
                    count += 1
                if known is not None and known.transition_id == tr.id:
                    del s.stranded[row.id]
            finally:
                s.recovering.discard(row.id)
                s.cache.pop(row.id, None)
                s.locks.release(row.id)
        self._forget_recorded(unfinished)
        return count

    def _forget_recorded(self, unfinished: list[TransitionRow]) -> None:
        """Drop stranded sagas the journal no longer lists as unfinished.

        A commit the database reported as failed may have been made after all
        (a connection lost during COMMIT): then there is nothing to recover.
        """
        s, listed = self._s, {tr.id for tr in unfinished}
        for entity_id, known in list(s.stranded.items()):
            if known.transition_id not in listed:
                s.stranded.pop(entity_id, None)

    def _claim(
        self, listed: TransitionRow, alive: set[str], stranded: set[str]
    ) -> tuple[EntityRow, TransitionRow] | None:
        """Take over a dead engine's transition, or None if another engine got it first.

        The claim is a version-checked commit that names this engine the
        owner, so that of several engines recovering at once exactly one
        undoes (or finishes) the transition, and an engine that dies while
        recovering leaves it to be recovered again.
        """
        s = self._s
        row = s.store.entity(listed.entity_id)
        current = next(
            (t for t in s.store.transitions(listed.entity_id) if t.id == listed.id), None
        )
        if row is None or current is None or current.status not in ("running", "compensating"):
            return None
        if current.owner in alive and current.id not in stranded:
            return None
        claimed = replace(current, owner=s.id, steps=())
        ahead = replace(row, version=row.version + 1, updated_at=s.clock.now())
        try:
            s.commit.commit(
                Write(
                    entity=ahead,
                    expect_version=row.version,
                    transition_updates=[claimed],
                    keys_changed=False,
                )
            )
        except VersionConflict:
            return None
        return ahead, current  # the dead owner stays on record; the plan names the recoverer

    def _recover_one(
        self, reg: Registered, row: EntityRow, tr: TransitionRow, known: Stranded | None
    ) -> None:
        journal = {step.index: step for step in tr.steps}
        if known is not None:
            journal.update(known.steps)
        names: list[str] = tr.plan["steps"]
        if (
            (known is None or known.error is None)
            and tr.status == "running"
            and all(
                journal.get(i) is not None and journal[i].status == "done"
                for i in range(len(names))
            )
        ):
            self._commit_complete(reg, row, tr, [journal[i] for i in range(len(names))], known)
        else:
            self._undo(reg, row, tr, journal, known)

    def _commit_complete(
        self,
        reg: Registered,
        row: EntityRow,
        tr: TransitionRow,
        done: list[StepRow],
        known: Stranded | None,
    ) -> None:
        """Every step completed: commit the transition as its engine would.

        A stranded saga's step rows go too: they are this engine's own, which
        the journal may have missed.
        """
        s, plan = self._s, tr.plan
        now = s.clock.now()
        source = core.Snapshot.from_json(json.dumps(plan["source"]))
        target = core.Snapshot.from_json(json.dumps(plan["target"]))
        # A step's effects hold what every step so far asked for: the last one's are the
        # saga's (adding up all of them would repeat the early steps' events).
        last: Mapping[str, Any] = (done[-1].effects or {}) if done else {}
        after = replace(
            row,
            configuration=target.configuration,
            live=not reg.chart.finished(target.configuration),
            data=last.get("data", dict(target.data)),
            history=dict(target.history),
            version=row.version + 1,
            updated_at=now,
        )
        record = replace(
            tr,
            status="committed",
            version_to=after.version,
            finished_at=now,
            plan={**plan, "committed": list(target.configuration), "recovered_by": s.id},
            steps=(),
        )
        write = Write(entity=after, expect_version=row.version, transition_updates=[record])
        if known is not None:
            write.steps.extend(done)
        moved = (source.configuration, target.configuration)
        write.events.append(transition_event(row, tr.event, moved, tr.id, now))
        _add_effects(write, row, tr.id, last, now)
        s.commit.commit(write)
        log.warning("recovered %s on %s: every step had completed; committed", tr.event, row.name)

    def _undo(
        self,
        reg: Registered,
        row: EntityRow,
        tr: TransitionRow,
        journal: dict[int, StepRow],
        known: Stranded | None,
    ) -> None:
        """Undo the steps the transition is owed (:func:`_owed`), record the failure.

        Of a stranded saga (``known``), the engine's own rows of its steps go too."""
        s, plan = self._s, tr.plan
        source = core.Snapshot.from_json(json.dumps(plan["source"]))
        names: list[str] = plan["steps"]
        steps = [(n, reg.bindings.steps[n]) for n in names]
        owed = _owed(names, journal, known)
        undone = self._saga.compensate(row, self._context(row, tr), steps, owed, journal=True)
        errors = [r.compensation_error for r in undone if r.compensation_error]
        category, message = _why(tr, known)
        configuration, data = _placed(plan, journal, source, message)
        now = s.clock.now()
        after = replace(
            row,
            configuration=configuration,
            live=not reg.chart.finished(configuration),
            data=data,
            history=dict(source.history),
            version=row.version + 1,
            updated_at=now,
        )
        record = replace(
            tr,
            status="compensation_failed" if errors else "failed",
            version_to=after.version,
            error_category=category,
            error_message=message,
            compensation_errors=tuple(errors),
            finished_at=now,
            plan={**plan, "committed": list(after.configuration), "recovered_by": s.id},
            steps=(),
        )
        write = Write(entity=after, expect_version=row.version, transition_updates=[record])
        if known is not None:
            # The undos just run are queued apart; a row written here must not replace one.
            again = {r.index for r in undone}
            write.steps.extend(r for i, r in known.steps.items() if i not in again)
        write.events.append(failed_event(row, tr.event, (category, message), tr.id, now))
        s.commit.commit(write)
        log.warning("recovered %s on %s: compensated %d step(s)", tr.event, row.name, len(undone))

    def _context(self, row: EntityRow, tr: TransitionRow) -> Context:
        """What the undos of ``tr`` see, rebuilt from its journaled plan."""
        plan = tr.plan
        return Context(
            entity_id=row.id,
            entity_name=row.name,
            chart=row.chart,
            event=tr.event,
            params=tr.params,
            transition_id=tr.id,
            source=core.Snapshot.from_json(json.dumps(plan["source"])),
            target=core.Snapshot.from_json(json.dumps(plan["target"])),
            now=self._s.clock.now(),
        )


def _owed(
    names: list[str], journal: dict[int, StepRow], known: Stranded | None
) -> list[tuple[int, Any]]:
    """The undos a transition is owed, newest first, as (index, payload).

    Every step not known to be undone (a dead engine's may have run whatever
    the journal says); of a stranded saga, only those its engine saw begin.
    """
    return [
        (i, journal[i].payload if i in journal else None)
        for i in reversed(range(len(names)))
        if (i not in journal or journal[i].status not in ("compensated", "failed"))
        and (known is None or i in known.steps)
    ]


def _why(tr: TransitionRow, known: Stranded | None) -> tuple[str, str]:
    """The error category and message an undone transition is recorded with."""
    if known is not None and known.error is not None:
        return known.error.category.value, known.error.message
    if tr.status == "compensating" and tr.error_message:
        # It had failed already; the crash only interrupted its undo.
        return tr.error_category or "system", tr.error_message
    return Unavailable.category.value, (
        f"{tr.event!r} was interrupted: engine {tr.owner} stopped while it ran; "
        "its steps were undone on recovery"
    )


def _add_effects(
    write: Write, row: EntityRow, transition_id: str, effects: Mapping[str, Any], now: float
) -> None:
    """The events, timers and cancellations a completed saga's steps asked for, to ``write``."""
    write.events.extend(
        EventRow(row.id, row.name, row.chart, t, a, transition_id, now)
        for t, a in effects.get("events", [])
    )
    write.timers.extend(
        TimerRow(i, row.id, e, p, due, transition_id) for i, e, due, p in effects.get("timers", [])
    )
    cancelled = effects.get("cancel") or ()
    if effects.get("cancel_all") or cancelled:
        write.cancel_timers = (
            row.id,
            None if effects.get("cancel_all") else frozenset(cancelled),
        )


def _placed(
    plan: Any, journal: dict[int, StepRow], source: core.Snapshot, message: str
) -> tuple[tuple[str, ...], dict[str, Any]]:
    """Where an undone transition leaves the entity, and its data.

    The step that failed, or the one a crash interrupted, is the first not
    done (an undo's row replaces the done row of its step); past the failure
    policy's ``after`` step the entity goes to the failure configuration with
    the fields it records.
    """
    names = plan["steps"]
    failed = next(
        (
            i
            for i in range(len(names))
            if journal.get(i) is None
            or journal[i].status not in ("done", "compensated", "compensation_failed")
        ),
        len(names),
    )
    data = dict(source.data)
    if failed < plan.get("failure_from", 0):
        return source.configuration, data
    for field in plan.get("record", []):
        if field == "error":
            data[field] = message
    return tuple(plan["failure"]), data


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
