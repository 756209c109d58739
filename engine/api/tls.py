"""TLS of a ``tcp://`` daemon and its clients: gRPC credentials from PEM files.

The daemon proves itself with ``--tls-cert``/``--tls-key``; with
``--tls-client-ca`` it asks every client for a certificate that CA signed
(mutual TLS, as dockerd's ``--tlsverify``) and refuses the handshake of any
other. A client trusts the daemon's certificate through ``--tls-ca`` and
shows its own with ``--tls-cert``/``--tls-key``. Files that cannot be read
are InvalidParameter naming the option, never a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

from engine.errors import InvalidParameter

__all__ = ["ClientTLS", "ServerTLS"]


def _read(path: Path, option: str) -> bytes:
    try:
        return path.expanduser().read_bytes()
    except OSError as exc:
        raise InvalidParameter(f"{option} {path}: {exc.strerror or exc}") from None


@dataclass(frozen=True, slots=True)
class ServerTLS:
    """The daemon's certificate and key, and the CA its clients' certificates need (if any)."""

    cert: Path
    key: Path
    client_ca: Path | None = None

    def credentials(self) -> grpc.ServerCredentials:
        """Server credentials; with ``client_ca``, a client without its certificate is refused."""
        pair = (_read(self.key, "--tls-key"), _read(self.cert, "--tls-cert"))
        if self.client_ca is None:
            return grpc.ssl_server_credentials([pair])
        return grpc.ssl_server_credentials(
            [pair],
            root_certificates=_read(self.client_ca, "--tls-client-ca"),
            require_client_auth=True,
        )


@dataclass(frozen=True, slots=True)
class ClientTLS:
    """What a client brings to a TLS daemon: the CA it trusts, its own certificate and key.

    ``ca`` None trusts the system's CAs; ``cert`` and ``key`` go together.
    """

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None

    def __post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            raise InvalidParameter("--tls-cert and --tls-key go together")

    @property
    def wanted(self) -> bool:
        """Whether any TLS option was given (else a tcp:// daemon is reached in the clear)."""
        return self.ca is not None or self.cert is not None

    def credentials(self) -> grpc.ChannelCredentials:
        """Channel credentials of these files."""
        return grpc.ssl_channel_credentials(
            root_certificates=None if self.ca is None else _read(self.ca, "--tls-ca"),
            private_key=None if self.key is None else _read(self.key, "--tls-key"),
            certificate_chain=None if self.cert is None else _read(self.cert, "--tls-cert"),
        )
