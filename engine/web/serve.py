"""The inspector on an address: the listen rules, uvicorn and the feed, started and stopped as one.

An inspector shows every entity's data, and one started to fire events
acts on them: it listens on loopback unless every client is checked. So
an address beyond loopback needs mutual TLS (a certificate, its key and the
CA the clients' certificates are signed by), the rule ``chartd serve`` has
for gRPC (docs/security.md); on loopback it may serve plain HTTP.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from engine.api.address import Address, parse_address
from engine.api.tls import ServerTLS
from engine.errors import InvalidParameter
from engine.httpserve import HttpServer, serve_in_thread
from engine.web.app import LOOPBACK_HOSTS, Inspector
from engine.web.source import Source

__all__ = ["HttpTLS", "Served", "parse_http_address", "serve_inspector"]


@dataclass(frozen=True, slots=True)
class HttpTLS:
    """HTTPS: the server's certificate and key, and the CA clients must show (mutual TLS)."""

    cert: Path
    key: Path
    client_ca: Path | None = None


def parse_http_address(text: str, option: str = "--http") -> Address:
    """``HOST:PORT``, ``[V6]:PORT`` or ``tcp://HOST:PORT``; InvalidParameter naming ``option``."""
    spelled = text if text.startswith("tcp://") else f"tcp://{text}"
    try:
        return parse_address(spelled)
    except InvalidParameter:
        raise InvalidParameter(
            f"invalid {option} {text!r}: use HOST:PORT, e.g. 127.0.0.1:7480"
        ) from None


def check_exposure(address: Address, tls: HttpTLS | None, option: str = "--http") -> None:
    """Refuse an inspector beyond loopback without mutual TLS."""
    if address.loopback:
        return
    if tls is None or tls.client_ca is None:
        raise InvalidParameter(
            f"{option} {address.target} is not a loopback address: beyond loopback the "
            "inspector needs --tls-cert, --tls-key and --tls-client-ca (mutual TLS), "
            "or anyone who reaches the port reads every entity's data"
        )


class Served:
    """An inspector and the uvicorn server that serves it."""

    def __init__(
        self, inspector: Inspector, server: HttpServer, tls: HttpTLS | None = None
    ) -> None:
        self.inspector = inspector
        self.server = server
        self._scheme = "https" if tls is not None else "http"
        self._mutual = tls is not None and tls.client_ca is not None

    @property
    def url(self) -> str:
        """The inspector's address, as a browser opens it."""
        address = self.server.address
        host = f"[{address.host}]" if ":" in address.host else address.host
        return f"{self._scheme}://{host}:{self.server.port}/"

    @property
    def exposure(self) -> str | None:
        """What serving without client certificates gives every local user, for the log."""
        if self._mutual:
            return None
        what = "fire events on every entity" if self.inspector.csrf else "read every entity's data"
        return (
            f"the inspector on {self.url} lets every local user {what} without credentials: "
            "use mutual TLS to limit it (docs/inspector.md)"
        )

    def close(self) -> None:
        """End the pages' streams, stop serving, release what the source holds."""
        self.inspector.feed.close()
        self.server.stop()
        self.inspector.close()


def serve_inspector(
    source: Source, address: Address, tls: HttpTLS | None = None, option: str = "--http"
) -> Served:
    """The inspector of ``source`` served at ``address`` (checked by the listen rules)."""
    check_exposure(address, tls, option)
    # On loopback, a request must name this machine: a site whose name a browser
    # resolves to 127.0.0.1 (DNS rebinding) gets nothing. Beyond it, mutual TLS checks.
    hosts = [*LOOPBACK_HOSTS, address.host, f"[{address.host}]"] if address.loopback else ["*"]
    inspector = Inspector(source, hosts=hosts)
    inspector.start()
    files = None if tls is None else ServerTLS(tls.cert, tls.key, tls.client_ca)
    try:
        server = serve_in_thread(inspector.app, address, files, name="inspector")
    except BaseException:
        with contextlib.suppress(Exception):
            inspector.close()
        raise
    return Served(inspector, server, tls)
