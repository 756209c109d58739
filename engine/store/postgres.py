"""PostgreSQL connections as the store uses them: pipelined writes, stand-alone reads.

A fire's commit is one flight (:func:`fly`, :mod:`engine.store.flight`).
Other writes go the careful way, :func:`writing`: two flights to the
server, BEGIN and the entity's version-checked UPDATE, whose count is
waited for; then the journal, the outbox and the COMMIT (see
:mod:`engine.store.numbering`).
psycopg's own transaction handling would wait for its BEGIN on its own, and
a nested pipeline block waits twice: so a write's connection is in
autocommit mode and the BEGIN and COMMIT are this module's statements,
queued like the others, and a wait is one sync.

Pooled connections are not pinged on checkout (a round trip and 0.1 ms of
Python, two per fire): the pool refuses one the server has closed
(:func:`refuse_dropped`), and one the server ends between that look and its
first statement is replaced and the work run again where nothing can have
committed: a read (each stands alone), or a write whose COMMIT was not sent.
A flight, its COMMIT sent with it, is raised as :class:`Lost` and settled
(see :mod:`engine.store.flight`).
"""

from __future__ import annotations

import select
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from engine.store import wire

__all__ = ["Attempt", "Kept", "Lost", "Pipelined", "Reader", "fly", "refuse_dropped", "writing"]


