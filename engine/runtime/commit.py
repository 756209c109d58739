"""Group commit: concurrent writers share one database transaction.

Each writer queues its unit; if no batch is being committed it takes the
leader's seat, takes every unit queued so far and commits them together,
so N threads waiting for the disk pay for one sync, not N. The others
sleep, each on its own event: a batch wakes exactly the writers it
committed, and hands the seat to the oldest writer still queued. A lone
writer leads at once and commits on its own thread: no hand-off.

Writes that need not be waited for (a step's end, a compensation's end:
see the undo contract in :mod:`engine.runtime.bindings`) ride along with
the next waited commit, or are flushed after ``linger`` seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from engine.ports import Store, Write

__all__ = ["GroupCommit"]

log = logging.getLogger("chartd.commit")


class _Pending:
    __slots__ = ("done", "error", "lead", "wake", "write")

    def __init__(self, write: Write, *, waited: bool) -> None:
        self.write = write
        self.done = False
        self.lead = False
        self.error: Exception | None = None
        # Only a waited writer sleeps; it is woken when its unit is committed, or
        # when the seat of leader passes to it. A held lock is the cheapest thing to
        # sleep on (an Event is a Condition, with a lock of its own per waiter).
        self.wake: threading.Lock | None = None
        if waited:
            self.wake = threading.Lock()
            self.wake.acquire()


def _wake(pending: _Pending) -> None:
    """Let a sleeping writer go on (once; a second wake-up before it slept is a no-op)."""
    assert pending.wake is not None
    if pending.wake.locked():
        pending.wake.release()


class GroupCommit:
    """Commits :class:`Write` units in batches through ``store.apply``."""

    def __init__(
        self,
        store: Store,
        *,
        linger: float = 0.02,
        gather: float = 0.002,
        on_commit: Callable[[Sequence[Write]], None] | None = None,
    ) -> None:
        self._store = store
        self._linger = linger
        self._on_commit = on_commit
        self._queue: list[_Pending] = []
        self._cv = threading.Condition(threading.Lock())
        self._leading = False
        self._gathering = False
        # Writers between deciding and committing: a leader waits (at most
        # `gather` seconds) until each has queued its unit, so that concurrent
        # writers share one commit instead of racing into small ones.
        self._busy = 0
        self._gather = gather
        self._lazy = threading.Event()
        self._closed = False
        self._flusher = threading.Thread(target=self._flush_loop, name="chartd-flush", daemon=True)
        self._flusher.start()

    @contextmanager
    def busy(self) -> Iterator[None]:
        """Mark a writer that will commit soon (a fire, from its decision to its commit)."""
        with self._cv:
            self._busy += 1
        try:
            yield
        finally:
            with self._cv:
                self._busy -= 1
                if self._gathering:
                    self._cv.notify_all()

    @contextmanager
    def idle(self) -> Iterator[None]:
        """Inside :meth:`busy`: a stretch with no commit coming (a saga's steps)."""
        with self._cv:
            self._busy -= 1
            if self._gathering:
                self._cv.notify_all()
        try:
            yield
        finally:
            with self._cv:
                self._busy += 1

    def commit(self, write: Write) -> None:
        """Commit ``write`` (with whatever else is queued) and return once it is durable.

        Raises the unit's own failure (e.g. VersionConflict) or the commit's.
        """
        pending = _Pending(write, waited=True)
        assert pending.wake is not None
        with self._cv:
            self._queue.append(pending)
            if not self._leading:
                self._leading = pending.lead = True
            elif self._gathering:
                self._cv.notify_all()  # the leader counts the queue again
        while not pending.done:
            if pending.lead:
                self._lead()
            else:
                pending.wake.acquire()
        if pending.error is not None:
            raise pending.error

    def later(self, write: Write) -> None:
        """Queue ``write`` to commit with the next batch; do not wait for it."""
        write.lazy = True
        with self._cv:
            self._queue.append(_Pending(write, waited=False))
        self._lazy.set()

    def flush(self) -> None:
        """Commit everything queued so far."""
        while True:
            with self._cv:
                while self._leading:
                    self._cv.wait()
                if not self._queue:
                    return
                self._leading = True
            self._lead()

    def close(self) -> None:
        """Flush and stop the background flusher."""
        self._closed = True
        self._lazy.set()
        self._flusher.join()
        self.flush()

    def _lead(self) -> None:
        """Commit one batch from the leader's seat, then pass the seat on."""
        with self._cv:
            deadline = time.monotonic() + self._gather
            self._gathering = True
            while len(self._queue) < self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cv.wait(left)
            self._gathering = False
            batch, self._queue = self._queue, []
        try:
            self._apply(batch)
        finally:
            with self._cv:
                successor = next((p for p in self._queue if p.wake is not None), None)
                if successor is None:
                    self._leading = False
                    self._cv.notify_all()  # a flush waiting for the seat
                else:
                    successor.lead = True
                    _wake(successor)
            for p in batch:
                p.lead = False
                if p.wake is not None and p is not successor:
                    _wake(p)

    def _apply(self, batch: list[_Pending]) -> None:
        if not batch:
            return
        writes = [p.write for p in batch]
        try:
            results = self._store.apply(writes)
        except Exception as exc:  # the whole batch failed: every writer hears why
            for p in batch:
                p.error, p.done = exc, True
            log.warning("commit of %d unit(s) failed: %s", len(batch), exc)
            return
        for p, result in zip(batch, results, strict=True):
            p.error, p.done = result, True
        if self._on_commit is not None:
            self._on_commit([w for w, r in zip(writes, results, strict=True) if r is None])

    def _flush_loop(self) -> None:
        while not self._closed:
            self._lazy.wait()
            if self._closed:
                return
            # Give a waited commit the chance to carry these writes for free.
            threading.Event().wait(self._linger)
            self._lazy.clear()
            self.flush()
