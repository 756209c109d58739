"""``chartd serve --metrics-addr``: which addresses are taken, and with which TLS."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.daemon import DaemonConfig
from engine.errors import InvalidParameter


def test_loopback_addresses_serve_plain_http(tmp_path: Path) -> None:
    loopback = (
        ("127.0.0.1:9464", "127.0.0.1"),
        ("[::1]:9464", "::1"),
        ("localhost:1", "localhost"),
    )
    for given, host in loopback:
        config = DaemonConfig.resolve(tmp_path, metrics_addr=given)
        assert config.metrics_addr is not None
        assert (config.metrics_addr.host, config.metrics_addr.loopback) == (host, True)
        assert config.metrics_tls is None
    assert DaemonConfig.resolve(tmp_path).metrics_addr is None


def test_beyond_loopback_the_daemons_mutual_tls_is_required_and_reused(tmp_path: Path) -> None:
    cert, key, ca = (tmp_path / n for n in ("cert.pem", "key.pem", "ca.pem"))
    for path in (cert, key, ca):
        path.write_text("-")
    tls = {"listen": "tcp://127.0.0.1:7443", "tls_cert": cert, "tls_key": key}
    with pytest.raises(
        InvalidParameter, match=r"^--metrics-addr 0\.0\.0\.0:9464 is not a loopback"
    ):
        DaemonConfig.resolve(tmp_path, metrics_addr="0.0.0.0:9464", **tls)  # type: ignore[arg-type]
    mutual = DaemonConfig.resolve(
        tmp_path,
        metrics_addr="0.0.0.0:9464",
        tls_client_ca=ca,
        **tls,  # type: ignore[arg-type]
    )
    assert mutual.metrics_tls is not None
    assert (mutual.metrics_tls.cert, mutual.metrics_tls.key, mutual.metrics_tls.client_ca) == (
        cert,
        key,
        ca,
    )
    # On loopback the scrape stays plain HTTP, mutual TLS or not.
    local = DaemonConfig.resolve(
        tmp_path,
        metrics_addr="127.0.0.1:9464",
        tls_client_ca=ca,
        **tls,  # type: ignore[arg-type]
    )
    assert local.metrics_tls is None


@pytest.mark.parametrize(
    "given", ["", "9464", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "host:port", "unix:///x"]
)
def test_what_is_not_host_and_port_is_refused(tmp_path: Path, given: str) -> None:
    with pytest.raises(InvalidParameter) as refused:
        DaemonConfig.resolve(tmp_path, metrics_addr=given)
    assert refused.value.message == (
        f"invalid --metrics-addr {given!r}: use HOST:PORT, e.g. 127.0.0.1:9464"
    )