def refuse_dropped(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
    """On checkout, refuse a connection the server has dropped: the pool makes a new one.

    An idle connection has nothing to read; a server that ends it (a restart,
    ``pg_terminate_backend``, an idle timeout) sends its last words and closes
    the socket, which then reads. Looking costs a system call.
    """
    if dbapi_conn.closed or dbapi_conn.broken:
        raise sa.exc.DisconnectionError("the connection is closed")
    # poll, not select: a daemon's descriptors (its containers' pipes) pass FD_SETSIZE.
    looking = select.poll()
    looking.register(dbapi_conn.fileno(), select.POLLIN | select.POLLHUP | select.POLLERR)
    if looking.poll(0):
        raise sa.exc.DisconnectionError("the server ended the connection")


class Attempt:
    """How far one write transaction got: whether its COMMIT was sent."""

    __slots__ = ("committing", "driver")

    def __init__(self) -> None:
        self.driver: Any = None
        self.committing = False

    def dropped_before_commit(self) -> bool:
        """Whether it failed because its connection was lost, before the COMMIT was sent."""
        return self.driver is not None and not self.committing and self.driver.broken


class Pipelined:
    """A write transaction's connection: statements are queued, and go out at a sync."""

    __slots__ = ("driver", "pipe")

    def __init__(self, driver: Any, pipe: Any) -> None:
        self.driver = driver
        self.pipe = pipe

    def cursor(self) -> Any:
        """A cursor; what it runs is sent at the next sync (or fetch)."""
        return self.driver.cursor()

    def execute(self, sql: str) -> Any:
        """Queue ``sql``, which has no parameters."""
        return self.driver.execute(sql)

    def sync(self) -> None:
        """Send what is queued and wait for its answers: one round trip."""
        self.pipe.sync()


@contextmanager
def writing(
    engine: sa.Engine, attempt: Attempt | None, dbapi_error: type[Exception]
) -> Iterator[Pipelined]:
    """A pooled connection in one pipelined write transaction, committed on success.

    Driver errors of the syncs are raised as SQLAlchemy's, as statements' are.
    """
    conn = engine.raw_connection()
    driver: Any = conn.driver_connection
    if attempt is not None:
        attempt.driver = driver
    driver.autocommit = True  # the transaction is begun and ended by the statements below
    try:
        try:
            with driver.pipeline() as pipe:
                driver.execute("BEGIN")
                yield Pipelined(driver, pipe)
                if attempt is not None:
                    attempt.committing = True
                driver.execute("COMMIT")
        except dbapi_error as exc:  # raised by a sync of the pipeline
            raise sa.exc.DBAPIError.instance("COMMIT", (), exc, dbapi_error) from exc
    except BaseException:
        if driver.broken or driver.closed:
            conn.invalidate()  # not pooled again
        else:
            _rollback(conn, driver)
        raise
    _release(conn, driver)


class Lost(Exception):
    """A flight's connection was lost once it was sent (in part or whole): whether its
    COMMIT reached the server is not known."""


class Kept:
    """One connection kept out of the pool for flights, used by one thread at a time.

    A fire's flight took a connection from the pool and gave it back: a tenth
    of a fire's Python on the client. The kept one is checked once, when it is
    taken from the pool; one the server dropped since is found by its flight
    (:class:`Lost`, settled like any lost flight) and replaced by the next.
    """

    __slots__ = ("_conn", "_engine", "_lock")

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._conn: Any = None

    def take(self) -> tuple[Any, bool]:
        """A connection for a flight, and whether it is the kept one (else a pooled one)."""
        if not self._lock.acquire(blocking=False):
            return self._engine.raw_connection(), False
        if self._conn is None:
            try:
                self._conn = self._engine.raw_connection()
            except BaseException:
                self._lock.release()
                raise
        return self._conn, True

    def give_back(self, conn: Any, kept: bool, *, healthy: bool) -> None:
        """End the flight's use of ``conn``: kept if it was and is ``healthy``."""
        if not kept:
            if healthy:
                conn.close()
            return
        if not healthy:
            self._conn = None  # the caller has released or invalidated it
        self._lock.release()

    def close(self) -> None:
        """Back to the pool, for the pool to close."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def fly(kept: Kept, items: list[wire.Item]) -> list[Any]:
    """Send ``items`` in one flight (on ``kept``'s connection, else a pooled one); their results.

    A statement's failure is raised as :class:`wire.FlightFailed` (the
    transaction it was in is rolled back), the connection's loss as
    :class:`Lost`. The flight begins and ends its own transaction (a failed
    one is rolled back here: one round trip more, on the rare path).
    """
    conn, mine = kept.take()
    driver: Any = conn.driver_connection
    healthy = False
    try:
        results = wire.run(driver, items)
        healthy = True
    except wire.FlightFailed:
        try:
            wire.rollback(driver)
        except Exception:
            conn.invalidate()
        else:
            healthy = True
        raise
    except BaseException as exc:
        if driver.broken or driver.closed:
            conn.invalidate()  # not pooled again
            if driver.broken:
                raise Lost(str(exc)) from exc
        else:
            _rollback(conn, driver)  # given back to the pool
        raise
    finally:
        kept.give_back(conn, mine, healthy=healthy)
    return results


def _rollback(conn: Any, driver: Any) -> None:
    try:
        driver.rollback()  # a ROLLBACK if the server is in the transaction still
    except Exception:
        conn.invalidate()
        return
    _release(conn, driver)


def _release(conn: Any, driver: Any) -> None:
    driver.autocommit = False  # as the pool's other users expect it
    conn.close()


class Reader:
    """A pooled connection for reads, replaced once if the server dropped it.

    Each read statement runs on its own, as READ COMMITTED would see it in a
    transaction anyway: no BEGIN and ROLLBACK round trips, and no rollback to
    make psycopg drop the statements it has prepared. So a statement that
    failed with its connection can run again on a new one.
    """

    __slots__ = ("_engine", "_retried", "conn")

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._retried = False
        self.conn = self._checkout()

    def _checkout(self) -> Any:
        conn = self._engine.raw_connection()
        conn.driver_connection.autocommit = True  # type: ignore[union-attr]
        return conn

    def cursor(self) -> Any:
        """A cursor of the connection."""
        return self.conn.cursor()

    def replaced(self) -> bool:
        """If the server dropped the connection (once per read): a new one, and True."""
        driver: Any = self.conn.driver_connection
        if self._retried or driver is None or not driver.broken:
            return False
        self._retried = True
        self.conn.invalidate()  # not pooled again
        self.conn = self._checkout()
        return True

    def close(self) -> None:
        """Back to the pool (a dropped connection: closed)."""
        driver: Any = self.conn.driver_connection
        if driver is None:
            return
        if driver.broken or driver.closed:
            self.conn.invalidate()
            return
        _release(self.conn, driver)
