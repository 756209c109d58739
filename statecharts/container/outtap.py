"""A live, raw tap on a container's output: what an attach sends (moby's broadcaster).

A subscriber gets every chunk of the task's stdout and stderr exactly as
the runtime read it, bytes and all (the json-file log is lossy for binary
output), and then an end mark once the task's output is all read after its
exit. Bounded: a tap holding more than its bound is *full*, and the runtime
stops reading that container's output until it drains (the process blocks
on its full FIFO, as with docker: a slow attached client makes its
container wait, nothing else), so nothing grows without bound.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

__all__ = ["TAP_BOUND", "OutputTap"]

TAP_BOUND = 1024 * 1024
"""What a tap holds before its container's output waits for it."""

Chunk = tuple[str, bytes]


class OutputTap:
    """One subscriber's view of one container's output, from its subscription on.

    The runtime calls :meth:`put` and :meth:`end`; the subscriber :meth:`take`
    (any thread), and :meth:`close` when it goes. ``on_room`` (the runtime's)
    is called when a full tap drained or closed; ``on_close`` when it closed.
    """

    def __init__(
        self,
        bound: int = TAP_BOUND,
        *,
        on_room: Callable[[], None] = lambda: None,
        on_close: Callable[[OutputTap], None] = lambda tap: None,
    ) -> None:
        self.bound = bound
        self._on_room, self._on_close = on_room, on_close
        self._changed = threading.Condition()
        self._chunks: deque[Chunk] = deque()
        self._size = 0
        self._ended = self._closed = False
        self._joined = False
        self._waker: Callable[[], None] = lambda: None

    # -- the runtime's side ------------------------------------------------------------

    def join(self) -> None:
        """A task's output is being read for this tap (its end mark will come)."""
        with self._changed:
            self._joined = True

    def put(self, stream: str, data: bytes) -> None:
        """A chunk read from the task's ``stream``."""
        with self._changed:
            if self._ended or self._closed:
                return
            self._chunks.append((stream, data))
            self._size += len(data)
            self._changed.notify_all()
            waker = self._waker
        waker()

    def end(self) -> None:
        """The end mark: nothing more will come."""
        with self._changed:
            if self._ended:
                return
            self._ended = True
            self._changed.notify_all()
            waker = self._waker
        waker()

    @property
    def full(self) -> bool:
        """Whether it holds its bound or more (its container's output waits meanwhile)."""
        with self._changed:
            return self._size >= self.bound and not self._closed

    # -- the subscriber's side ---------------------------------------------------------

    @property
    def joined(self) -> bool:
        """Whether a task's output has been read for it (so its end mark will come)."""
        with self._changed:
            return self._joined

    def set_waker(self, waker: Callable[[], None]) -> None:
        """Call ``waker()`` (from any thread) whenever something comes; once now if some has."""
        with self._changed:
            self._waker = waker
            pending = bool(self._chunks) or self._ended
        if pending:
            waker()

    def take(self, timeout: float = 0.0) -> tuple[list[Chunk], bool]:
        """What came since the last take (waiting up to ``timeout`` for some), and whether
        the tap has ended (nothing will come after these)."""
        with self._changed:
            self._changed.wait_for(lambda: self._chunks or self._ended, timeout)
            was_full = self._size >= self.bound
            chunks = list(self._chunks)
            self._chunks.clear()
            self._size = 0
            ended = self._ended
        if was_full:
            self._on_room()
        return chunks, ended

    def close(self) -> None:
        """The subscriber goes: drop what it holds, and its container's output no longer waits."""
        with self._changed:
            if self._closed:
                return
            self._closed = True
            self._chunks.clear()
            self._size = 0
        self._on_close(self)
        self._on_room()
