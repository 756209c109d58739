"""Group commit: concurrent writers share one database transaction.

Each writer queues its unit; if no batch is being committed it takes the
leader's seat, takes every unit queued so far and commits them together,
so N threads waiting for the disk pay for one sync, not N. The others
sleep, each on its own event: a batch wakes exactly the writers it
committed, and hands the seat to the oldest writer still queued. A lone
writer leads at once and commits on its own thread: no hand-off.

Writes that need not be waited for (a step's end, a compensation's end:
see the undo contract in :mod:`engine.runtime.bindings`) ride along with
the next waited commit, or are flushed once the oldest of them has waited
``linger`` seconds. The linger outlasts a saga's steps (tens of milliseconds
on a loaded machine), so that their ends ride with the saga's own final
commit: a flush of its own would cost a sync, and a waited commit that came
while it ran would wait for it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from engine.ports import Store, Write

__all__ = ["GroupCommit"]

log = logging.getLogger("chartd.commit")


def _asleep() -> threading.Lock:
    # A held lock is the cheapest thing to sleep on (an Event is a Condition, with a
    # lock of its own per waiter): whoever releases it lets the sleeper go on.
    lock = threading.Lock()
    lock.acquire()
    return lock


class _Pending:
    """One writer's units in the queue (one, or a bulk operation's many) and their outcome."""

    __slots__ = ("done", "error", "errors", "lead", "waited", "wake", "writes")

    def __init__(self, writes: list[Write], *, waited: bool) -> None:
        self.writes = writes
        self.waited = waited
        self.done = False
        self.lead = False
        self.error: Exception | None = None  # the first unit's outcome
        self.errors: list[Exception | None] = []  # every unit's, in order
        # Only a waited writer that finds a leader in the seat sleeps; it is woken
        # when its unit is committed, or when the seat of leader passes to it.
        self.wake: threading.Lock | None = None


def _wake(pending: _Pending) -> None:
    """Let a sleeping writer go on (once; a second wake-up before it slept is a no-op)."""
    if pending.wake is not None and pending.wake.locked():
        pending.wake.release()


class _Busy:
    """Counts a writer in (or, with ``step`` -1, out) for as long as the block lasts."""

    __slots__ = ("_commit", "_step")

    def __init__(self, commit: GroupCommit, step: int) -> None:
        self._commit = commit
        self._step = step

    def __enter__(self) -> None:
        self._commit._count(self._step)

    def __exit__(self, *exc: object) -> None:
        self._commit._count(-self._step)


class GroupCommit:
    """Commits :class:`Write` units in batches through ``store.apply``."""

    def __init__(
        self,
        store: Store,
        *,
        linger: float = 0.25,
        gather: float = 0.002,
        on_commit: Callable[[Sequence[Write]], None] | None = None,
    ) -> None:
        self._store = store
        self._linger = linger
        self._on_commit = on_commit
        self._queue: list[_Pending] = []
        # Taken directly where nobody waits on the condition: Condition.__enter__ is
        # a Python call more, on every fire.
        self._mutex = threading.Lock()
        self._cv = threading.Condition(self._mutex)
        self._leading = False
        self._seat_wanted = 0  # flush() calls waiting for the leader's seat
        # Writers between deciding and committing: a leader waits (at most
        # `gather` seconds) until each has queued its unit, so that concurrent
        # writers share one commit instead of racing into small ones. It sleeps on
        # `_gate`, released only once the batch is complete, not on every arrival.
        self._busy = 0
        self._gather = gather
        self._gate: threading.Lock | None = None
        self._in = _Busy(self, 1)
        self._out = _Busy(self, -1)
        self._lazy = threading.Event()  # set while lazy writes are queued
        self._lazy_since: float | None = None  # when the oldest of them was queued
        self._closing = threading.Event()
        self._flusher = threading.Thread(target=self._flush_loop, name="chartd-flush", daemon=True)
        self._flusher.start()

    def busy(self) -> _Busy:
        """Mark a writer that will commit soon (a fire, from its decision to its commit)."""
        return self._in

    def idle(self) -> _Busy:
        """Inside :meth:`busy`: a stretch with no commit coming (a saga's steps)."""
        return self._out

    def _count(self, step: int) -> None:
        with self._mutex:
            self._busy += step
            if step < 0:
                self._gathered()

    def _gathered(self) -> None:
        """With the mutex held: let a gathering leader go on once every busy writer queued."""
        gate = self._gate
        if gate is not None and len(self._queue) >= self._busy:
            self._gate = None
            gate.release()

    def commit(self, write: Write) -> None:
        """Commit ``write`` (with whatever else is queued) and return once it is durable.

        Raises the unit's own failure (e.g. VersionConflict) or the commit's.
        """
        pending = _Pending([write], waited=True)
        self._wait(pending)
        if pending.error is not None:
            raise pending.error

    def commit_many(self, writes: Sequence[Write]) -> list[Exception | None]:
        """Commit ``writes`` together (one transaction, if no other batch cuts in) and wait.

        Each unit keeps its own outcome: None if it committed, else its
        failure (a VersionConflict, a Conflict, the commit's error).
        """
        if not writes:
            return []
        # One place in the queue for all of them: they commit in one batch, and the
        # writer sleeps once, not once per unit.
        pending = _Pending(list(writes), waited=True)
        self._wait(pending)
        return pending.errors

    def _wait(self, pending: _Pending) -> None:
        """Queue ``pending`` and return once its units are committed (or failed)."""
        with self._mutex:
            self._queue.append(pending)
            if not self._leading:
                self._leading = pending.lead = True
            else:
                # Made before the mutex is let go: no wake-up can come before it exists.
                pending.wake = _asleep()
                self._gathered()
        while not pending.done:
            if pending.lead:
                self._lead()
            else:
                assert pending.wake is not None
                pending.wake.acquire()

    def later(self, write: Write) -> None:
        """Queue ``write`` to commit with the next batch; do not wait for it."""
        write.lazy = True
        with self._mutex:
            self._queue.append(_Pending([write], waited=False))
            if self._lazy_since is None:
                self._lazy_since = time.monotonic()
                self._lazy.set()

    def flush(self) -> None:
        """Commit everything queued so far."""
        while True:
            with self._cv:
                self._seat_wanted += 1
                try:
                    while self._leading:
                        self._cv.wait()
                finally:
                    self._seat_wanted -= 1
                if not self._queue:
                    return
                self._leading = True
            self._lead()

    def close(self) -> None:
        """Flush and stop the background flusher."""
        self._closing.set()
        self._lazy.set()
        self._flusher.join()
        self.flush()

    def _lead(self) -> None:
        """Commit one batch from the leader's seat, then pass the seat on."""
        with self._mutex:
            gate = None
            if len(self._queue) < self._busy:
                gate = self._gate = _asleep()
        if gate is not None:
            gate.acquire(timeout=self._gather)
        with self._mutex:
            self._gate = None
            batch, self._queue = self._queue, []
            self._lazy_since = None  # whatever was queued rides with this batch
        try:
            self._apply(batch)
        finally:
            with self._mutex:
                successor = None
                for p in self._queue:
                    if p.waited:
                        successor = p
                        break
                if successor is None:
                    self._leading = False
                    if self._seat_wanted:
                        self._cv.notify_all()
                else:
                    successor.lead = True
                    _wake(successor)
            for p in batch:
                p.lead = False
                if p is not successor:
                    _wake(p)

    def _apply(self, batch: list[_Pending]) -> None:
        if not batch:
            return
        writes = [w for p in batch for w in p.writes]
        try:
            results = self._store.apply(writes)
        except Exception as exc:  # the whole batch failed: every writer hears why
            for p in batch:
                p.error, p.errors, p.done = exc, [exc] * len(p.writes), True
            log.warning("commit of %d unit(s) failed: %s", len(writes), exc)
            return
        at = 0
        for p in batch:
            p.errors = results[at : at + len(p.writes)]
            p.error, p.done = p.errors[0], True
            at += len(p.writes)
        if self._on_commit is not None:
            self._on_commit([w for w, r in zip(writes, results, strict=True) if r is None])

    def _flush_loop(self) -> None:
        while not self._closing.is_set():
            self._lazy.wait()
            with self._mutex:
                since = self._lazy_since
                if since is None:  # carried by a batch meanwhile
                    self._lazy.clear()  # under the mutex: a later() from now sets it again
                    continue
            wait = since + self._linger - time.monotonic()
            if wait > 0:
                # A waited commit may still carry them for free; close() cuts the wait short.
                self._closing.wait(wait)
                continue
            self.flush()
