"""SqlStore: the Store port on SQLAlchemy 2 Core, for SQLite and PostgreSQL.

SQLite is opened in WAL mode with ``synchronous=FULL`` by default, so that a
commit survives a power loss, not only a process crash; a URL query
``?synchronous=normal`` trades that for speed. Writes on SQLite begin with
``BEGIN IMMEDIATE`` so that two processes never deadlock upgrading a read
lock, and wait up to ``busy_timeout`` for each other.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.pool import StaticPool

from engine.errors import InvalidParameter, Unavailable
from engine.ports import (
    EntityRow,
    EventRow,
    StepRow,
    TimerRow,
    TransitionRow,
    VersionConflict,
    Write,
)
from engine.store import schema as t

__all__ = ["SqlStore"]

_SYNC_MODES = {"off", "normal", "full", "extra"}


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


class SqlStore:
    """The journal, entities, timers and outbox in one SQL database.

    ``url`` is a SQLAlchemy URL: ``sqlite:///path/chartd.db`` (the embedded
    default), ``sqlite://`` (in memory, for tests), or
    ``postgresql+psycopg://user@host/db`` (several replicas).
    """

    def __init__(self, url: str, *, busy_timeout_ms: int = 10_000) -> None:
        try:
            parsed = sa.make_url(url)
        except sa.exc.ArgumentError as exc:
            raise InvalidParameter(f"invalid database URL {url!r}: {exc}") from None
        self.url = parsed
        self.dialect = parsed.get_backend_name()
        # Only an in-memory SQLite database shares one connection between threads.
        self._serial: threading.RLock | None = None
        if self.dialect == "sqlite":
            sync = str(parsed.query.get("synchronous", "full")).lower()
            if sync not in _SYNC_MODES:
                raise InvalidParameter(
                    f"invalid synchronous={sync!r} in the database URL: use one of "
                    f"{', '.join(sorted(_SYNC_MODES))}"
                )
            parsed = parsed.difference_update_query(["synchronous"])
            memory = parsed.database in (None, "", ":memory:")
            if not memory and not parsed.query.get("uri"):
                folder = Path(parsed.database or "").absolute().parent
                if not folder.is_dir():
                    raise InvalidParameter(
                        f"cannot open the database {parsed.database}: "
                        f"directory {folder} does not exist"
                    )
            kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False}}
            if memory:
                kwargs["poolclass"] = StaticPool
                self._serial = threading.RLock()
            self._engine = _create_engine(parsed, **kwargs)
            sa.event.listen(self._engine, "connect", _sqlite_connect(sync, memory, busy_timeout_ms))
            sa.event.listen(self._engine, "begin", _sqlite_begin)
        elif self.dialect == "postgresql":
            if parsed.drivername == "postgresql":
                # psycopg 3 is the driver chartd ships with; SQLAlchemy 2.0 would pick psycopg2.
                parsed = parsed.set(drivername="postgresql+psycopg")
            self._engine = _create_engine(parsed, pool_pre_ping=True)
        else:
            raise InvalidParameter(
                f"unsupported database {self.dialect!r}: use sqlite:/// or postgresql+psycopg://"
            )
        self._insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert

    @property
    def engine(self) -> sa.Engine:
        """The SQLAlchemy engine (for migrations and tools)."""
        return self._engine

    # -- connections -------------------------------------------------------------

    @contextmanager
    def _connect(self, *, write: bool) -> Iterator[sa.Connection]:
        lock = self._serial
        if lock is not None:
            lock.acquire()
        try:
            with self._engine.connect() as conn:
                if write:
                    conn.execution_options(chartd_write=True)
                with conn.begin():
                    yield conn
        except sa.exc.OperationalError as exc:
            raise Unavailable(f"the database is unavailable: {exc.orig or exc}") from exc
        finally:
            if lock is not None:
                lock.release()

    # -- writing -----------------------------------------------------------------

    def apply(self, batch: Sequence[Write]) -> list[Exception | None]:
        """Commit ``batch`` in one transaction; see :meth:`engine.ports.Store.apply`."""
        try:
            with self._connect(write=True) as conn:
                return self._apply(conn, batch)
        except sa.exc.IntegrityError:
            if len(batch) == 1:
                raise
            # One unit broke a constraint (e.g. a name taken by another process):
            # commit the others, each alone, so only the offender fails. From here on
            # earlier units may be committed, so a later unit's failure (the database
            # going away too) is that unit's entry, never raised for the whole batch.
            results: list[Exception | None] = []
            for unit in batch:
                try:
                    results.extend(self.apply([unit]))
                except (sa.exc.IntegrityError, Unavailable) as exc:
                    results.append(exc)
            return results

    def _apply(self, conn: sa.Connection, batch: Sequence[Write]) -> list[Exception | None]:
        results: list[Exception | None] = []
        passed: list[Write] = []
        new_entities: list[EntityRow] = []
        for unit in batch:
            row = unit.entity
            if row is not None and unit.expect_version is not None:
                if any(r.id == row.id for r in new_entities):
                    # Created earlier in this batch: insert it before checking its version.
                    self._insert_entities(conn, new_entities)
                    new_entities = []
                done = conn.execute(
                    t.entities.update()
                    .where(t.entities.c.id == row.id, t.entities.c.version == unit.expect_version)
                    .values(
                        name=row.name,
                        states=_states(row.configuration),
                        configuration=_dumps(list(row.configuration)),
                        data=_dumps(row.data),
                        history=_dumps({k: list(v) for k, v in row.history.items()}),
                        version=row.version,
                        updated_at=row.updated_at,
                    )
                )
                if done.rowcount != 1:
                    results.append(VersionConflict(row.id, unit.expect_version))
                    continue
            elif row is not None:
                new_entities.append(row)
            results.append(None)
            passed.append(unit)
        if new_entities:
            self._insert_entities(conn, new_entities)
        new_transitions = [tr for unit in passed for tr in unit.transitions]
        if new_transitions:
            first = self._allocate(conn, "transitions", len(new_transitions))
            conn.execute(
                t.transitions.insert(),
                [
                    _transition_values(tr) | {"seq": first + i}
                    for i, tr in enumerate(new_transitions)
                ],
            )
        for unit in passed:
            for tr in unit.transition_updates:
                values = _transition_values(tr)
                for key in ("id", "entity_id", "event", "params", "version_from", "owner"):
                    values.pop(key)
                conn.execute(
                    t.transitions.update().where(t.transitions.c.id == tr.id).values(values)
                )
        step_rows = [_step_values(s) for unit in passed for s in unit.steps]
        if step_rows:
            self._upsert(conn, t.steps, step_rows, ("transition_id", "index"))
        # Units apply in batch order: a unit's cancel_timers also cancels the timers
        # that earlier units of the batch set, and never those it or later ones set.
        timer_rows: list[dict[str, Any]] = []
        for unit in passed:
            if unit.cancel_timers is not None:
                if timer_rows:
                    self._upsert(conn, t.timers, timer_rows, ("id",))
                    timer_rows = []
                entity_id, names = unit.cancel_timers
                query = t.timers.update().where(
                    t.timers.c.entity_id == entity_id, t.timers.c.status == "pending"
                )
                if names is not None:
                    query = query.where(t.timers.c.event.in_(sorted(names)))
                conn.execute(query.values(status="cancelled"))
            timer_rows.extend(_timer_values(tm) for tm in unit.timers)
        if timer_rows:
            self._upsert(conn, t.timers, timer_rows, ("id",))
        events = [e for unit in passed for e in unit.events]
        if events:
            first = self._allocate(conn, "events", len(events))
            conn.execute(
                t.events.insert(),
                [
                    {
                        "seq": first + i,
                        "entity_id": e.entity_id,
                        "entity_name": e.entity_name,
                        "chart": e.chart,
                        "type": e.type,
                        "attributes": _dumps(e.attributes),
                        "transition_id": e.transition_id,
                        "created_at": e.created_at,
                    }
                    for i, e in enumerate(events)
                ],
            )
        return results

    def _insert_entities(self, conn: sa.Connection, rows: list[EntityRow]) -> None:
        first = self._allocate(conn, "entities", len(rows))
        conn.execute(
            t.entities.insert(),
            [
                {
                    "id": r.id,
                    "seq": first + i,
                    "chart": r.chart,
                    "name": r.name,
                    "states": _states(r.configuration),
                    "configuration": _dumps(list(r.configuration)),
                    "data": _dumps(r.data),
                    "history": _dumps({k: list(v) for k, v in r.history.items()}),
                    "version": r.version,
                    "created_at": r.created_at,
                    "updated_at": r.updated_at,
                }
                for i, r in enumerate(rows)
            ],
        )

    def _allocate(self, conn: sa.Connection, name: str, count: int) -> int:
        """Reserve ``count`` consecutive sequence numbers of ``name``; return the first."""
        # One atomic upsert: an UPDATE-then-INSERT lets two first writers on a fresh
        # PostgreSQL database both find no row and both insert (a unique violation).
        insert = self._insert(t.counters).values(name=name, value=count)
        upsert = insert.on_conflict_do_update(
            index_elements=["name"], set_={"value": t.counters.c.value + count}
        )
        last = conn.execute(upsert.returning(t.counters.c.value)).scalar_one()
        return int(last) - count + 1

    def _upsert(
        self,
        conn: sa.Connection,
        table: sa.Table,
        rows: list[dict[str, Any]],
        keys: tuple[str, ...],
    ) -> None:
        stmt = self._insert(table)
        update = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
        conn.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=update), rows)

    # -- reading -----------------------------------------------------------------

    def entity(self, id_or_name: str, chart: str | None = None) -> EntityRow | None:
        """The entity with this id, or this name (within ``chart`` if given)."""
        by_id = t.entities.select().where(t.entities.c.id == id_or_name)
        by_name = t.entities.select().where(t.entities.c.name == id_or_name)
        if chart is not None:
            by_id = by_id.where(t.entities.c.chart == chart)
            by_name = by_name.where(t.entities.c.chart == chart)
        with self._connect(write=False) as conn:
            row = conn.execute(by_id).first()
            if row is None:
                # A name shared by entities of several charts names none of them.
                rows = conn.execute(by_name.limit(2)).all()
                row = rows[0] if len(rows) == 1 else None
        return None if row is None else _entity(row._mapping)

    def entities(
        self,
        *,
        chart: str | None = None,
        state: str | None = None,
        after: int = 0,
        limit: int = 100,
    ) -> list[EntityRow]:
        """Entities in creation order after ``after``, optionally in one chart or state."""
        query = t.entities.select().where(t.entities.c.seq > after)
        if chart is not None:
            query = query.where(t.entities.c.chart == chart)
        if state is not None:
            query = query.where(t.entities.c.states.contains(f"|{state}|", autoescape=True))
        query = query.order_by(t.entities.c.seq).limit(limit)
        with self._connect(write=False) as conn:
            return [_entity(r._mapping) for r in conn.execute(query)]

    def transition(self, entity_id: str, idempotency_key: str) -> TransitionRow | None:
        """The transition recorded for this idempotency key on this entity."""
        query = t.transitions.select().where(
            t.transitions.c.entity_id == entity_id,
            t.transitions.c.idempotency_key == idempotency_key,
        )
        with self._connect(write=False) as conn:
            rows = self._with_steps(conn, conn.execute(query).all())
        return rows[0] if rows else None

    def transitions(self, entity_id: str) -> list[TransitionRow]:
        """The entity's journal, oldest first, with its steps."""
        query = (
            t.transitions.select()
            .where(t.transitions.c.entity_id == entity_id)
            .order_by(t.transitions.c.seq)
        )
        with self._connect(write=False) as conn:
            return self._with_steps(conn, conn.execute(query).all())

    def unfinished(self) -> list[TransitionRow]:
        """Transitions left running or compensating, with their steps, oldest first."""
        query = (
            t.transitions.select()
            .where(t.transitions.c.status.in_(("running", "compensating")))
            .order_by(t.transitions.c.seq)
        )
        with self._connect(write=False) as conn:
            return self._with_steps(conn, conn.execute(query).all())

    def _with_steps(self, conn: sa.Connection, rows: Sequence[sa.Row[Any]]) -> list[TransitionRow]:
        if not rows:
            return []
        ids = [r.id for r in rows]
        by_transition: dict[str, list[StepRow]] = {i: [] for i in ids}
        query = (
            t.steps.select()
            .where(t.steps.c.transition_id.in_(ids))
            .order_by(t.steps.c.transition_id, t.steps.c.index)
        )
        for s in conn.execute(query):
            by_transition[s.transition_id].append(_step(s._mapping))
        return [_transition(r._mapping, tuple(by_transition[r.id])) for r in rows]

    def events(self, *, after: int = 0, limit: int = 1000) -> list[EventRow]:
        """Outbox events with seq greater than ``after``, in seq order."""
        query = (
            t.events.select().where(t.events.c.seq > after).order_by(t.events.c.seq).limit(limit)
        )
        with self._connect(write=False) as conn:
            return [
                EventRow(
                    entity_id=r.entity_id,
                    entity_name=r.entity_name,
                    chart=r.chart,
                    type=r.type,
                    attributes=_loads(r.attributes),
                    transition_id=r.transition_id,
                    created_at=r.created_at,
                    seq=r.seq,
                )
                for r in conn.execute(query)
            ]

    def due_timers(self, now: float, limit: int = 100) -> list[TimerRow]:
        """Pending timers due at or before ``now``, earliest first."""
        query = (
            t.timers.select()
            .where(t.timers.c.status == "pending", t.timers.c.due_at <= now)
            .order_by(t.timers.c.due_at)
            .limit(limit)
        )
        with self._connect(write=False) as conn:
            return [_timer(r._mapping) for r in conn.execute(query)]

    def timers(self, entity_id: str) -> list[TimerRow]:
        """Every timer of an entity, whatever its status, by due time."""
        query = (
            t.timers.select().where(t.timers.c.entity_id == entity_id).order_by(t.timers.c.due_at)
        )
        with self._connect(write=False) as conn:
            return [_timer(r._mapping) for r in conn.execute(query)]

    def next_timer(self) -> float | None:
        """When the earliest pending timer is due, or None."""
        query = sa.select(sa.func.min(t.timers.c.due_at)).where(t.timers.c.status == "pending")
        with self._connect(write=False) as conn:
            value = conn.execute(query).scalar()
        return None if value is None else float(value)

    def heartbeat(self, owner: str, pid: int, host: str, now: float) -> None:
        """Record that engine ``owner`` is alive at ``now``."""
        with self._connect(write=True) as conn:
            self._upsert(
                conn,
                t.owners,
                [{"owner": owner, "pid": pid, "host": host, "beat_at": now}],
                ("owner",),
            )

    def owners(self) -> dict[str, tuple[int, str, float]]:
        """Every engine that ever beat: owner -> (pid, host, last beat)."""
        with self._connect(write=False) as conn:
            return {r.owner: (r.pid, r.host, r.beat_at) for r in conn.execute(t.owners.select())}

    def close(self) -> None:
        """Release every connection."""
        self._engine.dispose()


