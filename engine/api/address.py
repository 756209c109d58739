"""Where a daemon listens and a client connects: ``unix:///path`` or ``tcp://host:port``."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from engine.errors import InvalidParameter

__all__ = ["Address", "default_host", "default_state_dir", "parse_address"]

# sun_path holds 108 bytes with the terminating NUL.
MAX_SOCKET_PATH = 107


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/chartd``, else ``~/.local/state/chartd`` (the XDG default)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "chartd"


def default_host() -> str:
    """``$CHARTD_HOST``, else the unix socket in the default state directory."""
    return os.environ.get("CHARTD_HOST") or f"unix://{default_state_dir() / 'chartd.sock'}"


@dataclass(frozen=True, slots=True)
class Address:
    """A parsed listen or connect address."""

    scheme: Literal["unix", "tcp"]
    path: Path | None = None
    host: str = ""
    port: int = 0

    @property
    def target(self) -> str:
        """The address as gRPC spells it."""
        if self.scheme == "unix":
            return f"unix://{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def loopback(self) -> bool:
        """Whether only this machine can reach it (a unix socket, or a loopback host)."""
        if self.scheme == "unix":
            return True
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def __str__(self) -> str:
        if self.scheme == "unix":
            return f"unix://{self.path}"
        return f"tcp://{self.target}"


def parse_address(text: str) -> Address:
    """``unix:///abs/path`` (or a bare absolute path) or ``tcp://host:port``."""
    if text.startswith("unix://") or text.startswith("/"):
        raw = text.removeprefix("unix://")
        if not raw.startswith("/"):
            raise InvalidParameter(
                f"invalid address {text!r}: a unix socket needs an absolute path, "
                "e.g. unix:///run/chartd.sock"
            )
        path = Path(raw)
        if len(os.fsencode(path)) > MAX_SOCKET_PATH:
            raise InvalidParameter(
                f"invalid address {text!r}: a unix socket path has at most {MAX_SOCKET_PATH} bytes"
            )
        return Address("unix", path=path)
    if text.startswith("tcp://"):
        rest = text.removeprefix("tcp://").rstrip("/")
        host, sep, port_text = rest.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise InvalidParameter(
                f"invalid address {text!r}: use tcp://HOST:PORT, e.g. tcp://127.0.0.1:7443"
            )
        return Address("tcp", host=host, port=int(port_text))
    raise InvalidParameter(
        f"invalid address {text!r}: use unix:///path/chartd.sock or tcp://HOST:PORT"
    )
