"""docker's connection hijack (``Connection: Upgrade``, ``Upgrade: tcp``) on uvicorn.

``docker run`` without ``-d`` attaches before it starts the container: it
asks for an upgrade to a raw stream and expects ``101`` and then the
container's output on the bare connection, which no HTTP framing may touch.
uvicorn's HTTP/1.1 protocol (h11) cannot send a 101 but to a WebSocket, so
:class:`HijackingH11` takes such a request off h11: it runs the ASGI app
for it with a send that writes the head and the body as they are, and
closes the connection when the body ends. Every other request is h11's.

The request's own body (``docker exec``'s start sends a JSON one) is read
off the raw connection, as far as its ``Content-Length`` says: what h11
had already received of it first. What the client sends past it is its
stdin: an endpoint that wants it claims it before its answer starts
(``scope["extensions"]["chartd.stdin"]``, a call that returns an async
reader); at most :data:`_STDIN_HELD` bytes of it are held, the connection
not read meanwhile, until the reader takes them. Unclaimed, it is dropped.

On a Unix socket the answer's body waits until the client has read the
head (:meth:`_Raw.head_read`). The Docker SDK for Python reads the head
through ``http.client``, whose buffered reader takes whatever has arrived
by then, and then reads the stream off the bare socket: bytes that came
with the head stay in that buffer, unseen (an exec's whole output, when the
process is quick: docker-py's issues 2042 and 3332). moby's daemon runs
into it too, rarely: it writes the head before it starts the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import http
import socket
import struct
import termios
from collections.abc import Awaitable, Callable
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from engine.dockerapi.calls import MAX_BODY

__all__ = ["HijackingH11", "StdinReader"]

_STDIN_HELD = 64 * 1024  # the client's stdin held unread before the connection is paused
_LOOK_AGAIN = (0.0005, 0.02)  # seconds between looks at whether the client read the head

StdinReader = Callable[[], Awaitable[bytes | None]]
"""The next bytes of a hijacked connection's stdin as they come; None at its end."""


class HijackingH11(H11Protocol):
    """uvicorn's h11 protocol, and docker's hijack for ``Upgrade: tcp``."""

    def _should_upgrade(self) -> bool:
        return self._get_upgrade() == b"tcp" or super()._should_upgrade()

    def handle_websocket_upgrade(self, event: Any) -> None:
        if self._get_upgrade() != b"tcp":
            super().handle_websocket_upgrade(event)
            return
        self.connections.discard(self)
        received, _ = self.conn.trailing_data
        length = dict(self.headers).get(b"content-length", b"0")
        raw = _Raw(self.transport, int(length) if length.isdigit() else 0)
        raw.data_received(received)
        self.transport.set_protocol(raw)
        task = self.loop.create_task(raw.run(self.app, self.scope))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)


