"""SqlStore: the Store port on SQLAlchemy 2 Core, for SQLite and PostgreSQL.

The store is put together from its jobs: opening the database
(:mod:`engine.store.dialect`, :mod:`engine.store.database`), the write path
(:mod:`engine.store.writes`, its statements in :mod:`engine.store.statements`),
the reads (:mod:`engine.store.reads`, :mod:`engine.store.timers`), and the
values of rows (:mod:`engine.store.rows`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import sqlalchemy as sa

from engine.store.database import Database
from engine.store.dialect import parse_url
from engine.store.flight import FlightStatements
from engine.store.notify import Listener
from engine.store.numbering import ServerNumbered
from engine.store.queries import ReadStatements
from engine.store.reads import JournalReads
from engine.store.sequencer import Sequencer
from engine.store.statements import prepare
from engine.store.timers import TimerReads
from engine.store.versions import ChartVersions
from engine.store.writes import JournalWrites

__all__ = ["SqlStore"]


class SqlStore(JournalWrites, JournalReads, TimerReads, ChartVersions):
    """The journal, entities, timers and outbox in one SQL database.

    ``url`` is a SQLAlchemy URL: ``sqlite:///path/chartd.db`` (the embedded
    default), ``sqlite://`` (in memory, for tests), or
    ``postgresql+psycopg://user@host/db`` (several replicas).
    """

    def __init__(self, url: str, *, busy_timeout_ms: int = 10_000) -> None:
        self.url = parse_url(url)
        self.dialect = self.url.get_backend_name()
        self._db = Database(self.url, busy_timeout_ms)
        self._statements = prepare(self._db.engine.dialect)
        self._reads = ReadStatements(self._db.engine.dialect)
        self._numbered = (
            ServerNumbered.prepare(self._db.engine.dialect)
            if self.dialect == "postgresql"
            else None
        )
        self._sequencer = Sequencer(self._db) if self._numbered is not None else None
        self._flights = (
            FlightStatements.prepare(self._statements) if self._numbered is not None else None
        )
        self._listening = threading.Lock()
        self._listener: Listener | None = None
        self._wakers: list[Callable[[], None]] = []

    @property
    def engine(self) -> sa.Engine:
        """The SQLAlchemy engine (for migrations and tools)."""
        return self._db.engine

    def subscribe(self, wake: Callable[[], None]) -> bool:
        """See :meth:`engine.ports.Store.subscribe`: one listener per store, started here."""
        if self.dialect != "postgresql":
            return False
        with self._listening:
            self._wakers.append(wake)
            if self._listener is None:
                self._listener = Listener(self.url, self._woken)
        return True

    def _woken(self) -> None:
        for wake in list(self._wakers):
            wake()

    def close(self) -> None:
        """Release every connection."""
        with self._listening:
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        if self._sequencer is not None:
            self._sequencer.close()
        self._db.close()
