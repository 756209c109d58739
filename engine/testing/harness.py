"""The harness: a real Engine driven by actions, checked against the pure core after each.

:class:`Harness` owns an :class:`engine.Engine` on a database of its own (a
SQLite file in a temporary directory, unless given a URL), registers one
chart with the given bindings wrapped so that it can see every guard, step
and undo and make any of them fail, and applies actions
(:mod:`engine.testing.faults`): create an entity, fire an event (with a
fault plan), repeat a keyed fire, restart. After every action it checks
what the engine did against what :func:`engine.step` says it must do, and
:meth:`Harness.check` checks the invariants that hold at rest.

What is checked
---------------
After a fire, with ``pre`` the entity as stored before:

* **the core is the oracle**: ``engine.step`` on ``pre`` (with the
  bindings' conditions and the event's params) refuses, or gives a plan.
  A refusal must be raised with the same category and message, and change
  nothing: entity (configuration, data, version, history), journal,
  outbox; no guard or step may run.
* **guards**: they run in the plan's order; one that raises stops the fire
  with its category (a ChartdError's own, else System) and nothing is
  written. With a guard oracle, a guard must refuse exactly when its
  oracle says so, with the category it says.
* **a saga that commits**: every step ran once, in order; the entity is in
  the plan's configuration and history, with the data the last step left
  (or the plan's), its version bumped twice (write-ahead and commit) or
  once (every step internal, no ``via``); one journal entry, ``committed``,
  each step ``done``; outbox: one ``transition`` event with the from/to
  configurations, then the steps' own events.
* **a saga that fails**: the completed steps were undone newest first,
  each once (steps without an undo skipped); the entity is in the plan's
  failure configuration with the source data plus the recorded fields;
  one journal entry, ``failed`` (``compensation_failed`` if an undo
  failed), with the error's category; a ``transition.failed`` event.
* **follow-ups** (``then``, ``on_failure.then``) are decided by the core
  as well and checked the same way.
* **idempotency**: a repeated key returns the recorded result (or raises
  the recorded error) and changes nothing; a key reused for another
  request is refused with InvalidParameter and changes nothing.
* **crashes**: the engine is abandoned at the crash point with only what
  reached its database (see :mod:`engine.testing.crashable`), a new engine
  opens the same database later (the dead one's heartbeat is old), and
  recovery must finish a transition whose every step is journaled done
  and compensate any other (every step not known undone, newest first).

At rest (:meth:`Harness.check`):

* the stored snapshot of every entity equals the one the harness expects
  (what the engine returned, and what it must have kept across restarts);
* the journal is append-only: each entity's transitions seen before are
  unchanged, in order; none is left running; versions chain
  (``version_from`` of each is ``version_to`` of the one before, and the
  entity's version is the last ``version_to``); journal sequence numbers
  increase, and (on a database of its own) are 1..N with no gap;
* the outbox is append-only with sequence numbers without gap, and every
  finished transition has exactly one ``transition`` or
  ``transition.failed`` event;
* nothing a step made (``do`` returned) and nobody undid belongs to a
  transition that did not commit (unless its undo failed, which is
  recorded);
* the user's own invariants hold.
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import json
import secrets
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import hypothesis
import hypothesis.errors
import sqlalchemy as sa

import engine
from engine import core
from engine.core import Chart, Plan, Snapshot
from engine.errors import Category, ChartdError, InvalidParameter, System, error_for
from engine.ports import Store
from engine.runtime import Bindings, Context, Engine, Entity, Result, Step, TransitionRecord
from engine.runtime.engine import MAX_FOLLOW_UPS
from engine.store import SqlStore, open_store, schema
from engine.testing.crashable import CrashableStore
from engine.testing.faults import (
    Crash,
    Create,
    Fault,
    Fire,
    InjectedFault,
    Restart,
    Retry,
    SimulatedCrash,
)
from engine.testing.standins import leaks

__all__ = ["GuardOracle", "Harness", "Invariant"]

GuardOracle = Callable[[Snapshot, Mapping[str, Any]], "Category | str | None"]
"""What a guard must answer for (source snapshot, params): the category it refuses with, or None."""

Invariant = Callable[[Engine], None]
"""A check of the user's own, run at rest after every action; raises AssertionError to fail."""

_FINISHED = ("committed", "failed", "compensation_failed")
_PASSED = ("done", "compensated", "compensation_failed")  # a step whose do had completed
_LATER = 3600.0  # how far the clock moves at a crash: the dead engine's heartbeat is stale


class _Clock:
    """The harness's time: still, except that a crash moves it on (see _LATER)."""

    def __init__(self) -> None:
        self.t = 1_000_000.0

    def now(self) -> float:
        return self.t


@dataclass(slots=True)
class _Call:
    """One guard, do or undo the engine called, as the wrapper saw it."""

    kind: Literal["guard", "do", "undo"]
    tid: str
    entity_id: str
    index: int
    name: str
    generation: int
    ok: bool = True
    error: BaseException | None = None
    injected: bool = False
    data: dict[str, Any] | None = None  # ctx.data after a do that returned
    expected: Category | None = None  # a guard oracle's answer


@dataclass(slots=True)
class _Observation:
    """One entity as stored, its journal, and the size of the outbox."""

    entity: Entity
    records: list[TransitionRecord]
    outbox: int

    @property
    def snapshot(self) -> Snapshot:
        return self.entity.snapshot

    def keyed(self, key: str) -> TransitionRecord | None:
        return next((r for r in self.records if r.idempotency_key == key), None)


