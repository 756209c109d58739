"""Addresses and the rules of `chartd serve --listen`."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.api import default_host, default_state_dir, parse_address
from engine.daemon import DaemonConfig
from engine.errors import InvalidParameter


def test_addresses() -> None:
    unix = parse_address("unix:///run/chartd.sock")
    assert (unix.scheme, unix.path, unix.target) == (
        "unix",
        Path("/run/chartd.sock"),
        "unix:///run/chartd.sock",
    )
    assert str(parse_address("/run/x.sock")) == "unix:///run/x.sock"
    tcp = parse_address("tcp://127.0.0.1:7443")
    assert (tcp.host, tcp.port, tcp.loopback, str(tcp)) == (
        "127.0.0.1",
        7443,
        True,
        "tcp://127.0.0.1:7443",
    )
    v6 = parse_address("tcp://[::1]:80")
    assert (v6.host, v6.target, v6.loopback) == ("::1", "[::1]:80", True)
    assert not parse_address("tcp://10.1.2.3:80").loopback
    assert not parse_address("tcp://example.org:80").loopback
    for bad in (
        "http://x",
        "tcp://host",
        "tcp://:80",
        "tcp://h:0",
        "unix://relative",
        "unix:///" + "a" * 200,
    ):
        with pytest.raises(InvalidParameter):
            parse_address(bad)


def test_defaults_follow_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    monkeypatch.delenv("CHARTD_HOST", raising=False)
    assert default_state_dir() == tmp_path / "chartd"
    assert default_host() == f"unix://{tmp_path}/chartd/chartd.sock"
    monkeypatch.setenv("CHARTD_HOST", "tcp://127.0.0.1:1")
    assert default_host() == "tcp://127.0.0.1:1"
    monkeypatch.delenv("XDG_STATE_HOME")
    assert default_state_dir() == Path.home() / ".local" / "state" / "chartd"


def test_daemon_defaults(tmp_path: Path) -> None:
    config = DaemonConfig.resolve(tmp_path)
    assert config.db == f"sqlite:///{tmp_path}/chartd.db"
    assert str(config.listen) == f"unix://{tmp_path}/chartd.sock"


def test_listen_rules(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    refused = {
        "tcp://127.0.0.1:7443": "needs --tls-cert and --tls-key, or --insecure",
        "tcp://0.0.0.0:7443 insecure": "loopback only",
        "unix:///tmp/x.sock insecure": "tcp:// addresses only",
    }
    for spec, says in refused.items():
        listen, _, flag = spec.partition(" ")
        with pytest.raises(InvalidParameter, match=says):
            DaemonConfig.resolve(tmp_path, listen=listen, insecure=bool(flag))
    with pytest.raises(InvalidParameter, match="go together"):
        DaemonConfig.resolve(tmp_path, listen="tcp://0.0.0.0:1", tls_cert=cert)
    with pytest.raises(InvalidParameter, match="no such file"):
        DaemonConfig.resolve(
            tmp_path, listen="tcp://0.0.0.0:1", tls_cert=cert, tls_key=tmp_path / "k"
        )
    ok = DaemonConfig.resolve(tmp_path, listen="tcp://[::1]:1", insecure=True)
    assert ok.listen.loopback
    tls = DaemonConfig.resolve(
        tmp_path, listen="tcp://0.0.0.0:1", tls_cert=cert, tls_key=cert, tls_client_ca=cert
    )
    assert tls.tls_key == cert


def test_the_docker_socket_follows_the_listen_rules(tmp_path: Path) -> None:
    config = DaemonConfig.resolve(tmp_path)
    assert str(config.docker_socket) == f"unix://{tmp_path / 'docker.sock'}"
    assert DaemonConfig.resolve(tmp_path, docker_socket="none").docker_socket is None
    on_tcp = DaemonConfig.resolve(tmp_path, docker_socket="tcp://127.0.0.1:2375", insecure=True)
    assert (on_tcp.listen.scheme, str(on_tcp.docker_socket)) == ("unix", "tcp://127.0.0.1:2375")
    for options, why in (
        ({"docker_socket": "tcp://127.0.0.1:2375"}, "needs --tls-cert and --tls-key"),
        ({"docker_socket": "tcp://0.0.0.0:2375", "insecure": True}, "loopback only"),
        ({"insecure": True}, "apply to tcp:// addresses only"),
        ({"docker_socket": "http://x"}, "invalid address"),
        ({"docker_socket": str(tmp_path / "chartd.sock")}, "are both"),
    ):
        with pytest.raises(InvalidParameter, match=why):
            DaemonConfig.resolve(tmp_path, **options)  # type: ignore[arg-type]
