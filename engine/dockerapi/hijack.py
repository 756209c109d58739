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
"""

from __future__ import annotations

import asyncio
import http
from collections.abc import Awaitable, Callable
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from engine.dockerapi.calls import MAX_BODY

__all__ = ["HijackingH11", "StdinReader"]

_STDIN_HELD = 64 * 1024  # the client's stdin held unread before the connection is paused

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
        elif message["type"] == "http.response.body":
            if message.get("body"):
                self.transport.write(message["body"])
                await self.writable.wait()
            if not message.get("more_body", False):
                self.transport.close()

    async def run(self, app: Any, scope: Any) -> None:
        extensions = {**scope.get("extensions", {}), "chartd.stdin": self.claim_stdin}
        try:
            await app({**scope, "extensions": extensions}, self.receive, self.send)
        finally:
            self.transport.close()
