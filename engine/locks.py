"""Locks by key: one lock per key, made on first use, forgotten when nobody needs it.

The engine serialises the fires of one entity, and the process runtime the
operations on one container, with a lock per id. Ids come and go without end
(every entity ever fired, every container ever created), so a map of locks
that only grows would grow for ever. :class:`KeyedLock` forgets the locks
nobody holds once it keeps more than ``keep`` of them, and a holder may
forget its key's lock as it releases it (the container is gone).

Forgetting races with a thread that looked a lock up but has not acquired it
yet: that thread would hold a lock that is no longer the key's, while another
thread takes the key's new one. So :meth:`KeyedLock.acquire` checks, once it
holds a lock, that the lock is still the key's, and otherwise lets it go and
takes the current one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["KeyedLock"]


class _Entry:
    __slots__ = ("lock", "owner")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.owner = 0  # the ident of the thread that holds it; 0 when free


class KeyedLock:
    """A mutual-exclusion lock per key (not reentrant), bounded in what it keeps.

    ``keep`` is how many locks it holds on to before it forgets those that
    nobody holds; past that it prunes again each time the map doubles, so the
    cost of pruning stays constant per lock made.
    """

    def __init__(self, keep: int = 10_000) -> None:
        self._entries: dict[str, _Entry] = {}
        self._guard = threading.Lock()
        self._keep = keep
        self._prune_at = keep

    def __len__(self) -> int:
        """How many locks it keeps now (held or not)."""
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        """Whether a lock is kept for ``key`` now."""
        return key in self._entries

    def acquire(self, key: str, timeout: float | None = None) -> bool:
        """Block until the calling thread holds ``key``'s lock; release it with :meth:`release`.

        False, holding nothing, if that did not happen within ``timeout``
        seconds (None: wait as long as it takes).
        """
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            entry = self._entries.get(key)  # reading the dict is atomic: no guard needed
            if entry is None:
                with self._guard:
                    if len(self._entries) >= self._prune_at:
                        self._prune()
                    entry = self._entries.setdefault(key, _Entry())
            if not entry.lock.acquire(
                timeout=-1 if end is None else max(0.0, end - time.monotonic())
            ):
                return False
            if self._entries.get(key) is entry:
                entry.owner = threading.get_ident()
                return True
            # Forgotten while this thread waited for it: another thread may hold the
            # key's new lock, so take that one.
            entry.lock.release()

    def release(self, key: str, *, forget: bool = False) -> None:
        """Release ``key``'s lock, held by the calling thread; ``forget`` drops it from the map.

        A thread waiting on a forgotten lock notices and takes the key's new one.
        """
        entry = self._entries[key]
        entry.owner = 0
        if forget:
            with self._guard:
                del self._entries[key]
        entry.lock.release()

    def held_here(self, key: str) -> bool:
        """Whether the calling thread holds ``key``'s lock (waiting for it again would hang)."""
        entry = self._entries.get(key)
        return entry is not None and entry.owner == threading.get_ident()

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        """``key``'s lock for the duration of a ``with`` block."""
        self.acquire(key)
        try:
            yield
        finally:
            self.release(key)

    def _prune(self) -> None:
        """With the guard held: forget the locks nobody holds."""
        for key in [k for k, e in self._entries.items() if not e.lock.locked()]:
            del self._entries[key]
        self._prune_at = max(self._keep, 2 * len(self._entries))
