"""The read path's statements, compiled once per database to the driver's SQL.

Building a SQLAlchemy ``select()`` and running it through a Connection costs
0.3 to 1 ms of Python per call, more than the database takes to find a row
among a million. The reads users make often (an entity by id or name, a page
of a listing, an entity's journal, the outbox, due timers, recovery's scan)
are built here once and run on the driver's cursor, as the write path's are.

A read whose shape depends on its arguments (a listing filtered by chart or
state, timers of some charts) gets one statement per shape, made the first
time that shape is asked for and kept. The claim of due timers, an update
that returns what it claimed, is kept here beside the timer reads it mirrors.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import sqlalchemy as sa

from engine.store import schema as t
from engine.store.statements import Prepared

__all__ = ["ReadStatements"]

_e, _tr, _st, _tm, _ev = t.entities.c, t.transitions.c, t.steps.c, t.timers.c, t.events.c

# Steps of the transitions a query selects, in one statement, ordered for grouping.
_STEPS_ORDER = (_st.transition_id, _st.index)


def _steps_of(transitions: Any) -> Any:
    """The steps of the transitions ``transitions`` (a select of transition ids) selects."""
    return t.steps.select().where(_st.transition_id.in_(transitions)).order_by(*_STEPS_ORDER)


# "WHERE live" and "WHERE NOT live" as the partial indexes on them say it, so that the
# indexes serve the queries (SQLite would not see that "live = 1" implies "live").
_LIVE: sa.ColumnClause[Any] = sa.literal_column("entities.live")


def _entities_page(chart: bool, state: bool, live: bool) -> Any:
    query = t.entities.select().where(_e.seq > sa.bindparam("after"))
    if live:
        query = query.where(_LIVE)
    if chart:
        query = query.where(_e.chart == sa.bindparam("chart"))
    if state:
        query = query.where(_e.states.like(sa.bindparam("pattern"), escape="\\"))
    return query.order_by(_e.seq).limit(sa.bindparam("limit"))


def _pending_timers(charts: int, *, due: bool, unclaimed: bool = False, node: bool = False) -> Any:
    """Pending timers (due by ``:now`` if ``due``), of entities of ``charts`` chart names.

    Driven by the (status, due_at) index, each timer's entity read by its key:
    never a scan of the entities, however many there are. ``unclaimed`` leaves
    out timers another engine's claim holds past ``:now``; ``node`` those of
    entities that belong to a node other than ``:node``.
    """
    query = t.timers.select().where(_tm.status == "pending")
    if due:
        query = query.where(_tm.due_at <= sa.bindparam("now"))
    if unclaimed:
        query = query.where(
            sa.or_(_tm.claimed_until.is_(None), _tm.claimed_until < sa.bindparam("now"))
        )
    if charts or node:
        owned = sa.select(_e.id).where(_e.id == _tm.entity_id)
        if charts:
            names: list[Any] = [sa.bindparam(f"chart{i}") for i in range(charts)]
            owned = owned.where(_e.chart.in_(names))
        if node:
            owned = owned.where(sa.or_(_e.node.is_(None), _e.node == sa.bindparam("node")))
        query = query.where(owned.exists())
    return query.order_by(_tm.due_at)


def _by_name(*, in_chart: bool) -> Any:
    """The two newest entities named ``:key`` (in ``:chart`` if ``in_chart``), live first."""
    named = t.entities.select().where(_e.name == sa.bindparam("key"))
    if in_chart:
        named = named.where(_e.chart == sa.bindparam("chart"))
    return named.order_by(_e.live.desc(), _e.seq.desc()).limit(2)


def _by_id_or_name(*, in_chart: bool) -> Any:
    """The entity with id ``:key`` (``by_id`` 1) and :func:`_by_name`'s (``by_id`` 0).

    One statement, so that a lookup by name costs one round trip, not two.
    """
    by_id = sa.select(*t.entities.c, sa.literal_column("1").label("by_id")).where(
        _e.id == sa.bindparam("key")
    )
    newest = _by_name(in_chart=in_chart).subquery()
    by_name = sa.select(*newest.c, sa.literal_column("0").label("by_id"))
    both = sa.union_all(by_id, by_name).subquery()
    return sa.select(*both.c).order_by(both.c.by_id.desc(), both.c.live.desc(), both.c.seq.desc())


class _Read(Prepared):
    """A prepared read whose literal values (a LIMIT 2, a status) are bound for it."""

    __slots__ = ("_literals",)

    def __init__(self, sql: str, names: Sequence[str] | None, literals: dict[str, Any]) -> None:
        super().__init__(sql, names)
        self._literals = literals

    def args(self, params: dict[str, Any]) -> Any:
        """The driver's arguments: the literals, then the given ``params``."""
        return super().args({**self._literals, **params} if self._literals else params)


