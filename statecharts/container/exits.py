"""How the process runtime learns of its tasks' exits and tells its subscribers.

One monitor thread polls a pidfd per task. When one is readable the runtime
peeks at the status with ``waitid(WNOWAIT)`` (the leader stays a zombie, so
its pid, which is the process group's ID, cannot be reused yet), SIGKILLs
whatever is left of the group (and of the task's cgroup), records the exit,
then reaps. Exit events go to subscribers from a second thread, in order.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
from collections import deque
from collections.abc import Callable

from statecharts.container.procfs import TIMEOUT
from statecharts.container.runtime import ExitCallback, ExitEvent
from statecharts.container.shim import close_fd
from statecharts.container.tasks import Task

__all__ = ["ExitDispatcher", "TaskMonitor"]

_log = logging.getLogger("chartd.container.process")


class TaskMonitor:
    """One thread waiting on every task's pidfd; calls ``on_exit(task)`` once per task."""

    def __init__(self, on_exit: Callable[[Task], None]) -> None:
        self._on_exit = on_exit
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._pending: deque[Task] = deque()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="chartd-task-monitor", daemon=True)
        self._thread.start()

    def watch(self, task: Task) -> None:
        """Watch ``task``'s pidfd from now on."""
        self._pending.append(task)
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError):  # full pipe: already awake
            os.write(self._wake_w, b"x")

    def close(self) -> None:
        """Stop the thread (tasks it watched are not reported any more)."""
        self._stop = True
        self._wake()
        self._thread.join(TIMEOUT)
        close_fd(self._wake_r)
        close_fd(self._wake_w)

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self._wake_r, select.POLLIN)
        watched: dict[int, Task] = {}
        while not self._stop:
            for fd, _ in poller.poll():
                if fd == self._wake_r:
                    os.read(self._wake_r, 4096)
                    while self._pending:
                        task = self._pending.popleft()
                        assert task.pidfd is not None
                        watched[task.pidfd] = task
                        poller.register(task.pidfd, select.POLLIN)
                    continue
                task = watched.pop(fd)
                poller.unregister(fd)
                try:
                    self._on_exit(task)
                except Exception:  # the monitor must outlive any one task
                    _log.exception("handling the exit of task %s", task.container_id)


class ExitDispatcher:
    """Delivers exit events to subscribers, in order, on its own thread.

    Events wait until there is a subscriber, so exits reaped before the
    service subscribed (e.g. of tasks restored at start) are not lost;
    ``close`` delivers what is queued before it returns.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: deque[ExitEvent] = deque()
        self._subscribers: list[ExitCallback] = []
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="chartd-task-events", daemon=True)
        self._thread.start()

    def subscribe(self, callback: ExitCallback) -> None:
        """Deliver every exit, from now on and those queued, to ``callback`` too."""
        with self._cond:
            self._subscribers.append(callback)
            self._cond.notify_all()

    def put(self, event: ExitEvent) -> None:
        """Queue ``event`` for the subscribers."""
        with self._cond:
            self._queue.append(event)
            self._cond.notify_all()

    def close(self) -> None:
        """Deliver what is queued (if anyone subscribed), then stop the thread."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(TIMEOUT)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stop and not (self._queue and self._subscribers):
                    self._cond.wait()
                if not (self._queue and self._subscribers):  # stopping, and drained
                    return
                event = self._queue.popleft()
                subscribers = list(self._subscribers)
            for callback in subscribers:
                try:
                    callback(event)
                except Exception:
                    _log.exception("exit callback %r failed on %s", callback, event)
