"""One SQL database as the store uses it: its transactions, and driver SQL run in them.

Reads and writes run their prepared driver SQL (see
:mod:`engine.store.queries` and :mod:`engine.store.statements`) on the
driver's cursor: reads on pooled connections, writes inside a transaction
begun here; a driver error is raised as SQLAlchemy's, so that
callers catch one family of errors whichever way a statement ran.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

import sqlalchemy as sa

from engine.errors import Unavailable
from engine.store import postgres, wire
from engine.store.checkpoint import BACKSTOP_PAGES, Checkpointer
from engine.store.dialect import open_engine
from engine.store.statements import Prepared

__all__ = ["Database"]

T = TypeVar("T")

_WRITER_CACHE_KIB = 64 * 1024
# Idle SQLite read connections kept for the next read; more are closed as they finish.
_IDLE_READERS = 4
# A kept reader's page cache (SQLite's default is 2 MiB; pages are allocated as read,
# so a small database never fills it). At a million entities the upper levels of the
# entity table and of its id and name indexes are ~2.5 MiB, and a read touches one
# leaf of each: a working set of 1,000 entities read by id and by name is ~16 MiB of
# pages, which 8 MiB lost on every round (a bare lookup by id 5-8 us dearer than at a
# thousand entities; 2.5-3.5 us with 16-32 MiB). Entities read at random from all of
# a million cost those 5-7 us whatever the cache: none short of the file holds their
# leaves. Memory-mapping the file did better but the kernel maps 64 KiB around each
# page touched: the resident size grew by 160 MB over a few thousand reads.
_READER_CACHE_KIB = 24 * 1024


class Database:
    """The engine on one database, its read and write transactions, and the write connection."""

    def __init__(self, url: sa.URL, busy_timeout_ms: int) -> None:
        self.dialect = url.get_backend_name()
        self.engine, shared = open_engine(url, busy_timeout_ms)
        # Only an in-memory SQLite database shares one connection between threads.
        self._serial = threading.RLock() if shared else None
        self._dbapi_error: type[Exception] = self.engine.dialect.dbapi.Error  # type: ignore[union-attr]
        self._write_lock = threading.Lock()
        self._write_conn: Any = None
        self._kept = postgres.Kept(self.engine) if self.dialect == "postgresql" else None
        self._checkpoints = (
            Checkpointer(self.engine.raw_connection)
            if self.dialect == "sqlite" and not shared
            else None
        )
        # SQLite file: read connections kept here, not in SQLAlchemy's pool (see querying).
        self._readers: list[Any] | None = [] if self._checkpoints is not None else None
        self._closed = False

    @contextmanager
    def _guarded(self) -> Iterator[None]:
        """Around every transaction: one at a time on a shared connection (in-memory
        SQLite), and a database that cannot be reached raised as Unavailable."""
        lock = self._serial
        if lock is not None:
            lock.acquire()
        try:
            yield
        except sa.exc.OperationalError as exc:
            raise Unavailable(f"the database is unavailable: {exc.orig or exc}") from exc
        finally:
            if lock is not None:
                lock.release()

    def transact(self, body: Callable[[Any], T]) -> T:
        """``body(conn)`` in one write transaction (see :meth:`writing`), committed.

        On PostgreSQL it runs once more, on a new connection, if the server
        had dropped the first one before the COMMIT was sent: nothing of the
        first try can have been committed then. (A pooled connection is looked
        at on checkout, not pinged; the server may still end it just after.)
        """
        attempt = postgres.Attempt()
        try:
            with self.writing(attempt) as conn:
                return body(conn)
        except Unavailable:
            if not attempt.dropped_before_commit():
                raise
        with self.writing() as conn:
            return body(conn)

    @contextmanager
    def writing(self, attempt: postgres.Attempt | None = None) -> Iterator[Any]:
        """The driver connection of one write transaction, committed on success.

        SQLite: one connection kept open for every write (writes are
        serialised by the group commit anyway, and checking a connection out
        of the pool costs more than the statements), begun IMMEDIATE so two
        processes never deadlock upgrading a read lock. PostgreSQL: a pooled
        connection, one the server dropped replaced on checkout; ``attempt``
        learns whether the COMMIT was sent (see :meth:`transact`).
        """
        with self._guarded():
            if self.dialect == "sqlite":
                with self._write_lock:
                    raw = self._writer()
                    self.run_sql(raw, "BEGIN IMMEDIATE")
                    try:
                        yield raw
                    except BaseException:
                        try:
                            self.run_sql(raw, "ROLLBACK")
                        except sa.exc.DBAPIError:
                            self._drop_writer()
                        raise
                    self.run_sql(raw, "COMMIT")
                    if self._checkpoints is not None:
                        self._checkpoints.committed()
            else:
                with postgres.writing(self.engine, attempt, self._dbapi_error) as conn:
                    yield conn

    @contextmanager
    def querying(self, *, snapshot: bool = False) -> Iterator[Any]:
        """A driver connection to run prepared reads on (see :meth:`query`): one of
        the kept readers on a SQLite file (:meth:`_reader`), else the pool's.

        With ``snapshot`` its reads share one read transaction (a journal and
        its steps agree); otherwise each statement sees the latest commit.
        """
        if self._readers is not None:
            with self._guarded(), self._reader(snapshot) as conn:
                yield conn
            return
        with self._guarded():
            if self.dialect == "postgresql":
                reader = postgres.Reader(self.engine)
                try:
                    yield reader
                finally:
                    reader.close()
                return
            conn = self.engine.raw_connection()
            try:
                if snapshot:
                    self.run_sql(conn, "BEGIN")
                yield conn
            except sa.exc.OperationalError:
                conn.invalidate()  # a connection the server dropped is not pooled again
                raise
            finally:
                # Back to the pool, which rolls a read transaction back.
                conn.close()

    @contextmanager
    def _reader(self, snapshot: bool) -> Iterator[Any]:
        """A SQLite file's read connection, taken from the idle ones (made if none is).

        The pool's checkout and return (events, a reset) cost about as much
        Python as the read itself; a list of idle connections costs a pop and
        an append. A connection is used by one thread at a time; a read
        transaction is rolled back before it is idle again.
        """
        readers = self._readers
        assert readers is not None
        try:
            conn = readers.pop()
        except IndexError:
            conn = self.engine.raw_connection()
            conn.detach()  # ours now: closed, not pooled, when we let it go
            self.run_sql(conn, f"PRAGMA cache_size=-{_READER_CACHE_KIB}")
        try:
            if snapshot:
                self.run_sql(conn, "BEGIN")
            yield conn
            if snapshot:
                self.run_sql(conn, "ROLLBACK")
        except BaseException:
            conn.close()
            raise
        if self._closed or len(readers) >= _IDLE_READERS:
            conn.close()
        else:
            readers.append(conn)
            if self._closed:  # closed meanwhile: its sweep may have missed this one
                self._close_readers()

    def query(self, conn: Any, prepared: Prepared, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Run a prepared read on ``conn`` (from :meth:`querying`); its rows by column name."""
        cursor = self.run(conn, prepared, params)
        try:
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        finally:
            cursor.close()

    def fetch(
        self, conn: postgres.Reader, prepared: Prepared, params: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """:meth:`query` on PostgreSQL, sent straight through libpq (see :mod:`wire`).

        For the hot reads: each of their statements is prepared on every
        connection it runs on, so only a few fixed statements come this way.
        """
        driver = conn.conn.driver_connection
        try:
            (result,) = wire.run(driver, [(wire.statement(prepared.sql), prepared.args(params))])
        except wire.FlightFailed as failed:
            raise sa.exc.DBAPIError.instance(
                prepared.sql, params, failed.error, self._dbapi_error
            ) from failed.error
        except wire.Unsendable:  # found before anything was sent
            return self.query(conn, prepared, params)
        except self._dbapi_error as exc:
            if not conn.replaced():
                raise sa.exc.DBAPIError.instance(prepared.sql, (), exc, self._dbapi_error) from exc
            return self.fetch(conn, prepared, params)
        return wire.rows_of(result)

    def fly(self, items: list[wire.Item]) -> list[Any]:
        """Send ``items`` to PostgreSQL in one flight (see :func:`postgres.fly`).

        A failed statement is raised as :class:`wire.FlightFailed`, its error
        as SQLAlchemy's; a lost connection as :class:`postgres.Lost`.
        """
        with self._guarded():
            try:
                assert self._kept is not None  # flights are PostgreSQL's
                return postgres.fly(self._kept, items)
            except wire.FlightFailed as failed:
                failed.error = sa.exc.DBAPIError.instance("", (), failed.error, self._dbapi_error)
                raise

    def _writer(self) -> Any:
        if self._write_conn is None:
            self._write_conn = self.engine.raw_connection()
            # Every write goes through this one connection: a page cache of its own big
            # enough for the indexes' upper levels keeps a commit's inserts from reading
            # pages back at a million entities (the readers keep SQLite's default).
            self.run_sql(self._write_conn, f"PRAGMA cache_size=-{_WRITER_CACHE_KIB}")
            if self._checkpoints is not None:
                # Checkpoints run on their own thread; a commit runs one only as a backstop.
                self.run_sql(self._write_conn, f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
        return self._write_conn

    def _drop_writer(self) -> None:
        conn, self._write_conn = self._write_conn, None
        if conn is not None:
            with suppress(sa.exc.DBAPIError):
                conn.invalidate()

    # -- running driver SQL ----------------------------------------------------------------

    def run_sql(self, conn: Any, sql: str) -> None:
        """Run ``sql``, which has no parameters (a transaction or savepoint command)."""
        try:
            conn.execute(sql)
        except self._dbapi_error as exc:
            raise sa.exc.DBAPIError.instance(sql, (), exc, self._dbapi_error) from exc

    def run(self, conn: Any, prepared: Prepared, params: dict[str, Any]) -> Any:
        """Run one prepared statement on the driver's cursor; return the cursor.

        A PostgreSQL read whose connection the server had dropped runs once
        more on a new one (each read stands alone: see :meth:`querying`).
        """
        cursor = conn.cursor()
        args = prepared.args(params)
        try:
            cursor.execute(prepared.sql, args)
        except self._dbapi_error as exc:
            if not (isinstance(conn, postgres.Reader) and conn.replaced()):
                raise sa.exc.DBAPIError.instance(
                    prepared.sql, args, exc, self._dbapi_error
                ) from exc
            return self.run(conn, prepared, params)
        return cursor

    def counted(self, conn: Any, cursor: Any) -> int:
        """The rows ``cursor``'s statement changed, once the database has answered.

        In a pipelined write (PostgreSQL) the count comes with the answer,
        which leaving a nested pipeline block waits for.
        """
        if isinstance(conn, postgres.Pipelined):
            try:
                conn.sync()
            except self._dbapi_error as exc:
                raise sa.exc.DBAPIError.instance("", (), exc, self._dbapi_error) from exc
        return int(cursor.rowcount)

    def run_statement(self, conn: Any, stmt: Any) -> None:
        """Run a statement built for this call (rare paths): compiled now, with its values."""
        compiled = stmt.compile(
            dialect=self.engine.dialect, compile_kwargs={"render_postcompile": True}
        )
        self.run(conn, Prepared(compiled.string, compiled.positiontup), compiled.params).close()

    def run_many(self, conn: Any, prepared: Prepared, rows: Iterable[dict[str, Any]]) -> int:
        """Run a prepared statement once per row; return the rows it counted as changed.

        The driver takes the rows' arguments one by one as it runs them: each
        row's values are freed before the next is made, never all alive at once
        (a batch of 20,000 new entities would otherwise promote 40,000 objects to
        the garbage collector's oldest generation, to be scanned again and again).
        """
        cursor = conn.cursor()
        try:
            cursor.executemany(prepared.sql, map(prepared.args, rows))
            return int(cursor.rowcount)
        except self._dbapi_error as exc:
            raise sa.exc.DBAPIError.instance(prepared.sql, (), exc, self._dbapi_error) from exc
        finally:
            cursor.close()

    def _close_readers(self) -> None:
        while self._readers:
            try:
                conn = self._readers.pop()
            except IndexError:  # another thread took the last one
                return
            conn.close()

    def close(self) -> None:
        """Release every connection."""
        self._closed = True
        self._close_readers()
        if self._kept is not None:
            self._kept.close()
        if self._checkpoints is not None:
            self._checkpoints.close()
        with self._write_lock:
            if self._write_conn is not None:
                self._write_conn.close()
                self._write_conn = None
        self.engine.dispose()
