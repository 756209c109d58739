"""Commits of every process on one PostgreSQL database, heard through LISTEN/NOTIFY.

A commit that writes outbox events also runs ``pg_notify`` on the channel
``chartd_events`` (delivered when, and only if, it commits). A
:class:`Listener` holds one connection that LISTENs there, on a thread of its
own, and calls ``wake`` for each burst of notifications: a watcher then reads
the outbox, so a notification is only a hint and losing one costs nothing as
long as the watcher is woken again. The listener wakes its watchers once
more whenever it (re)connects, since commits made while it was not listening
were not heard.
"""

from __future__ import annotations

import logging
import os
import select
import threading
from collections.abc import Callable

import psycopg
import sqlalchemy as sa

__all__ = ["CHANNEL", "Listener"]

CHANNEL = "chartd_events"

log = logging.getLogger("chartd.store")


class Listener:
    """One LISTEN connection and its thread; ``close`` ends both."""

    def __init__(self, url: sa.URL, wake: Callable[[], None], retry: float = 1.0) -> None:
        # psycopg wants a libpq URL: the same one without SQLAlchemy's "+driver".
        self._conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._wake = wake
        self._retry = retry
        self._closed = threading.Event()
        self._stop_r, self._stop_w = os.pipe()  # written on close: select() returns
        self._thread = threading.Thread(target=self._run, name="chartd-listen", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop listening and wait for the thread."""
        if self._closed.is_set():
            return
        self._closed.set()
        os.write(self._stop_w, b"x")
        self._thread.join()
        os.close(self._stop_r)
        os.close(self._stop_w)

    def _run(self) -> None:
        while not self._closed.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._wake()  # whatever committed before LISTEN took hold
                    self._listen(conn)
            except psycopg.Error as exc:
                log.warning("listening for commits failed (%s); again in %.1fs", exc, self._retry)
                self._wake()  # watchers read once more rather than miss a commit
                self._closed.wait(self._retry)

    def _listen(self, conn: psycopg.Connection) -> None:
        while not self._closed.is_set():
            ready, _, _ = select.select([conn.fileno(), self._stop_r], [], [])
            if self._stop_r in ready:
                return
            if any(True for _ in conn.notifies(timeout=0)):
                self._wake()
