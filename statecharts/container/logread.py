"""Reading a container's json-file log back: whole entries, the last N, a time window.

What ``docker logs`` asks of moby's json-file reader: ``--tail N`` (the last
N entries; all when negative), ``--since``/``--until`` (entries at or after,
at or before a time), applied in that order, and entries as they come for
``--follow``. :mod:`statecharts.container.logcopy` writes the file; a torn
last line (the copier mid-write) is left for the next read, and a line that
is not one of its entries is skipped.
"""

from __future__ import annotations

import json
import os
import re
import time
from calendar import timegm
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "LogEntry",
    "LogWindow",
    "log_entries",
    "parse_log_time",
    "read_entries",
    "tail_position",
]

_CHUNK = 1024 * 1024  # past any json-file line: 16 KiB of output, each byte at most 6 escaped
_BLOCK = 64 * 1024  # how much a tail reads at a time, backwards
_TIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?Z")


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One entry of the log: what the container wrote, on which stream, when (ns)."""

    data: bytes
    stream: str
    time_ns: int


@dataclass(frozen=True, slots=True)
class LogWindow:
    """What ``docker logs`` asks for: a time window (ns; 0 is no bound), a tail, follow."""

    since_ns: int = 0
    until_ns: int = 0
    tail: int = -1  # the last N entries; all when negative
    follow: bool = False

    def keeps(self, entry: LogEntry) -> bool:
        """The entry is not before ``since_ns`` (the caller stops at one after ``until_ns``)."""
        return entry.time_ns >= self.since_ns

    def past(self, entry: LogEntry) -> bool:
        """The entry is after ``until_ns``: the read is over."""
        return bool(self.until_ns) and entry.time_ns > self.until_ns


def log_entries(
    path: Path,
    window: LogWindow,
    *,
    running: Callable[[], bool],
    wait: Callable[[], object],
    now_ns: Callable[[], int] = time.time_ns,
) -> Iterator[LogEntry]:
    """The entries of the log at ``path`` that ``window`` selects, in order.

    With ``follow``, it goes on while ``running()`` (calling ``wait()``
    between looks at a log with nothing new) and ``until_ns`` has not
    passed; one last read after the stop takes what was written before it.
    """
    position = tail_position(path, window.tail)
    last_look = False
    while True:
        entries, position = read_entries(path, position)
        for entry in entries:
            if window.past(entry):
                return
            if window.keeps(entry):
                yield entry
        if entries:
            continue
        if last_look:
            return
        over = bool(window.until_ns) and now_ns() > window.until_ns
        if not window.follow or over or not running():
            last_look = True
            continue
        wait()


def parse_log_time(text: str) -> int:
    """Nanoseconds since the epoch of an entry's ``time`` (RFC 3339 in UTC); ValueError if not."""
    m = _TIME.fullmatch(text)
    if m is None:
        raise ValueError(f"not an RFC 3339 UTC time: {text[:40]!r}")
    year, month, day, hour, minute, second, fraction = m.groups()
    seconds = timegm(
        (int(year), int(month), int(day), int(hour), int(minute), int(second), 0, 0, 0)
    )
    return seconds * 10**9 + int((fraction or "0").ljust(9, "0"))


def read_entries(path: Path, position: int) -> tuple[list[LogEntry], int]:
    """The log's whole entries from byte ``position`` on (at most about 1 MiB), and the next."""
    try:
        with path.open("rb") as f:
            f.seek(position)
            data = f.read(_CHUNK)
    except FileNotFoundError:
        return [], position
    whole = data[: data.rfind(b"\n") + 1]
    entries = []
    for line in whole.splitlines():
        try:
            raw = json.loads(line)
            entries.append(
                LogEntry(raw["log"].encode(), str(raw["stream"]), parse_log_time(raw["time"]))
            )
        except (ValueError, KeyError, TypeError, AttributeError):  # a torn or foreign line
            continue
    return entries, position + len(whole)


def tail_position(path: Path, lines: int) -> int:
    """Where the last ``lines`` whole entries begin (0 when the log has fewer, or none)."""
    if lines < 0:
        return 0
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return 0
    try:
        return _tail(fd, lines)
    finally:
        os.close(fd)


def _tail(fd: int, lines: int) -> int:
    size = os.fstat(fd).st_size
    end = _previous_newline(fd, size) + 1  # a torn last line is not an entry yet
    if lines == 0 or end == 0:
        return end
    need = lines  # newlines to pass, going back from the one that ends the last entry
    position = end - 1
    while position > 0:
        start = max(0, position - _BLOCK)
        block = os.pread(fd, position - start, start)
        count = block.count(b"\n")
        if count >= need:
            cut = len(block)
            for _ in range(need):
                cut = block.rfind(b"\n", 0, cut)
            return start + cut + 1
        need -= count
        position = start
    return 0


def _previous_newline(fd: int, before: int) -> int:
    """The offset of the last newline before offset ``before``; -1 if there is none."""
    position = before
    while position > 0:
        start = max(0, position - _BLOCK)
        block = os.pread(fd, position - start, start)
        found = block.rfind(b"\n")
        if found >= 0:
            return start + found
        position = start
    return -1
