"""The ports: what the runtime needs from the world, as Protocols and plain records.

The runtime (``engine.runtime``) sees storage, time and observation only
through these; ``engine.store`` and ``engine.telemetry`` implement
them. Records are plain frozen dataclasses of JSON-able values, so a store
can hold them in any database and a test can build them by hand.

How the journal is written
--------------------------
A store applies :class:`Write` units. Each unit is all-or-nothing and its
entity change is conditional on the entity's version (optimistic
concurrency: two engines never both apply a transition from the same
version). :meth:`Store.apply` takes a *batch* of units and commits them in
one database transaction: this is how concurrent fires share one commit
(group commit). A unit whose version check fails is skipped and reported;
the others commit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "Census",
    "ChartVersionRow",
    "Clock",
    "EntityRow",
    "EventRow",
    "Observer",
    "SpanRef",
    "StepRow",
    "Store",
    "TimerRow",
    "TransitionRow",
    "VersionConflict",
    "Write",
    "innermost",
]

JSON = Any


@dataclass(frozen=True, slots=True)
class EntityRow:
    """One entity as stored: its chart, name, snapshot fields and version."""

    id: str
    chart: str
    name: str
    configuration: tuple[str, ...]
    data: Mapping[str, JSON]
    history: Mapping[str, tuple[str, ...]]
    version: int
    created_at: float
    updated_at: float
    seq: int = 0  # creation order, assigned by the store
    live: bool = True  # False in a top-level final state: the name is free again
    # The version of its chart the entity runs on; 0: not known yet (created before
    # versions were kept), until the first version of its chart registered adopts it.
    chart_version: int = 0
    node: str | None = None  # the node it belongs to (a chart with affinity); None: any


@dataclass(frozen=True, slots=True)
class SpanRef:
    """Where a fire sits in a distributed trace: W3C trace and span ids, lowercase hex.

    An observer that traces hands it back when a fire starts; the journal
    keeps it with the transition, so a later fire that the transition caused
    (a timer it set, its follow-up, a process's exit) can link to it.
    """

    trace_id: str  # 32 hex digits
    span_id: str  # 16 hex digits


@dataclass(frozen=True, slots=True)
class StepRow:
    """One saga step of one transition, or its compensation, as journaled.

    status: pending -> running -> done | failed; after a failure or a crash,
    done (and possibly-started) steps go compensating -> compensated |
    compensation_failed. ``effects`` holds what the steps so far asked the
    engine to do on commit (data changes, events, timers), so that recovery
    can finish a transition whose every step completed: a saga journals it
    with its last step (and its point of no return), None with the others.
    """

    transition_id: str
    index: int
    name: str
    status: str = "pending"
    payload: JSON = None
    error: str | None = None
    effects: Mapping[str, JSON] | None = None
    started_at: float | None = None
    finished_at: float | None = None
    compensated_at: float | None = None
    compensation_error: str | None = None


@dataclass(frozen=True, slots=True)
class TransitionRow:
    """One fire of an event on an entity, as journaled.

    status: running (write-ahead done, steps under way) -> committed, or
    compensating -> failed | compensation_failed. ``plan`` is the JSON the
    runtime needs to finish or undo it after a crash (snapshots, step names).
    """

    id: str
    entity_id: str
    event: str
    params: Mapping[str, JSON]
    status: str
    version_from: int
    version_to: int | None
    plan: Mapping[str, JSON]
    owner: str
    idempotency_key: str | None = None
    error_category: str | None = None
    error_message: str | None = None
    compensation_errors: tuple[str, ...] = ()
    started_at: float = 0.0
    finished_at: float | None = None
    seq: int = 0  # journal order, assigned by the store
    steps: tuple[StepRow, ...] = ()
    trace: SpanRef | None = None  # the fire's span, when an observer traced it
    caused_by: str | None = None  # the transition whose timer, follow-up or process fired this


@dataclass(frozen=True, slots=True)
class EventRow:
    """One outbox event; ``seq`` is global, gap-free per store, assigned on commit."""

    entity_id: str
    entity_name: str
    chart: str
    type: str
    attributes: Mapping[str, JSON]
    transition_id: str | None
    created_at: float
    seq: int = 0


@dataclass(frozen=True, slots=True)
class TimerRow:
    """A durable delayed event: fire ``event`` on the entity at ``due_at``."""

    id: str
    entity_id: str
    event: str
    params: Mapping[str, JSON]
    due_at: float
    created_by: str | None
    status: str = "pending"  # pending | fired | cancelled
    fired_transition: str | None = None
    error: str | None = None


def innermost(configuration: Sequence[str]) -> str:
    """The innermost active states of a configuration, comma-separated: ``running.paused``."""
    conf = configuration
    return ",".join(s for s in conf if not any(o.startswith(s + ".") for o in conf))


@dataclass(frozen=True, slots=True)
class Census:
    """What a store holds now, for gauges: live entities by chart and configuration,
    and the timers still pending."""

    entities: Mapping[tuple[str, tuple[str, ...]], int]
    pending_timers: int


@dataclass(frozen=True, slots=True)
class ChartVersionRow:
    """One registered version of a chart: its document (JSON) and the document's hash."""

    chart: str
    version: int
    hash: str
    document: Mapping[str, JSON]
    registered_at: float


@dataclass(slots=True)
class Write:
    """One all-or-nothing unit of a batch given to :meth:`Store.apply`.

    ``entity`` is written only if the stored version equals
    ``expect_version`` (None: the entity is new and is inserted).
    ``transitions`` are new journal entries (the store assigns their seq);
    ``transition_updates`` change the status, owner, outcome and error
    fields of existing ones; ``steps`` are inserted or replaced by (transition, index);
    ``events`` get the next outbox seqs in order; ``timers`` are inserted or
    replaced by id. ``cancel_timers`` cancels every
    pending timer of that entity whose event is in the set (None: all).
    ``lazy`` marks a unit the engine does not wait for (a step's end): no
    store treats it differently, but a test store may hold it back to model
    what a crash loses. ``keys_changed`` False promises that the entity's
    name and liveness are as stored (a fire that neither renamed nor finished
    it): the store may leave the indexes on them alone.
    """

    entity: EntityRow | None = None
    expect_version: int | None = None
    transitions: list[TransitionRow] = field(default_factory=list)
    transition_updates: list[TransitionRow] = field(default_factory=list)
    steps: list[StepRow] = field(default_factory=list)
    events: list[EventRow] = field(default_factory=list)
    timers: list[TimerRow] = field(default_factory=list)
    cancel_timers: tuple[str, frozenset[str] | None] | None = None
    lazy: bool = False
    keys_changed: bool = True


class VersionConflict(Exception):
    """A unit's entity version did not match: another writer got there first."""

    def __init__(self, entity_id: str, expected: int | None) -> None:
        super().__init__(f"entity {entity_id} is not at version {expected}")
        self.entity_id = entity_id
        self.expected = expected


@runtime_checkable
class Store(Protocol):
    """Durable storage of entities, the transition journal, timers and the outbox."""

    def apply(self, batch: Sequence[Write]) -> list[Exception | None]:
        """Commit ``batch`` in one transaction; one entry per unit: None, or why it was skipped.

        A :class:`VersionConflict` entry means the unit's version check failed
        and nothing of that unit was written. Any other failure of the
        commit itself is raised (and nothing of the batch was written).
        """

    def entity(
        self, id_or_name: str, chart: str | None = None, *, by_id: bool = True
    ) -> EntityRow | None:
        """The entity with this id, or this name (within ``chart`` if given).

        ``by_id`` False: the caller knows the key cannot be an id, and only
        the lookup by name is made.
        """

    def live_names(self, chart: str, names: Sequence[str]) -> set[str]:
        """Those of ``names`` that a live entity of ``chart`` holds (a bulk create's check)."""

    def entities(
        self,
        *,
        chart: str | None = None,
        state: str | None = None,
        after: int = 0,
        limit: int = 100,
        live: bool = False,
    ) -> list[EntityRow]:
        """Entities in creation order after ``after`` (a seq), optionally in one chart or state.

        With ``live`` only entities that are not finished; a store reads no
        finished one to find them.
        """

    def transition(self, entity_id: str, idempotency_key: str) -> TransitionRow | None:
        """The transition recorded for this idempotency key on this entity."""

    def transitions(self, entity_id: str) -> list[TransitionRow]:
        """The entity's journal, oldest first, with its steps."""

    def transition_by_id(self, transition_id: str) -> TransitionRow | None:
        """The journal entry with this id, with its steps; None if there is none."""

    def unfinished(self) -> list[TransitionRow]:
        """Transitions left running or compensating, with their steps, oldest first."""

    def events(self, *, after: int = 0, limit: int = 1000) -> list[EventRow]:
        """Outbox events with seq greater than ``after``, in seq order."""

    def last_event(self) -> int:
        """The seq of the newest outbox event (0 when there is none)."""

    def due_timers(
        self, now: float, limit: int = 100, *, charts: Sequence[str] | None = None
    ) -> list[TimerRow]:
        """Pending timers due at or before ``now``, earliest first; only of ``charts`` if given."""

    def claim_timers(
        self,
        owner: str,
        now: float,
        until: float,
        limit: int = 100,
        *,
        charts: Sequence[str] | None = None,
        node: str | None = None,
    ) -> list[TimerRow]:
        """Claim pending timers due by ``now`` for engine ``owner`` until ``until``; return them.

        Earliest first, only of ``charts`` if given, none claimed by another
        engine until after ``now``; given ``node``, none of an entity that
        belongs to another node (``EntityRow.node``). Of several engines claiming at once each
        timer goes to one (PostgreSQL: ``FOR UPDATE SKIP LOCKED``); a commit
        that writes the timer (fired, cancelled) ends its claim.
        """

    def release_timers(self, owner: str, ids: Sequence[str]) -> None:
        """End ``owner``'s claims on these timers, those still pending: any engine may fire them."""

    def timers(self, entity_id: str) -> list[TimerRow]:
        """Every timer of an entity, whatever its status, by due time."""

    def next_timer(
        self,
        *,
        charts: Sequence[str] | None = None,
        now: float | None = None,
        node: str | None = None,
    ) -> float | None:
        """When the earliest pending timer (of entities of ``charts``, if given) is due.

        Given ``now``, timers another engine's claim holds past ``now`` are left
        out; given ``node``, timers of entities that belong to another node.
        """

    def purge_finished(self, before: float, limit: int) -> int:
        """Delete up to ``limit`` finished entities last changed before ``before``; how many.

        An entity goes with its journal (transitions and steps) and its
        timers, in one transaction; live entities are never touched. The
        oldest (by creation) go first.
        """

    def census(self) -> Census:
        """How many live entities are in each (chart, configuration); how many timers pend.

        For gauges read every few seconds: one pass over the live entities.
        """

    def heartbeat(self, owner: str, pid: int, host: str, now: float) -> None:
        """Record that engine ``owner`` (process ``pid`` on ``host``) is alive at ``now``."""

    def chart_versions(self, chart: str) -> list[ChartVersionRow]:
        """Every stored version of ``chart``, oldest first."""

    def add_chart_version(self, row: ChartVersionRow) -> bool:
        """Store a version of a chart unless (chart, version) is stored; whether it was added.

        The first version of a chart stored also adopts the chart's entities
        whose version is not known (``chart_version`` 0), in the same transaction.
        """

    def owners(self) -> dict[str, tuple[int, str, float]]:
        """Every engine that ever beat: owner -> (pid, host, last beat)."""

    def subscribe(self, wake: Callable[[], None]) -> bool:
        """Call ``wake`` (from a thread of the store's) after commits of outbox events.

        True if the store hears every process's commits (PostgreSQL's
        LISTEN/NOTIFY): a watcher may then sleep until woken. False if it
        cannot (SQLite): a watcher reads again every so often to see other
        processes' commits.
        """

    def close(self) -> None:
        """Release connections."""


class Clock(Protocol):
    """Wall-clock time in seconds since the epoch; a test can substitute a fake."""

    def now(self) -> float:
        """The current time."""


class Observer(Protocol):
    """Receives what the runtime does, for traces and metrics. Must not raise.

    Calls come in pairs, on the thread that does the work:
    :meth:`transition_started` then :meth:`transition` around one fire, and
    :meth:`step_started` then :meth:`step` around each step's do or undo.
    Pairs nest: a fire's steps come between its two calls, and a step may
    itself fire an event on another entity. So an observer can keep a stack
    per thread, as a tracer keeps its current span. A fire refused before
    its entity is known (no such entity, bad params) is not reported; the
    undo of steps by recovery is reported outside any fire. An end is
    missed only when something that is not an ``Exception`` (a
    ``KeyboardInterrupt``) goes through a step; the fire's end still comes.

    Every call is on the hot path, some under the entity's lock: keep them
    cheap, and hand slow work (exporting) to another thread.
    """

    def transition_started(
        self, chart: str, entity_id: str, event: str, name: str, cause: SpanRef | None
    ) -> SpanRef | None:
        """A fire of ``event`` on the entity (named ``name``) begins; :meth:`transition` follows.

        ``cause`` is the span of the transition that caused this fire (the
        one whose timer, follow-up or process this fire records), for a
        link. Returns where the fire sits in a trace, which the journal
        keeps with it, or None when it is not traced.
        """

    def transition(
        self,
        chart: str,
        entity_id: str,
        event: str,
        outcome: str,
        seconds: float,
        error: BaseException | None,
    ) -> None:
        """A fire ended after ``seconds``: outcome is committed, failed, rejected or replayed.

        ``error`` is what the fire raised (None when it returned): the step's
        error of a failed saga, the chart's or a guard's refusal of a
        rejected one, or whatever else stopped it.
        """

    def step_started(self, chart: str, entity_id: str, name: str, phase: str, index: int) -> None:
        """Step ``name`` (``index`` in the transition's steps) begins its do or its undo."""

    # The Observer port's signature, pinned by tests/unit/test_public_api.py.
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
        """A step's do (phase 'do') or undo (phase 'undo') ended: outcome ok or error.

        ``error`` is why, when the outcome is error (None otherwise).
        """
