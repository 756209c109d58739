"""Mutual TLS on a real daemon, with certificates ``openssl`` makes.

Beyond loopback the daemon requires ``--tls-client-ca`` and then refuses
every client that does not show a certificate that CA signed: none, or one
of another CA. Without it (TLS alone, or ``--insecure`` on loopback) any
local user can run processes as the daemon's user, and the startup log
says so.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from api_daemon import Daemon

from engine.api import Client
from engine.api.chartd.v1 import engine_pb2 as e

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


_EC = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")


@dataclass(frozen=True)
class Pair:
    """A certificate and its key."""

    cert: Path
    key: Path


def _ca(folder: Path, name: str) -> Pair:
    pair = Pair(folder / f"{name}.pem", folder / f"{name}.key")
    key, cert = str(pair.key), str(pair.cert)
    _openssl(
        "req", "-x509", *_EC, "-days", "1", "-subj", f"/CN={name}", "-keyout", key, "-out", cert
    )
    return pair


def _signed(folder: Path, name: str, ca: Pair, extensions: str) -> Pair:
    pair = Pair(folder / f"{name}.pem", folder / f"{name}.key")
    request, ext = folder / f"{name}.csr", folder / f"{name}.ext"
    ext.write_text(extensions + "\n")
    _openssl("req", *_EC, "-subj", f"/CN={name}", "-keyout", str(pair.key), "-out", str(request))
    _openssl(
        "x509", "-req", "-in", str(request), "-CA", str(ca.cert), "-CAkey", str(ca.key),
        "-CAcreateserial", "-days", "1", "-extfile", str(ext), "-out", str(pair.cert),
    )  # fmt: skip
    return pair


@dataclass(frozen=True)
class Certificates:
    ca: Pair
    server: Pair
    client: Pair
    stranger: Pair  # a client certificate of another CA


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    folder = tmp_path_factory.mktemp("certs")
    ca, other = _ca(folder, "chartd-ca"), _ca(folder, "other-ca")
    names = "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth"
    server = _signed(folder, "server", ca, names)
    client = _signed(folder, "client", ca, "extendedKeyUsage=clientAuth")
    stranger = _signed(folder, "stranger", other, "extendedKeyUsage=clientAuth")
    return Certificates(ca, server, client, stranger)


def _version(client: Client) -> str:
    return client.engine.Version(e.VersionRequest(), timeout=5).api_version


def test_beyond_loopback_the_daemon_needs_a_client_ca(tmp_path: Path, certs: Certificates) -> None:
    daemon = Daemon(tmp_path / "state")
    tls = ("--tls-cert", str(certs.server.cert), "--tls-key", str(certs.server.key))
    for host in ("0.0.0.0", "192.0.2.1", "[::]"):
        refused = daemon.cli(
            "serve", "--state-dir", str(daemon.state_dir), "--listen", f"tcp://{host}:1", *tls
        )
        assert refused.returncode == 1, refused.stderr
        assert "needs --tls-cert, --tls-key and --tls-client-ca" in refused.stderr
    alone = daemon.cli(
        "serve", "--state-dir", str(daemon.state_dir), "--listen", "tcp://127.0.0.1:1",
        "--tls-client-ca", str(certs.ca.cert),
    )  # fmt: skip
    assert alone.returncode == 1 and "--tls-client-ca needs --tls-cert" in alone.stderr


def test_mutual_tls_refuses_clients_without_the_right_certificate(
    tmp_path: Path, certs: Certificates
) -> None:
    daemon = Daemon(tmp_path / "state")
    port = _free_port()
    host = f"tcp://127.0.0.1:{port}"
    mine = {"tls_ca": certs.ca.cert, "tls_cert": certs.client.cert, "tls_key": certs.client.key}
    daemon.start(
        "--listen", f"tcp://0.0.0.0:{port}",
        "--tls-cert", str(certs.server.cert), "--tls-key", str(certs.server.key),
        "--tls-client-ca", str(certs.ca.cert),
        host=host, **mine,
    )  # fmt: skip
    try:
        with Client(host, **mine) as client:
            assert _version(client) == "chartd.v1"
        strangers = [
            # no client certificate; one another CA signed; one without its own key
            {"tls_ca": certs.ca.cert},
            {
                "tls_ca": certs.ca.cert,
                "tls_cert": certs.stranger.cert,
                "tls_key": certs.stranger.key,
            },
            {"tls_ca": certs.ca.cert, "tls_cert": certs.server.cert, "tls_key": certs.client.key},
        ]
        for tls in strangers:
            with Client(host, **tls) as client, pytest.raises(grpc.RpcError) as refused:
                _version(client)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, tls
        with Client(host) as plain, pytest.raises(grpc.RpcError):
            plain.engine.Version(e.VersionRequest(), timeout=2)

        flags = daemon.cli(
            "-H", host, "--tls-ca", str(certs.ca.cert),
            "--tls-cert", str(certs.client.cert), "--tls-key", str(certs.client.key), "version",
        )  # fmt: skip
        assert flags.returncode == 0 and "Server: chartd" in flags.stdout, flags.stderr
        daemon.env.update(
            CHARTD_HOST=host,
            CHARTD_TLS_CA=str(certs.ca.cert),
            CHARTD_TLS_CERT=str(certs.client.cert),
            CHARTD_TLS_KEY=str(certs.client.key),
        )
        assert daemon.cli("ps").returncode == 0
        del daemon.env["CHARTD_TLS_CERT"], daemon.env["CHARTD_TLS_KEY"]
        anonymous = daemon.cli("ps")
        assert anonymous.returncode == 1 and "Cannot connect" in anonymous.stderr
        daemon.env["CHARTD_TLS_CERT"] = str(certs.client.cert)
        half = daemon.cli("ps")
        assert half.returncode == 1 and "--tls-cert and --tls-key go together" in half.stderr
        assert "Traceback" not in half.stderr
    finally:
        assert daemon.stop() == 0, daemon.logs()
    assert "gives every local user" not in daemon.logs()


def test_the_startup_log_says_what_insecure_gives_away(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path / "state")
    host = f"tcp://127.0.0.1:{_free_port()}"
    daemon.start("--listen", host, "--insecure", host=host)
    assert daemon.stop() == 0
    power = "root" if os.geteuid() == 0 else "the rights of"
    assert f"--insecure on {host} gives every local user {power}" in daemon.logs()


def test_metrics_beyond_loopback_are_served_over_mutual_tls_only(
    tmp_path: Path, certs: Certificates
) -> None:
    daemon = Daemon(tmp_path / "state")
    port, metrics = _free_port(), _free_port()
    host = f"tcp://127.0.0.1:{port}"
    mine = {"tls_ca": certs.ca.cert, "tls_cert": certs.client.cert, "tls_key": certs.client.key}
    server_tls = ("--tls-cert", str(certs.server.cert), "--tls-key", str(certs.server.key))
    # TLS without client certificates is not enough for metrics beyond loopback.
    refused = daemon.cli(
        "serve", "--state-dir", str(daemon.state_dir), "--listen", host, *server_tls,
        "--metrics-addr", f"0.0.0.0:{metrics}",
    )  # fmt: skip
    assert refused.returncode == 1 and "is not a loopback address" in refused.stderr
    daemon.start(
        "--listen", f"tcp://0.0.0.0:{port}", *server_tls,
        "--tls-client-ca", str(certs.ca.cert), "--metrics-addr", f"0.0.0.0:{metrics}",
        host=host, **mine,
    )  # fmt: skip
    url = f"https://127.0.0.1:{metrics}/metrics"
    try:
        assert f"serving metrics on https://0.0.0.0:{metrics}/metrics" in daemon.logs()
        trusted = ssl.create_default_context(cafile=str(certs.ca.cert))
        trusted.load_cert_chain(str(certs.client.cert), str(certs.client.key))
        # A client that connects and never says a word holds up nobody else's scrape.
        with socket.create_connection(("127.0.0.1", metrics)):
            answer = httpx.get(url, verify=trusted, timeout=30)
        assert answer.status_code == 200 and "chartd_timers_pending" in answer.text
        anonymous = ssl.create_default_context(cafile=str(certs.ca.cert))
        stranger = ssl.create_default_context(cafile=str(certs.ca.cert))
        stranger.load_cert_chain(str(certs.stranger.cert), str(certs.stranger.key))
        for context in (anonymous, stranger):
            with pytest.raises(httpx.TransportError):
                httpx.get(url, verify=context, timeout=30)
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{metrics}/metrics", timeout=30)
    finally:
        assert daemon.stop() == 0, daemon.logs()


def test_dockers_engine_api_over_mutual_tls(
    tmp_path: Path, certs: Certificates, prerequisites: Any
) -> None:
    docker = prerequisites.command("docker", "docker.io")
    daemon = Daemon(tmp_path / "state")
    port = _free_port()
    daemon.start(
        "--docker-socket", f"tcp://0.0.0.0:{port}",
        "--tls-cert", str(certs.server.cert), "--tls-key", str(certs.server.key),
        "--tls-client-ca", str(certs.ca.cert),
    )  # fmt: skip
    env = {**daemon.env, "DOCKER_CONFIG": str(tmp_path / "docker-config")}
    host = ("-H", f"tcp://127.0.0.1:{port}", "--tlsverify", "--tlscacert", str(certs.ca.cert))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [docker, *args], env=env, capture_output=True, text=True, timeout=60, check=False
        )

    try:
        mine = ("--tlscert", str(certs.client.cert), "--tlskey", str(certs.client.key))
        done = run(*host, *mine, "version", "-f", "{{.Server.APIVersion}}")
        assert (done.returncode, done.stdout) == (0, "1.51\n"), done.stderr
        theirs = ("--tlscert", str(certs.stranger.cert), "--tlskey", str(certs.stranger.key))
        for refused in (run(*host, *theirs, "ps"), run(*host, "ps")):
            assert refused.returncode == 1 and refused.stdout == "", refused.stderr
    finally:
        assert daemon.stop() == 0, daemon.logs()
    assert "gives every local user" not in daemon.logs()
