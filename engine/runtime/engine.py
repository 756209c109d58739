"""Engine: runs plans durably. Saga steps with compensations, a journal, recovery, timers.

One fire, end to end (see docs/engine.md):

1. A repeated idempotency key returns the recorded outcome; nothing runs.
2. Under the entity's lock, ``engine.step`` resolves the event against the
   snapshot: a plan, or the typed rejection. A rejection writes nothing.
3. Guards run. A guard's error writes nothing.
4. If a step acts outside the database (or the plan holds a transient
   state), one commit records the transition as ``running`` with every step
   ``pending``, the entity in the transient state, its version bumped.
5. Steps run in order; each one's end is journaled without waiting.
6. Success: one commit writes the target snapshot, the data, the outbox
   events and timers, and the transition ``committed``.
7. Failure: the completed steps are undone newest first, the entity goes to
   the failure snapshot with the error recorded, and the error is raised. A
   failed undo is recorded beside the error and never hides it.

Every commit is conditional on the entity's version, so two engines on one
database never both apply a transition from the same version.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from engine import core
from engine.errors import (
    ChartdError,
    Conflict,
    InvalidParameter,
    NotFound,
    System,
    Unavailable,
    error_for,
)
from engine.ports import (
    Clock,
    EntityRow,
    EventRow,
    Observer,
    StepRow,
    Store,
    TimerRow,
    TransitionRow,
    VersionConflict,
    Write,
)
from engine.runtime.bindings import Bindings, Context, Step
from engine.runtime.commit import GroupCommit
from engine.runtime.records import Entity, Event, Page, Result, TransitionRecord

__all__ = ["Engine", "SystemClock"]

log = logging.getLogger("chartd.engine")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$")
_RETRIES = 3
_CACHED = 10_000  # entity rows kept in memory; the oldest go first
_LOCKS_KEPT = 10_000  # per-entity locks before the ones nobody holds are forgotten
MAX_FOLLOW_UPS = 100
"""The longest chain of follow-ups (``then``) one fire sets off; the rest are dropped."""
_LEASE = 10.0  # seconds without a heartbeat after which an engine counts as dead
_BEAT = 2.0


# Engine has a method named `list`; these keep annotations in its body unambiguous.
_Done = list[tuple[int, Any]]
_Names = list[str]
_Steps = list[Step]
_StepRows = list[StepRow]
_Writes = list[Write]
_Records = list[TransitionRecord]


class SystemClock:
    """The wall clock."""

    def now(self) -> float:
        """Seconds since the epoch."""
        return time.time()


class _QuietObserver:
    def transition_started(self, chart: str, entity_id: str, event: str, name: str) -> None:
        pass

    def transition(
        self,
        chart: str,
        entity_id: str,
        event: str,
        outcome: str,
        seconds: float,
        error: BaseException | None,
    ) -> None:
        pass

    def step_started(self, chart: str, entity_id: str, name: str, phase: str, index: int) -> None:
        pass

    def step(
        self,
        chart: str,
        entity_id: str,
        name: str,
        phase: str,
        outcome: str,
        seconds: float,
        error: BaseException | None,
    ) -> None:
        pass


@dataclass(frozen=True, slots=True)
class _Registered:
    chart: core.Chart
    bindings: Bindings


class _Contended(Conflict):
    """Conflict after every retry lost a race: worth trying again later."""


class _Stale(Exception):
    """The cached entity was older than the stored one: reload and decide again."""


class _Failed(Exception):
    """A saga failed and was compensated; carries the error to raise and any follow-up."""

    def __init__(self, error: ChartdError, follow_up: tuple[str, str] | None) -> None:
        self.error = error
        self.follow_up = follow_up


_SCALARS = (str, int, float, bool, type(None))


class _Cache(dict[str, EntityRow]):
    """The entity rows this engine read or wrote last; past ``capacity``, the oldest go.

    A row is only a guess of the stored one: every commit checks its version,
    so forgetting one costs a read, never correctness.
    """

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity

    def __setitem__(self, key: str, value: EntityRow) -> None:
        super().__setitem__(key, value)
        if len(self) > self.capacity:
            del self[next(iter(self))]


def _json(value: Any, what: str) -> Any:
    """``value`` as it will read back from the journal; InvalidParameter if it is not JSON."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise InvalidParameter(f"{what} must be JSON-able: {exc}") from None


def _snapshot_dict(snapshot: core.Snapshot) -> dict[str, Any]:
    return {
        "configuration": list(snapshot.configuration),
        "data": dict(snapshot.data),
        "version": snapshot.version,
        "history": {k: list(v) for k, v in snapshot.history.items()},
    }


def _as_error(exc: BaseException, doing: str) -> ChartdError:
    if isinstance(exc, ChartdError):
        return exc
    return System(f"{doing} failed: {type(exc).__name__}: {exc}")


