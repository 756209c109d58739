"""What the kernel says of the process runtime's host processes.

``/proc/<pid>/stat`` (state, process group, start time), the boot ID, the
members of a process group, whether a member can still run, ``waitid``'s
exit status, and the bounded polling the runtime uses to wait for any of
them to change.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from statecharts.container.runtime import EXIT_UNKNOWN

__all__ = [
    "TIMEOUT",
    "ProcStat",
    "boot_id",
    "cannot_run",
    "decode_exit",
    "group_members",
    "is_child",
    "poll_until",
    "proc_stat",
]

TIMEOUT = 30.0
"""Bound on every wait for the kernel or the shim; generous for loaded CI."""


@dataclass(frozen=True, slots=True)
class ProcStat:
    """The fields of ``/proc/<pid>/stat`` the runtime reads."""

    state: str
    pgrp: int
    start_ticks: int


def proc_stat(pid: int) -> ProcStat | None:
    """State, process group and start time (clock ticks after boot) of ``pid``, or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # comm (field 2) may hold spaces and parentheses: split after the last ')'.
    rest = raw[raw.rindex(b")") + 2 :].split()
    return ProcStat(state=rest[0].decode(), pgrp=int(rest[2]), start_ticks=int(rest[19]))


def boot_id() -> str:
    """This boot's ID ("" if unknown): a recorded pid means nothing after a reboot."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def group_members(pgid: int) -> list[tuple[int, ProcStat]]:
    """Every process of the process group ``pgid``, with its stat."""
    members = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            st = proc_stat(int(entry.name))
            if st is not None and st.pgrp == pgid:
                members.append((int(entry.name), st))
    return members


def cannot_run(pid: int, stat: ProcStat) -> bool:
    """``pid`` is stopped or dead, or will stop before it runs user code again.

    A member of a group sent SIGSTOP can sit in uninterruptible sleep with
    the signal pending, e.g. a shell in ``vfork`` waiting for a child that
    was stopped before its exec: it stays there until the child goes on, and
    when it leaves it stops, since signals are handled on the way back to user
    mode.
    """
    if stat.state in "TtZX":
        return True
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True  # gone
    stop = 1 << (signal.SIGSTOP - 1)
    return any(
        line.startswith(("SigPnd:", "ShdPnd:")) and int(line.split()[1], 16) & stop
        for line in status.splitlines()
    )


def is_child(pid: int) -> bool:
    """``pid`` is a child of this process (its exit status is ours to reap)."""
    try:
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


def decode_exit(result: os.waitid_result | None) -> tuple[int, int | None]:
    """The exit code (128 + signal for a killed process) and signal of a ``waitid`` result."""
    if result is None:
        return EXIT_UNKNOWN, None
    if result.si_code == os.CLD_EXITED:
        return result.si_status, None
    if result.si_code in (os.CLD_KILLED, os.CLD_DUMPED):
        return 128 + result.si_status, result.si_status
    return EXIT_UNKNOWN, None


def poll_until(check: Callable[[], bool], timeout: float) -> bool:
    """Call ``check`` with a growing delay until it holds (True) or ``timeout`` passes (False)."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.02)
