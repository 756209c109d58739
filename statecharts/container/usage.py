"""``docker stats``: what a container's processes have spent, read from ``/proc``.

moby reads a container's cgroup; chartd reads each of the container's
processes (the pids the runtime gives, as ``docker top`` does):

* CPU: ``utime`` and ``stime`` of ``/proc/PID/stat``, with ``cutime`` and
  ``cstime`` (the children each has reaped), in nanoseconds;
* memory: the sum of ``VmRSS`` of ``/proc/PID/status`` (a page shared by two
  processes counts twice), with ``RssAnon``, ``RssFile`` and ``RssShmem``
  as the ``anon``, ``file`` and ``shmem`` stats;
* tasks: the sum of ``Threads`` (moby's ``pids.current`` counts threads);
* block I/O: ``read_bytes`` and ``write_bytes`` of ``/proc/PID/io``.

A process that ends while it is read is skipped. The parsers are pure;
:func:`measure` reads.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Usage", "measure", "parse_io", "parse_stat", "parse_status"]

_NS_PER_TICK = 10**9 // os.sysconf("SC_CLK_TCK")  # /proc's CPU times are in clock ticks
_STATUS_KEYS = {"VmRSS": "rss", "RssAnon": "anon", "RssFile": "file", "RssShmem": "shmem"}


@dataclass(frozen=True, slots=True)
class _Spent:
    """What one process has spent: CPU (ns), memory (bytes), threads and I/O (bytes)."""

    user_ns: int = 0
    kernel_ns: int = 0
    memory: dict[str, int] = field(default_factory=dict)
    threads: int = 0
    read_bytes: int = 0
    write_bytes: int = 0


@dataclass(frozen=True, slots=True)
class Usage:
    """One sample of a container's usage."""

    read_ns: int
    user_ns: int
    kernel_ns: int
    memory_usage: int
    memory_stats: dict[str, int]
    threads: int
    read_bytes: int
    write_bytes: int

    @property
    def cpu_ns(self) -> int:
        """CPU time in user and kernel mode together."""
        return self.user_ns + self.kernel_ns


def parse_stat(raw: bytes) -> tuple[int, int]:
    """User and kernel CPU time (ns) of a ``/proc/PID/stat``, its reaped children's included."""
    # comm (field 2) may hold spaces and parentheses: split after the last ')'.
    rest = raw[raw.rindex(b")") + 2 :].split()
    utime, stime, cutime, cstime = (int(f) for f in rest[11:15])
    return (utime + cutime) * _NS_PER_TICK, (stime + cstime) * _NS_PER_TICK


def parse_status(text: str) -> tuple[dict[str, int], int]:
    """The resident memory (bytes: ``rss``, ``anon``, ``file``, ``shmem``) and threads of a
    ``/proc/PID/status``."""
    memory: dict[str, int] = {}
    threads = 0
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        fields = rest.split()
        if not fields or not fields[0].isdigit():
            continue
        if name in _STATUS_KEYS:
            memory[_STATUS_KEYS[name]] = int(fields[0]) * 1024  # always in kB
        elif name == "Threads":
            threads = int(fields[0])
    return memory, threads


def parse_io(text: str) -> tuple[int, int]:
    """``read_bytes`` and ``write_bytes`` of a ``/proc/PID/io``: what reached the disk."""
    found: dict[str, int] = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if value.strip().isdigit():
            found[name] = int(value)
    return found.get("read_bytes", 0), found.get("write_bytes", 0)


def _process(pid: int) -> _Spent | None:
    """What ``pid`` has spent; None if it has gone."""
    proc = Path(f"/proc/{pid}")
    try:
        user_ns, kernel_ns = parse_stat((proc / "stat").read_bytes())
        memory, threads = parse_status((proc / "status").read_text())
    except (OSError, ValueError, IndexError):
        return None
    try:
        read_bytes, write_bytes = parse_io((proc / "io").read_text())
    except OSError:  # another user's process, or one that just ended: no I/O known
        read_bytes = write_bytes = 0
    return _Spent(user_ns, kernel_ns, memory, threads, read_bytes, write_bytes)


def measure(pids: Iterable[int]) -> Usage:
    """A sample of what the processes ``pids`` have spent."""
    found = [u for u in map(_process, pids) if u is not None]
    memory: dict[str, int] = {}
    for u in found:
        for key, value in u.memory.items():
            memory[key] = memory.get(key, 0) + value
    return Usage(
        read_ns=time.time_ns(),
        user_ns=sum(u.user_ns for u in found),
        kernel_ns=sum(u.kernel_ns for u in found),
        memory_usage=memory.pop("rss", 0),
        memory_stats=memory,
        threads=sum(u.threads for u in found),
        read_bytes=sum(u.read_bytes for u in found),
        write_bytes=sum(u.write_bytes for u in found),
    )
