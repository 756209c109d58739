"""The runtime's exits, recorded as the container chart's ``exit`` event: each until it is.

A runtime reports an exit on a thread of its own, or (FakeRuntime) on the
thread that caused it, inside a stop's, kill's or rm -f's step, which holds
the entity's lock: firing ``exit`` there would wait for that lock forever.
So the recorder fires exits on a thread of its own, in the order reported.

An exit happened: it cannot be dropped, or the container would stay
recorded running with a dead PID. It is tried again until the engine
records it or refuses it for good (a duplicate, a stale pid, a container
removed): the database may be away (a full disk), the container being
recovered, its start still committing (held in ``starting``). An exit that
waits holds up no other container's: it is put aside and tried again after
a back-off (50 ms, doubling to 1 s), and only a later exit of the same
container waits behind it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import engine
from engine.errors import ChartdError, Conflict, NotFound, NotModified, Unavailable
from statecharts.container.runtime import ExitEvent

__all__ = ["ExitRecorder"]

log = logging.getLogger("chartd.containers")

_FIRST_DELAY = 0.05
_LONGEST_DELAY = 1.0
_IDLE = 1.0  # how long the thread waits for another exit before it ends


@dataclass(slots=True)
class _Exit:
    """One exit on its way to the journal, and when it is next tried."""

    container_id: str
    params: dict[str, Any]
    due: float = 0.0
    delay: float = _FIRST_DELAY
    tries: int = 0
    waiting: bool = False  # a wait for it was logged
    done: bool = False


class ExitRecorder:
    """Fires the runtime's exits on ``eng``; ``inherited`` holds (container, pid) of tasks a
    crashed daemon left, whose exits are marked ``restored`` (the service's restore shares it)."""

    def __init__(self, eng: engine.Engine, inherited: set[tuple[str, int]]) -> None:
        self._engine = eng
        self._inherited = inherited
        self._lock = threading.Lock()
        self._new: deque[ExitEvent] = deque()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    def put(self, event: ExitEvent) -> None:
        """The runtime's callback: queue the exit (a thread of the recorder fires it)."""
        with self._lock:
            self._new.append(event)
            self._wake.set()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="chartd-exits", daemon=True)
                self._thread.start()

    def close(self) -> None:
        """Stop trying (the daemon shuts down; a later one reconciles what is left)."""
        self._closed = True
        self._wake.set()

    def _run(self) -> None:
        pending: list[_Exit] = []
        idle = False
        while not (self._closed or self._engine.closed):
            with self._lock:
                pending.extend(self._taken(self._new.popleft()) for _ in range(len(self._new)))
                self._wake.clear()
                if not pending and idle:
                    self._thread = None  # the next exit starts another
                    return
            if not pending:
                # Kept a while for the next exit: starting a thread per exit would make
                # each wait until its thread runs.
                idle = not self._wake.wait(_IDLE)
                continue
            idle = False
            self._turn(pending)
            pending = [p for p in pending if not p.done]
            if pending:
                self._wake.wait(max(0.0, min(p.due for p in pending) - time.monotonic()))
        with self._lock:
            self._thread = None

    def _taken(self, event: ExitEvent) -> _Exit:
        params: dict[str, Any] = {
            "exit_code": event.exit_code,
            "pid": event.pid,
            "exited_at": event.exited_at,
        }
        if (event.container_id, event.pid) in self._inherited:
            params["restored"] = True
            self._inherited.discard((event.container_id, event.pid))
        return _Exit(event.container_id, params)

    def _turn(self, pending: list[_Exit]) -> None:
        """Try each exit that is due and is its container's oldest, in order."""
        held: set[str] = set()  # containers whose oldest exit waits: keep their order
        for item in pending:
            if item.container_id in held:
                continue
            if item.due <= time.monotonic():
                item.done = self._try(item)
            if not item.done:
                held.add(item.container_id)

    def _try(self, item: _Exit) -> bool:
        """Fire the exit once; whether it is done with (recorded, or refused for good)."""
        cid = item.container_id
        try:
            cause = self._started_by(cid, item.params["pid"])
            self._engine.fire(cid, "exit", item.params, caused_by=cause)
        except (NotModified, NotFound):
            return True  # a duplicate or stale exit, or one of a container removed by rm -f
        except ChartdError as exc:
            if not self._again(item, exc):
                return True
            item.tries += 1
            item.due = time.monotonic() + item.delay
            item.delay = min(_LONGEST_DELAY, item.delay * 2)
            return False
        except Exception:
            if self._closed or self._engine.closed:
                # The engine closed under the fire (a shutdown racing an exit): whatever
                # the store raised then, the next daemon's restore reconciles this exit.
                return True
            raise
        if item.waiting:
            log.info("exit of %s recorded", cid[:12])
        return True

    def _again(self, item: _Exit, exc: ChartdError) -> bool:
        """Whether an exit that failed with ``exc`` is tried again (a first wait is logged)."""
        cid = item.container_id
        if isinstance(exc, Unavailable):
            if not item.waiting:
                log.warning("exit of %s not recorded yet, retrying: %s", cid[:12], exc.message)
                item.waiting = True
            return True
        if isinstance(exc, Conflict):
            # Refused while a saga holds the container: tried again while the record still
            # says this process runs (a stop whose end was stranded, then undone, must not
            # leave it running with a dead pid), or while its start is committing.
            if item.tries < 3 or self._starting(cid) or self._runs(cid, item.params["pid"]):
                return True
            log.info("exit of %s not applied: %s", cid[:12], exc.message)
            return False
        log.warning("exit of %s failed: %s", cid[:12], exc.message)
        return False

    def _started_by(self, container_id: str, pid: object) -> str | None:
        """The transition that started the exited process ``pid``: the cause of its exit.

        Raises Conflict while a start is still being recorded (a process that
        exits at once): the exit waits for it, as its fire would wait for the
        entity's lock, and then names it. None when no recorded start is that
        process's (an exit a restore found, a stale one).
        """
        try:
            current = self._engine.get(container_id)
        except ChartdError:
            return None  # the fire says what is wrong
        started_by = current.data.get("started_by")
        if current.data.get("pid") == pid and isinstance(started_by, str) and started_by:
            return started_by
        if current.in_state("starting"):
            raise Conflict(f"the start of {container_id[:12]} is still being recorded")
        return None

    def _runs(self, container_id: str, pid: object) -> bool:
        """Whether the container is recorded as running this very process."""
        try:
            current = self._engine.get(container_id)
        except ChartdError:
            return False
        return current.in_state("running") and current.data.get("pid") == pid

    def _starting(self, container_id: str) -> bool:
        try:
            return self._engine.get(container_id).in_state("starting")
        except ChartdError:
            return False