def _create_engine(url: sa.URL, **kwargs: Any) -> sa.Engine:
    try:
        return sa.create_engine(url, **kwargs)
    except (ImportError, sa.exc.NoSuchModuleError) as exc:
        raise InvalidParameter(
            f"cannot use the database driver {url.drivername!r} ({exc}): "
            "use sqlite:/// or postgresql+psycopg://"
        ) from None


# -- SQLite connection setup -------------------------------------------------------


def _sqlite_connect(sync: str, memory: bool, busy_timeout_ms: int) -> Any:
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Transactions are begun explicitly (see _sqlite_begin), not by the driver.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={sync.upper()}")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.close()

    return on_connect


def _sqlite_begin(conn: sa.Connection) -> None:
    mode = "IMMEDIATE" if conn.get_execution_options().get("chartd_write") else "DEFERRED"
    conn.exec_driver_sql(f"BEGIN {mode}")


# -- rows <-> records ----------------------------------------------------------------------


def _states(configuration: Sequence[str]) -> str:
    return "|" + "|".join(configuration) + "|"


def _entity(r: sa.RowMapping) -> EntityRow:
    return EntityRow(
        id=r["id"],
        chart=r["chart"],
        name=r["name"],
        configuration=tuple(_loads(r["configuration"])),
        data=_loads(r["data"]),
        history={k: tuple(v) for k, v in _loads(r["history"]).items()},
        version=r["version"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
        seq=r["seq"],
    )


def _transition_values(tr: TransitionRow) -> dict[str, Any]:
    return {
        "id": tr.id,
        "entity_id": tr.entity_id,
        "event": tr.event,
        "params": _dumps(tr.params),
        "status": tr.status,
        "version_from": tr.version_from,
        "version_to": tr.version_to,
        "plan": _dumps(tr.plan),
        "owner": tr.owner,
        "idempotency_key": tr.idempotency_key,
        "error_category": tr.error_category,
        "error_message": tr.error_message,
        "compensation_errors": _dumps(list(tr.compensation_errors)),
        "started_at": tr.started_at,
        "finished_at": tr.finished_at,
    }


def _transition(r: sa.RowMapping, steps: tuple[StepRow, ...]) -> TransitionRow:
    return TransitionRow(
        id=r["id"],
        entity_id=r["entity_id"],
        event=r["event"],
        params=_loads(r["params"]),
        status=r["status"],
        version_from=r["version_from"],
        version_to=r["version_to"],
        plan=_loads(r["plan"]),
        owner=r["owner"],
        idempotency_key=r["idempotency_key"],
        error_category=r["error_category"],
        error_message=r["error_message"],
        compensation_errors=tuple(_loads(r["compensation_errors"])),
        started_at=r["started_at"],
        finished_at=r["finished_at"],
        seq=r["seq"],
        steps=steps,
    )


def _step_values(s: StepRow) -> dict[str, Any]:
    return {
        "transition_id": s.transition_id,
        "index": s.index,
        "name": s.name,
        "status": s.status,
        "payload": _dumps(s.payload),
        "error": s.error,
        "effects": None if s.effects is None else _dumps(s.effects),
        "started_at": s.started_at,
        "finished_at": s.finished_at,
        "compensated_at": s.compensated_at,
        "compensation_error": s.compensation_error,
    }


def _step(r: sa.RowMapping) -> StepRow:
    return StepRow(
        transition_id=r["transition_id"],
        index=r["index"],
        name=r["name"],
        status=r["status"],
        payload=_loads(r["payload"]),
        error=r["error"],
        effects=_loads(r["effects"]),
        started_at=r["started_at"],
        finished_at=r["finished_at"],
        compensated_at=r["compensated_at"],
        compensation_error=r["compensation_error"],
    )


def _timer_values(tm: TimerRow) -> dict[str, Any]:
    return {
        "id": tm.id,
        "entity_id": tm.entity_id,
        "event": tm.event,
        "params": _dumps(tm.params),
        "due_at": tm.due_at,
        "status": tm.status,
        "created_by": tm.created_by,
        "fired_transition": tm.fired_transition,
        "error": tm.error,
    }


def _timer(r: sa.RowMapping) -> TimerRow:
    return TimerRow(
        id=r["id"],
        entity_id=r["entity_id"],
        event=r["event"],
        params=_loads(r["params"]),
        due_at=r["due_at"],
        created_by=r["created_by"],
        status=r["status"],
        fired_transition=r["fired_transition"],
        error=r["error"],
    )
