"""An ASGI app served by uvicorn on a background thread of the daemon.

The daemon's HTTP sides (the inspector, and any other ASGI app it serves)
run beside the gRPC server in the same process: each on a thread of its own
with its own event loop. :class:`HttpServer` binds the socket itself, before
the thread starts, so that an address in use or a socket path that cannot be
made is an error of :meth:`HttpServer.start` naming it (uvicorn, binding on
its own, would log it and exit the thread). ``start`` returns once uvicorn
serves; ``stop`` asks it to finish and waits for the thread.

TLS: a certificate and key make it HTTPS; a client CA makes it mutual TLS
(every client shows a certificate that CA signed), the rule beyond loopback
(docs/security.md).
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from engine.errors import InvalidParameter, Unavailable

__all__ = ["HttpServer", "Listener"]

_READY_TIMEOUT = 30.0


class Listener:
    """Where an :class:`HttpServer` listens: ``host`` and ``port``, or a unix socket ``path``."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, path: Path | None = None) -> None:
        self.host = host
        self.port = port
        self.path = path

    def bind(self) -> socket.socket:
        """A listening socket here; InvalidParameter naming the address if it cannot be had."""
        if self.path is not None:
            return self._bind_unix(self.path)
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(128)
        except OSError as exc:
            sock.close()
            raise InvalidParameter(f"cannot listen on {self}: {exc.strerror or exc}") from None
        sock.set_inheritable(True)
        return sock

    def _bind_unix(self, path: Path) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with contextlib.suppress(FileNotFoundError):
                if path.is_socket():
                    path.unlink()  # a socket a previous run left behind
            # Made private before anyone can connect: bind under a umask of 077.
            old = os.umask(0o077)
            try:
                sock.bind(str(path))
            finally:
                os.umask(old)
            os.chmod(path, 0o600)  # the daemon's user only, as its gRPC socket
            sock.listen(128)
        except OSError as exc:
            sock.close()
            raise InvalidParameter(f"cannot listen on {self}: {exc.strerror or exc}") from None
        return sock

    def __str__(self) -> str:
        if self.path is not None:
            return f"unix://{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


class HttpServer:
    """``app`` served by uvicorn at ``listener`` on a daemon thread, until :meth:`stop`.

    ``tls`` is ``(cert, key, client_ca)``: HTTPS with ``cert`` and ``key``,
    and mutual TLS when ``client_ca`` is given; None serves plain HTTP.
    """

    def __init__(
        self,
        app: Any,
        listener: Listener,
        *,
        tls: tuple[Path, Path, Path | None] | None = None,
        name: str = "http",
    ) -> None:
        self.listener = listener
        options: dict[str, Any] = {}
        if tls is not None:
            cert, key, client_ca = tls
            options = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
            if client_ca is not None:
                options |= {"ssl_ca_certs": str(client_ca), "ssl_cert_reqs": ssl.CERT_REQUIRED}
        config = uvicorn.Config(
            app,
            lifespan="off",
            log_level="warning",
            access_log=False,
            # Long-lived responses (an event stream) must not hold a shutdown for long.
            timeout_graceful_shutdown=2,
            **options,
        )
        self._server = uvicorn.Server(config)
        self._name = name
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._failed: BaseException | None = None

    @property
    def port(self) -> int:
        """The TCP port served (the one the system chose, when asked for port 0)."""
        if self._sock is None or self.listener.path is not None:
            return self.listener.port
        return int(self._sock.getsockname()[1])

    def start(self) -> None:
        """Bind, start the thread, return once uvicorn serves (InvalidParameter, Unavailable)."""
        sock = self.listener.bind()
        self._sock = sock
        if self.listener.path is None:
            self.listener.port = self.port
        try:
            # uvicorn builds the TLS context when it loads the config: bad files fail here.
            self._server.config.load()
        except (OSError, ssl.SSLError) as exc:
            sock.close()
            raise InvalidParameter(f"cannot serve HTTPS on {self.listener}: {exc}") from None
        thread = threading.Thread(target=self._run, name=f"chartd-{self._name}", daemon=True)
        self._thread = thread
        thread.start()
        deadline = time.monotonic() + _READY_TIMEOUT
        while not self._server.started:
            if not thread.is_alive():
                why = self._failed or "the server thread ended"
                raise Unavailable(f"cannot serve on {self.listener}: {why}")
            if time.monotonic() > deadline:  # a server that never starts is an error, not a hang
                self.stop()
                raise Unavailable(f"the {self._name} server on {self.listener} did not start")
            time.sleep(0.01)

    def _run(self) -> None:
        assert self._sock is not None
        try:
            self._server.run(sockets=[self._sock])
        except BaseException as exc:  # reported by start(); the thread ends either way
            self._failed = exc

    def stop(self, timeout: float = 5.0) -> None:
        """Ask uvicorn to finish its responses and stop; wait up to ``timeout`` seconds."""
        self._server.should_exit = True
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                self._server.force_exit = True
                thread.join(timeout)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        path = self.listener.path
        if path is not None:
            with contextlib.suppress(OSError):
                path.unlink()
