"""SqlStore: the Store port on SQLAlchemy 2 Core, for SQLite and PostgreSQL.

SQLite is opened in WAL mode with ``synchronous=FULL`` by default, so that a
commit survives a power loss, not only a process crash; a URL query
``?synchronous=normal`` trades that for speed. Writes on SQLite begin with
``BEGIN IMMEDIATE`` so that two processes never deadlock upgrading a read
lock, and wait up to ``busy_timeout`` for each other.
"""

from __future__ import annotations

import functools
import json
import operator
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.pool import StaticPool

from engine.errors import Conflict, InvalidParameter, Unavailable
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


_ENCODER = json.JSONEncoder(separators=(",", ":"), sort_keys=True)
# JSONEncoder.encode builds its C encoder anew on every call, which costs as much
# as encoding a small plan; this one is built once. Without a markers dict it does
# not look for cycles: every value here was built by the engine or checked by
# json.dumps already, and a cycle would still fail, with RecursionError.
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
_C_ENCODE = (
    _c_make_encoder(
        None,
        _ENCODER.default,
        json.encoder.encode_basestring_ascii,
        None,
        ":",
        ",",
        True,
        False,
        True,
    )
    if _c_make_encoder is not None
    else None
)


def _dumps(value: Any) -> str:
    if not value and isinstance(value, dict | list | tuple):
        return "{}" if isinstance(value, dict) else "[]"
    if _C_ENCODE is None:
        return _ENCODER.encode(value)
    return "".join(_C_ENCODE(value, 0))


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
        self._dbapi_error: type[Exception] = self._engine.dialect.dbapi.Error  # type: ignore[union-attr]
        self._write_lock = threading.Lock()
        self._write_conn: Any = None
        self._prepare()

    @property
    def engine(self) -> sa.Engine:
        """The SQLAlchemy engine (for migrations and tools)."""
        return self._engine

    # -- connections -------------------------------------------------------------

    @contextmanager
    def _connect(self) -> Iterator[sa.Connection]:
        """A pooled connection in a read transaction."""
        lock = self._serial
        if lock is not None:
            lock.acquire()
        try:
            with self._engine.connect() as conn, conn.begin():
                yield conn
        except sa.exc.OperationalError as exc:
            raise Unavailable(f"the database is unavailable: {exc.orig or exc}") from exc
        finally:
            if lock is not None:
                lock.release()

    @contextmanager
    def _writing(self) -> Iterator[Any]:
        """The driver connection of one write transaction, committed on success.

        SQLite: one connection kept open for every write (writes are
        serialised by the group commit anyway, and checking a connection out
        of the pool costs more than the statements), begun IMMEDIATE so two
        processes never deadlock upgrading a read lock. PostgreSQL: a pooled
        connection, pinged on checkout, so that one the server dropped is
        replaced before it can fail a write.
        """
        lock = self._serial
        if lock is not None:
            lock.acquire()
        try:
            if self.dialect == "sqlite":
                with self._write_lock:
                    raw = self._writer()
                    self._raw(raw, "BEGIN IMMEDIATE")
                    try:
                        yield raw
                    except BaseException:
                        try:
                            self._raw(raw, "ROLLBACK")
                        except sa.exc.DBAPIError:
                            self._drop_writer()
                        raise
                    self._raw(raw, "COMMIT")
            else:
                with self._engine.connect() as conn:
                    conn.execution_options(chartd_write=True)
                    with conn.begin():
                        yield conn.connection.dbapi_connection
        except sa.exc.OperationalError as exc:
            raise Unavailable(f"the database is unavailable: {exc.orig or exc}") from exc
        finally:
            if lock is not None:
                lock.release()

    def _raw(self, raw: Any, sql: str) -> None:
        try:
            raw.execute(sql)
        except self._dbapi_error as exc:
            raise sa.exc.DBAPIError.instance(sql, (), exc, self._dbapi_error) from exc

    def _writer(self) -> Any:
        if self._write_conn is None:
            self._write_conn = self._engine.raw_connection()
        return self._write_conn

    def _drop_writer(self) -> None:
        conn, self._write_conn = self._write_conn, None
        if conn is not None:
            with suppress(sa.exc.DBAPIError):
                conn.invalidate()

    # -- writing -----------------------------------------------------------------

    def _prepare(self) -> None:
        """Compile the write statements once, for this database, to driver SQL.

        A commit of one fire runs four or five statements. Through
        SQLAlchemy's execution layer each costs 15 to 50 us of Python even when
        its compiled form is cached; the driver's cursor runs the same SQL in
        about 2 us. So the schema and the SQL come from SQLAlchemy Core, and
        the hot path hands that SQL to the driver, inside the transaction
        SQLAlchemy began.
        """
        e, tr = t.entities.c, t.transitions.c
        prep = self._compile
        self._update_entity = prep(
            t.entities.update()
            .where(e.id == sa.bindparam("b_id"), e.version == sa.bindparam("b_expect"))
            .values({name: sa.bindparam(name) for name in _ENTITY_CHANGES})
        )
        self._insert_entity = prep(t.entities.insert(), t.entities)
        self._insert_transition = prep(t.transitions.insert(), t.transitions)
        self._update_transition = prep(
            t.transitions.update()
            .where(tr.id == sa.bindparam("b_id"))
            .values({name: sa.bindparam(name) for name in _TRANSITION_CHANGES})
        )
        self._insert_event = prep(t.events.insert(), t.events)
        self._upsert_step = prep(
            self._upsert_statement(t.steps, ("transition_id", "index")), t.steps
        )
        self._upsert_timer = prep(self._upsert_statement(t.timers, ("id",)), t.timers)
        self._upsert_owner = prep(self._upsert_statement(t.owners, ("owner",)), t.owners)
        # Reserving numbers of one or two sequences is one statement either way.
        self._allocators = {
            width: prep(
                sa.text(
                    "INSERT INTO counters (name, value) VALUES "
                    + ", ".join(f"(:name{i}, :n{i})" for i in range(width))
                    + " ON CONFLICT (name) DO UPDATE SET value = counters.value + excluded.value"
                    " RETURNING name, value"
                )
            )
            for width in (1, 2)
        }

    def _compile(self, stmt: Any, table: sa.Table | None = None) -> _Prepared:
        keys = [c.name for c in table.columns] if table is not None else None
        compiled = stmt.compile(dialect=self._engine.dialect, column_keys=keys)
        return _Prepared(compiled.string, compiled.positiontup)

    def _upsert_statement(self, table: sa.Table, keys: tuple[str, ...]) -> Any:
        stmt = self._insert(table)
        update = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
        return stmt.on_conflict_do_update(index_elements=list(keys), set_=update)

    def _run(self, conn: Any, prepared: _Prepared, params: dict[str, Any]) -> Any:
        """Run one prepared statement on the driver's cursor; return the cursor."""
        cursor = conn.cursor()
        args = prepared.args(params)
        try:
            cursor.execute(prepared.sql, args)
        except self._dbapi_error as exc:
            raise sa.exc.DBAPIError.instance(prepared.sql, args, exc, self._dbapi_error) from exc
        return cursor

    def _run_statement(self, conn: Any, stmt: Any) -> None:
        """Run a statement built for this call (rare paths): compiled now, with its values."""
        compiled = stmt.compile(
            dialect=self._engine.dialect, compile_kwargs={"render_postcompile": True}
        )
        self._run(conn, _Prepared(compiled.string, compiled.positiontup), compiled.params).close()

    def _run_many(self, conn: Any, prepared: _Prepared, rows: list[dict[str, Any]]) -> None:
        cursor = conn.cursor()
        args = [prepared.args(r) for r in rows]
        try:
            cursor.executemany(prepared.sql, args)
        except self._dbapi_error as exc:
            raise sa.exc.DBAPIError.instance(prepared.sql, args, exc, self._dbapi_error) from exc
        finally:
            cursor.close()

    def apply(self, batch: Sequence[Write]) -> list[Exception | None]:
        """Commit ``batch`` in one transaction; see :meth:`engine.ports.Store.apply`.

        A unit that breaks a unique constraint (a name taken, an idempotency
        key used) gets a Conflict; alone, the Conflict is raised.
        """
        try:
            with self._writing() as conn:
                return self._apply(conn, batch)
        except sa.exc.IntegrityError as exc:
            if len(batch) == 1:
                raise _conflict(exc) from exc
            # One unit broke a constraint (e.g. a name taken by another process):
            # commit the others, each alone, so only the offender fails. From here on
            # earlier units may be committed, so a later unit's failure (the database
            # going away too) is that unit's entry, never raised for the whole batch.
            results: list[Exception | None] = []
            for unit in batch:
                try:
                    results.extend(self.apply([unit]))
                except (Conflict, Unavailable) as failure:
                    results.append(failure)
            return results

    def _apply(self, conn: Any, batch: Sequence[Write]) -> list[Exception | None]:
        results: list[Exception | None] = []
        passed: list[Write] = []
        new_entities: list[EntityRow] = []
        checked = self._update_all(conn, batch)
        for unit in batch:
            row = unit.entity
            if checked and row is not None and unit.expect_version is not None:
                pass  # updated, every version matched, by _update_all
            elif row is not None and unit.expect_version is not None:
                if any(r.id == row.id for r in new_entities):
                    # Created earlier in this batch: insert it before checking its version.
                    self._insert_entities(conn, new_entities)
                    new_entities = []
                done = self._run(
                    conn,
                    self._update_entity,
                    {"b_id": row.id, "b_expect": unit.expect_version, **_entity_changes(row)},
                )
                changed = done.rowcount
                done.close()
                if changed != 1:
                    results.append(VersionConflict(row.id, unit.expect_version))
                    continue
            elif row is not None:
                new_entities.append(row)
            results.append(None)
            passed.append(unit)
        if new_entities:
            self._insert_entities(conn, new_entities)
        new_transitions = [tr for unit in passed for tr in unit.transitions]
        events = [e for unit in passed for e in unit.events]
        seqs = self._allocate(conn, transitions=len(new_transitions), events=len(events))
        if new_transitions:
            first = seqs["transitions"]
            rows = [_transition_values(tr) for tr in new_transitions]
            for i, values in enumerate(rows):
                values["seq"] = first + i
            self._run_many(conn, self._insert_transition, rows)
        updates = [tr for unit in passed for tr in unit.transition_updates]
        if updates:
            self._run_many(
                conn, self._update_transition, [_transition_changes(tr) for tr in updates]
            )
        step_rows = [_step_values(s) for unit in passed for s in unit.steps]
        if step_rows:
            self._run_many(conn, self._upsert_step, step_rows)
        # Units apply in batch order: a unit's cancel_timers also cancels the timers
        # that earlier units of the batch set, and never those it or later ones set.
        timer_rows: list[dict[str, Any]] = []
        for unit in passed:
            if unit.cancel_timers is not None:
                if timer_rows:
                    self._run_many(conn, self._upsert_timer, timer_rows)
                    timer_rows = []
                entity_id, names = unit.cancel_timers
                query = t.timers.update().where(
                    t.timers.c.entity_id == entity_id, t.timers.c.status == "pending"
                )
                if names is not None:
                    query = query.where(t.timers.c.event.in_(sorted(names)))
                self._run_statement(conn, query.values(status="cancelled"))
            timer_rows.extend(_timer_values(tm) for tm in unit.timers)
        if timer_rows:
            self._run_many(conn, self._upsert_timer, timer_rows)
        if events:
            first = seqs["events"]
            self._run_many(
                conn,
                self._insert_event,
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

    def _update_all(self, conn: Any, batch: Sequence[Write]) -> bool:
        """Try every version-checked entity update of the batch in one statement.

        True if each matched its version (the common case: no race). Else it
        undoes them (to a savepoint) and the caller checks unit by unit, so
        that only the losers are skipped. Only on SQLite, whose driver counts
        the rows of an executemany; only when no entity is created or
        updated twice in the batch, where order would matter.
        """
        units = [
            (u.entity, u.expect_version)
            for u in batch
            if u.entity is not None and u.expect_version is not None
        ]
        if self.dialect != "sqlite" or len(units) < 2:
            return False
        ids = {row.id for row, _ in units}
        created = {u.entity.id for u in batch if u.entity is not None and u.expect_version is None}
        if len(ids) != len(units) or created & ids:
            return False
        args = [
            self._update_entity.args({"b_id": row.id, "b_expect": expect, **_entity_changes(row)})
            for row, expect in units
        ]
        self._raw(conn, "SAVEPOINT chartd_updates")
        cursor = conn.cursor()
        try:
            cursor.executemany(self._update_entity.sql, args)
            matched = bool(cursor.rowcount == len(units))
        except self._dbapi_error as exc:
            raise sa.exc.DBAPIError.instance(
                self._update_entity.sql, args, exc, self._dbapi_error
            ) from exc
        finally:
            cursor.close()
        if not matched:
            self._raw(conn, "ROLLBACK TO SAVEPOINT chartd_updates")
        self._raw(conn, "RELEASE SAVEPOINT chartd_updates")
        return matched

    def _insert_entities(self, conn: Any, rows: list[EntityRow]) -> None:
        first = self._allocate(conn, entities=len(rows))["entities"]
        self._run_many(
            conn,
            self._insert_entity,
            [
                {
                    "id": r.id,
                    "seq": first + i,
                    "chart": r.chart,
                    "created_at": r.created_at,
                    **_entity_changes(r),
                }
                for i, r in enumerate(rows)
            ],
        )

    def _allocate(self, conn: Any, **counts: int) -> dict[str, int]:
        """Reserve consecutive numbers of each named sequence; return the first of each.

        One atomic upsert: an UPDATE-then-INSERT lets two first writers on a
        fresh PostgreSQL database both find no row and both insert.
        """
        wanted = {name: n for name, n in counts.items() if n}
        first: dict[str, int] = {}
        names = sorted(wanted)  # a fixed order, so two writers never lock in turn
        for i in range(0, len(names), 2):
            chunk = names[i : i + 2]
            params: dict[str, Any] = {}
            for j, name in enumerate(chunk):
                params[f"name{j}"], params[f"n{j}"] = name, wanted[name]
            cursor = self._run(conn, self._allocators[len(chunk)], params)
            for name, value in cursor.fetchall():
                first[name] = int(value) - wanted[name] + 1
            cursor.close()
        return first

    # -- reading -----------------------------------------------------------------

    def entity(self, id_or_name: str, chart: str | None = None) -> EntityRow | None:
        """The entity with this id, or this name (within ``chart`` if given)."""
        by_id = t.entities.select().where(t.entities.c.id == id_or_name)
        by_name = t.entities.select().where(t.entities.c.name == id_or_name)
        if chart is not None:
            by_id = by_id.where(t.entities.c.chart == chart)
            by_name = by_name.where(t.entities.c.chart == chart)
        with self._connect() as conn:
            row = conn.execute(by_id).first()
            if row is None:
                # A name names its live entity; a name shared by live entities of
                # several charts names none of them. With no live one, the name
                # names the latest finished entity that had it (for its history).
                rows = conn.execute(
                    by_name.order_by(t.entities.c.live.desc(), t.entities.c.seq.desc()).limit(2)
                ).all()
                live = [r for r in rows if r.live]
                row = (live[0] if len(live) == 1 else None) if live else (rows[0] if rows else None)
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
        with self._connect() as conn:
            return [_entity(r._mapping) for r in conn.execute(query)]

    def transition(self, entity_id: str, idempotency_key: str) -> TransitionRow | None:
        """The transition recorded for this idempotency key on this entity."""
        query = t.transitions.select().where(
            t.transitions.c.entity_id == entity_id,
            t.transitions.c.idempotency_key == idempotency_key,
        )
        with self._connect() as conn:
            rows = self._with_steps(conn, conn.execute(query).all())
        return rows[0] if rows else None

    def transitions(self, entity_id: str) -> list[TransitionRow]:
        """The entity's journal, oldest first, with its steps."""
        query = (
            t.transitions.select()
            .where(t.transitions.c.entity_id == entity_id)
            .order_by(t.transitions.c.seq)
        )
        with self._connect() as conn:
            return self._with_steps(conn, conn.execute(query).all())

    def unfinished(self) -> list[TransitionRow]:
        """Transitions left running or compensating, with their steps, oldest first."""
        query = (
            t.transitions.select()
            .where(t.transitions.c.status.in_(("running", "compensating")))
            .order_by(t.transitions.c.seq)
        )
        with self._connect() as conn:
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
        with self._connect() as conn:
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

    def last_event(self) -> int:
        """The seq of the newest outbox event (0 when there is none)."""
        with self._connect() as conn:
            value = conn.execute(sa.select(sa.func.max(t.events.c.seq))).scalar()
        return int(value or 0)

    def due_timers(
        self, now: float, limit: int = 100, *, charts: Sequence[str] | None = None
    ) -> list[TimerRow]:
        """Pending timers due at or before ``now``, earliest first; only of ``charts`` if given."""
        query = self._pending(t.timers.select(), charts).where(t.timers.c.due_at <= now)
        query = query.order_by(t.timers.c.due_at).limit(limit)
        with self._connect() as conn:
            return [_timer(r._mapping) for r in conn.execute(query)]

    def _pending(self, query: Any, charts: Sequence[str] | None) -> Any:
        query = query.where(t.timers.c.status == "pending")
        if charts is not None:
            owned = sa.select(t.entities.c.id).where(t.entities.c.chart.in_(list(charts)))
            query = query.where(t.timers.c.entity_id.in_(owned))
        return query

    def timers(self, entity_id: str) -> list[TimerRow]:
        """Every timer of an entity, whatever its status, by due time."""
        query = (
            t.timers.select().where(t.timers.c.entity_id == entity_id).order_by(t.timers.c.due_at)
        )
        with self._connect() as conn:
            return [_timer(r._mapping) for r in conn.execute(query)]

    def next_timer(self, *, charts: Sequence[str] | None = None) -> float | None:
        """When the earliest pending timer (of ``charts``, if given) is due, or None."""
        query = self._pending(sa.select(sa.func.min(t.timers.c.due_at)), charts)
        with self._connect() as conn:
            value = conn.execute(query).scalar()
        return None if value is None else float(value)

    def heartbeat(self, owner: str, pid: int, host: str, now: float) -> None:
        """Record that engine ``owner`` is alive at ``now``."""
        with self._writing() as conn:
            self._run_many(
                conn,
                self._upsert_owner,
                [{"owner": owner, "pid": pid, "host": host, "beat_at": now}],
            )

    def owners(self) -> dict[str, tuple[int, str, float]]:
        """Every engine that ever beat: owner -> (pid, host, last beat)."""
        with self._connect() as conn:
            return {r.owner: (r.pid, r.host, r.beat_at) for r in conn.execute(t.owners.select())}

    def close(self) -> None:
        """Release every connection."""
        with self._write_lock:
            if self._write_conn is not None:
                self._write_conn.close()
                self._write_conn = None
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


_ENTITY_CHANGES = (
    "name",
    "states",
    "configuration",
    "data",
    "history",
    "version",
    "updated_at",
    "live",
)
# What the fire was (entity, event, params, idempotency key) never changes; leaving
# the key out also spares SQLite rewriting its unique index on every update.
_TRANSITION_CHANGES = (
    "status",
    "owner",
    "version_to",
    "plan",
    "error_category",
    "error_message",
    "compensation_errors",
    "started_at",
    "finished_at",
)


class _Prepared:
    """Driver SQL and how to turn named parameters into the driver's arguments."""

    __slots__ = ("_pick", "names", "sql")

    def __init__(self, sql: str, names: Sequence[str] | None) -> None:
        self.sql = sql
        self.names = tuple(names) if names else None  # positional paramstyle (SQLite's "?")
        # itemgetter picks the values in C; a generator over the names cost a few
        # microseconds per row, more than SQLite takes to insert it.
        self._pick = (
            operator.itemgetter(*self.names) if self.names and len(self.names) > 1 else None
        )

    def args(self, params: dict[str, Any]) -> Any:
        if self.names is None:
            return params
        if self._pick is None:
            return (params[self.names[0]],)
        return self._pick(params)


def _entity_changes(r: EntityRow) -> dict[str, Any]:
    return {
        "name": r.name,
        "states": _states(r.configuration),
        "configuration": _configuration(r.configuration),
        "data": _dumps(r.data),
        "history": _dumps({k: list(v) for k, v in r.history.items()}),
        "version": r.version,
        "updated_at": r.updated_at,
        "live": r.live,
    }


def _conflict(exc: sa.exc.IntegrityError) -> Conflict:
    return Conflict(f"the write breaks a uniqueness rule of the journal: {exc.orig or exc}")


@functools.lru_cache(maxsize=4096)
def _configuration(configuration: tuple[str, ...]) -> str:
    # A chart has few configurations and every write stores one: encode each once.
    return _dumps(list(configuration))


@functools.lru_cache(maxsize=4096)
def _states(configuration: tuple[str, ...]) -> str:
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
        live=bool(r["live"]),
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


def _transition_changes(tr: TransitionRow) -> dict[str, Any]:
    values = _transition_values(tr)
    changes = {name: values[name] for name in _TRANSITION_CHANGES}
    changes["b_id"] = tr.id
    return changes


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