class Engine:
    """The durable engine on a :class:`~engine.ports.Store`; use it as a context manager.

    ``engine.Engine.open(url)`` builds one on a SQL store; this class takes
    any Store, so the runtime depends on the port, not on SQLAlchemy.
    """

    def __init__(
        self,
        store: Store,
        *,
        clock: Clock | None = None,
        observer: Observer | None = None,
        timers: bool = True,
    ) -> None:
        self.store = store
        self.clock: Clock = clock or SystemClock()
        self.observer: Observer = observer or _QuietObserver()
        self.id = secrets.token_hex(8)
        # Transition ids: this engine's id and a counter. Unique across engines and
        # restarts (the engine id is new each time), and no system call on the hot path.
        self._serial = itertools.count(1)
        self._registry: dict[str, _Registered] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._prune_locks_at = _LOCKS_KEPT
        self._holders: dict[str, int] = {}  # entity id -> thread that holds its lock
        self._chain = threading.local()  # .pending: the follow-ups this thread has yet to fire
        self._create_lock = threading.Lock()
        self._cache: _Cache = _Cache(_CACHED)
        self._recovering: set[str] = set()
        self._events = threading.Condition()
        self._watchers = 0  # watch() iterators waiting for events: wake them on commits
        # Commits of this engine that wrote events: a watcher that read the outbox
        # before one of them must not sleep on it.
        self._published = 0
        # The entities until() waits on (-> how many waiters), and the newest row
        # this engine committed of each of them: a commit wakes them with no query.
        self._newest: dict[str, EntityRow] = {}
        self._awaited: dict[str, int] = {}
        self._closed = False
        self._commit = GroupCommit(store, on_commit=self._committed)
        self._wake = threading.Event()
        self._sleeps_until = 0.0  # clock time the housekeeping thread next looks at timers
        self._host = socket.gethostname()
        self._beat()
        # Heartbeats keep other engines from recovering this one's sagas, so the
        # thread runs even when timers are left to run_due_timers().
        self._timers = timers
        self._timer_thread = threading.Thread(
            target=self._housekeeping, name="chartd-housekeeping", daemon=True
        )
        self._timer_thread.start()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the timer thread, flush the journal and release the database."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        self._timer_thread.join()
        self._commit.close()
        with self._events:
            self._events.notify_all()
        self.store.close()

    def _check_open(self) -> None:
        if self._closed:
            raise Unavailable("the engine is closed")

    # -- charts ------------------------------------------------------------------

    def register(self, chart: core.Chart, bindings: Bindings | None = None) -> None:
        """Make ``chart`` available, with the code of its names; then recover its entities.

        Raises InvalidParameter naming every guard, step or condition the
        chart uses that ``bindings`` does not provide. Transitions of this
        chart left unfinished by an engine that died are finished or undone
        before this returns.
        """
        self._check_open()
        bindings = bindings or Bindings()
        missing = []
        for t in chart.transitions:
            missing += [f"guard {g!r}" for g in t.guards if g not in bindings.guards]
            missing += [f"step {s!r}" for s in t.steps if s not in bindings.steps]
        missing = sorted(set(missing))
        if missing:
            raise InvalidParameter(f"chart {chart.name!r} needs code for: {', '.join(missing)}")
        self._registry[chart.name] = _Registered(chart, bindings)
        self.recover(chart.name)

    def charts(self) -> dict[str, core.Chart]:
        """The registered charts by name."""
        return {name: reg.chart for name, reg in self._registry.items()}

    def _registered(self, chart: str) -> _Registered:
        try:
            return self._registry[chart]
        except KeyError:
            known = ", ".join(sorted(self._registry)) or "none"
            raise NotFound(f"no chart {chart!r} is registered (registered: {known})") from None

    # -- entities ----------------------------------------------------------------

    def create(self, chart: str, name: str, data: Mapping[str, Any] | None = None) -> Entity:
        """A new entity of ``chart`` in its initial state, recorded with a ``create`` event.

        Raises InvalidParameter for a bad name or data that is not JSON,
        Conflict if the name is taken in this chart.
        """
        self._check_open()
        reg = self._registered(chart)
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidParameter(
                f"invalid name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed, "
                "at most 253 characters"
            )
        data = _json(dict(data or {}), "entity data")
        snapshot = reg.chart.initial_snapshot(data, conditions=reg.bindings.conditions)
        now = self.clock.now()
        row = EntityRow(
            id=secrets.token_hex(32),
            chart=chart,
            name=name,
            configuration=snapshot.configuration,
            data=dict(snapshot.data),
            history=dict(snapshot.history),
            version=0,
            created_at=now,
            updated_at=now,
        )
        event = EventRow(row.id, name, chart, "create", {}, None, now)
        with self._create_lock:
            taken = self.store.entity(name, chart)
            if taken is not None and taken.name == name and taken.live:
                raise Conflict(
                    f"the name {name!r} is already in use by {chart} {taken.id[:12]}: "
                    "remove or rename it to reuse the name"
                )
            try:
                self._commit.commit(Write(entity=row, events=[event]))
            except Conflict as exc:  # the name was taken by another process meanwhile
                raise Conflict(f"the name {name!r} is already in use in chart {chart!r}") from exc
        stored = self.store.entity(row.id)
        assert stored is not None
        self._cache[row.id] = stored
        return Entity.from_row(stored)

    def get(self, id_or_name: str | Entity, chart: str | None = None) -> Entity:
        """The entity with this id or name, as last committed; NotFound otherwise."""
        self._check_open()
        return Entity.from_row(self._row(id_or_name, chart))

    def _row(self, ref: str | Entity, chart: str | None = None) -> EntityRow:
        key = ref.id if isinstance(ref, Entity) else ref
        if not isinstance(key, str) or not key:
            raise InvalidParameter(f"invalid name or ID supplied: {key!r}")
        row = self.store.entity(key, chart)
        if row is None:
            raise NotFound(f"No such entity: {key}")
        return row

    def list(
        self,
        chart: str | None = None,
        status: str | None = None,
        *,
        after: int = 0,
        limit: int = 100,
    ) -> Page[Entity]:
        """Entities in creation order, in ``chart`` and in state ``status`` if given.

        ``status`` is a state path, ancestors included (``running`` lists
        paused entities too). Pass the page's ``after`` to get the next page.
        """
        self._check_open()
        if not 1 <= limit <= 1000:
            raise InvalidParameter(f"limit must be between 1 and 1000, got {limit}")
        rows = self.store.entities(chart=chart, state=status, after=after, limit=limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(
            tuple(Entity.from_row(r) for r in rows), rows[-1].seq if more and rows else None
        )

    def history(self, entity: str | Entity) -> _Records:
        """The entity's journal, oldest first: every transition with its steps."""
        self._check_open()
        row = self._row(entity)
        return [TransitionRecord.from_row(t) for t in self.store.transitions(row.id)]

    # -- firing ------------------------------------------------------------------

    def _next_transition_id(self) -> str:
        return f"{self.id}{next(self._serial):016x}"

    def _lock(self, entity_id: str) -> threading.Lock:
        """The entity's lock, acquired by this thread: the caller releases it."""
        while True:
            lock = self._locks.get(entity_id)  # reading the dict is atomic: no guard needed
            if lock is None:
                with self._locks_guard:
                    if len(self._locks) >= self._prune_locks_at:
                        self._prune_locks()
                    lock = self._locks.setdefault(entity_id, threading.Lock())
            lock.acquire()
            if self._locks.get(entity_id) is lock:
                return lock
            # Pruned while this thread waited for it: another thread may hold the
            # entity's new lock, so take that one.
            lock.release()

    def _prune_locks(self) -> None:
        """With the guard held: forget the locks nobody holds, so that they do not pile up.

        A thread that took a lock from the map before it was forgotten finds,
        once it has it, that it is no longer the entity's lock (see _lock).
        """
        for entity_id in [e for e, lock in self._locks.items() if not lock.locked()]:
            del self._locks[entity_id]
        self._prune_locks_at = max(_LOCKS_KEPT, 2 * len(self._locks))

    def fire(
        self,
        entity: str | Entity,
        event: str,
        params: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Result:
        """Fire ``event`` on ``entity``; return what committed, or raise why not.

        Raises the chart's rejection (nothing written), a guard's error
        (nothing written), or the error of a failed step after the saga was
        compensated and the failure recorded. A repeated ``idempotency_key``
        returns (or raises) what was recorded the first time, and runs nothing.
        """
        self._check_open()
        started = time.perf_counter()
        params = _json(dict(params), "event params") if params else {}
        if idempotency_key is not None and (
            not isinstance(idempotency_key, str) or not 0 < len(idempotency_key) <= 300
        ):
            raise InvalidParameter("an idempotency key is a string of 1 to 300 characters")
        row = self._cached(entity)
        chart = row.chart
        follow_up: tuple[str, str] | None = None
        outcome = "rejected"
        error: BaseException | None = None
        me = threading.get_ident()
        if self._holders.get(row.id) == me:
            # The entity's lock is this thread's own: waiting for it would never end.
            raise Conflict(
                f"{event!r} was fired on {row.name} from inside its own transition; "
                "schedule it (ctx.schedule) or declare it as the transition's follow-up (then)"
            )
        self.observer.transition_started(chart, row.id, event, row.name)
        try:
            lock = self._lock(row.id)
            try:
                self._holders[row.id] = me
                try:
                    for _ in range(_RETRIES):
                        decided_on = self._cache.get(row.id)
                        try:
                            with self._commit.busy():
                                result, follow_up = self._fire_once(
                                    row.id, event, params, idempotency_key
                                )
                            outcome = "replayed" if result.replayed else "committed"
                            return result
                        except _Stale:
                            self._cache.pop(row.id, None)
                        except _Failed as failed:
                            outcome = "failed"
                            follow_up = failed.follow_up
                            raise failed.error from None
                        except ChartdError:
                            # A refusal writes nothing, so no version check caught a stale
                            # cache: decide again if another engine moved the entity.
                            if decided_on is None or not self._moved(decided_on):
                                raise
                    raise _Contended(
                        f"{row.name} changed concurrently {_RETRIES} times while {event!r} "
                        "was being decided; try again"
                    )
                finally:
                    self._holders.pop(row.id, None)
            finally:
                lock.release()
        except BaseException as exc:
            error = exc
            raise
        finally:
            self.observer.transition(
                chart, row.id, event, outcome, time.perf_counter() - started, error
            )
            if follow_up is not None:
                self._follow(*follow_up)

    def _moved(self, cached: EntityRow) -> bool:
        """Whether the stored entity is newer than ``cached``; if so the cache is refreshed."""
        fresh = self.store.entity(cached.id)
        if fresh is None or fresh.version == cached.version:
            return False
        self._cache[cached.id] = fresh
        return True

    def _follow(self, entity_id: str, event: str) -> None:
        pending: deque[tuple[str, str]] | None = getattr(self._chain, "pending", None)
        if pending is not None:
            # A follow-up of a follow-up: the loop below fires it, so that a chain
            # of them runs in a loop, not on an ever deeper stack.
            pending.append((entity_id, event))
            return
        pending = self._chain.pending = deque([(entity_id, event)])
        try:
            for _ in range(MAX_FOLLOW_UPS):
                if not pending:
                    return
                entity_id, event = pending.popleft()
                try:
                    self.fire(entity_id, event)
                except ChartdError as exc:
                    log.warning("follow-up %r on %s failed: %s", event, entity_id[:12], exc.message)
            if pending:
                # A cycle of follow-ups would fire forever; `chartd chart check` reports
                # such charts. Stopping leaves every fire so far committed and journaled.
                log.error(
                    "follow-ups did not end: %d in a row; %r on %s not fired",
                    MAX_FOLLOW_UPS,
                    pending[0][1],
                    pending[0][0][:12],
                )
        finally:
            self._chain.pending = None

    def _cached(self, ref: str | Entity) -> EntityRow:
        key = ref.id if isinstance(ref, Entity) else ref
        row = self._cache.get(key) if isinstance(key, str) else None
        if row is None:
            row = self._row(ref)
            self._cache[row.id] = row
        return row

    def _fire_once(
        self, entity_id: str, event: str, params: Mapping[str, Any], key: str | None
    ) -> tuple[Result, tuple[str, str] | None]:
        """Decide and run one fire; its result and the follow-up event it declares, if any."""
        row = self._cache.get(entity_id) or self._row(entity_id)
        self._cache[entity_id] = row
        reg = self._registered(row.chart)
        if key is not None:
            recorded = self.store.transition(row.id, key)
            if recorded is not None:
                if recorded.event != event or dict(recorded.params) != dict(params):
                    raise InvalidParameter(
                        f"idempotency key {key!r} was used for {recorded.event!r} with other "
                        "params on this entity; a retry must repeat the request, or use a new key"
                    )
                return self._replay(row, recorded), None
        if row.id in self._recovering:
            raise Unavailable(f"{row.name} is being recovered; try again")
        source = core.Snapshot(row.configuration, row.data, row.version, row.history)
        plan = core.step(
            reg.chart,
            source,
            event,
            params,
            conditions=reg.bindings.conditions,
            fields={"id": row.id, "entity": row.name},
        )
        tid = self._next_transition_id()
        ctx = Context(
            entity_id=row.id,
            entity_name=row.name,
            chart=row.chart,
            event=event,
            params=params,
            transition_id=tid,
            source=source,
            target=plan.snapshot,
            now=self.clock.now(),
        )
        for name in plan.guards:
            try:
                reg.bindings.guards[name](ctx)
            except Exception as exc:
                raise _as_error(exc, f"guard {name}") from exc
        steps = [reg.bindings.steps[name] for name in plan.steps]
        if any(s.external for s in steps) or plan.via is not None:
            result = self._saga(reg, row, plan, ctx, steps, key)
        else:
            result = self._direct(reg, row, plan, ctx, steps, key)
        for t in plan.transitions:
            if t.then is not None and core.holds(
                t.then.when, result.entity.snapshot, params, reg.bindings.conditions
            ):
                return result, (row.id, t.then.event)
        return result, None

    def _replay(self, row: EntityRow, recorded: TransitionRow) -> Result:
        if recorded.status == "committed":
            current = self._row(row.id)
            return Result(
                Entity.from_row(current),
                recorded.event,
                recorded.id,
                tuple(recorded.plan["steps"]),
                replayed=True,
            )
        if recorded.status in ("failed", "compensation_failed"):
            raise error_for(recorded.error_category or "system", recorded.error_message or "failed")
        raise Conflict(
            f"a transition with idempotency key {recorded.idempotency_key!r} is still in "
            "progress on "
            f"{row.name}"
        )

    # -- the two paths -------------------------------------------------------------

    def _plan_json(self, plan: core.Plan, *, full: bool) -> dict[str, Any]:
        """What the journal keeps of a plan: enough to finish or undo it after a crash.

        A transition that never writes ahead cannot be found unfinished, so
        it keeps only what ``history`` shows.
        """
        if not full:
            return {
                "source": {"configuration": list(plan.source.configuration)},
                "steps": list(plan.steps),
            }
        policy = plan.on_failure
        then = policy.then if policy else None
        return {
            "source": _snapshot_dict(plan.source),
            "target": _snapshot_dict(plan.snapshot),
            "failure": list(plan.failure_configuration),
            "failure_from": plan.failure_from,
            "steps": list(plan.steps),
            "via": plan.via,
            "record": list(policy.record) if policy else [],
            "then": {"event": then.event, "when": str(then.when) if then.when else None}
            if then
            else None,
        }

    def _direct(
        self,
        reg: _Registered,
        row: EntityRow,
        plan: core.Plan,
        ctx: Context,
        steps: _Steps,
        key: str | None,
    ) -> Result:
        """A transition whose steps are all internal: run them, then commit once."""
        step_rows = self._run_steps(reg, row, plan, ctx, steps, key, written=False)
        return self._finish(reg, row, plan, ctx, step_rows, key, expect=row.version, written=False)

    def _saga(
        self,
        reg: _Registered,
        row: EntityRow,
        plan: core.Plan,
        ctx: Context,
        steps: _Steps,
        key: str | None,
    ) -> Result:
        """Write ahead, run the steps, commit; or compensate and record the failure."""
        now = self.clock.now()
        held = plan.transient_configuration or row.configuration
        ahead = replace(row, configuration=held, version=row.version + 1, updated_at=now)
        tid = ctx.transition_id
        record = TransitionRow(
            id=tid,
            entity_id=row.id,
            event=plan.event,
            params=dict(plan.params),
            status="running",
            version_from=row.version,
            version_to=None,
            plan=self._plan_json(plan, full=True),
            owner=self.id,
            idempotency_key=key,
            started_at=now,
        )
        pending = [StepRow(tid, i, name) for i, name in enumerate(plan.steps)]
        try:
            self._commit.commit(
                Write(entity=ahead, expect_version=row.version, transitions=[record], steps=pending)
            )
        except VersionConflict:
            raise _Stale() from None
        self._cache[row.id] = ahead
        with self._commit.idle():
            step_rows = self._run_steps(reg, ahead, plan, ctx, steps, key, written=True)
        try:
            return self._finish(
                reg, ahead, plan, ctx, step_rows, key, expect=ahead.version, written=True
            )
        except _Stale:
            # Someone changed the entity while the saga ran: undo, and say so.
            error = Conflict(
                f"{row.name} was changed by another writer while {plan.event!r} ran; "
                "its steps were undone"
            )
            done = [(r.index, r.payload) for r in step_rows]
            raise self._fail(
                reg,
                self._row(row.id),
                plan,
                ctx,
                steps,
                done,
                step_rows,
                error,
                error,
                key,
                written=True,
                entity_write=False,
            ) from None
        except ChartdError as exc:
            # The final commit was refused (a new name taken meanwhile, say): undo.
            done = [(r.index, r.payload) for r in step_rows]
            raise self._fail(
                reg,
                ahead,
                plan,
                ctx,
                steps,
                done,
                step_rows,
                exc,
                exc,
                key,
                written=True,
            ) from exc

    def _run_steps(
        self,
        reg: _Registered,
        row: EntityRow,
        plan: core.Plan,
        ctx: Context,
        steps: _Steps,
        key: str | None,
        *,
        written: bool,
    ) -> _StepRows:
        """Run the steps in order; the journal rows of the ones done, or raise _Failed.

        In a saga (``written``) each step's end is journaled without waiting,
        but for the failure policy's ``after`` step (waited: recovery must know
        it completed); otherwise the rows go with the one commit. A step whose ``do``
        returned counts as done, and is undone on failure, even if what it
        left (payload, data, events, timers) is unusable.
        """
        done: _Done = []
        step_rows: _StepRows = []
        tid = ctx.transition_id
        for i, (name, step) in enumerate(zip(plan.steps, steps, strict=True)):
            ctx.step, ctx.step_index = name, i
            self.observer.step_started(row.chart, row.id, name, "do", i)
            begun = self.clock.now()
            clock = time.perf_counter()
            took_effect = False
            try:
                raw = step.do(ctx)
                took_effect = True
                payload = _json(raw, f"the payload of step {name}")
                effects = self._effects(ctx, name)
            except Exception as exc:
                error = _as_error(exc, f"step {name}")
                self.observer.step(
                    row.chart, row.id, name, "do", "error", time.perf_counter() - clock, error
                )
                if took_effect:
                    done.append((i, None))
                failed = StepRow(
                    tid, i, name, "failed", None, error.message, None, begun, self.clock.now()
                )
                step_rows.append(failed)
                if written:
                    self._commit.later(Write(steps=[failed]))
                raise self._fail(
                    reg,
                    row,
                    plan,
                    ctx,
                    steps,
                    done,
                    step_rows,
                    error,
                    exc,
                    key,
                    written=written,
                ) from exc
            self.observer.step(
                row.chart, row.id, name, "do", "ok", time.perf_counter() - clock, None
            )
            done.append((i, payload))
            finished = StepRow(
                tid,
                i,
                name,
                "done",
                payload,
                None,
                effects if written else None,
                begun,
                self.clock.now(),
            )
            step_rows.append(finished)
            if written and i == plan.failure_from - 1:
                # The failure policy's `after` step: recovery must know for sure that it
                # completed, so its end is on disk before the next step runs.
                self._commit.commit(Write(steps=[finished]))
            elif written:
                self._commit.later(Write(steps=[finished]))
        return step_rows

    def _effects(self, ctx: Context, step: str) -> dict[str, Any]:
        """What the steps so far asked for, checked to be JSON; journaled for recovery."""
        if (
            not (ctx.events or ctx.timers or ctx.cancelled or ctx.cancel_all)
            and ctx.data == ctx.target.data
            and all(isinstance(v, _SCALARS) for v in ctx.data.values())
        ):
            # The data as it was stored, of plain values: JSON already, and a shallow
            # copy is as good as the round trip's deep one against later steps' changes.
            return {
                "data": dict(ctx.data),
                "events": [],
                "timers": [],
                "cancel": [],
                "cancel_all": False,
            }
        effects: dict[str, Any] = _json(
            {
                "data": ctx.data,
                "events": [[t, a] for t, a in ctx.events],
                "timers": [list(t) for t in ctx.timers],
                "cancel": None if ctx.cancel_all else sorted(ctx.cancelled or ()),
                "cancel_all": ctx.cancel_all,
            },
            f"the data, events or timers left by step {step}",
        )
        return effects

    def _finish(
        self,
        reg: _Registered,
        row: EntityRow,
        plan: core.Plan,
        ctx: Context,
        step_rows: _StepRows,
        key: str | None,
        *,
        expect: int,
        written: bool,
    ) -> Result:
        now = self.clock.now()
        target = plan.snapshot
        # Data that no step touched was JSON when it was stored: no need to check it again.
        data = target.data if ctx.data == target.data else _json(ctx.data, "entity data")
        # Built field by field: dataclasses.replace costs more than the rest of this.
        after = EntityRow(
            id=row.id,
            chart=row.chart,
            name=ctx.new_name or row.name,
            configuration=target.configuration,
            data=data,
            history=dict(target.history),
            version=expect + 1,
            created_at=row.created_at,
            updated_at=now,
            seq=row.seq,
            live=not reg.chart.finished(target.configuration),
        )
        plan_json = self._plan_json(plan, full=written)
        plan_json["committed"] = list(target.configuration)
        record = TransitionRow(
            id=ctx.transition_id,
            entity_id=row.id,
            event=plan.event,
            params=dict(plan.params),
            status="committed",
            version_from=plan.source.version,
            version_to=after.version,
            plan=plan_json,
            owner=self.id,
            idempotency_key=key,
            started_at=ctx.now,
            finished_at=now,
        )
        write = Write(entity=after, expect_version=expect)
        if written:
            write.transition_updates.append(record)
        else:
            write.transitions.append(record)
            write.steps.extend(step_rows)
        write.events.append(self._transition_event(row, plan, ctx.transition_id, now))
        write.events.extend(
            EventRow(row.id, row.name, row.chart, t, _json(a, f"event {t}"), ctx.transition_id, now)
            for t, a in ctx.events
        )
        write.timers.extend(
            TimerRow(i, row.id, e, p, due, ctx.transition_id) for i, e, due, p in ctx.timers
        )
        if ctx.cancel_all or ctx.cancelled:
            write.cancel_timers = (
                row.id,
                None if ctx.cancel_all else frozenset(ctx.cancelled or ()),
            )
        try:
            self._commit.commit(write)
        except VersionConflict:
            raise _Stale() from None
        self._cache[row.id] = after
        if ctx.timers:
            self._timers_added(min(due for _, _, due, _ in ctx.timers))
        return Result(Entity.from_row(after), plan.event, ctx.transition_id, plan.steps)

    def _transition_event(self, row: EntityRow, plan: core.Plan, tid: str, now: float) -> EventRow:
        return EventRow(
            row.id,
            row.name,
            row.chart,
            "transition",
            {
                "event": plan.event,
                "from": list(plan.source.configuration),
                "to": list(plan.snapshot.configuration),
            },
            tid,
            now,
        )

    def _compensate(
        self,
        row: EntityRow,
        ctx: Context,
        steps: _Steps,
        names: _Names,
        undo: _Done,
        *,
        journal: bool,
    ) -> _StepRows:
        """Undo ``undo`` (index, payload) in the order given; the journal row of each.

        With ``journal`` each row is also queued for the journal at once (a
        saga); otherwise the caller commits them (a direct transition).
        """
        rows: _StepRows = []
        for i, payload in undo:
            step, name = steps[i], names[i]
            if step.undo is None:
                continue
            ctx.step, ctx.step_index = name, i
            self.observer.step_started(row.chart, row.id, name, "undo", i)
            clock = time.perf_counter()
            message: str | None = None
            error: ChartdError | None = None
            try:
                step.undo(ctx, payload)
            except Exception as exc:
                error = _as_error(exc, f"undo of step {name}")
                message = error.message
                # The step's name goes with the message, whatever raised it.
                if not message.startswith(f"undo of step {name}"):
                    message = f"undo of step {name}: {message}"
            outcome = "ok" if error is None else "error"
            self.observer.step(
                row.chart, row.id, name, "undo", outcome, time.perf_counter() - clock, error
            )
            result = StepRow(
                ctx.transition_id,
                i,
                name,
                "compensated" if message is None else "compensation_failed",
                payload,
                compensated_at=self.clock.now(),
                compensation_error=message,
            )
            rows.append(result)
            if journal:
                self._commit.later(Write(steps=[result]))
        return rows

    def _fail(
        self,
        reg: _Registered,
        row: EntityRow,
        plan: core.Plan,
        ctx: Context,
        steps: _Steps,
        done: _Done,
        step_rows: _StepRows,
        error: ChartdError,
        cause: BaseException,
        key: str | None,
        *,
        written: bool,
        entity_write: bool = True,
    ) -> _Failed:
        """Compensate the completed steps newest first, record the failure, return it to raise.

        Where the entity goes depends on the step that failed (its row in
        ``step_rows``), or on none having failed (a refused final commit).
        """
        failed = next((r.index for r in step_rows if r.status == "failed"), len(plan.steps))
        if written:
            # On disk before any undo runs: if this engine dies while compensating,
            # recovery finishes the undo and keeps the error that caused it.
            try:
                self._commit.commit(
                    Write(
                        transition_updates=[
                            TransitionRow(
                                id=ctx.transition_id,
                                entity_id=row.id,
                                event=plan.event,
                                params=dict(plan.params),
                                status="compensating",
                                version_from=plan.source.version,
                                version_to=None,
                                plan=self._plan_json(plan, full=True),
                                owner=self.id,
                                idempotency_key=key,
                                error_category=error.category.value,
                                error_message=error.message,
                                started_at=ctx.now,
                            )
                        ]
                    )
                )
            except ChartdError as exc:
                log.error(
                    "could not journal the failure of %s on %s: %s", plan.event, row.name, exc
                )
        undone = self._compensate(
            row, ctx, steps, list(plan.steps), list(reversed(done)), journal=written
        )
        errors = [r.compensation_error for r in undone if r.compensation_error]
        now = self.clock.now()
        configuration, policy = plan.failure_at(failed)
        data = dict(plan.source.data)
        for field in policy.record if policy else ():
            data[field] = error.message if field == "error" else getattr(cause, field, None)
        data = _json(data, "entity data")
        after = replace(
            row,
            configuration=configuration,
            live=not reg.chart.finished(configuration),
            data=data,
            history=dict(plan.source.history),
            version=row.version + 1,
            updated_at=now,
        )
        plan_json = self._plan_json(plan, full=written)
        plan_json["committed"] = list(configuration)
        record = TransitionRow(
            id=ctx.transition_id,
            entity_id=row.id,
            event=plan.event,
            params=dict(plan.params),
            status="compensation_failed" if errors else "failed",
            version_from=plan.source.version,
            version_to=after.version if entity_write else None,
            plan=plan_json,
            owner=self.id,
            idempotency_key=key,
            error_category=error.category.value,
            error_message=error.message,
            compensation_errors=tuple(errors),
            started_at=ctx.now,
            finished_at=now,
        )
        write = Write()
        if entity_write:
            write.entity, write.expect_version = after, row.version
        if written:
            write.transition_updates.append(record)
        else:
            write.transitions.append(record)
            # A step's compensation row replaces its done row: same (transition, index).
            write.steps.extend(step_rows)
            write.steps.extend(undone)
        write.events.append(
            EventRow(
                row.id,
                row.name,
                row.chart,
                "transition.failed",
                {"event": plan.event, "category": error.category.value, "error": error.message},
                ctx.transition_id,
                now,
            )
        )
        try:
            self._commit.commit(write)
            if entity_write:
                self._cache[row.id] = after
        except VersionConflict:
            self._cache.pop(row.id, None)
            log.error(
                "could not record the failure of %s on %s: the entity moved", plan.event, row.name
            )
        except ChartdError as exc:
            self._cache.pop(row.id, None)
            log.error("could not record the failure of %s on %s: %s", plan.event, row.name, exc)
        if errors:
            error.compensation_errors = tuple(errors)  # type: ignore[attr-defined]
        error.transition_id = ctx.transition_id  # type: ignore[attr-defined]
        follow = None
        then = policy.then if policy else None
        if then is not None and core.holds(
            then.when,
            core.Snapshot(after.configuration, after.data, after.version),
            plan.params,
            reg.bindings.conditions,
        ):
            follow = (row.id, then.event)
        return _Failed(error, follow)

    # -- recovery ----------------------------------------------------------------

    def _alive(self) -> set[str]:
        """Engines that may still be running a saga: never recover theirs.

        On this host a process that exists is alive (unless it stopped
        beating long ago: its pid was reused); elsewhere, a recent beat.
        """
        now = self.clock.now()
        alive = {self.id}
        for owner, (pid, host, beat) in self.store.owners().items():
            if host == self._host:
                if _pid_alive(pid) and now - beat <= 6 * _LEASE:
                    alive.add(owner)
            elif now - beat <= _LEASE:
                alive.add(owner)
        return alive

    def recover(self, chart: str | None = None) -> int:
        """Finish or undo transitions that dead engines left unfinished; return how many.

        Runs on :meth:`register` for that chart, and periodically. A
        transition whose every step is journaled done is finished; any other
        is compensated, every step not known to be undone, newest first.
        """
        alive = self._alive()
        count = 0
        for tr in self.store.unfinished():
            if tr.owner in alive:
                continue
            row = self.store.entity(tr.entity_id)
            if row is None or (chart is not None and row.chart != chart):
                continue
            reg = self._registry.get(row.chart)
            if reg is None:
                continue
            lock = self._lock(row.id)
            self._recovering.add(row.id)
            try:
                claimed = self._claim(tr, alive)
                if claimed is not None:
                    self._recover_one(reg, *claimed)
                    count += 1
            finally:
                self._recovering.discard(row.id)
                self._cache.pop(row.id, None)
                lock.release()
        return count

    def _claim(
        self, listed: TransitionRow, alive: set[str]
    ) -> tuple[EntityRow, TransitionRow] | None:
        """Take over a dead engine's transition, or None if another engine got it first.

        The claim is a version-checked commit that names this engine the
        owner, so that of several engines recovering at once exactly one
        undoes (or finishes) the transition, and an engine that dies while
        recovering leaves it to be recovered again.
        """
        row = self.store.entity(listed.entity_id)
        current = next(
            (t for t in self.store.transitions(listed.entity_id) if t.id == listed.id), None
        )
        if row is None or current is None or current.status not in ("running", "compensating"):
            return None
        if current.owner in alive:
            return None
        claimed = replace(current, owner=self.id, steps=())
        ahead = replace(row, version=row.version + 1, updated_at=self.clock.now())
        try:
            self._commit.commit(
                Write(entity=ahead, expect_version=row.version, transition_updates=[claimed])
            )
        except VersionConflict:
            return None
        return ahead, current  # the dead owner stays on record; the plan names the recoverer

    def _recover_one(self, reg: _Registered, row: EntityRow, tr: TransitionRow) -> None:
        plan = tr.plan
        names: _Names = plan["steps"]
        steps = [reg.bindings.steps[n] for n in names]
        journal = {s.index: s for s in tr.steps}
        source = core.Snapshot.from_json(json.dumps(plan["source"]))
        target = core.Snapshot.from_json(json.dumps(plan["target"]))
        ctx = Context(
            entity_id=row.id,
            entity_name=row.name,
            chart=row.chart,
            event=tr.event,
            params=tr.params,
            transition_id=tr.id,
            source=source,
            target=target,
            now=self.clock.now(),
        )
        now = self.clock.now()
        complete = tr.status == "running" and all(
            journal.get(i) is not None and journal[i].status == "done" for i in range(len(names))
        )
        if complete:
            effects = [journal[i].effects or {} for i in range(len(names))]
            data = effects[-1].get("data", dict(target.data)) if effects else dict(target.data)
            after = replace(
                row,
                configuration=target.configuration,
                live=not reg.chart.finished(target.configuration),
                data=data,
                history=dict(target.history),
                version=row.version + 1,
                updated_at=now,
            )
            record = replace(
                tr,
                status="committed",
                version_to=after.version,
                finished_at=now,
                plan={**plan, "committed": list(target.configuration), "recovered_by": self.id},
                steps=(),
            )
            write = Write(entity=after, expect_version=row.version, transition_updates=[record])
            fake = core.Plan(
                row.chart,
                tr.event,
                tr.params,
                source,
                target,
                (),
                (),
                tuple(names),
                (),
                (),
                None,
                None,
                tuple(plan["failure"]),
                None,
            )
            write.events.append(self._transition_event(row, fake, tr.id, now))
            # A step's effects hold what every step so far asked for: the last one's
            # are the saga's (adding up all of them would repeat the early steps' events).
            last = effects[-1] if effects else {}
            write.events.extend(
                EventRow(row.id, row.name, row.chart, t, a, tr.id, now)
                for t, a in last.get("events", [])
            )
            write.timers.extend(
                TimerRow(i, row.id, e, p, due, tr.id) for i, e, due, p in last.get("timers", [])
            )
            cancelled = last.get("cancel") or ()
            if last.get("cancel_all") or cancelled:
                write.cancel_timers = (
                    row.id,
                    None if last.get("cancel_all") else frozenset(cancelled),
                )
            self._commit.commit(write)
            log.warning(
                "recovered %s on %s: every step had completed; committed", tr.event, row.name
            )
            return
        undo = [
            (i, journal[i].payload if i in journal else None)
            for i in reversed(range(len(names)))
            if i not in journal or journal[i].status not in ("compensated", "failed")
        ]
        undone = self._compensate(row, ctx, steps, names, undo, journal=True)
        errors = [r.compensation_error for r in undone if r.compensation_error]
        if tr.status == "compensating" and tr.error_message:
            # It had failed already; the crash only interrupted its undo.
            category, message = tr.error_category or "system", tr.error_message
        else:
            category = Unavailable.category.value
            message = (
                f"{tr.event!r} was interrupted: engine {tr.owner} stopped while it ran; "
                "its steps were undone on recovery"
            )
        # The step that failed, or the one a crash interrupted: the first not done
        # (an undo's row replaces the done row of its step).
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
        if failed >= plan.get("failure_from", 0):
            configuration = tuple(plan["failure"])
            for field in plan.get("record", []):
                if field == "error":
                    data[field] = message
        else:
            configuration = source.configuration
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
            plan={**plan, "committed": list(after.configuration), "recovered_by": self.id},
            steps=(),
        )
        write = Write(entity=after, expect_version=row.version, transition_updates=[record])
        write.events.append(
            EventRow(
                row.id,
                row.name,
                row.chart,
                "transition.failed",
                {"event": tr.event, "category": category, "error": message},
                tr.id,
                now,
            )
        )
        self._commit.commit(write)
        log.warning("recovered %s on %s: compensated %d step(s)", tr.event, row.name, len(undo))

    # -- timers ------------------------------------------------------------------

    def run_due_timers(self) -> int:
        """Fire every timer of a registered chart that is due now; return how many fired.

        A timer whose event is refused (the entity moved on) is spent, with
        the refusal recorded; one that could not be decided now (the engine
        closing, the entity in recovery, a lost race) stays pending.
        """
        count = 0
        charts = sorted(self._registry)
        for timer in self.store.due_timers(self.clock.now(), charts=charts):
            if self._closed:
                break
            fired: str | None = None
            error: str | None = None
            try:
                result = self.fire(
                    timer.entity_id, timer.event, timer.params, idempotency_key=f"timer:{timer.id}"
                )
                fired = result.transition_id
            except (Unavailable, _Contended):
                continue
            except ChartdError as exc:
                error = f"{exc.category.value}: {exc.message}"
            self._commit.commit(
                Write(timers=[replace(timer, status="fired", fired_transition=fired, error=error)])
            )
            count += 1
        return count

    def _beat(self) -> None:
        self.store.heartbeat(self.id, os.getpid(), self._host, self.clock.now())

    def _housekeeping(self) -> None:
        """Beat, recover what dead engines left, and (if enabled) fire due timers."""
        last_beat = last_sweep = time.monotonic()
        while not self._closed:
            due = None
            try:
                if self._timers:
                    self.run_due_timers()
                mono = time.monotonic()
                if mono - last_beat >= _BEAT:
                    self._beat()
                    last_beat = mono
                if mono - last_sweep >= 5 * _BEAT:
                    self.recover()
                    last_sweep = mono
                if self._timers:
                    due = self.store.next_timer(charts=sorted(self._registry))
            except Exception:  # keep the loop alive; the next turn retries
                log.exception("housekeeping")
            now = self.clock.now()
            wait = _BEAT if due is None else min(_BEAT, max(0.0, due - now))
            self._sleeps_until = now + wait
            self._wake.wait(wait)
            self._wake.clear()

    def _timers_added(self, due: float) -> None:
        """Wake the housekeeping thread if a new timer is due before it looks again.

        A timer due later is found when it next looks, at most ``_BEAT`` from
        now: waking it for each one (a stop timer per stop) costs two queries a
        fire. A clock at or past the planned look (a test's clock moved on, a
        slow turn) wakes it too.
        """
        planned = self._sleeps_until
        if due < planned or self.clock.now() >= planned:
            self._wake.set()

    # -- events ------------------------------------------------------------------

    def _committed(self, writes: Sequence[Write]) -> None:
        published = awaited = False
        for w in writes:
            published = published or bool(w.events)
            if w.entity is not None and w.entity.id in self._awaited:
                # Kept only while someone waits (until()): a map of every entity ever
                # committed would grow without end.
                self._newest[w.entity.id] = w.entity
                awaited = True
        if published or awaited:
            with self._events:
                self._published += published
                if awaited or self._watchers:
                    self._events.notify_all()

    def until(
        self,
        entity: str | Entity,
        holds: Callable[[Entity], bool],
        *,
        timeout: float | None = None,
        poll: float = 0.5,
    ) -> Entity | None:
        """Block until the entity, as committed, satisfies ``holds``; the entity then.

        ``None`` after ``timeout`` seconds (never, if None); Unavailable if the
        engine closes. What this engine commits is seen at once, from the rows
        it wrote, with no query; commits of other engines on the same database
        by reading the entity every ``poll`` seconds.
        """
        self._check_open()
        deadline = None if timeout is None else time.monotonic() + timeout
        if isinstance(entity, Entity):
            entity_id = entity.id
        else:
            entity_id = entity if entity in self._cache else self._row(entity).id
        with self._events:
            self._awaited[entity_id] = self._awaited.get(entity_id, 0) + 1
        try:
            # Registered first: whatever commits from here on is in _newest.
            row = self._newest.get(entity_id) or self._row(entity_id)
            while True:
                with self._events:
                    newest = self._newest.get(entity_id)
                    if newest is not None and newest.version > row.version:
                        row = newest
                    current = Entity.from_row(row)
                    if holds(current):
                        return current
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return None
                    self._check_open()
                    self._events.wait(poll if remaining is None else min(poll, remaining))
                    self._check_open()
                    newest = self._newest.get(entity_id)
                    if newest is not None and newest.version > row.version:
                        continue  # this engine committed it: no need to read
                fresh = self._row(entity_id)  # another engine may have moved it
                if fresh.version > row.version:
                    row = fresh
        finally:
            with self._events:
                self._awaited[entity_id] -= 1
                if not self._awaited[entity_id]:
                    del self._awaited[entity_id]
                    self._newest.pop(entity_id, None)

    def sequence(self) -> int:
        """The seq of the newest outbox event: watch from here to see only what follows."""
        self._check_open()
        return self.store.last_event()

    def watch(
        self,
        since: int = 0,
        *,
        filter: Mapping[str, str] | Callable[[Event], bool] | None = None,
        timeout: float | None = None,
        poll: float = 0.5,
    ) -> Iterator[Event]:
        """The outbox events after sequence ``since``, in order, waiting for new ones.

        ``filter`` keeps events whose ``type``, ``chart``, ``entity`` (id or
        name) match the given values, or for which a callable is true. The
        iterator ends after ``timeout`` seconds without a new event (never,
        if None) or when the engine closes. Resume with the last ``seq`` seen.
        """
        self._check_open()
        if not isinstance(since, int) or since < 0:
            raise InvalidParameter(f"since must be a sequence number >= 0, got {since!r}")
        # Checked here, at the call, not at the first next() of the generator.
        return self._events_after(since, _event_filter(filter), timeout, poll)

    def _events_after(
        self,
        since: int,
        keep: Callable[[Event], bool],
        timeout: float | None,
        poll: float,
    ) -> Iterator[Event]:
        last = since
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._closed:
            published = self._published
            rows = self.store.events(after=last, limit=500)
            for r in rows:
                last = r.seq
                ev = Event.from_row(r)
                if keep(ev):
                    yield ev
                    if timeout is not None:
                        deadline = time.monotonic() + timeout
            if rows:
                continue
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return
            with self._events:
                if self._published != published:
                    continue  # a commit came between the read and now: read again
                self._watchers += 1
                try:
                    self._events.wait(poll if remaining is None else min(poll, remaining))
                finally:
                    self._watchers -= 1


def _event_filter(
    spec: Mapping[str, str] | Callable[[Event], bool] | None,
) -> Callable[[Event], bool]:
    if spec is None:
        return lambda ev: True
    if callable(spec):
        return spec
    unknown = set(spec) - {"type", "chart", "entity"}
    if unknown:
        raise InvalidParameter(
            f"unknown event filter keys: {sorted(unknown)} (use type, chart, entity)"
        )

    def keep(ev: Event) -> bool:
        return (
            spec.get("type", ev.type) == ev.type
            and spec.get("chart", ev.chart) == ev.chart
            and spec.get("entity", ev.entity_id) in (ev.entity_id, ev.entity_name)
        )

    return keep


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