class _Raw(asyncio.Protocol):
    """One hijacked connection: the app's answer written raw; what the client sends
    past the request's body, its stdin (dropped unless the app claims it)."""

    def __init__(self, transport: Any, length: int) -> None:
        self.transport = transport
        # A body said to be larger than any is refused by the endpoint from its
        # Content-Length alone: none of it is waited for.
        self.length = 0 if length > MAX_BODY else length
        self.body = bytearray()
        self.complete = asyncio.Event()
        if not self.length:
            self.complete.set()
        self.gone = asyncio.Event()
        self.writable = asyncio.Event()
        self.writable.set()
        self.asked = False
        self.stdin = bytearray()
        self.stdin_ended = False
        self.stdin_came = asyncio.Event()
        self.claimed = self.dropping = self.paused = False
        self.head_unread = False

    def data_received(self, data: bytes) -> None:
        if not self.complete.is_set():
            wanted = self.length - len(self.body)
            self.body += data[:wanted]
            data = data[wanted:]
            if len(self.body) >= self.length:
                self.complete.set()
        if data and not self.dropping:
            self.stdin += data
            self.stdin_came.set()
            if len(self.stdin) >= _STDIN_HELD and not self.paused:
                self.paused = True
                self.transport.pause_reading()  # until the reader takes it: backpressure

    def eof_received(self) -> bool:
        self.complete.set()  # a body cut short ends here
        self._end_stdin()
        return True  # a half-close (docker's CLI sends one at its stdin's end): keep writing

    def connection_lost(self, exc: Exception | None) -> None:
        self.gone.set()
        self.complete.set()
        self.writable.set()
        self._end_stdin()

    def _end_stdin(self) -> None:
        self.stdin_ended = True
        self.stdin_came.set()

    def claim_stdin(self) -> StdinReader:
        """The reader of the client's stdin, for the endpoint that takes it."""
        self.claimed = True
        return self.read_stdin

    async def read_stdin(self) -> bytes | None:
        """The client's stdin sent since the last call (waiting for some); None at its end."""
        while not self.stdin and not self.stdin_ended:
            self.stdin_came.clear()
            await self.stdin_came.wait()
        data, self.stdin = bytes(self.stdin), bytearray()
        self._resume()
        return data or None

    def _resume(self) -> None:
        if self.paused and not self.gone.is_set():
            self.paused = False
            self.transport.resume_reading()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    async def receive(self) -> dict[str, Any]:
        if not self.asked:
            self.asked = True
            await self.complete.wait()
            return {"type": "http.request", "body": bytes(self.body), "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if self.gone.is_set():
            return
        if message["type"] == "http.response.start":
            if not self.claimed:  # nobody takes the stdin: what comes of it is dropped
                self.dropping = True
                self.stdin = bytearray()
                self._resume()
            status = int(message["status"])
            reason = "UPGRADED" if status == 101 else http.HTTPStatus(status).phrase
            lines = [f"HTTP/1.1 {status} {reason}".encode()]
            lines += [name + b": " + value for name, value in message.get("headers", ())]
            if status != 101:
                lines.append(b"connection: close")  # the body ends when the connection does
            self.transport.write(b"\r\n".join(lines) + b"\r\n\r\n")
            self.head_unread = status == 101  # the stream that follows is read off the socket
        elif message["type"] == "http.response.body":
            if message.get("body"):
                if self.head_unread:
                    await self.head_read()
                self.transport.write(message["body"])
                await self.writable.wait()
            if not message.get("more_body", False):
                self.transport.close()

    async def head_read(self) -> None:
        """Wait until the client has read all that was written (the head), or went.

        Only a Unix socket tells (what the peer has not read yet is counted
        against the sender: ``SIOCOUTQ``); on TCP the count ends at the
        peer's kernel, not its reader, and nothing is waited for. The kernel
        says nothing when the peer reads: it is looked at, soon and then
        less often (a client reads the head at once; the body usually comes
        later anyway, when the process writes).
        """
        self.head_unread = False
        sock = self.transport.get_extra_info("socket")
        if sock is None or sock.family != socket.AF_UNIX:
            return
        pause, longest = _LOOK_AGAIN
        while self.transport.get_write_buffer_size() or _unread(sock.fileno()):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.gone.wait(), pause)
            if self.gone.is_set():
                return
            pause = min(pause * 2, longest)

    async def run(self, app: Any, scope: Any) -> None:
        extensions = {**scope.get("extensions", {}), "chartd.stdin": self.claim_stdin}
        try:
            await app({**scope, "extensions": extensions}, self.receive, self.send)
        finally:
            self.transport.close()


def _unread(fd: int) -> int:
    """How many bytes written to the Unix socket ``fd`` its peer has not read yet (0: unknown)."""
    try:
        answer = fcntl.ioctl(fd, termios.TIOCOUTQ, b"\0\0\0\0")  # SIOCOUTQ on Linux
    except OSError:
        return 0
    return int(struct.unpack("i", answer)[0])
