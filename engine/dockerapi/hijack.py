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
had already received of it first.
"""

from __future__ import annotations

import asyncio
import http
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from engine.dockerapi.calls import MAX_BODY

__all__ = ["HijackingH11"]


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
        raw = _Raw(self.transport, received, int(length) if length.isdigit() else 0)
        self.transport.set_protocol(raw)
        task = self.loop.create_task(raw.run(self.app, self.scope))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)


class _Raw(asyncio.Protocol):
    """One hijacked connection: the app's answer written raw; what the client sends
    past the request's body, dropped."""

    def __init__(self, transport: Any, received: bytes, length: int) -> None:
        self.transport = transport
        # A body said to be larger than any is refused by the endpoint from its
        # Content-Length alone: none of it is waited for.
        self.length = 0 if length > MAX_BODY else length
        self.body = bytearray(received[: self.length])
        self.complete = asyncio.Event()
        if len(self.body) >= self.length:
            self.complete.set()
        self.gone = asyncio.Event()
        self.writable = asyncio.Event()
        self.writable.set()
        self.asked = False

    def data_received(self, data: bytes) -> None:
        # Past the body: stdin, dropped (no chartd container has an open stdin).
        if not self.complete.is_set():
            self.body += data[: self.length - len(self.body)]
            if len(self.body) >= self.length:
                self.complete.set()

    def eof_received(self) -> bool:
        self.complete.set()  # a body cut short ends here
        return True  # a half-close (docker's CLI sends one without stdin): keep writing

    def connection_lost(self, exc: Exception | None) -> None:
        self.gone.set()
        self.complete.set()
        self.writable.set()

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
        try:
            await app(scope, self.receive, self.send)
        finally:
            self.transport.close()
