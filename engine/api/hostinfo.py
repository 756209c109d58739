"""What the host has and has spent: its memory, its CPUs and their time, as moby reads them.

moby reports the host's ``MemTotal`` both in ``/info`` and as the memory
limit of a container that has none, and its ``/containers/{id}/stats``
counts the host's CPU time and online CPUs from ``/proc/stat``; the Engine
API's ``/info`` and stats, and the Containers API's ``Stats``, read them
here, so they agree. The parsers are pure; the readers read ``/proc``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "NS_PER_TICK",
    "HostCpu",
    "cpu_count",
    "host_cpu",
    "mem_total",
    "parse_meminfo_total",
    "parse_proc_stat",
]

NS_PER_TICK = 10**9 // os.sysconf("SC_CLK_TCK")
"""Nanoseconds in a clock tick, the unit of ``/proc``'s CPU times."""


@dataclass(frozen=True, slots=True)
class HostCpu:
    """The host's CPU time so far (ns, every CPU together) and its online CPUs."""

    usage_ns: int
    online: int


def parse_meminfo_total(text: str) -> int:
    """``MemTotal`` of a ``/proc/meminfo`` text, in bytes (0 if it says none)."""
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name == "MemTotal":
            fields = rest.split()
            if fields and fields[0].isdigit():
                unit = 1024 if fields[1:] == ["kB"] else 1
                return int(fields[0]) * unit
    return 0


def parse_proc_stat(text: str) -> HostCpu:
    """The host's CPU time of a ``/proc/stat`` text, as moby's stats collector counts it:
    user, nice, system, idle, iowait, irq and softirq of the ``cpu`` line; a ``cpuN`` line
    per online CPU."""
    usage, online = 0, 0
    for line in text.splitlines():
        fields = line.split()
        if not fields or not fields[0].startswith("cpu"):
            continue
        if fields[0] == "cpu":
            ticks = [int(f) for f in fields[1:8] if f.isdigit()]
            usage = sum(ticks) * NS_PER_TICK
        elif fields[0][3:].isdigit():
            online += 1
    return HostCpu(usage, online)


def mem_total() -> int:
    """The host's memory in bytes (0 if ``/proc/meminfo`` cannot be read)."""
    try:
        return parse_meminfo_total(Path("/proc/meminfo").read_text())
    except OSError:
        return 0


def host_cpu() -> HostCpu:
    """The host's CPU time so far and its online CPUs (zeros if ``/proc/stat`` cannot be read)."""
    try:
        return parse_proc_stat(Path("/proc/stat").read_text())
    except OSError:
        return HostCpu(0, 0)


def cpu_count() -> int:
    """The CPUs this process may run on: ``/info``'s ``NCPU`` (Go's ``runtime.NumCPU``)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except OSError:
        return os.cpu_count() or 1
