"""The outbox numbered after its commits (PostgreSQL).

Watchers read the outbox by number and resume from one, so a number, once
read, must never be followed by a lower one committed later: numbers are
given in the order their events become visible. A commit that took its
numbers itself (from a counter row, locked to its end) made every process's
commit wait for the one before it, fsync included. So a commit writes its
events to ``pending_events``, not numbered, and a :class:`Sequencer` moves the
committed ones into ``events``, numbered after the last, in one transaction
under an advisory lock (one sequencer at a time, whichever process it runs
in). Events of one entity keep their order: the commits that write them
lock the entity first, so a later one takes its ``pending_events`` ids after
the earlier one committed.

Who numbers: whoever reads the outbox, first (so a reader sees every event
committed before it read: a fire's own events, right after it returns), and
each writing store a little after its commits (so events nobody reads do not
pile up). A process that dies between a commit and its numbering leaves its
events to the next one.
"""

from __future__ import annotations

import logging
import threading

from engine.errors import Unavailable
from engine.store import postgres, wire
from engine.store import schema as t
from engine.store.database import Database
from engine.store.notify import CHANNEL

__all__ = ["Sequencer"]

log = logging.getLogger("chartd.store")

_KEY = 0x63686172_74640002  # pg_advisory_xact_lock's (beside the migration's ...0001)
# The lock is taken by a statement of its own, before the numbering's: a statement's
# snapshot is taken as it starts, and the numbering's must hold the last sequencer's
# commit. Whether it is held is left in a setting of the transaction, which the
# numbering reads, so that lock, numbering and COMMIT go out in one flight.
_LOCK = "SELECT set_config('chartd.numbering', 'on', true) FROM pg_advisory_xact_lock({key})"
_TRY_LOCK = (
    "SELECT set_config('chartd.numbering',"
    " CASE WHEN pg_try_advisory_xact_lock({key}) THEN 'on' ELSE 'off' END, true)"
)

_CHUNK = 10_000
"""Events numbered by one transaction at most: a backlog is moved in several."""

_COLUMNS = [c.name for c in t.pending_events.columns if c.name != "id"]

# One statement: move the oldest pending events, number them after the last number
# given, move the counter to the new last, and wake every process's watchers (the
# notification is delivered on commit). The lock is taken by a statement before it,
# so that this one's snapshot sees the previous sequencer's commit.
_NUMBER = wire.statement(
    "WITH moved AS (DELETE FROM pending_events"
    " WHERE current_setting('chartd.numbering') = 'on' AND id IN"
    f" (SELECT id FROM pending_events ORDER BY id LIMIT {_CHUNK}) RETURNING *),"
    " base AS (SELECT coalesce(max(value), 0) AS v FROM counters WHERE name = 'events'),"
    f" numbered AS (INSERT INTO events (seq, {', '.join(_COLUMNS)})"
    " SELECT base.v + row_number() OVER (ORDER BY moved.id),"
    f" {', '.join(f'moved.{c}' for c in _COLUMNS)} FROM moved, base RETURNING seq),"
    " bumped AS (INSERT INTO counters (name, value)"
    " SELECT 'events', max(seq) FROM numbered HAVING count(*) > 0"
    " ON CONFLICT (name) DO UPDATE SET value = excluded.value RETURNING value)"
    " SELECT (SELECT count(*) FROM numbered),"
    f" (SELECT pg_notify('{CHANNEL}', value::text) FROM bumped)"
)
_FLIGHTS: dict[bool, list[wire.Item]] = {
    wait: [
        (wire.statement("BEGIN"), {}),
        (wire.statement((_LOCK if wait else _TRY_LOCK).format(key=_KEY)), {}),
        (_NUMBER, {}),
        (wire.statement("COMMIT"), {}),
    ]
    for wait in (True, False)
}

PAUSE = 0.02
"""Seconds between two numberings by one process's thread (watchers of other
processes hear of a commit's events at most this much later): each costs a
transaction, whose CPU, on four processes numbering every 5 ms, was a fifth of
a fire's."""

_BUSY = -1
"""What :meth:`Sequencer._number_some` returns when another sequencer holds the lock."""


class Sequencer:
    """Numbers a PostgreSQL database's pending events: now, or soon on its own thread."""

    def __init__(self, db: Database, pause: float = PAUSE) -> None:
        self._db = db
        self._pause = pause
        self._wanted = threading.Condition()
        self._due = False
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None

    def number(self) -> int:
        """Number every pending event committed so far; return how many were numbered.

        Waits for a sequencer of another process to finish first.
        """
        return self._number(wait=True)

    def _number(self, *, wait: bool) -> int:
        """Number pending events a chunk at a time; without ``wait``, _BUSY if another
        sequencer holds the lock."""
        total = 0
        while True:
            moved = self._number_some(wait)
            if moved == _BUSY:
                return total or _BUSY
            total += moved
            if moved < _CHUNK:
                return total

    def _number_some(self, wait: bool) -> int:
        try:
            results = self._db.fly(_FLIGHTS[wait])
        except wire.FlightFailed as failed:  # rolled back: the events wait for the next
            raise Unavailable(f"numbering the outbox failed: {failed.error}") from failed
        except postgres.Lost:
            # Committed or not, numbering again is right: it takes what is still pending.
            # (A pooled connection the server had dropped is found only by using it.)
            try:
                results = self._db.fly(_FLIGHTS[wait])
            except postgres.Lost as lost:
                raise Unavailable(f"the database is unavailable: {lost}") from lost
        held, numbered = wire.rows_of(results[1]), wire.rows_of(results[2])
        if not wait and next(iter(held[0].values())) != "on":
            return _BUSY
        return int(next(iter(numbered[0].values())))

    def soon(self) -> None:
        """Number the pending events in a moment, on the sequencer's own thread.

        Called after each commit that wrote events. The thread numbers at
        most once a pause, so that under load one numbering takes the events
        of many commits; its transaction wakes every process's watchers.
        """
        if self._due:
            return  # the thread has yet to number: it will take these too
        with self._wanted:
            if self._closing.is_set():
                return
            self._due = True
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="chartd-sequencer", daemon=True
                )
                self._thread.start()
            self._wanted.notify()

    def _run(self) -> None:
        while True:
            with self._wanted:
                while not self._due and not self._closing.is_set():
                    self._wanted.wait()
                closing, due, self._due = self._closing.is_set(), self._due, False
            if closing:
                if due:
                    # This process's last commits, numbered before it goes: left pending,
                    # they would wake no watcher of another process until one polls.
                    self._number_now(wait=True)
                return
            moved = self._number_now(wait=False)
            if moved == _BUSY:
                # Another process's sequencer is numbering, from a snapshot that may
                # not hold this process's last commit: try again after the pause.
                with self._wanted:
                    self._due = True
            self._closing.wait(self._pause)

    def _number_now(self, *, wait: bool) -> int:
        try:
            return self._number(wait=wait)
        except Exception as exc:  # the next commit or read numbers them
            log.warning("numbering the outbox failed (%s); the next commit tries again", exc)
            return 0

    def close(self) -> None:
        """Stop the thread, once it has numbered what this process committed (at most
        10 s: what it could not number then waits for the next reader)."""
        with self._wanted:
            self._closing.set()
            thread, self._thread = self._thread, None
            self._wanted.notify()
        if thread is not None:
            thread.join(10)  # a numbering stuck on a database gone away is not waited for