@dataclass(slots=True)
class _Expected:
    """What one run (a fire, or a follow-up) must leave: the snapshot, how many records."""

    snapshot: Snapshot
    records: int = 0
    error: ChartdError | None = None
    follow: tuple[str, Mapping[str, Any], Snapshot] | None = None


class Harness:
    """A real engine with one chart, driven by actions and checked after each one.

    ``url`` is the database (default: a SQLite file in a new temporary
    directory, removed on :meth:`close`); a URL that several runs share is
    fine (entity names are unique per harness) except an in-memory one,
    which cannot survive a restart. ``faults`` lets :class:`Fault` plans
    act, ``crashes`` lets their crashes act. ``guard_oracles`` say what
    guards must answer; ``invariants`` are the user's own checks at rest;
    ``events`` are those an enabled fire (``Fire(event=None)``) picks from.
    """

    def __init__(
        self,
        chart: Chart,
        bindings: Bindings,
        *,
        url: str | None = None,
        faults: bool = True,
        crashes: bool = True,
        guard_oracles: Mapping[str, GuardOracle] | None = None,
        invariants: Sequence[Invariant] = (),
        wrap_store: Callable[[Store], Store] | None = None,
        events: Sequence[str] | None = None,
    ) -> None:
        self.chart = chart
        # What an enabled fire (Fire.event None) may pick from.
        self.pickable = sorted(
            events if events is not None else (e for e in chart.events if not e.startswith("done."))
        )
        # The oracle: the same model compiled apart, so the engine's memo is not shared.
        self.oracle = Chart(chart.model)
        self.user = bindings
        self.faults = faults
        self.guard_oracles = dict(guard_oracles or {})
        self.invariants = list(invariants)
        self.wrap_store = wrap_store
        self._tmp: str | None = None
        self._migrated = False
        self._poolable = url is None and wrap_store is None
        pooled = _POOL.take() if self._poolable else None
        # A database the kit made (fresh or pooled) holds only its runs: every journal entry
        # in it is checked for gaps, not only this harness's.
        self.own_database = url is None
        if pooled is not None:
            self._tmp, url = pooled.tmp, pooled.url
            self._migrated = True
        elif url is None:
            self._tmp = tempfile.mkdtemp(prefix="chartd-test-")
            _copy_template(Path(self._tmp) / "chartd.db")
            url = f"sqlite:///{self._tmp}/chartd.db?synchronous=off"
            self._migrated = True
        if url in ("sqlite://", "sqlite:///:memory:"):
            crashes = False
        self.crashes = crashes and faults
        self.restarts = url not in ("sqlite://", "sqlite:///:memory:")
        self.url = url
        self.tag = secrets.token_hex(3)
        # A database keeps its clock: its dead engines' heartbeats must stay in the past.
        self.clock = pooled.clock if pooled is not None else _Clock()
        self.bindings = self._wrap(bindings)
        self.generation = 0
        self.calls: list[_Call] = []
        # What the dos that returned emitted, per transition: its committed outbox events.
        self.emitted: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        self.fault: Fault | None = None
        self.main_tid: str | None = None
        self.entities: list[str] = []
        self.names: dict[str, str] = {}
        self.expected: dict[str, Snapshot] = {}
        self.journal: dict[str, list[TransitionRecord]] = {}
        self.requests: list[Fire] = []
        self.made: dict[tuple[str, str, int], None] = {}
        self.proxy: CrashableStore
        self.engine: Engine
        self._sql: SqlStore | None = None
        self._uses = pooled.uses + 1 if pooled is not None else 1
        if pooled is not None:
            self._sql, self.proxy, self.engine = pooled.sql, pooled.proxy, pooled.engine
            self.generation = 1
            self.engine.register(self.chart, self.bindings)
        else:
            self._open()
        self.first_event = self.proxy.last_event()
        self.outbox: list[engine.Event] = []
        self._closed = False

    # -- the engine ----------------------------------------------------------------------

    def _open(self) -> None:
        # One SQL store for the harness's life: opening it (and migrating, the first time)
        # costs more than a short run. An engine's restart or crash needs no new one: the
        # store holds no state between its commits, only connections.
        if self._sql is None:
            self._sql = SqlStore(self.url) if self._migrated else open_store(self.url)
            self._migrated = True
        store: Store = _Kept(self._sql)
        if self.wrap_store is not None:
            store = self.wrap_store(store)
        self.proxy = CrashableStore(store)
        self.generation += 1
        self.engine = Engine(self.proxy, clock=self.clock, timers=False)
        try:
            self.engine.register(self.chart, self.bindings)
        except BaseException:
            self.engine.close()
            raise

    def close(self) -> None:
        """Close the engine and remove the temporary database, if the harness made it.

        A healthy engine on a database of the harness's own is kept for the
        next harness instead (opening one costs more than a short run):
        entity names are unique per harness, so runs do not see each other.
        """
        if self._closed:
            return
        self._closed = True
        healthy = not (self.proxy.crashed or self.proxy.dead) and not self.proxy.unfinished()
        if (
            self._poolable
            and healthy
            and self._tmp is not None
            and self._sql is not None
            and self._uses < _REUSES
        ):
            pooled = _Pooled(
                self._tmp, self.url, self._sql, self.proxy, self.engine, self.clock, self._uses
            )
            if _POOL.give(pooled):
                return
        try:
            self.engine.close()
        finally:
            if self._sql is not None:
                self._sql.close()
            if self._tmp is not None:
                shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> Harness:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- wrapped bindings ------------------------------------------------------------------

    def _wrap(self, bindings: Bindings) -> Bindings:
        guards = {name: self._guard(name, fn) for name, fn in bindings.guards.items()}
        steps = {
            name: Step(
                self._do(name, s),
                self._undo(name, s) if s.undo is not None else None,
                external=s.external,
            )
            for name, s in bindings.steps.items()
        }
        return Bindings(guards=guards, steps=steps, conditions=bindings.conditions)

    def _injected(self, what: str) -> BaseException:
        fault = self.fault
        if fault is not None and fault.category is not None:
            return error_for(fault.category, f"injected failure of {what}")
        return InjectedFault(f"injected failure of {what}")

    def _crash_at(self, point: str, index: int) -> bool:
        fault = self.fault
        crash = fault.crash if fault is not None else None
        return crash is not None and self.crashes and crash.at == point and crash.index == index

    def _is_main(self, ctx: Context) -> bool:
        """Whether ``ctx`` belongs to the fire the harness made (not a follow-up)."""
        if self.main_tid is None:
            self.main_tid = ctx.transition_id
        return self.main_tid == ctx.transition_id and self.fault is not None

    def _guard(self, name: str, fn: Callable[[Context], None]) -> Callable[[Context], None]:
        def guard(ctx: Context) -> None:
            if self.proxy.crashed:
                raise SimulatedCrash("after the crash")
            index = sum(1 for c in self.calls if c.kind == "guard" and c.tid == ctx.transition_id)
            call = _Call("guard", ctx.transition_id, ctx.entity_id, index, name, self.generation)
            oracle = self.guard_oracles.get(name)
            if oracle is not None:
                answer = oracle(ctx.source, ctx.params)
                call.expected = Category(answer) if answer is not None else None
            self.calls.append(call)
            main = self._is_main(ctx)
            if main and self._crash_at("guard", index):
                self.proxy.crashed = True
                raise SimulatedCrash(f"in guard {name}")
            if main and self.faults and self.fault and self.fault.guard == index:
                call.ok, call.injected = False, True
                call.error = self._injected(f"guard {name}")
                raise call.error
            try:
                fn(ctx)
            except Exception as exc:
                call.ok, call.error = False, exc
                raise

        return guard

    def _do(self, name: str, step: Step) -> Callable[[Context], Any]:
        def do(ctx: Context) -> Any:
            if self.proxy.crashed:
                raise SimulatedCrash("after the crash")
            assert ctx.step_index is not None
            index = ctx.step_index
            call = _Call("do", ctx.transition_id, ctx.entity_id, index, name, self.generation)
            self.calls.append(call)
            main = self._is_main(ctx)
            if main and self._crash_at("do", index):
                self.proxy.crashed = True
                raise SimulatedCrash(f"before step {name}")
            if main and self.faults and self.fault and self.fault.step == index:
                call.ok, call.injected = False, True
                call.error = self._injected(f"step {name}")
                raise call.error
            emitted = len(ctx.events)
            try:
                payload = step.do(ctx)
            except Exception as exc:
                call.ok, call.error = False, exc
                raise
            call.data = copy.deepcopy(ctx.data)
            self.emitted.setdefault(ctx.transition_id, []).extend(
                copy.deepcopy(ctx.events[emitted:])
            )
            if step.external and step.undo is not None:
                self.made[(ctx.entity_id, ctx.transition_id, index)] = None
            if main and self._crash_at("done", index):
                self.proxy.crashed = True
                raise SimulatedCrash(f"after step {name}")
            return payload

        return do

    def _undo(self, name: str, step: Step) -> Callable[[Context, Any], None]:
        assert step.undo is not None
        undo_fn = step.undo

        def undo(ctx: Context, payload: Any) -> None:
            if self.proxy.crashed:
                raise SimulatedCrash("after the crash")
            assert ctx.step_index is not None
            index = ctx.step_index
            call = _Call("undo", ctx.transition_id, ctx.entity_id, index, name, self.generation)
            self.calls.append(call)
            main = self._is_main(ctx)
            if main and self._crash_at("undo", index):
                self.proxy.crashed = True
                raise SimulatedCrash(f"before the undo of {name}")
            if main and self.faults and self.fault and index in self.fault.undo:
                call.ok, call.injected = False, True
                call.error = self._injected(f"the undo of {name}")
                raise call.error
            try:
                undo_fn(ctx, payload)
            except Exception as exc:
                call.ok, call.error = False, exc
                raise
            self.made.pop((ctx.entity_id, ctx.transition_id, index), None)
            if main and self._crash_at("undone", index):
                self.proxy.crashed = True
                raise SimulatedCrash(f"after the undo of {name}")

        return undo

    # -- actions ---------------------------------------------------------------------------

    def apply(self, action: Create | Fire | Retry | Restart) -> None:
        """Do ``action`` and check what the engine did; AssertionError names what is wrong."""
        if isinstance(action, Create):
            self.create(action)
        elif isinstance(action, Fire):
            self.fire(action)
        elif isinstance(action, Retry):
            self.retry(action)
        else:
            self.restart()

    def _fields(self, entity_id: str) -> dict[str, Any]:
        return {"id": entity_id, "entity": self.names[entity_id]}

    def create(self, action: Create) -> None:
        """Create an entity; it must start in the chart's settled initial snapshot."""
        name = f"e{self.tag}-{len(self.names)}"
        outbox = self.proxy.last_event()
        data = json.loads(json.dumps(action.data))
        try:
            expected = self.oracle.initial_snapshot(data, conditions=self.user.conditions)
        except ChartdError as refused:
            with _raises(refused):
                self.engine.create(self.chart.name, name, data)
            assert self.proxy.last_event() == outbox, "a refused create wrote an event"
            return
        created = self.engine.create(self.chart.name, name, data)
        assert created.snapshot == expected, (
            f"a new entity is {created.snapshot}, the chart says {expected}"
        )
        self.entities.append(created.id)
        self.names[created.id] = created.name
        self.expected[created.id] = expected
        self.journal[created.id] = []

    def retry(self, action: Retry) -> None:
        """Repeat a keyed fire exactly (same entity, event, params, key), without faults."""
        if self.requests:
            self._fire(replace(self.requests[action.request % len(self.requests)], fault=None))

    def restart(self) -> None:
        """Close the engine cleanly and open a new one: what is stored must be what was."""
        if not self.restarts:
            return
        _tally("restart")
        self.engine.close()
        self._open()
        for entity_id in self.entities:
            stored = self.engine.get(entity_id)
            assert stored.snapshot == self.expected[entity_id], (
                f"after a restart entity {stored.name} is {stored.snapshot}, "
                f"before it it was {self.expected[entity_id]}"
            )

    def _entity(self, entity_id: str) -> Entity:
        """The entity as stored (read from the store: the engine's get() is the same row)."""
        row = self.proxy.entity(entity_id)
        assert row is not None, f"entity {entity_id[:12]} is gone from the database"
        return Entity.from_row(row)

    def _records(self, entity_id: str) -> list[TransitionRecord]:
        """The entity's journal as stored, as the engine's history() shows it."""
        return [TransitionRecord.from_row(t) for t in self.proxy.transitions(entity_id)]

    def _observe(self, entity_id: str) -> _Observation:
        return _Observation(
            self._entity(entity_id), self._records(entity_id), self.proxy.last_event()
        )

    def fire(self, action: Fire) -> None:
        """Fire an event (with its fault plan), then check the outcome against the core."""
        self._fire(action, remember=True)

    def _fire(self, action: Fire, *, remember: bool = False) -> None:
        if not self.entities:
            return
        entity_id = self.entities[action.entity % len(self.entities)]
        params = json.loads(json.dumps(action.params))
        pre = self._observe(entity_id)
        if action.event is None:
            enabled = [
                e
                for e in self.pickable
                if isinstance(self._decide(entity_id, pre.snapshot, e, params), Plan)
            ]
            if not enabled:
                _tally("fire: no event is enabled")
                return
            picked = enabled[action.pick % len(enabled)]
            _note(f"{action!r} fires {picked!r}")
            action = replace(action, event=picked)
        assert action.event is not None
        if remember and action.key is not None:
            self.requests.append(action)
        self.calls = []
        self.main_tid = None
        fault = action.fault if self.faults else None
        crash = fault.crash if fault is not None and self.crashes else None
        self.fault = fault
        self.proxy.arm(crash.at if crash is not None else None)
        outcome: Result | ChartdError | None = None
        try:
            outcome = self.engine.fire(entity_id, action.event, params, idempotency_key=action.key)
        except ChartdError as exc:
            outcome = exc
        except SimulatedCrash:
            outcome = None
        finally:
            self.fault = None
            self.proxy.arm(None)
        if outcome is None or self.proxy.crashed:
            assert crash is not None, "the engine crashed without a crash planned"
            self._crashed(entity_id, pre, action.event, params, action.key, crash)
            return
        self.proxy.settle()
        self._check_fire(entity_id, pre, action.event, params, action.key, outcome)

    # -- checking a fire -------------------------------------------------------------------

    def _decide(
        self, entity_id: str, snapshot: Snapshot, event: str, params: Mapping[str, Any]
    ) -> Plan | ChartdError:
        try:
            return core.step(
                self.oracle,
                snapshot,
                event,
                params,
                conditions=self.user.conditions,
                fields=self._fields(entity_id),
            )
        except ChartdError as refused:
            return refused

    def _check_fire(
        self,
        entity_id: str,
        pre: _Observation,
        event: str,
        params: dict[str, Any],
        key: str | None,
        outcome: Result | ChartdError,
    ) -> None:
        post = self._observe(entity_id)
        what = f"{event!r} on {pre.entity.name} in {pre.entity.state!r}"
        recorded = pre.keyed(key) if key is not None else None
        if recorded is not None:
            _tally("fire: a repeated idempotency key")
            self._check_replay(pre, post, recorded, event, params, outcome, what)
            return
        decision = self._decide(entity_id, pre.snapshot, event, params)
        if isinstance(decision, ChartdError):
            _tally(f"fire: refused by the chart ({decision.category.value})")
            _same_error(outcome, decision, f"{what}: the core refuses")
            self._unchanged(pre, post, f"{what}, refused by the chart,")
            assert not self.calls, f"{what} was refused by the chart but ran {self._ran()}"
            return
        new = post.records[len(pre.records) :]
        by_tid = _group(self.calls)
        expected = self._check_run(
            entity_id, pre.snapshot, decision, key, new, by_tid, outcome, what, main=True
        )
        follows = 0
        # The engine fires at most MAX_FOLLOW_UPS follow-ups in a chain, then stops.
        while expected.follow is not None and follows < MAX_FOLLOW_UPS:
            follows += 1
            follow_event, follow_params, snapshot = expected.follow
            taken = new[expected.records :]
            decision = self._decide(entity_id, snapshot, follow_event, follow_params)
            if isinstance(decision, ChartdError):
                break  # the engine logs a refused follow-up; nothing more happens
            expected = self._check_run(
                entity_id,
                snapshot,
                decision,
                None,
                taken,
                by_tid,
                None,
                f"the follow-up {follow_event!r} of {what}",
                main=False,
            )
            new = taken
        assert len(new) == expected.records, (
            f"{what}: the journal has {len(new) - expected.records} unexpected entries"
        )
        self._expect(entity_id, expected.snapshot, post, what)

    def _check_run(
        self,
        entity_id: str,
        source: Snapshot,
        plan: Plan,
        key: str | None,
        new: Sequence[TransitionRecord],
        by_tid: dict[str, list[_Call]],
        outcome: Result | ChartdError | None,
        what: str,
        *,
        main: bool,
    ) -> _Expected:
        """Check one decided fire (the harness's, or a follow-up) against ``plan``."""
        record = new[0] if new else None
        tid = record.id if record is not None else _first_unclaimed(by_tid, new)
        calls = by_tid.pop(tid, []) if tid is not None else []
        guards = [c for c in calls if c.kind == "guard"]
        dos = [c for c in calls if c.kind == "do"]
        undos = [c for c in calls if c.kind == "undo"]
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
            elif not call.ok and not call.injected and call.name in self.guard_oracles:
                raise AssertionError(
                    f"{what}: guard {call.name} refused ({call.error!r}); its oracle lets the "
                    "event through"
                )
        refused = next((c for c in guards if not c.ok), None)
        if refused is not None:
            assert refused is guards[-1] and not dos and not undos, (
                f"{what}: guard {refused.name} refused but the fire went on: {self._ran()}"
            )
            assert record is None, f"{what}: a guard refused but the journal has {record}"
            error = _as_engine_error(refused.error, f"guard {refused.name}")
            _tally(f"{'fire' if main else 'follow-up'}: a guard refused")
            if main:
                _same_error(outcome, error, f"{what}: guard {refused.name} refused")
            return _Expected(source, 0, error)
        assert len(guards) == len(plan.guards), (
            f"{what}: ran {len(guards)} of the guards {plan.guards}"
        )
        steps = [self.user.steps[n] for n in plan.steps]
        saga = any(s.external for s in steps) or plan.via is not None
        failed = next((c for c in dos if not c.ok), None)
        expected_dos = list(plan.steps[: len(dos)])
        assert [c.name for c in dos] == expected_dos and [c.index for c in dos] == list(
            range(len(dos))
        ), f"{what}: steps ran as {[c.name for c in dos]}, the plan says {plan.steps}"
        assert record is not None, f"{what}: nothing was journaled"
        assert record.id == tid and record.event == plan.event, (
            f"{what}: the journal's entry is {record.event!r} {record.id}"
        )
        assert dict(record.params) == dict(plan.params) and record.idempotency_key == key, (
            f"{what}: journaled with params {record.params} and key {record.idempotency_key!r}"
        )
        assert record.source == source.configuration, (
            f"{what}: journaled from {record.source}, it was in {source.configuration}"
        )
        assert record.version_from == source.version, (
            f"{what}: journaled from version {record.version_from}, it was at {source.version}"
        )
        bump = 2 if saga else 1
        _tally(
            f"{'fire' if main else 'follow-up'}: "
            + ("committed" if failed is None and not undos else "failed and compensated")
        )
        if failed is None and not undos:
            return self._committed(entity_id, source, plan, record, dos, bump, outcome, what, main)
        return self._failed(
            source, plan, record, dos, undos, steps, failed, bump, outcome, what, main
        )

    def _committed(
        self,
        entity_id: str,
        source: Snapshot,
        plan: Plan,
        record: TransitionRecord,
        dos: list[_Call],
        bump: int,
        outcome: Result | ChartdError | None,
        what: str,
        main: bool,
    ) -> _Expected:
        assert len(dos) == len(plan.steps), (
            f"{what}: committed after {len(dos)} of the steps {plan.steps}"
        )
        data = dos[-1].data if dos and dos[-1].data is not None else dict(plan.snapshot.data)
        after = Snapshot(
            plan.snapshot.configuration, data, source.version + bump, plan.snapshot.history
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
        if main:
            assert isinstance(outcome, Result), f"{what}: committed, but fire raised {outcome!r}"
            assert not outcome.replayed and outcome.transition_id == record.id, (
                f"{what}: fire returned {outcome}"
            )
            assert outcome.entity.snapshot == after, (
                f"{what}: fire returned {outcome.entity.snapshot}, expected {after}"
            )
        follow: tuple[str, Mapping[str, Any], Snapshot] | None = None
        for t in plan.transitions:
            if t.then is not None and core.holds(
                t.then.when, after, plan.params, self.user.conditions
            ):
                follow = (t.then.event, {}, after)
                break
        return _Expected(after, 1, None, follow)

    def _failed(
        self,
        source: Snapshot,
        plan: Plan,
        record: TransitionRecord,
        dos: list[_Call],
        undos: list[_Call],
        steps: list[Step],
        failed: _Call | None,
        bump: int,
        outcome: Result | ChartdError | None,
        what: str,
        main: bool,
    ) -> _Expected:
        done = [c.index for c in dos if c.ok]
        owed = [i for i in reversed(done) if steps[i].undo is not None]
        assert [c.index for c in undos] == owed, (
            f"{what}: after a failure the undos ran for steps {[c.index for c in undos]}, "
            f"the completed steps newest first are {owed}"
        )
        if failed is not None:
            assert failed is dos[-1], f"{what}: steps ran after step {failed.name} failed"
            error = _as_engine_error(failed.error, f"step {failed.name}")
        else:
            # Every step ran, then the final commit was refused: the saga was undone.
            assert isinstance(outcome, ChartdError) or not main, (
                f"{what}: undone after every step, but fire returned {outcome!r}"
            )
            error = outcome if isinstance(outcome, ChartdError) else System("refused")
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
        configuration, policy = plan.failure_at(len(plan.steps) if failed is None else failed.index)
        data = dict(source.data)
        for name in policy.record if policy else ():
            if name == "error":
                data[name] = record.error_message
            else:
                data[name] = getattr(error if failed is None else failed.error, name, None)
        after = Snapshot(configuration, data, source.version + bump, source.history)
        assert record.target == after.configuration, (
            f"{what}: a failed saga is journaled to {record.target}, the plan's failure "
            f"configuration is {after.configuration}"
        )
        assert record.version_to == after.version, (
            f"{what}: a failed saga is journaled to version {record.version_to}, "
            f"expected {after.version}"
        )
        if main:
            _same_category(outcome, error, f"{what}: the saga failed")
        follow: tuple[str, Mapping[str, Any], Snapshot] | None = None
        then = policy.then if policy else None
        if then is not None and core.holds(
            then.when,
            Snapshot(after.configuration, after.data, after.version),
            plan.params,
            self.user.conditions,
        ):
            follow = (then.event, {}, after)
        return _Expected(after, 1, error, follow)

    def _check_replay(
        self,
        pre: _Observation,
        post: _Observation,
        recorded: TransitionRecord,
        event: str,
        params: dict[str, Any],
        outcome: Result | ChartdError,
        what: str,
    ) -> None:
        self._unchanged(pre, post, f"{what}, a repeated idempotency key,")
        assert not self.calls, f"{what}: a repeated key ran {self._ran()}"
        if recorded.event != event or dict(recorded.params) != params:
            assert isinstance(outcome, InvalidParameter), (
                f"{what}: a key used for another request must be refused, got {outcome!r}"
            )
        elif recorded.status == "committed":
            assert isinstance(outcome, Result) and outcome.replayed, (
                f"{what}: a repeated key must replay the result, got {outcome!r}"
            )
            assert outcome.transition_id == recorded.id and outcome.entity == post.entity, (
                f"{what}: the replay returned {outcome}"
            )
        else:
            assert recorded.error_category is not None
            recorded_error = error_for(recorded.error_category, recorded.error_message or "")
            _same_error(outcome, recorded_error, f"{what}: a repeated key of a failed fire")

    def _unchanged(self, pre: _Observation, post: _Observation, what: str) -> None:
        assert post.entity == pre.entity, f"{what} changed the entity: {post.entity}"
        assert post.records == pre.records, f"{what} changed the journal"
        assert post.outbox == pre.outbox, f"{what} wrote events"

    def _expect(self, entity_id: str, snapshot: Snapshot, post: _Observation, what: str) -> None:
        assert post.snapshot == snapshot, (
            f"{what}: the entity is stored as {post.snapshot}, expected {snapshot}"
        )
        self.expected[entity_id] = snapshot

    def _ran(self) -> str:
        return ", ".join(f"{c.kind} {c.name}" for c in self.calls) or "nothing"

    # -- crashes ---------------------------------------------------------------------------

    def _crashed(
        self,
        entity_id: str,
        pre: _Observation,
        event: str,
        params: dict[str, Any],
        key: str | None,
        crash: Crash,
    ) -> None:
        """The process died: keep what reached the disk, reopen later, check recovery."""
        what = f"{event!r} on {pre.entity.name}, crashed at {crash!r},"
        self.proxy.cut(crash.keep)
        self.engine.close()  # its last flush goes nowhere: the store is dead
        assert self._sql is not None
        journal = self._sql.transitions(entity_id)  # what is on disk, before recovery
        pending = {t.id: t for t in journal if t.status in ("running", "compensating")}
        assert len(pending) <= 1, f"{what}: {len(pending)} transitions left running"
        self.clock.t += _LATER
        self._open()  # registering the chart recovers what the dead engine left
        post = self._observe(entity_id)
        new = post.records[len(pre.records) :]
        decision = self._decide(entity_id, pre.snapshot, event, params)
        _tally(f"crash at {crash.at}")
        if not new:
            _tally("crash: nothing was journaled")
            assert post.entity.snapshot == pre.snapshot, (
                f"{what}: nothing was journaled, but the entity changed to {post.snapshot}"
            )
            self.expected[entity_id] = post.snapshot
            return
        assert isinstance(decision, Plan), f"{what}: the chart refuses it, yet {new} were journaled"
        record = new[0]
        assert len(new) == 1, f"{what}: journaled {len(new)} transitions (follow-ups ran?)"
        assert record.status in _FINISHED, f"{what}: left {record.status} after recovery"
        assert record.version_from == pre.snapshot.version and record.idempotency_key == key, (
            f"{what}: journaled from version {record.version_from} with key "
            f"{record.idempotency_key!r}"
        )
        later = [c for c in self.calls if c.generation == self.generation]
        assert not [c for c in later if c.kind != "undo"], (
            f"{what}: recovery ran {', '.join(f'{c.kind} {c.name}' for c in later)}"
        )
        steps = [self.user.steps[n] for n in decision.steps]
        was = pending.get(record.id)
        if was is None:
            # The old engine finished it before it died; recovery had nothing to do.
            _tally("crash: finished before the crash")
            assert not later, f"{what}: recovery undid steps of a finished transition"
            if record.status == "committed":
                assert record.target == decision.snapshot.configuration, (
                    f"{what}: committed to {record.target}, the plan says "
                    f"{decision.snapshot.configuration}"
                )
            else:
                configuration, _ = decision.failure_at(
                    _failed_at({s.index: s.status for s in record.steps}, len(decision.steps))
                )
                assert record.target == configuration, (
                    f"{what}: failed to {record.target}, the plan's failure configuration is "
                    f"{configuration}"
                )
            assert post.snapshot.configuration == record.target
            self.expected[entity_id] = post.snapshot
            return
        journaled = {s.index: s.status for s in was.steps}
        names = list(decision.steps)
        complete = was.status == "running" and all(
            journaled.get(i) == "done" for i in range(len(names))
        )
        _tally("crash: recovery " + ("committed" if complete else "compensated"))
        if complete:
            assert not later, f"{what}: recovery of a complete saga undid {later}"
            dos = [c for c in self.calls if c.kind == "do" and c.tid == record.id and c.ok]
            data = dos[-1].data if dos and dos[-1].data is not None else decision.snapshot.data
            assert dict(post.snapshot.data) == dict(data), (
                f"{what}: recovery committed the data {post.snapshot.data}, the last step "
                f"left {data}"
            )
            assert (
                record.status == "committed" and record.target == decision.snapshot.configuration
            ), (
                f"{what}: every step was journaled done, so recovery must commit; it left "
                f"{record.status} at {record.target}"
            )
            assert post.snapshot.configuration == decision.snapshot.configuration
            assert post.snapshot.history == decision.snapshot.history
        else:
            owed = [
                i
                for i in reversed(range(len(names)))
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
            configuration, policy = decision.failure_at(_failed_at(journaled, len(names)))
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
        assert record.version_to == post.snapshot.version
        self.expected[entity_id] = post.snapshot

    # -- at rest -----------------------------------------------------------------------------

    def check(self) -> None:
        """The invariants at rest; AssertionError names the first one that does not hold."""
        seqs: list[int] = []
        for entity_id in self.entities:
            stored = self._entity(entity_id)
            expected = self.expected[entity_id]
            assert stored.snapshot == expected, (
                f"entity {stored.name} is stored as {stored.snapshot}, expected {expected}"
            )
            assert not any(self.chart.state(s).transient for s in stored.configuration), (
                f"entity {stored.name} rests in a transient state: {stored.configuration}"
            )
            records = self._records(entity_id)
            seen = self.journal[entity_id]
            assert records[: len(seen)] == seen, (
                f"the journal of {stored.name} changed: an entry seen before is different"
            )
            version = 0
            last_seq = 0
            for r in records:
                assert r.status in _FINISHED, f"{stored.name}: {r.event!r} is left {r.status}"
                assert r.version_from == version and r.version_to is not None, (
                    f"{stored.name}: {r.event!r} goes from version {r.version_from} to "
                    f"{r.version_to}, the one before ended at {version}"
                )
                assert r.version_to > version
                assert r.seq > last_seq, f"{stored.name}: journal sequence {r.seq} after {last_seq}"
                version, last_seq = r.version_to, r.seq
                seqs.append(r.seq)
            assert stored.version == version, (
                f"{stored.name} is at version {stored.version}, its journal ends at {version}"
            )
            self.journal[entity_id] = records
        if self.own_database and self._sql is not None:
            count, distinct, low, high = self._journal_sequence(self._sql)
            assert count == distinct == high and low in (1, None), (
                f"journal sequence numbers are not 1..N: {count} entries, {distinct} distinct "
                f"numbers from {low} to {high}"
            )
        self._check_outbox()
        found = leaks(self.engine, self.made, self.journal)
        assert not found, "leaked: " + "; ".join(found)
        for invariant in self.invariants:
            invariant(self.engine)

    @staticmethod
    def _journal_sequence(sql: SqlStore) -> tuple[int, int, int | None, int]:
        """(entries, distinct numbers, lowest, highest) of the journal's sequence.

        1..N with no gap and no repeat is: as many distinct numbers as entries,
        from 1 to the number of entries (0 when there is none).
        """
        seq = schema.transitions.c.seq
        query = sa.select(
            sa.func.count(), sa.func.count(sa.distinct(seq)), sa.func.min(seq), sa.func.max(seq)
        )
        with sql.engine.connect() as conn:
            count, distinct, low, high = conn.execute(query).one()
        return int(count), int(distinct), low, int(high or 0)

    def _check_outbox(self) -> None:
        events = [
            engine.Event.from_row(r)
            for r in self.proxy.events(after=self.first_event, limit=1_000_000)
        ]
        assert [e.seq for e in events] == list(
            range(self.first_event + 1, self.first_event + 1 + len(events))
        ), f"the outbox sequence has gaps: {[e.seq for e in events]}"
        assert events[: len(self.outbox)] == self.outbox, "an outbox event seen before changed"
        self.outbox = events
        for entity_id in self.entities:
            mine = [e for e in events if e.entity_id == entity_id]
            assert mine and mine[0].type == "create", f"{entity_id[:12]}: no create event first"
            assert [e.type for e in mine].count("create") == 1
            outcomes = [
                (e.transition_id, e.type)
                for e in mine
                if e.type in ("transition", "transition.failed")
            ]
            journal = [
                (r.id, "transition" if r.status == "committed" else "transition.failed")
                for r in self.journal[entity_id]
            ]
            assert outcomes == journal, (
                f"{self.names[entity_id]}: outbox outcomes {outcomes} do not match the journal "
                f"{journal}"
            )
            committed = {r.id for r in self.journal[entity_id] if r.status == "committed"}
            emitted: dict[str | None, list[tuple[str, dict[str, Any]]]] = {}
            for e in mine:
                if e.type not in ("create", "transition", "transition.failed"):
                    assert e.transition_id in committed, (
                        f"{self.names[entity_id]}: event {e.type!r} of a transition that did "
                        "not commit"
                    )
                    emitted.setdefault(e.transition_id, []).append((e.type, dict(e.attributes)))
            for tid in committed:
                # Exactly what its steps emitted, once each, in order: also when recovery
                # committed it from the journal after a crash.
                made = self.emitted.get(tid, [])
                assert emitted.get(tid, []) == made, (
                    f"{self.names[entity_id]}: the outbox holds the step events "
                    f"{emitted.get(tid, [])} of transition {tid[:12]}, its steps emitted {made}"
                )


# -- helpers -------------------------------------------------------------------------------


class _Kept:
    """The harness's SQL store, lent to one engine: that engine's close() does not close it."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store

    def close(self) -> None:
        """Nothing: the harness closes the store when it is done with it."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


@dataclass(slots=True)
class _Pooled:
    """An open engine on a database of its own, left by a harness for the next one."""

    tmp: str
    url: str
    sql: SqlStore
    proxy: CrashableStore
    engine: Engine
    clock: _Clock
    uses: int


_REUSES = 200  # then a fresh database, so that none grows without end


class _Pool:
    """At most one idle engine per process; closed at exit."""

    def __init__(self) -> None:
        self._idle: list[_Pooled] = []
        self._lock = threading.Lock()
        atexit.register(self.drain)

    def take(self) -> _Pooled | None:
        with self._lock:
            return self._idle.pop() if self._idle else None

    def give(self, pooled: _Pooled) -> bool:
        with self._lock:
            if self._idle:
                return False
            self._idle.append(pooled)
            return True

    def drain(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for pooled in idle:
            pooled.engine.close()
            pooled.sql.close()
            shutil.rmtree(pooled.tmp, ignore_errors=True)


_POOL = _Pool()
_TEMPLATE: dict[str, Path] = {}  # the one migrated database each process copies
_TEMPLATE_LOCK = threading.Lock()


def _copy_template(path: Path) -> None:
    """Put an empty, migrated SQLite database at ``path``: a copy of one migrated once.

    Migrating a new database with Alembic costs more than a whole short
    test run; a file copy costs nearly nothing.
    """
    with _TEMPLATE_LOCK:
        template = _TEMPLATE.get("path")
        if template is None or not template.exists():
            folder = Path(tempfile.mkdtemp(prefix="chartd-template-"))
            atexit.register(shutil.rmtree, folder, ignore_errors=True)
            template = _TEMPLATE["path"] = folder / "template.db"
            open_store(f"sqlite:///{template}").close()
        shutil.copyfile(template, path)


def _note(text: str) -> None:
    """Print ``text`` with a falsifying example (outside a test: nothing)."""
    with contextlib.suppress(hypothesis.errors.InvalidArgument):
        hypothesis.note(text)


def _tally(label: str) -> None:
    """Count what happened, for ``--hypothesis-show-statistics`` (outside a test: nothing)."""
    with contextlib.suppress(hypothesis.errors.InvalidArgument):
        hypothesis.event(label)


def _failed_at(journaled: Mapping[int, str], count: int) -> int:
    """The index of the step a saga failed at (or a crash interrupted): the first not done."""
    return next((i for i in range(count) if journaled.get(i) not in _PASSED), count)


def _group(calls: Iterable[_Call]) -> dict[str, list[_Call]]:
    out: dict[str, list[_Call]] = {}
    for c in calls:
        out.setdefault(c.tid, []).append(c)
    return out


def _first_unclaimed(by_tid: dict[str, list[_Call]], new: Sequence[TransitionRecord]) -> str | None:
    """The first transition that ran code but was not journaled (a guard refused it)."""
    journaled = {r.id for r in new}
    return next((tid for tid in by_tid if tid not in journaled), None)


def _as_engine_error(exc: BaseException | None, doing: str) -> ChartdError:
    """What the engine raises for ``exc`` raised by a guard or step (its rules)."""
    if isinstance(exc, ChartdError):
        return exc
    return System(f"{doing} failed: {type(exc).__name__}: {exc}")


def _same_category(outcome: object, expected: ChartdError, what: str) -> None:
    assert isinstance(outcome, ChartdError), f"{what}, yet fire returned {outcome!r}"
    assert outcome.category == expected.category, (
        f"{what} with {expected.category.value}, yet fire raised "
        f"{outcome.category.value}: {outcome.message}"
    )


def _same_error(outcome: object, expected: ChartdError, what: str) -> None:
    _same_category(outcome, expected, what)
    assert isinstance(outcome, ChartdError)
    assert outcome.message == expected.message, (
        f"{what} with {expected.message!r}, yet fire raised {outcome.message!r}"
    )


class _raises:
    """Assert that the block raises an error of the same category and message as ``expected``."""

    def __init__(self, expected: ChartdError) -> None:
        self.expected = expected

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> bool:
        _same_error(exc, self.expected, "the chart refuses")
        return True
