"""Prepared statements sent straight through libpq (PostgreSQL), a flight per round trip.

A statement run through psycopg's cursor costs 20 to 40 us of Python (its
cursor, its adaptation of each value, a generator driven to the socket and
back), and a fire's commit ran seven of them: on two cores shared with the
server, that Python was what four engine processes queued on. Here a
statement is a name prepared once per connection; its values are the text
PostgreSQL reads them from (every column of the store is text, a number or a
boolean), and a flight is the statements queued in libpq's pipeline, sent
at one sync and answered together: about 3 us of Python a statement.

Used for the hot paths only: a fire's write (:mod:`engine.store.flight`)
and the entity read before it. Everything else runs through psycopg.
"""

from __future__ import annotations

import itertools
import re
import select
import threading
import weakref
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from psycopg import errors as pg_errors
from psycopg import pq

__all__ = [
    "FlightFailed",
    "Item",
    "Queue",
    "Statement",
    "Unsendable",
    "rows_of",
    "run",
    "statement",
]

_OK = pq.ExecStatus.COMMAND_OK
_TUPLES = pq.ExecStatus.TUPLES_OK
_SYNC = pq.ExecStatus.PIPELINE_SYNC
_PARAM = re.compile(r"%\((\w+)\)s")


# By the base type's own methods: a subclass's (an enum's) str() may say something else.
_ENCODE: dict[type, Callable[[Any], bytes]] = {
    str: str.encode,
    int: lambda v: int.__repr__(v).encode(),
    float: lambda v: float.__repr__(v).encode(),
    bool: lambda v: b"t" if v else b"f",
}


def _encode_subclass(value: Any) -> bytes:
    """A value of a subclass of the types above (a str enum, an int enum), as its base's."""
    for base in (bool, str, int, float):  # bool first: it is an int
        if isinstance(value, base):
            return _ENCODE[base](value)
    raise Unsendable(f"no PostgreSQL text here for a {type(value).__name__}: {value!r}")


_DECODE: dict[int, Callable[[bytes], Any]] = {
    16: lambda b: b == b"t",  # bool
    20: int,  # int8
    21: int,  # int2
    23: int,  # int4
    700: float,  # float4
    701: float,  # float8
    1700: lambda b: Decimal(b.decode()),  # numeric
}


def _text(value: bytes) -> str:
    return value.decode()


class Statement:
    """One statement as libpq runs it: its name, its ``$n`` SQL, its parameters' names."""

    __slots__ = ("name", "names", "sql")

    def __init__(self, name: bytes, sql: str) -> None:
        names: list[str] = []

        def number(match: re.Match[str]) -> str:
            if match.group(1) not in names:
                names.append(match.group(1))
            return f"${names.index(match.group(1)) + 1}"

        self.name = name
        self.sql = _PARAM.sub(number, sql).replace("%%", "%").encode()
        self.names = tuple(names)

    def values(self, params: dict[str, Any]) -> list[bytes | None]:
        """The parameters' values as the text PostgreSQL reads them from."""
        out: list[bytes | None] = []
        for name in self.names:
            value = params[name]
            if value is None:
                out.append(None)
            else:
                out.append(_ENCODE.get(type(value), _encode_subclass)(value))
        return out


_statements: dict[str, Statement] = {}
_numbers = itertools.count(1)
_making = threading.Lock()


def statement(sql: str) -> Statement:
    """The statement for psycopg's ``sql`` (``%(name)s`` parameters), named once per process."""
    found = _statements.get(sql)
    if found is None:
        with _making:
            found = _statements.get(sql)
            if found is None:
                found = _statements[sql] = Statement(f"chartd_{next(_numbers)}".encode(), sql)
    return found


# The statements prepared on each connection (a connection that goes away takes its set).
_prepared: weakref.WeakKeyDictionary[Any, set[bytes]] = weakref.WeakKeyDictionary()


class Unsendable(TypeError):
    """A value this module does not write (psycopg's adapters may: the caller's other way)."""


class FlightFailed(Exception):
    """A statement of a flight failed: which one (its place in the queue), and why."""

    def __init__(self, index: int, error: Exception) -> None:
        super().__init__(str(error))
        self.index = index
        self.error = error


Item = tuple[Statement, dict[str, Any]]
"""A statement and its values."""


