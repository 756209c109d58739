"""An ASGI application served by uvicorn on a background thread of the daemon.

The daemon's main thread waits for its stop signal; the HTTP side (the
Engine API, and whatever else speaks HTTP) runs in a thread of its own with
its own event loop, so a slow request never holds the gRPC server or the
shutdown. :func:`serve_in_thread` binds the socket itself before uvicorn
sees it: a unix socket gets mode 0600 from the moment it exists (uvicorn
would make it 0666), a stale one is replaced and a live one refused, as the
gRPC socket is; TCP is served with TLS (mutual with a client CA) or in the
clear, as the caller decided.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn

from engine.api.address import Address
from engine.api.server import _answers
from engine.api.tls import ServerTLS
from engine.errors import Conflict, Unavailable

__all__ = ["HttpServer", "serve_in_thread"]

log = logging.getLogger("chartd.http")

_READY_TIMEOUT = 10.0  # seconds for uvicorn to start serving on a socket already bound
_BACKLOG = 128


class HttpServer:
    """One uvicorn server on its thread: :meth:`stop` ends it and removes its unix socket."""

    def __init__(
        self,
        server: uvicorn.Server,
        sock: socket.socket,
        address: Address,
        on_stop: Callable[[], None] | None = None,
        name: str = "http",
    ) -> None:
        self.address = address
        self._on_stop = on_stop
        self._server = server
        self._socket = sock
        self._failed: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"chartd-{name}", daemon=True)

    @property
    def port(self) -> int:
        """The TCP port served (the one the system chose when asked for port 0); 0 on unix."""
        if self.address.scheme == "unix":
            return 0
        return int(self._socket.getsockname()[1]) if self._socket.fileno() >= 0 else 0

    def _run(self) -> None:
        try:
            asyncio.run(self._server.serve(sockets=[self._socket]))
        except BaseException as exc:  # reported by start(), or logged at stop()
            self._failed = exc

    def start(self) -> None:
        """Serve; returns once uvicorn accepts connections (Unavailable if it could not)."""
        self._thread.start()
        deadline = time.monotonic() + _READY_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop(0)
                raise Unavailable(f"cannot serve HTTP on {self.address}: {self._failed}")
            time.sleep(0.01)

    def stop(self, grace: float = 2.0) -> None:
        """Stop taking connections; streams still open are ended after ``grace`` seconds.

        ``on_stop`` (of :func:`serve_in_thread`) is called first: the app's
        chance to end its streams itself, before they are cancelled.
        """
        if self._on_stop is not None:
            self._on_stop()
        self._server.config.timeout_graceful_shutdown = max(0, round(grace))
        self._server.should_exit = True
        if self._thread.ident is not None and self._thread.is_alive():
            self._thread.join(grace + 5.0)
        if self._failed is not None and not isinstance(self._failed, SystemExit):
            log.warning("the HTTP server on %s ended with %r", self.address, self._failed)
        self._socket.close()
        if self.address.scheme == "unix" and self.address.path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.address.path.unlink()


def serve_in_thread(
    app: Any,
    address: Address,
    tls: ServerTLS | None = None,
    *,
    http: type[asyncio.Protocol] | str = "h11",
    on_stop: Callable[[], None] | None = None,
    name: str = "http",
) -> HttpServer:
    """Serve the ASGI ``app`` on ``address`` from a background thread; started and ready.

    ``http`` is uvicorn's HTTP protocol (a class for protocols of one's own,
    as the Engine API's connection hijack); ``on_stop`` is called when the
    server is asked to stop; ``name`` names its thread (``chartd-NAME``).
    Conflict if another daemon answers on the unix socket; Unavailable if the
    address cannot be bound (a path that exists and is no socket is never removed).
    """
    sock = _bind(address)
    config = uvicorn.Config(
        app,
        http=http,
        lifespan="off",
        log_config=None,
        access_log=False,
        server_header=False,
        **_tls_options(tls),
    )
    server = HttpServer(uvicorn.Server(config), sock, address, on_stop, name)
    server.start()
    return server


def _tls_options(tls: ServerTLS | None) -> dict[str, Any]:
    if tls is None:
        return {}
    options: dict[str, Any] = {"ssl_certfile": str(tls.cert), "ssl_keyfile": str(tls.key)}
    if tls.client_ca is not None:
        options.update(ssl_ca_certs=str(tls.client_ca), ssl_cert_reqs=ssl.CERT_REQUIRED)
    return options


def _bind(address: Address) -> socket.socket:
    if address.scheme == "unix":
        assert address.path is not None
        return _bind_unix(address.path)
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((address.host, address.port))
        sock.listen(_BACKLOG)
    except OSError as exc:
        sock.close()
        raise Unavailable(f"cannot listen on {address}: {exc.strerror or exc}") from None
    return sock


def _bind_unix(path: Path) -> socket.socket:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        if not path.is_socket():
            # Never deleted to make room: a mistyped path must not cost a user a file.
            raise Unavailable(f"cannot listen on unix://{path}: it exists and is not a socket")
        if _answers(path):
            raise Conflict(f"another daemon is listening on unix://{path}")
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # bind(2) makes the file with the process umask: narrowed for this one call (the
    # daemon binds before any container step runs), so it is never open to others.
    previous = os.umask(0o177)
    try:
        sock.bind(str(path))
        sock.listen(_BACKLOG)
    except OSError as exc:
        sock.close()
        raise Unavailable(f"cannot listen on unix://{path}: {exc.strerror or exc}") from None
    finally:
        os.umask(previous)
    os.chmod(path, 0o600)
    return sock
