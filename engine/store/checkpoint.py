"""Checkpoints of SQLite's write-ahead log, on a thread of their own.

In WAL mode a commit appends the pages it changed to the log and syncs the
log; a checkpoint later copies them into the database file and syncs it. By
default SQLite runs the checkpoint inside the commit that makes the log pass
1,000 pages, and that commit pays for it: at a million entities the log
holds a thousand scattered pages, and writing them back costs more than the
commit itself. Here the checkpoint runs on a thread beside the writers (a
PASSIVE one: it never blocks them), after every so many commits or once a
second; the commit-time checkpoint stays only as a backstop, far out, in
case this thread falls behind.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import suppress
from typing import Any

__all__ = ["BACKSTOP_PAGES", "Checkpointer"]

log = logging.getLogger("chartd.store")

BACKSTOP_PAGES = 20_000
"""The log's size (pages) at which a commit checkpoints by itself: only if this thread lags."""

_COMMITS = 100  # commits between checkpoints when writes keep coming
_IDLE = 1.0  # seconds: a quieter database is checkpointed at this pace


class Checkpointer:
    """Runs PASSIVE checkpoints on its own connection; told of every commit."""

    def __init__(self, connect: Callable[[], Any]) -> None:
        self._connect = connect
        self._conn: Any = None
        self._commits = 0
        self._wake = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="chartd-checkpoint", daemon=True)
        self._thread.start()

    def committed(self) -> None:
        """A write transaction committed (called by the writer, cheap)."""
        self._commits += 1
        if self._commits >= _COMMITS:
            self._wake.set()

    def close(self) -> None:
        """Stop the thread after a last checkpoint."""
        self._closed = True
        self._wake.set()
        self._thread.join()

    def _loop(self) -> None:
        while True:
            self._wake.wait(_IDLE)
            self._wake.clear()
            if self._commits:
                self._commits = 0
                self._checkpoint()
            if self._closed:
                break
        if self._conn is not None:
            with suppress(Exception):
                self._conn.close()

    def _checkpoint(self) -> None:
        try:
            if self._conn is None:
                self._conn = self._connect()
            cursor = self._conn.cursor()
            cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
            cursor.close()
        except Exception as exc:  # the next turn tries again; a commit's backstop remains
            log.debug("checkpoint: %s", exc)
            if self._conn is not None:
                with suppress(Exception):
                    self._conn.close()
                self._conn = None
