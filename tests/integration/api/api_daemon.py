"""A real ``chartd serve`` in a subprocess, and what tests need to talk to it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from engine.api import Client
from engine.errors import ChartdError

REPO = Path(__file__).resolve().parents[3]
# The console script without depending on where it was installed.
CHARTD = [
    sys.executable,
    "-c",
    "import sys; sys.argv[0] = 'chartd'; from engine.cli import main; main()",
]


class Daemon:
    """One ``chartd serve`` process and the ways to talk to it."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.socket = state_dir / "chartd.sock"
        self.host = f"unix://{self.socket}"
        self.log = state_dir.with_name(state_dir.name + ".log")
        self.env = {
            **os.environ,
            "CHARTD_HOST": self.host,
            # Nothing may fall back to the user's own state directory.
            "XDG_STATE_HOME": str(state_dir.parent / "xdg-state"),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(
        self,
        *extra: str,
        host: str | None = None,
        timeout: float = 30.0,
        **tls: Path,
    ) -> None:
        """Start the daemon; return once its health service (at ``host``) reports SERVING.

        ``tls``: the Client's ``tls_ca``, ``tls_cert`` and ``tls_key``.
        """
        args = [*CHARTD, "serve", "--state-dir", str(self.state_dir), *extra]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                args, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        with Client(host or self.host, **tls) as c:
            while True:
                if self.proc.poll() is not None:
                    pytest.fail(f"chartd serve exited with {self.proc.returncode}:\n{self.logs()}")
                try:
                    c.wait_ready(timeout=0.5)
                    return
                except ChartdError:
                    if time.monotonic() > deadline:
                        pytest.fail(f"chartd serve did not get ready:\n{self.logs()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        """Signal the daemon and wait for it to exit; its exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"chartd serve did not stop on signal {sig}:\n{self.logs()}")

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def cli(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """``chartd ARGS...`` against this daemon (CHARTD_HOST)."""
        return subprocess.run(
            [*CHARTD, *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def popen(self, *args: str) -> subprocess.Popen[str]:
        """``chartd ARGS...`` against this daemon in the background, its output piped."""
        return subprocess.Popen(
            [*CHARTD, *args],
            cwd=REPO,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def client(self) -> Client:
        return Client(self.host)


def ok(daemon: Daemon, *args: str) -> str:
    """``chartd ARGS...``'s stdout; the test fails unless it exits 0."""
    done = daemon.cli(*args)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def inspect(daemon: Daemon, name: str) -> dict[str, Any]:
    """``chartd inspect NAME``: the one container's document."""
    found: dict[str, Any] = json.loads(ok(daemon, "inspect", name))[0]
    return found


def failure(error: grpc.RpcError) -> tuple[grpc.StatusCode, str, str]:
    """(status code, ErrorInfo reason, message) of a failed call; reason "" if none."""
    assert isinstance(error, grpc.Call)
    status = rpc_status.from_call(error)
    reasons = []
    for detail in status.details if status is not None else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            assert info.domain == "chartd"
            assert info.metadata["category"] == info.reason.lower()
            reasons.append(info.reason)
    assert len(reasons) <= 1
    return error.code(), (reasons[0] if reasons else ""), error.details() or ""


def alive(pid: int) -> bool:
    """Running or stopped, not a zombie (a zombie has ended, even if nobody reaped it)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return raw[raw.rindex(b")") + 2 :].split()[0] not in (b"Z", b"X")


def eventually(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """``check()`` once it is truthy; fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout}s: {what}")
        time.sleep(0.01)
