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

The copier also offers a live, raw tap on each container's output
(:meth:`LogCopier.tap`, what an attach streams): every chunk as read, and an
end mark once the FIFOs are drained after the exit. While a tap of a
container is full, that container's FIFOs are not read (its process blocks
on them, its log waits too); the other containers' are. A task with a TTY
has one stream, its terminal's master, copied as ``stdout`` (moby's json-file
of a TTY container).
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

from statecharts.container.outtap import TAP_BOUND, OutputTap

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
    taps: list[OutputTap] = field(default_factory=list)
    paused: bool = False  # a tap is full: the FIFOs are out of the selector
    ended: set[str] = field(default_factory=set)  # streams read to EOF: out of the selector

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
        self._taps: dict[str, list[OutputTap]] = {}  # by container, whether copied or not yet
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="chartd-logs", daemon=True)
        self._thread.start()

    def attach(
        self, container_id: str, record_dir: Path, log_path: Path, *, terminal: int | None = None
    ) -> None:
        """Copy the FIFOs of ``container_id``'s task from now on (again after a restart).

        A task with a TTY has its ``terminal`` (a non-blocking master, which the
        copier owns from now on) copied instead, as its one stream ``stdout``.
        """
        fds: dict[str, int] = {} if terminal is None else {"stdout": terminal}
        try:
            for stream in STREAMS if terminal is None else ():
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
            taps = self._taps.setdefault(container_id, [])
            copy = self._copies[container_id] = _Copy(log, fds, taps=taps)
            for tap in taps:
                tap.join()
            self._listen(container_id, copy)

    def tap(self, container_id: str, bound: int = TAP_BOUND) -> OutputTap:
        """A live, raw tap on ``container_id``'s output from now on (see :mod:`.outtap`).

        Subscribed before its task's FIFOs are copied, it waits for them; it
        ends once they are drained after the exit, or when the copier closes.
        """
        tap = OutputTap(
            bound,
            on_room=lambda: self._resume(container_id),
            on_close=lambda gone: self._untap(container_id, gone),
        )
        with self._lock:
            if self._closed:
                tap.end()
                return tap
            self._taps.setdefault(container_id, []).append(tap)
            if container_id in self._copies:
                tap.join()
        return tap

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
            for taps in self._taps.values():
                for tap in taps:
                    tap.end()
            self._taps.clear()
        self._thread.join(2.0)
        self._selector.close()

    def _listen(self, container_id: str, copy: _Copy) -> None:
        copy.paused = False
        for stream, fd in copy.fds.items():
            if stream not in copy.ended:
                self._selector.register(fd, selectors.EVENT_READ, (container_id, stream, copy))

    def _resume(self, container_id: str) -> None:
        """A tap drained or went: read the container's FIFOs again if none is full."""
        with self._lock:
            copy = self._copies.get(container_id)
            if copy is not None and copy.paused and not any(t.full for t in copy.taps):
                self._listen(container_id, copy)

    def _untap(self, container_id: str, tap: OutputTap) -> None:
        with self._lock:
            taps = self._taps.get(container_id, [])
            with contextlib.suppress(ValueError):
                taps.remove(tap)
            if not taps and container_id not in self._copies:
                self._taps.pop(container_id, None)

    def _detach(self, container_id: str) -> None:
        copy = self._copies.pop(container_id, None)
        if copy is None:
            return
        # The task's output ends here for its taps (a later task's get taps of their own).
        for tap in self._taps.pop(container_id, ()):
            tap.end()
        for fd in copy.fds.values():
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(fd)
            os.close(fd)
        os.close(copy.log)

    def _read(self, copy: _Copy, stream: str, fd: int) -> bool:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return False
        except OSError:
            # A terminal's master whose slave every process closed (EIO): nothing
            # more comes until one opens it again; not looked at meanwhile.
            copy.ended.add(stream)
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(fd)
            return False
        if not data and stream not in copy.ended:
            # Every writer is gone (the command exited). Out of the selector: epoll would
            # report the hang-up again and again until the exit's drain detaches the FIFO,
            # a loop that keeps the GIL from the thread handling that very exit.
            copy.ended.add(stream)
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(fd)
        if data:
            copy.take(stream, data)
            for tap in copy.taps:
                tap.put(stream, data)
            if not copy.paused and any(t.full for t in copy.taps):
                # Only this container's output waits for its slow subscriber.
                copy.paused = True
                for other in copy.fds.values():
                    with contextlib.suppress(KeyError, ValueError):
                        self._selector.unregister(other)
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
                    if self._copies.get(container_id) is copy and not copy.paused:
                        self._read(copy, stream, key.fd)
