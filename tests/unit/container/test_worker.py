"""Worker: items in order on one thread, which outlives a failing item and ends when idle."""

from __future__ import annotations

import threading
import time

from statecharts.container.worker import Worker


def test_items_are_handled_in_order_on_one_thread_that_ends_when_idle() -> None:
    seen: list[tuple[int, str]] = []
    done = threading.Event()

    def handle(item: int) -> None:
        if item == 2:
            raise RuntimeError("a bad item")  # logged; the next one is handled
        seen.append((item, threading.current_thread().name))
        if item == 4:
            done.set()

    worker = Worker("test-worker", handle, idle=0.05)
    for item in range(5):
        worker.put(item)

    assert done.wait(10)
    assert seen == [(0, "test-worker"), (1, "test-worker"), (3, "test-worker"), (4, "test-worker")]
    deadline = time.monotonic() + 10
    while any(t.name == "test-worker" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the idle thread did not end"
        time.sleep(0.01)
    worker.put(5)  # a new thread for the next item
    deadline = time.monotonic() + 10
    while seen[-1][0] != 5:
        assert time.monotonic() < deadline, "the item after an idle end was not handled"
        time.sleep(0.01)
