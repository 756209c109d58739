"""Worker: items handled in order on a thread that runs only while there is work.

The thread starts with the first item and, once the queue is empty, waits a
while for more before it ends (the next item starts another): a quiet
daemon keeps no thread for it, and a busy one does not pay for a thread
start per item (``Thread.start`` waits until the new thread runs).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Worker"]

T = TypeVar("T")

_log = logging.getLogger("chartd.containers")


class Worker(Generic[T]):
    """Calls ``handle(item)`` for every item :meth:`put`, in order, on a thread named ``name``.

    ``idle`` is how long the thread waits for the next item before it ends.
    What ``handle`` raises is logged, and the next item handled.
    """

    def __init__(self, name: str, handle: Callable[[T], None], idle: float = 1.0) -> None:
        self._name = name
        self._handle = handle
        self._idle = idle
        self._items: deque[T] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def put(self, item: T) -> None:
        """Queue ``item``; the thread handles it after those queued before."""
        with self._cond:
            self._items.append(item)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            else:
                self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._items:
                    self._cond.wait(self._idle)
                if not self._items:
                    self._thread = None  # the next put starts another
                    return
                item = self._items.popleft()
            try:
                self._handle(item)
            except Exception:  # the worker must outlive any one item
                _log.exception("%s: handling %r failed", self._name, item)
