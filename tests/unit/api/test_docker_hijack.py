"""A hijacked answer (``Upgrade: tcp``) on a Unix socket: its body waits for the client
to read the head.

The Docker SDK for Python reads the head through a buffered reader, then the
stream off the bare socket; what arrived with the head is lost to it (an
exec's whole output). The connection here is a real socket pair, the
server's end under asyncio as uvicorn has it: a body ready before the
client's first read must not come with the head.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from engine.dockerapi.hijack import _Raw

_HEAD = {"type": "http.response.start", "status": 101, "headers": [(b"upgrade", b"tcp")]}
_HEAD_BYTES = b"HTTP/1.1 101 UPGRADED\r\nupgrade: tcp\r\n\r\n"
_BODY = {"type": "http.response.body", "body": b"\x01\0\0\0\0\0\0\x02o\n", "more_body": True}


async def _hijacked(ours: socket.socket) -> _Raw:
    transport, _ = await asyncio.get_running_loop().connect_accepted_socket(asyncio.Protocol, ours)
    raw = _Raw(transport, 0)
    transport.set_protocol(raw)
    return raw


def _run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """``scenario`` in an event loop of its own thread: a loop another test left running
    in this one (a worker of pytest-xdist runs many) would refuse ``asyncio.run``."""
    failed: list[BaseException] = []

    def main() -> None:
        try:
            asyncio.run(scenario())
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=main)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "the scenario did not end"
    if failed:
        raise failed[0]


def test_the_first_read_is_the_head_alone_and_the_body_follows() -> None:
    async def scenario() -> None:
        ours, client = socket.socketpair()
        with client:
            raw = await _hijacked(ours)
            await raw.send(_HEAD)
            body = asyncio.ensure_future(raw.send(_BODY))
            await asyncio.sleep(0)  # the body's send has its turn before the client reads
            assert client.recv(65536) == _HEAD_BYTES  # as a buffered reader reads: all there is
            await body
            assert client.recv(65536) == _BODY["body"]
            raw.transport.close()

    _run(scenario)


def test_a_client_gone_before_reading_the_head_does_not_hold_the_body() -> None:
    async def scenario() -> None:
        ours, client = socket.socketpair()
        raw = await _hijacked(ours)
        await raw.send(_HEAD)
        client.close()
        await raw.send(_BODY)
        await raw.send({"type": "http.response.body", "body": b"", "more_body": False})

    _run(scenario)
