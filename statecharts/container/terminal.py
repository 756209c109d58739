"""A task's pseudo-terminal (docker's ``-t``): made for the shim, its window set on the master.

The task's process gets the slave as its stdin, stdout and stderr, and as
its controlling terminal: the shim runs in a session of its own, and Linux
makes a terminal that a session leader without one opens (without
``O_NOCTTY``) its controlling terminal, so the shim opens the slave again by
its path before anything else (:mod:`~statecharts.container.shim`). The
runtime keeps the master: the log copier reads it (everything the process
writes, as the stream ``stdout``, with the terminal's ``\\r\\n``), an open
stdin is written to it, and :func:`set_window` resizes it. The line
discipline is the kernel's default (echo, canonical input, ``ONLCR``), as
runc leaves it.
"""

from __future__ import annotations

import fcntl
import os
import struct
import termios

__all__ = ["open_pty", "set_window", "window"]

_WINSIZE = "HHHH"  # struct winsize: rows, columns, then pixels (unused)


def open_pty() -> tuple[int, int, str]:
    """A new pseudo-terminal: its master (non-blocking), its slave, the slave's path.

    Both descriptors are close-on-exec; the caller hands the slave on.
    """
    master, slave = os.openpty()
    try:
        os.set_blocking(master, False)
        return master, slave, os.ttyname(slave)
    except OSError:
        os.close(master)
        os.close(slave)
        raise


def set_window(master: int, height: int, width: int) -> None:
    """Set the terminal's window (TIOCSWINSZ): each size modulo 2**16, as runc's resize does
    (moby hands it on as an unsigned number); its process is sent SIGWINCH by the kernel."""
    size = struct.pack(_WINSIZE, height % 2**16, width % 2**16, 0, 0)
    fcntl.ioctl(master, termios.TIOCSWINSZ, size)


def window(fd: int) -> tuple[int, int]:
    """The terminal's window (height, width) as its process reads it (TIOCGWINSZ)."""
    rows, columns, _, _ = struct.unpack(
        _WINSIZE, fcntl.ioctl(fd, termios.TIOCGWINSZ, bytes(struct.calcsize(_WINSIZE)))
    )
    return rows, columns
