"""A daemon restart with containers running: shutdown stops them, restore applies policies."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import grpc
import pytest
from api_daemon import Daemon

from engine.api import Client
from engine.api.chartd.v1 import containers_pb2 as c
from engine.api.chartd.v1 import engine_pb2 as e


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_sigterm_stops_containers_and_a_new_daemon_applies_restart_policies(
    tmp_path: Path,
) -> None:
    daemon = Daemon(tmp_path / "state")
    daemon.start()
    policies = {
        "always-up": "always",
        "unless-up": "unless-stopped",
        "plain-up": "no",
        "always-stopped": "always",
        "unless-stopped": "unless-stopped",
    }
    pids = {}
    with daemon.client() as client:
        for name, policy in policies.items():
            client.containers.Create(
                c.CreateContainerRequest(cmd=["sleep", "60"], name=name, restart_policy=policy)
            )
            pids[name] = client.containers.Start(c.StartContainerRequest(container=name)).pid
        for name in ("always-stopped", "unless-stopped"):  # stopped by hand: manually stopped
            client.containers.Stop(c.StopContainerRequest(container=name, timeout=5))

    assert daemon.stop(signal.SIGTERM) == 0, daemon.logs()
    assert not daemon.socket.exists()
    assert not any(alive(pid) for pid in pids.values())  # no container outlives the daemon
    assert "stopping the running containers" in daemon.logs()

    daemon.start()
    with daemon.client() as client:
        states = {
            name: client.containers.Inspect(c.InspectContainerRequest(container=name)).state
            for name in policies
        }
        # The shutdown was no manual stop: unless-stopped comes back; `always` comes
        # back even after a manual stop; `no` stays exited.
        assert {n: s.status for n, s in states.items()} == {
            "always-up": "running",
            "unless-up": "running",
            "plain-up": "exited",
            "always-stopped": "running",
            "unless-stopped": "exited",
        }
        assert all(s.pid not in (0, pids[n]) for n, s in states.items() if s.running)
        journal = client.engine.GetHistory(e.GetHistoryRequest(entity="unless-up")).transitions
        assert [t.event for t in journal] == ["start", "stop", "exit", "start"]
        assert journal[1].params.fields["shutdown"].bool_value
    ps = daemon.cli("ps", "--format", "json")
    assert ps.returncode == 0 and ps.stdout.count('"running"') == 3
    assert daemon.stop(signal.SIGINT) == 0, daemon.logs()  # SIGINT shuts down the same way


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_tcp_needs_tls_or_insecure_on_loopback(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path / "state")
    refused = daemon.cli(
        "serve", "--state-dir", str(daemon.state_dir), "--listen", "tcp://127.0.0.1:1"
    )
    assert refused.returncode == 1
    assert "needs --tls-cert and --tls-key, or --insecure" in refused.stderr
    public = daemon.cli(
        "serve", "--state-dir", str(daemon.state_dir), "--listen", "tcp://0.0.0.0:1", "--insecure"
    )
    assert public.returncode == 1 and "loopback only" in public.stderr

    host = f"tcp://127.0.0.1:{_free_port()}"
    daemon.start("--listen", host, "--insecure", host=host)
    with Client(host) as client:
        assert client.engine.Version(e.VersionRequest()).api_version == "chartd.v1"
    assert not daemon.socket.exists()  # TCP only
    assert daemon.stop() == 0


def test_tls_on_tcp(tmp_path: Path, prerequisites: Any) -> None:
    openssl = prerequisites.command("openssl", "openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    port = _free_port()
    daemon = Daemon(tmp_path / "state")
    host = f"tcp://127.0.0.1:{port}"
    daemon.start(
        "--listen", host, "--tls-cert", str(cert), "--tls-key", str(key), host=host, tls_ca=cert
    )
    with Client(host, tls_ca=cert) as client:
        assert client.engine.Version(e.VersionRequest()).api_version == "chartd.v1"
    with Client(host) as plain, pytest.raises(grpc.RpcError):  # no TLS: no answer
        plain.engine.Version(e.VersionRequest(), timeout=2)
    version = daemon.cli("--tls-ca", str(cert), "-H", host, "version")
    assert version.returncode == 0 and "Server: chartd" in version.stdout
    assert daemon.stop() == 0
