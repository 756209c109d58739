"""The docker side of a chartd daemon: its Engine API socket, the docker CLI, an HTTP client."""

from __future__ import annotations

import json
import socket
import struct
import subprocess
from pathlib import Path

import httpx
from api_daemon import Daemon


class DockerCli:
    """The real ``docker`` command, pointed at a daemon's Engine API socket."""

    def __init__(self, command: str, daemon: Daemon, config_dir: Path) -> None:
        self.command = command
        self.socket = daemon.state_dir / "docker.sock"
        self.env = {
            **daemon.env,
            "DOCKER_HOST": f"unix://{self.socket}",
            # Nothing of the user's own docker setup (contexts, credentials, hints).
            "DOCKER_CONFIG": str(config_dir),
            "DOCKER_CLI_HINTS": "false",
        }

    def run(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """``docker ARGS...``; its status, stdout and stderr."""
        return subprocess.run(
            [self.command, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def ok(self, *args: str, timeout: float = 60.0) -> str:
        """``docker ARGS...``, which must succeed; its stdout."""
        done = self.run(*args, timeout=timeout)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout

    def popen(self, *args: str) -> subprocess.Popen[str]:
        """``docker ARGS...`` in the background (a follower), its stdout piped."""
        return subprocess.Popen(
            [self.command, *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


def http(daemon: Daemon, limits: httpx.Limits | None = None) -> httpx.Client:
    """An HTTP client on the daemon's Engine API socket."""
    transport = httpx.HTTPTransport(
        uds=str(daemon.state_dir / "docker.sock"), limits=limits or httpx.Limits()
    )
    return httpx.Client(transport=transport, base_url="http://docker", timeout=60.0)


def hijack_attach(daemon: Daemon, container: str, query: str) -> socket.socket:
    """An attach's hijacked connection, past its ``101``."""
    raw = socket.socket(socket.AF_UNIX)
    raw.settimeout(60)
    raw.connect(str(daemon.state_dir / "docker.sock"))
    raw.sendall(
        f"POST /v1.47/containers/{container}/attach?{query} HTTP/1.1\r\nHost: docker\r\n"
        "Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += raw.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return raw


def hijack_exec_start(
    daemon: Daemon, exec_id: str, *, tty: bool = False
) -> tuple[socket.socket, bytes]:
    """An exec's start on a hijacked connection (docker's ContainerExecAttach), past its
    ``101``; and the answer's head (lowercased)."""
    body = json.dumps({"Detach": False, "Tty": tty}).encode()
    raw = socket.socket(socket.AF_UNIX)
    raw.settimeout(60)
    raw.connect(str(daemon.state_dir / "docker.sock"))
    raw.sendall(
        f"POST /v1.51/exec/{exec_id}/start HTTP/1.1\r\nHost: docker\r\n"
        "Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += raw.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return raw, head.lower()


def demuxed(raw: socket.socket) -> bytes:
    """The frames' payloads until the daemon closes the connection."""
    data = b""
    while chunk := raw.recv(65536):
        data += chunk
    out = b""
    while data:
        _, size = struct.unpack(">BxxxI", data[:8])
        out, data = out + data[8 : 8 + size], data[8 + size :]
    return out
