"""A container's stdout and stderr, apart, into docker's json-file log.

As with docker, the command writes to two FIFOs (``init-stdout`` and
``init-stderr`` in the task's record directory) and the daemon copies what
comes out of them to ``<id>-json.log``: one JSON object per line, ``log``
(a line with its newline, or a part of a longer line, or the last output
without one), ``stream`` (``stdout`` or ``stderr``) and ``time`` (RFC 3339
in UTC with nanoseconds, as Go's ``RFC3339Nano``), encoded as Go's
``encoding/json`` does (``<``, ``>`` and ``&`` escaped). The command holds
its FIFOs open for reading and writing: its writes never fail for want of a
reader. While no daemon copies (a daemon killed, not yet restarted), a
FIFO holds 64 KiB and then blocks the writer, as docker's do; the next
daemon's copier picks them up again.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["STREAMS", "LogCopier", "entry", "fifo", "make_fifo", "make_fifos", "open_for_writer"]

STREAMS = ("stdout", "stderr")
_LINE_MAX = 16 * 1024  # docker's copier buffer: a longer line is logged in parts
_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def fifo(record_dir: Path, stream: str) -> Path:
    """The FIFO of ``stream`` in a task's record directory."""
    return record_dir / f"init-{stream}"


def make_fifo(record_dir: Path, stream: str) -> Path:
    """The FIFO of ``stream``, new (a previous task's is replaced)."""
    path = fifo(record_dir, stream)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    os.mkfifo(path, 0o600)
    return path


def make_fifos(record_dir: Path) -> None:
    """Both output FIFOs of a task, new (a previous task's are replaced)."""
    for stream in STREAMS:
        make_fifo(record_dir, stream)


def open_for_writer(record_dir: Path, stream: str) -> int:
    """The command's end of a FIFO: read-write, so that no write ever meets a missing reader."""
    return os.open(fifo(record_dir, stream), os.O_RDWR | os.O_CLOEXEC)


def _rfc3339_nano(ns: int) -> str:
    seconds, nanos = divmod(ns, 10**9)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    fraction = f"{nanos:09d}".rstrip("0")  # Go's RFC3339Nano drops trailing zeros
    return f"{stamp}.{fraction}Z" if fraction else f"{stamp}Z"


def entry(data: bytes, stream: str, ns: int) -> bytes:
    """One line of a json-file log, as docker's ``jsonfilelog`` writes it."""
    text = json.dumps(
        {"log": data.decode("utf-8", "replace"), "stream": stream, "time": _rfc3339_nano(ns)},
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return (text.translate(_ESCAPES) + "\n").encode()


@dataclass
class _Copy:
    """One container's FIFOs being copied: read ends, partial lines, the log."""

    log: int
    fds: dict[str, int]
    partial: dict[str, bytes] = field(default_factory=lambda: dict.fromkeys(STREAMS, b""))

    def take(self, stream: str, data: bytes, *, last: bool = False) -> None:
        """Log the complete lines of ``data`` (all of it when ``last``)."""
        buffered = self.partial[stream] + data
        out = []
        now = time.time_ns()
        while buffered:
            cut = buffered.find(b"\n") + 1
            if not cut:
                if len(buffered) < _LINE_MAX and not last:
                    break
                cut = min(len(buffered), _LINE_MAX)
            out.append(entry(buffered[:cut], stream, now))
            buffered = buffered[cut:]
        self.partial[stream] = buffered
        if out:
            os.write(self.log, b"".join(out))


class LogCopier:
    """One thread that copies every attached container's FIFOs into its json-file log."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._copies: dict[str, _Copy] = {}
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="chartd-logs", daemon=True)
        self._thread.start()

    def attach(self, container_id: str, record_dir: Path, log_path: Path) -> None:
        """Copy the FIFOs of ``container_id``'s task from now on (again after a restart)."""
        fds: dict[str, int] = {}
        try:
            for stream in STREAMS:
                fds[stream] = os.open(
                    fifo(record_dir, stream), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
                )
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
            log = os.open(log_path, flags, 0o640)
        except OSError:
            for fd in fds.values():
                os.close(fd)
            raise
        with self._lock:
            self._detach(container_id)
            copy = self._copies[container_id] = _Copy(log, fds)
            for stream, fd in fds.items():
                self._selector.register(fd, selectors.EVENT_READ, (container_id, stream, copy))

    def drain(self, container_id: str) -> None:
        """Copy what is left (the command exited) and stop copying ``container_id``."""
        with self._lock:
            copy = self._copies.get(container_id)
            if copy is not None:
                for stream, fd in copy.fds.items():
                    while self._read(copy, stream, fd):
                        pass
                    copy.take(stream, b"", last=True)
                self._detach(container_id)

    def close(self) -> None:
        """Stop copying (what the FIFOs still hold waits for the next copier)."""
        with self._lock:
            self._closed = True
            for container_id in list(self._copies):
                self._detach(container_id)
        self._thread.join(2.0)
        self._selector.close()

    def _detach(self, container_id: str) -> None:
        copy = self._copies.pop(container_id, None)
        if copy is None:
            return
        for fd in copy.fds.values():
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(fd)
            os.close(fd)
        os.close(copy.log)

    @staticmethod
    def _read(copy: _Copy, stream: str, fd: int) -> bool:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return False
        if data:
            copy.take(stream, data)
        return bool(data)

    def _run(self) -> None:
        while not self._closed:
            # epoll sees what other threads register meanwhile; the timeout only bounds close().
            try:
                ready = self._selector.select(0.2)
            except (OSError, ValueError):  # closed under it: close() is ending the copy
                return
            for key, _ in ready:
                container_id, stream = key.data[:2]
                copy: _Copy = key.data[2]
                with self._lock:
                    if self._copies.get(container_id) is copy:
                        self._read(copy, stream, key.fd)
