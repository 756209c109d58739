"""How long the caller of an operation still waits, and the waits that honour it.

An operation called through the API is given its caller's :data:`TimeLeft`:
the seconds until the client's deadline (None if it set none), zero or less
once the client has gone (deadline passed, or cancelled). Every wait of the
operation ends when its caller goes, with DeadlineExceeded:

* its turn on the container (:class:`Turns`): one operation at a time per
  container, so a call that queued behind a blocked one gives up at its
  deadline and never takes effect later, instead of running when the
  blocked one ends;
* what it waits for after its transition (a stop's exit), in
  :func:`wait_for`;
* a step that waits inside the transition (a restart's stop phase), which
  finds its caller through :func:`calling` and :func:`caller`.

A wait without a caller (the daemon's own: exits, restart policies,
shutdown) is as long as the operation asks.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from engine.errors import DeadlineExceeded
from engine.locks import KeyedLock

__all__ = ["TimeLeft", "Turns", "caller", "calling", "check", "wait_for"]

T = TypeVar("T")

TimeLeft = Callable[[], float | None]
"""Seconds the caller still waits: None without a deadline; zero or less once it has gone."""

_SLICE = 0.5  # seconds between looks at a caller without a deadline (it may cancel)
_caller: contextvars.ContextVar[TimeLeft | None] = contextvars.ContextVar(
    "chartd_container_caller", default=None
)


def check(time_left: TimeLeft | None) -> float | None:
    """The caller's seconds left (None: no limit); DeadlineExceeded if it has gone."""
    left = None if time_left is None else time_left()
    if left is not None and left <= 0:
        raise DeadlineExceeded("context deadline exceeded: the caller has gone")
    return left


def wait_for(
    attempt: Callable[[float | None], T | None], timeout: float | None, time_left: TimeLeft | None
) -> T | None:
    """``attempt(seconds)`` until it gives something; None once ``timeout`` seconds passed.

    ``attempt`` waits at most the seconds it is given (None: without end)
    and answers None if what it waits for did not happen. Without a caller
    it is asked once; with one, in slices, so that the caller's going (at
    its deadline, or cancelled) ends the wait with DeadlineExceeded.
    """
    if time_left is None:
        return attempt(timeout)
    end = None if timeout is None else time.monotonic() + timeout
    while True:
        left = check(time_left)
        limits = [_SLICE] if left is None else [left]
        if end is not None:
            limits.append(max(0.0, end - time.monotonic()))
        found = attempt(min(limits))
        if found is not None:
            return found
        if end is not None and time.monotonic() >= end:
            return None


@contextmanager
def calling(time_left: TimeLeft | None) -> Iterator[None]:
    """Within the block, :func:`caller` is ``time_left`` (the steps of a fire run in it)."""
    token = _caller.set(time_left)
    try:
        yield
    finally:
        _caller.reset(token)


def caller() -> TimeLeft | None:
    """The caller of the operation this thread runs, if it is one with a caller."""
    return _caller.get()


class Turns:
    """One operation at a time per container, each waiting for its turn as long as its caller."""

    def __init__(self) -> None:
        self._locks = KeyedLock()

    @contextmanager
    def hold(self, container_id: str, time_left: TimeLeft | None) -> Iterator[None]:
        """The container's turn for the block; DeadlineExceeded if the caller goes first.

        Checked again once the turn is had: a caller that went while it
        waited must not have its operation run now.
        """
        got = wait_for(
            lambda seconds: self._locks.acquire(container_id, seconds) or None, None, time_left
        )
        assert got
        try:
            check(time_left)
            yield
        finally:
            self._locks.release(container_id)
