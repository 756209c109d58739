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
  (or the plan's), its version bumped twice (write-ahead and commit), three
  times past a point of no return (``on_failure.after``), or once (every
  step internal, no ``via``); one journal entry, ``committed``,
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

Where: the bindings are wrapped by :mod:`engine.testing.spy`; the core is
asked in :mod:`engine.testing.expectations`; a fire is checked in
:mod:`engine.testing.fire_checks`, a crash in
:mod:`engine.testing.crash_checks`, the state at rest in
:mod:`engine.testing.rest_checks`; the databases are made and pooled in
:mod:`engine.testing.databases`.
"""

from __future__ import annotations

import json
import secrets
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import engine
from engine.core import Chart, Plan, Snapshot
from engine.errors import ChartdError
from engine.ports import Store
from engine.runtime import Bindings, Engine, Entity, Result, TransitionRecord
from engine.store import SqlStore, open_store
from engine.testing.crash_checks import Recovery, check_recovery, left_running
from engine.testing.crashable import CrashableStore
from engine.testing.databases import (
    POOL,
    REUSES,
    Clock,
    KeptStore,
    Pooled,
    copy_template,
    forget_chart_versions,
)
from engine.testing.expectations import Attempt, Observation, Oracle, note, raises, tally
from engine.testing.faults import Crash, Create, Fire, Restart, Retry, SimulatedCrash
from engine.testing.fire_checks import FireCheck
from engine.testing.rest_checks import (
    check_entity,
    check_entity_events,
    check_journal_sequence,
    check_outbox,
)
from engine.testing.spy import GuardOracle, Spy
from engine.testing.standins import leaks

__all__ = ["GuardOracle", "Harness", "Invariant"]

Invariant = Callable[[Engine], None]
"""A check of the user's own, run at rest after every action; raises AssertionError to fail."""

_LATER = 3600.0  # how far the clock moves at a crash: the dead engine's heartbeat is stale
_IN_MEMORY = ("sqlite://", "sqlite:///:memory:")


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

    # Nine parameters: the public options of a public class, given by keyword (docs/testing.md).
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
        self.oracle = Oracle(chart, bindings, guard_oracles or {})
        self.faults = faults
        self.invariants = list(invariants)
        self.wrap_store = wrap_store
        self._tmp: str | None = None
        self._migrated = False
        self._poolable = url is None and wrap_store is None
        pooled = POOL.take() if self._poolable else None
        # A database the kit made (fresh or pooled) holds only its runs: every journal entry
        # in it is checked for gaps, not only this harness's.
        self.own_database = url is None
        if pooled is not None:
            self._tmp, url = pooled.tmp, pooled.url
            self._migrated = True
        elif url is None:
            self._tmp = tempfile.mkdtemp(prefix="chartd-test-")
            copy_template(Path(self._tmp) / "chartd.db")
            url = f"sqlite:///{self._tmp}/chartd.db?synchronous=off"
            self._migrated = True
        self.crashes = crashes and faults and url not in _IN_MEMORY
        self.restarts = url not in _IN_MEMORY
        self.url = url
        self.tag = secrets.token_hex(3)
        # A database keeps its clock: its dead engines' heartbeats must stay in the past.
        self.clock = pooled.clock if pooled is not None else Clock()
        self.spy = Spy(faults=faults, crashes=self.crashes, guard_oracles=guard_oracles or {})
        self.bindings = self.spy.wrap(bindings)
        self.entities: list[str] = []
        self.names: dict[str, str] = {}
        self.expected: dict[str, Snapshot] = {}
        self.journal: dict[str, list[TransitionRecord]] = {}
        self.requests: list[Fire] = []
        self.proxy: CrashableStore
        self.engine: Engine
        self._sql: SqlStore | None = None
        self._uses = pooled.uses + 1 if pooled is not None else 1
        if pooled is not None:
            self._sql, self.proxy, self.engine = pooled.sql, pooled.proxy, pooled.engine
            self.spy.watch(self.proxy, 1)
            # Each harness brings a chart of its own under a name an earlier one may have
            # used: the pooled database forgets the versions it kept, as a fresh one would.
            forget_chart_versions(pooled.sql)
            self.engine.register(self.chart, self.bindings)
        else:
            self._open()
        self.first_event = self.proxy.last_event()
        self.outbox: list[engine.Event] = []
        self._closed = False

    # -- the engine ----------------------------------------------------------------------

    @property
    def generation(self) -> int:
        """How many engines have run on the harness's database: a crash or restart adds one."""
        return self.spy.generation

    def _open(self) -> None:
        # One SQL store for the harness's life: opening it (and migrating, the first time)
        # costs more than a short run. An engine's restart or crash needs no new one: the
        # store holds no state between its commits, only connections.
        if self._sql is None:
            self._sql = SqlStore(self.url) if self._migrated else open_store(self.url)
            self._migrated = True
        store: Store = KeptStore(self._sql)
        if self.wrap_store is not None:
            store = self.wrap_store(store)
        self.proxy = CrashableStore(store)
        self.spy.watch(self.proxy, self.spy.generation + 1)
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
            and self._uses < REUSES
        ):
            pooled = Pooled(
                self._tmp, self.url, self._sql, self.proxy, self.engine, self.clock, self._uses
            )
            if POOL.give(pooled):
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

    def _fields(self, entity_id: str) -> dict[str, str]:
        return {"id": entity_id, "entity": self.names[entity_id]}

    def create(self, action: Create) -> None:
        """Create an entity; it must start in the chart's settled initial snapshot."""
        name = f"e{self.tag}-{len(self.names)}"
        outbox = self.proxy.last_event()
        data = json.loads(json.dumps(action.data))
        try:
            expected = self.oracle.initial_snapshot(data, name)
        except ChartdError as refused:
            with raises(refused):
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
        tally("restart")
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

    def _observe(self, entity_id: str) -> Observation:
        return Observation(
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
        fields = self._fields(entity_id)
        if action.event is None:
            enabled = [
                e
                for e in self.pickable
                if isinstance(
                    self.oracle.decide(pre.snapshot, e, self.oracle.fit(e, params), fields), Plan
                )
            ]
            if not enabled:
                tally("fire: no event is enabled")
                return
            picked = enabled[action.pick % len(enabled)]
            note(f"{action!r} fires {picked!r}")
            action = replace(action, event=picked)
        assert action.event is not None
        params = self.oracle.fit(action.event, params)
        if remember and action.key is not None:
            self.requests.append(action)
        fault = action.fault if self.faults else None
        crash = fault.crash if fault is not None and self.crashes else None
        self.spy.begin(fault)
        attempt = Attempt(entity_id, fields, pre, action.event, params, action.key, self.spy.calls)
        self.proxy.arm(crash.at if crash is not None else None)
        outcome: Result | ChartdError | None = None
        try:
            outcome = self.engine.fire(entity_id, action.event, params, idempotency_key=action.key)
        except ChartdError as exc:
            outcome = exc
        except SimulatedCrash:
            outcome = None
        finally:
            self.spy.end()
            self.proxy.arm(None)
        if outcome is None or self.proxy.crashed:
            assert crash is not None, "the engine crashed without a crash planned"
            self._crashed(attempt, crash)
            return
        self.proxy.settle()
        expected = FireCheck(self.oracle, attempt, self._observe(entity_id), outcome).verify()
        if expected is not None:
            self.expected[entity_id] = expected

    def _crashed(self, attempt: Attempt, crash: Crash) -> None:
        """The process died: keep what reached the disk, reopen later, check recovery."""
        self.proxy.cut(crash.keep)
        self.engine.close()  # its last flush goes nowhere: the store is dead
        assert self._sql is not None
        # What is on disk, before recovery.
        pending = left_running(attempt, crash, self._sql.transitions(attempt.entity_id))
        self.clock.t += _LATER
        self._open()  # registering the chart recovers what the dead engine left
        post = self._observe(attempt.entity_id)
        recovery = Recovery(attempt, crash, pending, post, self.spy.generation)
        self.expected[attempt.entity_id] = check_recovery(self.oracle, recovery)

    # -- at rest -----------------------------------------------------------------------------

    def check(self) -> None:
        """The invariants at rest; AssertionError names the first one that does not hold."""
        for entity_id in self.entities:
            stored = self._entity(entity_id)
            records = self._records(entity_id)
            check_entity(
                self.chart, stored, self.expected[entity_id], records, self.journal[entity_id]
            )
            self.journal[entity_id] = records
        if self.own_database and self._sql is not None:
            check_journal_sequence(self._sql)
        events = [
            engine.Event.from_row(r)
            for r in self.proxy.events(after=self.first_event, limit=1_000_000)
        ]
        check_outbox(events, self.first_event, self.outbox)
        self.outbox = events
        for entity_id in self.entities:
            name = self.names[entity_id]
            check_entity_events(entity_id, name, events, self.journal[entity_id], self.spy.emitted)
        found = leaks(self.engine, self.spy.made, self.journal)
        assert not found, "leaked: " + "; ".join(found)
        for invariant in self.invariants:
            invariant(self.engine)
