"""engine.locks.KeyedLock: one lock per key, bounded, and safe against forgetting."""

from __future__ import annotations

import sys
import threading
import time

from engine.locks import KeyedLock


def _blocked_in_acquire(thread: threading.Thread) -> bool:
    """Whether ``thread`` waits on a key's lock inside KeyedLock.acquire now."""
    frame = sys._current_frames().get(thread.ident or 0)
    while frame is not None:
        if frame.f_code is KeyedLock.acquire.__code__:
            return True
        frame = frame.f_back
    return False


def _wait_for(condition, what: str, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.001)


def test_one_holder_per_key_and_keys_are_independent() -> None:
    locks = KeyedLock()
    locks.acquire("a")
    locks.acquire("b")  # another key: no wait
    assert locks.held_here("a") and locks.held_here("b")
    seen: list[bool] = []
    other = threading.Thread(target=lambda: seen.append(locks.held_here("a")))
    other.start()
    other.join()
    assert seen == [False]  # held, but not by that thread
    locks.release("a")
    locks.release("b")
    assert not locks.held_here("a")


def test_locks_nobody_holds_are_forgotten_past_the_bound() -> None:
    locks = KeyedLock(keep=4)
    locks.acquire("held")
    for i in range(100):
        with locks.hold(f"k{i}"):
            pass
        assert len(locks) <= 8  # pruned each time it doubles past the bound
    assert locks.held_here("held")  # a held lock is never forgotten
    locks.release("held")


def test_a_waiter_on_a_forgotten_lock_takes_the_keys_current_one() -> None:
    # The holder forgets the key's lock as it releases it (the process runtime does so
    # once a container is gone) while another thread waits on that very lock: the waiter
    # must not go on holding a lock that is no longer the key's, or two threads could be
    # inside at once.
    locks = KeyedLock()
    locks.acquire("x")
    inside = threading.Event()
    leave = threading.Event()

    def waiter() -> None:
        locks.acquire("x")
        inside.set()
        leave.wait()
        locks.release("x")

    thread = threading.Thread(target=waiter)
    thread.start()
    _wait_for(lambda: _blocked_in_acquire(thread), "the waiter to block on the lock")
    locks.release("x", forget=True)
    assert inside.wait(10)
    assert len(locks) == 1  # the key's new lock, held by the waiter
    third = threading.Event()

    def another() -> None:
        locks.acquire("x")
        third.set()
        locks.release("x")

    late = threading.Thread(target=another)
    late.start()
    _wait_for(lambda: _blocked_in_acquire(late), "a third thread to block on the new lock")
    assert not third.is_set()  # excluded by the waiter's lock: it is the key's current one
    leave.set()
    thread.join()
    late.join()
    assert third.is_set()
