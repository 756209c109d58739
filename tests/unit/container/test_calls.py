"""A caller's time left bounds every wait of its operation; turns are given up at the deadline."""

from __future__ import annotations

import threading
import time

import pytest

from engine.errors import DeadlineExceeded
from engine.locks import KeyedLock
from statecharts.container import calls


def deadline_in(seconds: float) -> calls.TimeLeft:
    end = time.monotonic() + seconds
    return lambda: end - time.monotonic()


def test_a_keyed_lock_can_be_waited_for_a_while() -> None:
    locks = KeyedLock()
    assert locks.acquire("a", timeout=0.1)
    started = time.monotonic()
    got: list[bool] = []
    waiter = threading.Thread(target=lambda: got.append(locks.acquire("a", timeout=0.2)))
    waiter.start()
    waiter.join()
    assert got == [False] and 0.15 < time.monotonic() - started < 2.0
    locks.release("a")
    assert locks.acquire("a", timeout=0) and not locks.held_here("b")


def test_without_a_caller_a_wait_is_one_attempt() -> None:
    asked: list[float | None] = []
    assert calls.wait_for(asked.append, 3.0, None) is None
    assert asked == [3.0]


def test_a_wait_ends_when_the_caller_goes() -> None:
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        calls.wait_for(lambda s: time.sleep(s or 0) or None, None, deadline_in(0.3))
    assert time.monotonic() - started < 1.0


def test_a_cancelled_caller_is_noticed_within_a_slice() -> None:
    cancelled = threading.Event()
    threading.Timer(0.2, cancelled.set).start()
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        calls.wait_for(
            lambda s: time.sleep(s or 0) or None, None, lambda: 0.0 if cancelled.is_set() else None
        )
    assert time.monotonic() - started < 1.5


def test_a_wait_that_succeeds_or_times_out_says_so() -> None:
    assert calls.wait_for(lambda s: "done", 1.0, deadline_in(5)) == "done"
    assert calls.wait_for(lambda s: time.sleep(s or 0) or None, 0.2, deadline_in(5)) is None


def test_a_queued_turn_is_given_up_at_the_deadline_and_nothing_runs() -> None:
    turns = calls.Turns()
    ran: list[str] = []
    holding = threading.Event()
    release = threading.Event()

    def blocked() -> None:
        with turns.hold("c1", None):
            holding.set()
            release.wait(5)

    first = threading.Thread(target=blocked)
    first.start()
    holding.wait(5)
    with pytest.raises(DeadlineExceeded), turns.hold("c1", deadline_in(0.2)):
        ran.append("queued")
    with turns.hold("c2", deadline_in(0.2)):  # another container's turn is free
        ran.append("other")
    release.set()
    first.join()
    with turns.hold("c1", deadline_in(1)):
        ran.append("after")
    assert ran == ["other", "after"]


def test_a_caller_gone_by_the_time_of_its_turn_runs_nothing() -> None:
    turns = calls.Turns()
    with pytest.raises(DeadlineExceeded), turns.hold("c1", lambda: 0.0):
        pytest.fail("ran for a caller that had gone")


def test_steps_see_their_caller_only_within_calling() -> None:
    left = deadline_in(1)
    assert calls.caller() is None
    with calls.calling(left):
        assert calls.caller() is left
    assert calls.caller() is None
