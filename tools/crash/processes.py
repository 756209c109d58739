"""The processes the ``spawn`` step starts: found by the tag in their environment, and killed.

Every such process carries ``CHARTD_CRASH_RESOURCE=<run>:<identity>``, so a
process whose pidfile was never written is still found (the spawner died
between starting it and writing the pidfile).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path

TAG = "CHARTD_CRASH_RESOURCE"


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie is dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def describe(pid: int) -> str:
    """A process's pid, parent and age, to tell who started it."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except OSError:
        return f"{pid} (gone)"
    age = uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK")
    return f"{pid} (parent {fields[1]}, {age:.2f}s old)"


def live_processes(run: str) -> dict[str, list[int]]:
    """Live processes this run spawned, by the identity in their tag."""
    prefix = f"{TAG}={run}:".encode()
    found: dict[str, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry.name}/environ").read_bytes()
        except OSError:
            continue
        for var in environ.split(b"\0"):
            if var.startswith(prefix):
                pid = int(entry.name)
                if alive(pid):
                    found.setdefault(var[len(prefix) :].decode(), []).append(pid)
                break
    return found


def in_exec(session: int) -> bool:
    """Whether a process of ``session`` is inside execve: its environment reads empty."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text().rpartition(")")[2].split()
            if stat[0] == "Z" or int(stat[3]) != session:
                continue
            if not Path(f"/proc/{entry.name}/environ").read_bytes():
                return True
        except (OSError, ValueError, IndexError):
            continue
    return False


def kill_processes(pids: Sequence[int]) -> None:
    """SIGKILL each process and its group, and wait until they are gone (reaping our own)."""
    for pid in pids:
        for kill in (os.killpg, os.kill):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    for pid in pids:
        while True:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            if not alive(pid) or time.monotonic() > deadline:
                break
            time.sleep(0.002)


def read_pid(path: Path) -> int | None:
    """The pid a pidfile holds, or None if it is missing or unreadable."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None
