"""Engine: runs plans durably. Saga steps with compensations, a journal, recovery, timers.

The Engine is a facade; each job is a room of its own under ``engine.runtime``:
``registry`` (charts and their code), ``entities`` (create, read, list),
``firing`` (locks, cache, retries, follow-ups), ``saga`` (steps, commits,
compensations), ``recovery`` (other engines' unfinished work), ``timers``
(housekeeping: due timers, heartbeats) and ``watch`` (the outbox, ``until``).
What they share is in ``shared``.

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

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from engine import core
from engine.errors import ChartdError, InvalidParameter
from engine.ports import Clock, Observer, SpanRef, Store
from engine.runtime.bindings import Bindings
from engine.runtime.commit import GroupCommit
from engine.runtime.entities import Entities
from engine.runtime.firing import Firing
from engine.runtime.journal import Cause
from engine.runtime.limits import MAX_FOLLOW_UPS, Limits
from engine.runtime.migration import MigrationPlan, MigrationReport, Migrator, Progress
from engine.runtime.records import Entity, Event, Page, Result, TransitionRecord
from engine.runtime.recovery import Recovery
from engine.runtime.saga import Saga
from engine.runtime.shared import Shared
from engine.runtime.timers import Alarm, Housekeeping
from engine.runtime.versions import Versions
from engine.runtime.watch import Watch, event_filter

__all__ = ["MAX_FOLLOW_UPS", "Engine", "SystemClock"]

# Engine has a method named `list`; this keeps annotations in its body unambiguous.
_Records = list[TransitionRecord]
_Created = list[Entity | ChartdError]
_Results = list[Result | ChartdError]


class SystemClock:
    """The wall clock."""

    def now(self) -> float:
        """Seconds since the epoch."""
        return time.time()


class _QuietObserver:
    def transition_started(
        self, chart: str, entity_id: str, event: str, name: str, cause: SpanRef | None
    ) -> SpanRef | None:
        return None

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

    # The Observer port's signature (engine/ports.py), pinned by a test.
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


class Engine:
    """The durable engine on a :class:`~engine.ports.Store`; use it as a context manager.

    ``engine.Engine.open(url)`` builds one on a SQL store; this class takes
    any Store, so the runtime depends on the port, not on SQLAlchemy.
    ``limits`` bounds what it keeps in memory and paces its housekeeping
    (:class:`~engine.runtime.limits.Limits`; the defaults suit a daemon).
    ``node`` names the machine this engine acts on (the host name by default):
    an entity of a chart with ``affinity: node`` belongs to the node that
    created it, and engines of other nodes refuse to fire it, never recover
    its transitions and never fire its timers (docs/replicas.md).
    """

    def __init__(
        self,
        store: Store,
        *,
        clock: Clock | None = None,
        observer: Observer | None = None,
        timers: bool = True,
        limits: Limits | None = None,
        node: str | None = None,
    ) -> None:
        shared = Shared(
            store, clock or SystemClock(), observer or _QuietObserver(), limits or Limits(), node
        )
        self._shared = shared
        self.store: Store = store
        self.clock: Clock = shared.clock
        self.id = shared.id  # names this engine as the owner of its transitions
        self.node = shared.node  # owns the entities of charts with node affinity it creates
        self.observer: Observer = shared.observer
        self._watch = Watch(shared)
        shared.commit = GroupCommit(store, on_commit=self._watch.committed)
        self._entities = Entities(shared)
        self._migrator = Migrator(shared)
        self._versions = Versions(shared, self._migrator.adopt)
        alarm = Alarm(shared.clock)  # a saga that adds a timer wakes housekeeping with it
        saga = Saga(shared, alarm.timer_added)
        self._firing = Firing(shared, saga)
        self._recovery = Recovery(shared, saga)
        self._housekeeping = Housekeeping(shared, self._firing, self._recovery, alarm)
        self._housekeeping.start(timers=timers)

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """Whether the engine was closed (every call on it is Unavailable then)."""
        return self._shared.closed

    def close(self) -> None:
        """Stop the timer thread, flush the journal and release the database."""
        s = self._shared
        if s.closed:
            return
        s.closed = True
        self._housekeeping.stop()
        s.commit.close()
        self._watch.closed()
        s.store.close()

    def _footprint(self) -> dict[str, int]:
        """What this engine keeps per entity now: locks, cached rows, rows kept for until().

        A seam for the tests (and a debugger) that check these stay bounded
        (:class:`~engine.runtime.limits.Limits`), whatever the number of entities.
        """
        s = self._shared
        return {
            "locks": len(s.locks),
            "cached_rows": len(s.cache),
            "awaited": self._watch.watching(),
        }

    # -- charts ------------------------------------------------------------------

    def register(self, chart: core.Chart, bindings: Bindings | None = None) -> None:
        """Make ``chart`` available, with the code of its names; then recover its entities.

        The version (``chart.version``) is kept in the store with its
        document: the newest version registered is the one new entities get,
        and entities on an older one keep running on it until migrated
        (:meth:`migrate`). ``bindings`` None shares the code of the version
        registered before, if any. Raises InvalidParameter naming every
        guard, step or condition the chart uses that ``bindings`` does not
        provide, and Conflict (naming what differs) for a version number
        stored already with other content. Transitions of this chart left
        unfinished by an engine that died are finished or undone before this
        returns, each under the version it started on.
        """
        self._shared.check_open()
        self._versions.register(chart, bindings)
        self.recover(chart.name)

    def charts(self) -> dict[str, core.Chart]:
        """The registered charts by name (the newest version of each)."""
        return self._shared.registry.charts()

    def migration_plan(
        self, chart: str | core.Chart, to_version: int | None = None
    ) -> MigrationPlan:
        """What :meth:`migrate` would move, per source configuration; nothing moves.

        A chart given (not a name) is stored first, as :meth:`migrate` stores it.
        """
        return self._migrator.plan(*self._target(chart, to_version))[0]

    def migrate(
        self,
        chart: str | core.Chart,
        to_version: int | None = None,
        *,
        batch: int = 500,
        wait: float = 60.0,
        progress: Progress | None = None,
    ) -> MigrationReport:
        """Move every live entity of ``chart`` to ``to_version`` (None: the newest stored).

        ``chart`` is a chart's name, or a chart: then its version is stored
        (as :meth:`register` stores it, no code needed) and is the target.

        Each entity's move is a journaled transition (event ``chart.migrate``,
        its params the versions and configurations from and to), ``batch``
        entities to a commit; ``progress(moved, total)`` after each batch.
        Raises InvalidParameter, moving nothing, if an entity's configuration
        maps to no legal configuration of the target. An entity whose saga
        is in flight moves once the saga ends under its own version; after
        ``wait`` seconds those still in flight are left (the report names
        them) for a later run. Running it again moves only what is left.
        """
        name, version = self._target(chart, to_version)
        return self._migrator.migrate(name, version, batch=batch, wait=wait, progress=progress)

    def _target(self, chart: str | core.Chart, to_version: int | None) -> tuple[str, int | None]:
        """A migration's chart name and target version; a chart given is stored first."""
        if isinstance(chart, core.Chart):
            self._shared.check_open()
            self._versions.keep(chart)
            return chart.name, chart.version
        return chart, to_version

    # -- entities ----------------------------------------------------------------

    def create(self, chart: str, name: str, data: Mapping[str, Any] | None = None) -> Entity:
        """A new entity of ``chart`` in its initial state, recorded with a ``create`` event.

        Raises InvalidParameter for a bad name or data that is not JSON,
        Conflict if the name is taken in this chart.
        """
        return self._entities.create(chart, name, data)

    def create_many(
        self, chart: str, items: Iterable[tuple[str, Mapping[str, Any] | None]]
    ) -> _Created:
        """Many new entities of ``chart``, each unit on its own: one result per item, in order.

        ``items`` are ``(name, data)`` pairs. A unit's result is its
        :class:`Entity`, or the error that refused it (a bad name, a name
        taken or given twice, data that is not JSON); the others are created
        regardless. Units are committed thousands to a transaction. Raises
        (for the whole call) only NotFound for an unknown chart.
        """
        return self._entities.create_many(chart, items)

    def get(self, id_or_name: str | Entity, chart: str | None = None) -> Entity:
        """The entity with this id or name, as last committed; NotFound otherwise."""
        self._shared.check_open()
        return Entity.from_row(self._shared.row(id_or_name, chart))

    def list(
        self,
        chart: str | None = None,
        status: str | None = None,
        *,
        after: int = 0,
        limit: int = 100,
        live: bool = False,
    ) -> Page[Entity]:
        """Entities in creation order, in ``chart`` and in state ``status`` if given.

        ``status`` is a state path, ancestors included (``running`` lists
        paused entities too). With ``live`` only entities that are not in a
        top-level final state, found without reading the finished ones. Pass
        the page's ``after`` to get the next page.
        """
        return self._entities.list(chart, status, after, limit, live)

    def history(self, entity: str | Entity) -> _Records:
        """The entity's journal, oldest first: every transition with its steps."""
        return self._entities.history(entity)

    # -- firing ------------------------------------------------------------------

    def fire(
        self,
        entity: str | Entity,
        event: str,
        params: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        caused_by: str | None = None,
        durable: bool = True,
    ) -> Result:
        """Fire ``event`` on ``entity``; return what committed, or raise why not.

        Raises the chart's rejection (nothing written), a guard's error
        (nothing written), or the error of a failed step after the saga was
        compensated and the failure recorded. A repeated ``idempotency_key``
        returns (or raises) what was recorded the first time, and runs nothing.
        ``caused_by`` names the transition that made this fire happen (the
        start of a process whose exit it records): the journal keeps it, and
        the fire's span links to that transition's. Timers and follow-ups
        name theirs on their own.

        ``durable=False`` is for a caller that acknowledges nothing before a
        later commit: a transition that does not write ahead returns once its
        record is queued, not yet on disk, and is committed with the next
        waited commit (the fire it causes, say: a stop's with its exit's, one
        sync for both) or within the group commit's linger. :meth:`until`
        sees it once it is committed. A transition that writes ahead commits
        as always. Not with an ``idempotency_key`` (its replay reads the journal).
        """
        if caused_by is not None and (
            not isinstance(caused_by, str) or not 0 < len(caused_by) <= 64
        ):
            raise InvalidParameter("caused_by is a transition id: a string of 1 to 64 characters")
        if not durable and idempotency_key is not None:
            raise InvalidParameter("a fire with an idempotency key is durable")
        cause = Cause(caused_by) if caused_by is not None else None
        return self._firing.fire(entity, event, params, idempotency_key, cause, durable=durable)

    def fire_many(self, requests: Iterable[Sequence[Any]], *, concurrency: int = 16) -> _Results:
        """Fire many events, each unit on its own: one result per request, in order.

        A request is ``(entity, event)``, ``(entity, event, params)`` or
        ``(entity, event, params, idempotency_key)``. A unit's result is its
        :class:`Result`, or the error :meth:`fire` would have raised (its
        saga compensated and recorded as :meth:`fire` does). Up to
        ``concurrency`` units run at once, sharing commits; fires on one
        entity still run one at a time, in no promised order.
        """
        return self._firing.fire_many(requests, concurrency)

    # -- recovery and timers ------------------------------------------------------

    def recover(self, chart: str | None = None) -> int:
        """Finish or undo transitions that dead engines left unfinished; return how many.

        Runs on :meth:`register` for that chart, and periodically. A
        transition whose every step is journaled done is finished; any other
        is compensated, every step not known to be undone, newest first.
        """
        return self._recovery.recover(chart)

    def run_due_timers(self) -> int:
        """Fire every timer of a registered chart that is due now; return how many fired.

        A timer whose event is refused (the entity moved on) is spent, with
        the refusal recorded; one that could not be decided now (the engine
        closing, the entity in recovery, a lost race) stays pending.
        """
        return self._housekeeping.run_due_timers()

    # -- events ------------------------------------------------------------------

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
        return self._watch.until(entity, holds, timeout, poll)

    def sequence(self) -> int:
        """The seq of the newest outbox event: watch from here to see only what follows."""
        self._shared.check_open()
        return self._shared.store.last_event()

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
        self._shared.check_open()
        if not isinstance(since, int) or since < 0:
            raise InvalidParameter(f"since must be a sequence number >= 0, got {since!r}")
        # Checked here, at the call, not at the first next() of the generator.
        return self._watch.events_after(since, event_filter(filter), timeout, poll)