class ReadStatements:
    """Every read statement of one database, compiled once (per shape)."""

    def __init__(self, dialect: sa.Dialect) -> None:
        self._dialect = dialect
        self._shapes: dict[Hashable, Prepared] = {}
        self._lock = threading.Lock()
        c = self.compile
        self.entity_by_id = c(t.entities.select().where(_e.id == sa.bindparam("key")))
        self.entity_by_name = c(_by_name(in_chart=False))
        self.entity_by_name_in_chart = c(_by_name(in_chart=True))
        self.entity_by_key = c(_by_id_or_name(in_chart=False))
        self.entity_by_key_in_chart = c(_by_id_or_name(in_chart=True))
        journal = t.transitions.select().where(_tr.entity_id == sa.bindparam("entity"))
        self.journal = c(journal.order_by(_tr.seq))
        self.journal_steps = c(
            _steps_of(sa.select(_tr.id).where(_tr.entity_id == sa.bindparam("entity")))
        )
        keyed = journal.where(_tr.idempotency_key == sa.bindparam("key"))
        self.keyed = c(keyed)
        self.keyed_steps = c(
            _steps_of(
                sa.select(_tr.id).where(
                    _tr.entity_id == sa.bindparam("entity"),
                    _tr.idempotency_key == sa.bindparam("key"),
                )
            )
        )
        self.transition_by_id = c(t.transitions.select().where(_tr.id == sa.bindparam("id")))
        self.transition_by_id_steps = c(
            t.steps.select().where(_st.transition_id == sa.bindparam("id")).order_by(*_STEPS_ORDER)
        )
        self.census_entities = c(
            sa.select(_e.chart, _e.configuration, sa.func.count().label("n"))
            .where(_LIVE)
            .group_by(_e.chart, _e.configuration)
        )
        self.census_timers = c(sa.select(sa.func.count().label("n")).where(_tm.status == "pending"))
        unfinished = _tr.status.in_(("running", "compensating"))
        self.unfinished = c(t.transitions.select().where(unfinished).order_by(_tr.seq))
        self.unfinished_steps = c(_steps_of(sa.select(_tr.id).where(unfinished)))
        self.events = c(
            t.events.select()
            .where(_ev.seq > sa.bindparam("after"))
            .order_by(_ev.seq)
            .limit(sa.bindparam("limit"))
        )
        self.last_event = c(sa.select(sa.func.max(_ev.seq)))
        self.owners = c(t.owners.select())
        self.timers_of = c(
            t.timers.select().where(_tm.entity_id == sa.bindparam("entity")).order_by(_tm.due_at)
        )

    def compile(self, stmt: Any) -> Prepared:
        """``stmt`` compiled for this database."""
        # IN lists of literals are rendered now; bindparam() names the caller's values,
        # every other (anonymous) parameter is a literal of the statement.
        compiled = stmt.compile(dialect=self._dialect, compile_kwargs={"render_postcompile": True})
        named = {key for key, bind in compiled.binds.items() if not bind.unique}
        literals = {k: v for k, v in compiled.params.items() if k not in named}
        return _Read(compiled.string, compiled.positiontup, literals)

    def shape(self, key: Hashable, build: Callable[[], Any]) -> Prepared:
        """The statement of shape ``key``, built by ``build`` the first time."""
        found = self._shapes.get(key)
        if found is None:
            with self._lock:
                found = self._shapes.setdefault(key, self.compile(build()))
        return found

    def entities_page(self, *, chart: bool, state: bool, live: bool) -> Prepared:
        """A page of entities after ``:after``, filtered by ``:chart``, ``:pattern``, liveness."""
        return self.shape(
            ("entities", chart, state, live), lambda: _entities_page(chart, state, live)
        )

    def finished_before(self) -> Prepared:
        """Finished entities last changed before ``:before``, oldest first, ``:limit`` of them.

        Built on first use: only the retention sweep asks.
        """

        def build() -> Any:
            return (
                sa.select(_e.id)
                .where(sa.not_(_LIVE), _e.updated_at < sa.bindparam("before"))
                .order_by(_e.seq)
                .limit(sa.bindparam("limit"))
            )

        return self.shape("finished", build)

    def live_names(self, count: int) -> Prepared:
        """The names among ``:name0`` .. ``:name{count-1}`` live in ``:chart``."""

        def build() -> Any:
            names: list[Any] = [sa.bindparam(f"name{i}") for i in range(count)]
            return sa.select(_e.name).where(
                _e.chart == sa.bindparam("chart"), _LIVE, _e.name.in_(names)
            )

        return self.shape(("names", count), build)

    def due_timers(self, charts: Sequence[str] | None) -> Prepared:
        """Pending timers due by ``:now``, earliest first, limited by ``:limit``."""
        n = -1 if charts is None else len(charts)
        return self.shape(
            ("due", n),
            lambda: _pending_timers(max(n, 0), due=True).limit(sa.bindparam("limit")),
        )

    def next_timer(
        self, charts: Sequence[str] | None, *, unclaimed: bool = False, node: bool = False
    ) -> Prepared:
        """The due time of the earliest pending timer (not claimed past ``:now``, of ``:node``)."""
        n = -1 if charts is None else len(charts)

        def build() -> Any:
            pending = _pending_timers(max(n, 0), due=False, unclaimed=unclaimed, node=node)
            return sa.select(pending.limit(1).subquery().c.due_at)

        return self.shape(("next", n, unclaimed, node), build)

    def claim_timers(self, charts: Sequence[str] | None, *, node: bool = False) -> Prepared:
        """Claim up to ``:limit`` unclaimed timers due by ``:now`` for ``:owner`` till ``:until``.

        The rows are chosen ``FOR UPDATE SKIP LOCKED``: a timer another
        engine is claiming in a transaction not yet committed is skipped, not
        waited for, and once that commits its claim excludes it. (SQLite has no
        row locks: its writers run one at a time, the same guarantee.) With
        ``node``, timers of entities bound to another node than ``:node`` are
        never claimed: they wait for their node.
        """
        n = -1 if charts is None else len(charts)

        def build() -> Any:
            chosen = (
                _pending_timers(max(n, 0), due=True, unclaimed=True, node=node)
                .with_only_columns(_tm.id)
                .limit(sa.bindparam("limit"))
                .with_for_update(skip_locked=True)
            )
            return (
                t.timers.update()
                .where(_tm.id.in_(chosen.scalar_subquery()))
                .values(claimed_by=sa.bindparam("owner"), claimed_until=sa.bindparam("until"))
                .returning(*t.timers.c)
            )

        return self.shape(("claim", n, node), build)
