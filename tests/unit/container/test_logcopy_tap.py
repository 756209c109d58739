"""The log copier's live, raw tap, on real FIFOs: exact bytes, an end mark, a bound."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from statecharts.container.logcopy import LogCopier, make_fifos, open_for_writer
from statecharts.container.outtap import OutputTap


@pytest.fixture
def copier() -> Iterator[LogCopier]:
    logs = LogCopier()
    yield logs
    logs.close()


def _task(root: Path, name: str) -> tuple[Path, Path, dict[str, int]]:
    """A task's record directory, its log, and the command's ends of its FIFOs."""
    records = root / name
    records.mkdir()
    make_fifos(records)
    writers = {s: open_for_writer(records, s) for s in ("stdout", "stderr")}
    return records, root / f"{name}-json.log", writers


def _all(tap: OutputTap) -> list[tuple[str, bytes]]:
    """Every chunk until the end mark."""
    got: list[tuple[str, bytes]] = []
    ended = False
    while not ended:
        chunks, ended = tap.take(timeout=30)
        got += chunks
    return got


def _until(check: Callable[[], bool]) -> None:
    """Wait (30 s at most) until ``check()`` holds."""
    deadline = time.monotonic() + 30
    while not check():
        assert time.monotonic() < deadline, "not within 30 s"
        time.sleep(0.01)


def _joined(chunks: list[tuple[str, bytes]], stream: str) -> bytes:
    return b"".join(data for s, data in chunks if s == stream)


def test_a_tap_gets_the_bytes_as_written_and_the_end_after_the_drain(
    copier: LogCopier, tmp_path: Path
) -> None:
    tap = copier.tap("c1")  # before the task: it waits for it
    assert not tap.joined
    records, log, writers = _task(tmp_path, "c1")
    copier.attach("c1", records, log)
    assert tap.joined
    binary = bytes(range(256)) * 64 + b"\xff\xfe no newline"
    os.write(writers["stdout"], binary)
    os.write(writers["stderr"], b"err\n")
    for fd in writers.values():
        os.close(fd)
    copier.drain("c1")
    got = _all(tap)
    assert _joined(got, "stdout") == binary
    assert _joined(got, "stderr") == b"err\n"
    # The json-file log is still written (lossy for binary, as docker's is).
    lines = [json.loads(line) for line in log.read_bytes().splitlines()]
    assert {line["stream"] for line in lines} == {"stdout", "stderr"}
    # One task's output per tap: a new one is needed for the next task.
    assert tap.take() == ([], True)


def test_a_full_tap_holds_only_its_container_back(copier: LogCopier, tmp_path: Path) -> None:
    bound = 64 * 1024
    slow = copier.tap("slow", bound)
    slow_records, slow_log, slow_w = _task(tmp_path, "slow")
    other_records, other_log, other_w = _task(tmp_path, "other")
    copier.attach("slow", slow_records, slow_log)
    copier.attach("other", other_records, other_log)
    total = 8 * 1024 * 1024
    written = threading.Event()

    def write() -> None:  # the command: blocks on its full FIFO while the tap is full
        chunk = os.urandom(total // 64)
        for _ in range(64):
            os.write(slow_w["stdout"], chunk)
        written.set()

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    _until(lambda: slow.full)
    # Another container's output flows meanwhile, to its tap and its log.
    other = copier.tap("other")
    os.write(other_w["stdout"], b"still flowing\n")
    chunks, _ = other.take(timeout=30)
    assert chunks == [("stdout", b"still flowing\n")]
    _until(lambda: b"still flowing" in other_log.read_bytes())
    # The slow one's copy stopped at about the bound: its FIFO and the writer wait.
    assert not written.is_set()
    assert slow.full
    # Draining the tap lets it go on: every byte arrives, in order.
    got = b""
    while len(got) < total:
        chunks, _ = slow.take(timeout=30)
        assert chunks, "no progress"
        got += _joined(chunks, "stdout")
    writer.join(30)
    assert written.is_set()
    assert len(got) == total
    assert slow_log.stat().st_size > 0
    for fd in (*slow_w.values(), *other_w.values()):
        os.close(fd)


def test_a_closed_tap_is_dropped_and_its_container_flows_again(
    copier: LogCopier, tmp_path: Path
) -> None:
    tap = copier.tap("gone", 16 * 1024)
    records, log, writers = _task(tmp_path, "gone")
    copier.attach("gone", records, log)
    done = threading.Event()

    def write() -> None:
        for _ in range(64):
            os.write(writers["stdout"], b"x" * 65535 + b"\n")
        done.set()

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    _until(lambda: tap.full)
    assert not done.is_set()
    tap.close()  # the client went: the copy reads on without it
    writer.join(30)
    assert done.is_set()
    copier.drain("gone")
    assert log.read_bytes().count(b'"stream":"stdout"') >= 64
    for fd in writers.values():
        os.close(fd)


def test_closing_the_copier_ends_every_tap(tmp_path: Path) -> None:
    logs = LogCopier()
    waiting = logs.tap("never")
    logs.close()
    assert waiting.take() == ([], True)
    assert logs.tap("late").take() == ([], True)


def test_a_fifo_whose_writers_are_gone_is_no_longer_watched_and_still_drains(
    copier: LogCopier, tmp_path: Path
) -> None:
    # epoll reports a FIFO without writers as hung up on every call: watched on, it
    # would keep the copier's thread spinning (and holding the GIL) until the exit's drain.
    records, log, writers = _task(tmp_path, "c1")
    copier.attach("c1", records, log)
    tap = copier.tap("c1")
    assert len(_watched(copier)) == 2
    os.write(writers["stdout"], b"last words\n")
    os.close(writers["stdout"])

    _until(lambda: len(_watched(copier)) == 1)  # stderr still has its writer
    os.close(writers["stderr"])
    _until(lambda: not _watched(copier))

    copier.drain("c1")
    assert _joined(_all(tap), "stdout") == b"last words\n"
    assert [json.loads(line)["log"] for line in log.read_bytes().splitlines()] == ["last words\n"]


def _watched(copier: LogCopier) -> set[int]:
    """The FIFO descriptors the copier's selector waits on (its own attribute: no public view)."""
    return set(copier._selector.get_map())