class Queue:
    """Statements to send in one flight: each a prepared statement and its values.

    It answers a DB-API cursor's ``execute`` and ``executemany`` (queued, not
    run), so that the store's code that writes a batch's rows writes them
    here unchanged.
    """

    __slots__ = ("items",)

    rowcount = -1  # nothing is counted until the flight's answer

    def __init__(self) -> None:
        self.items: list[Item] = []

    def cursor(self) -> Queue:
        """Itself: statements run on it are queued."""
        return self

    def execute(self, sql: str, params: dict[str, Any]) -> None:
        """Queue ``sql`` (psycopg's form) with its values."""
        self.items.append((statement(sql), params))

    def executemany(self, sql: str, rows: Iterable[dict[str, Any]]) -> None:
        """Queue ``sql`` once per row."""
        found = statement(sql)
        self.items.extend((found, row) for row in rows)

    def close(self) -> None:
        """Nothing to release."""


def run(driver: Any, items: list[Item]) -> list[Any]:
    """Send ``items`` in one pipeline on psycopg connection ``driver``; their results.

    Raises :class:`FlightFailed` for the first statement that failed (the
    server skipped the rest, and the transaction they were in is left open,
    failed: see :func:`rollback`), and psycopg's OperationalError if the
    connection was lost.

    psycopg's rollback deallocates every prepared statement of its
    connection, ours with its own: a flight that finds one gone is sent
    again, its statements prepared anew.
    """
    try:
        return _run(driver, items)
    except FlightFailed as failed:
        if not isinstance(failed.error, pg_errors.InvalidSqlStatementName):
            raise
    rollback(driver)
    return _run(driver, items)


def rollback(driver: Any) -> None:
    """End the transaction a failed flight left open on ``driver``, if it did (psycopg's
    rollback would deallocate the statements prepared: see :func:`run`)."""
    if driver.pgconn.transaction_status == pq.TransactionStatus.INERROR:
        _run(driver, [(statement("ROLLBACK"), {})])


def _run(driver: Any, items: list[Item]) -> list[Any]:
    pg = driver.pgconn
    known = _prepared.get(driver)
    if known is None:
        known = _prepared[driver] = set()
    values = [stmt.values(params) for stmt, params in items]  # a bad one: before any is sent
    preparing: dict[bytes, int] = {}
    where: list[int] = []  # per result: the item's index, or -1 for a PREPARE's
    try:
        pg.enter_pipeline_mode()
        for i, (stmt, _) in enumerate(items):
            if stmt.name not in known and stmt.name not in preparing:
                pg.send_prepare(stmt.name, stmt.sql)
                preparing[stmt.name] = len(where)
                where.append(-1)
            pg.send_query_prepared(stmt.name, values[i])
            where.append(i)
        pg.pipeline_sync()
        _flush(pg)
        results = _collect(pg)
        pg.exit_pipeline_mode()
    except BaseException:
        if pg.status == pq.ConnStatus.OK:
            # Interrupted with answers unread: the connection is good for nothing. (A
            # lost one stays as it is: broken, which its user looks at.)
            driver.close()
        raise
    for name, at in preparing.items():
        if results[at].status == _OK:
            known.add(name)
    answers = []
    for at, result in zip(where, results, strict=True):
        if result.status == pq.ExecStatus.FATAL_ERROR:
            error = pg_errors.error_from_result(result)
            if isinstance(error, pg_errors.InvalidSqlStatementName):
                known.clear()  # the server lost them (a DEALLOCATE ALL): prepared anew
            raise FlightFailed(max(at, 0), error)
        if at >= 0:
            answers.append(result)
    return answers


def _wait(fd: int, events: int) -> int:
    poller = select.poll()
    poller.register(fd, events)
    ready = poller.poll()
    return ready[0][1] if ready else 0


def _flush(pg: Any) -> None:
    """Send everything queued, reading answers meanwhile so that the server never blocks."""
    while pg.flush():
        if _wait(pg.socket, select.POLLIN | select.POLLOUT) & select.POLLIN:
            pg.consume_input()


def _collect(pg: Any) -> list[Any]:
    """The results of every statement sent, up to the pipeline's sync."""
    results: list[Any] = []
    while True:
        if pg.is_busy():
            _wait(pg.socket, select.POLLIN)
            pg.consume_input()
            continue
        result = pg.get_result()
        if result is None:
            continue
        if result.status == _SYNC:
            return results
        results.append(result)


def rows_of(result: Any) -> list[dict[str, Any]]:
    """The rows of a query's result, by column name, as psycopg would give them."""
    if result.status != _TUPLES:
        return []
    fields = range(result.nfields)
    names = [result.fname(i).decode() for i in fields]
    decode = [_DECODE.get(result.ftype(i), _text) for i in fields]
    out = []
    for r in range(result.ntuples):
        row = {}
        for i in fields:
            value = result.get_value(r, i)
            row[names[i]] = None if value is None else decode[i](value)
        out.append(row)
    return out
