"""engine.httpserve: an ASGI app on uvicorn in a thread, on TCP or a unix socket, until stopped."""

from __future__ import annotations

import socket
import stat
import threading
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from engine.api.address import Address
from engine.errors import Unavailable
from engine.httpserve import serve_in_thread


async def _hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"hello from {threading.current_thread().name}")


APP = Starlette(routes=[Route("/", _hello)])


def test_it_serves_on_a_loopback_port_of_the_systems_choice_until_stopped() -> None:
    server = serve_in_thread(APP, Address("tcp", host="127.0.0.1", port=0), name="test")
    try:
        assert server.port > 0
        answer = httpx.get(f"http://127.0.0.1:{server.port}/", timeout=30)
        assert answer.text == "hello from chartd-test"
    finally:
        server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{server.port}/", timeout=30)


def test_an_address_in_use_is_an_error_of_start_naming_it() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(Unavailable, match=f"cannot listen on tcp://127.0.0.1:{port}: "):
            serve_in_thread(APP, Address("tcp", host="127.0.0.1", port=port))


def test_it_serves_on_a_private_unix_socket_and_removes_it(tmp_path: Path) -> None:
    path = tmp_path / "http.sock"
    path.write_text("")  # not a socket: never removed to make room
    with pytest.raises(Unavailable, match=r"cannot listen on unix://.*not a socket"):
        serve_in_thread(APP, Address("unix", path=path))
    assert path.read_text() == ""
    path.unlink()
    server = serve_in_thread(APP, Address("unix", path=path))
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        transport = httpx.HTTPTransport(uds=str(path))
        with httpx.Client(transport=transport, base_url="http://local") as client:
            assert client.get("/").text.startswith("hello from")
    finally:
        server.stop()
    assert not path.exists()
