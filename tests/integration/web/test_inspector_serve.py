"""The inspector on a real HTTP server: the event stream, chartd ui, the listen rules.

uvicorn serves on a loopback port; httpx is the client. ``chartd ui`` runs
as a subprocess over a SQLite file another engine (this test's) writes.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from shop import CHART_FILE, WAIT, eventually, open_shop

import engine
from engine.api.address import Address
from engine.daemon import DaemonConfig
from engine.errors import InvalidParameter
from engine.web.serve import Served

# The daemon's tests' real daemon, CA and certificates (made by openssl).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))
from api_daemon import Daemon
from test_api_mtls import Certificates, certs  # noqa: F401 - a fixture

CHARTD = [
    sys.executable,
    "-c",
    "import sys; sys.argv[0] = 'chartd'; from engine.cli import main; main()",
]


def _messages(response: httpx.Response) -> Iterator[dict[str, Any]]:
    for line in response.iter_lines():
        if line.startswith("data: "):
            yield json.loads(line[len("data: ") :])


def test_an_entity_stream_sends_the_view_then_each_change(
    shop: engine.Engine, served: Served
) -> None:
    e = shop.create("order", "s1")
    url = f"{served.url}events?entity={e.id}"
    with httpx.stream("GET", url, timeout=WAIT) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        messages = _messages(response)
        first = next(messages)
        assert first["type"] == "entity" and first["configuration"] == ["new"]
        shop.fire(e, "pay")
        second = next(messages)
        assert second["configuration"] == ["paid"] and second["version"] == 1
        assert ">pay<" in second["transitions"] and not second["gap"]
        shop.fire(e, "touch")
        third = next(messages)  # only what is new since the last change
        assert ">touch<" in third["transitions"] and ">pay<" not in third["transitions"]


def test_every_page_is_fed_by_one_reader_of_the_outbox(shop: engine.Engine, served: Served) -> None:
    e = shop.create("order", "s2")
    seen: list[list[str]] = []
    ready = threading.Barrier(21)

    def follow() -> None:
        with httpx.stream("GET", f"{served.url}events?entity={e.id}", timeout=WAIT) as r:
            messages = _messages(r)
            next(messages)  # the view as it is
            ready.wait(WAIT)
            seen.append(next(messages)["configuration"])

    threads = [threading.Thread(target=follow) for _ in range(20)]
    for t in threads:
        t.start()
    ready.wait(WAIT)
    assert served.inspector.feed.clients() == 20
    feeds = [t for t in threading.enumerate() if t.name == "chartd-inspector-feed"]
    assert len(feeds) == 1
    shop.fire(e, "pay")
    for t in threads:
        t.join(WAIT)
    assert seen == [["paid"]] * 20
    eventually(lambda: served.inspector.feed.clients() == 0, "the pages' streams to be let go")


def test_a_chart_stream_sends_its_counts(shop: engine.Engine, served: Served) -> None:
    e = shop.create("order", "s3")
    with httpx.stream("GET", f"{served.url}events?chart=order", timeout=WAIT) as response:
        messages = _messages(response)
        assert next(messages) == {"type": "counts", "chart": "order", "counts": {"new": 1}}
        shop.fire(e, "pay")
        found = [next(messages), next(messages)]
        assert {"type": "row", "id": e.id, "state": "paid"} in found
        assert {"type": "counts", "chart": "order", "counts": {"paid": 1}} in found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def ui(db_url: str, graphviz: str) -> Iterator[tuple[subprocess.Popen[str], str, engine.Engine]]:
    """``chartd ui`` on a SQLite file, and the engine that writes it."""
    eng = open_shop(db_url)
    eng.create("order", "u1")
    port = _free_port()
    proc = subprocess.Popen(
        [
            *CHARTD,
            "ui",
            "--db",
            db_url,
            "--listen",
            f"127.0.0.1:{port}",
            "--chart",
            str(CHART_FILE),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("chartd inspector (read-only) on "), (line, proc.stderr.read())  # type: ignore[union-attr]
        yield proc, line.split(" on ")[1].strip(), eng
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(WAIT)
        eng.close()


def test_chartd_ui_serves_an_embedded_engines_database_read_only(
    ui: tuple[subprocess.Popen[str], str, engine.Engine],
) -> None:
    proc, url, eng = ui
    assert "<td>u1</td>" not in httpx.get(url).text  # the charts page, not entities
    assert '<tr data-chart="order">' in httpx.get(url).text
    assert ">u1</a>" in httpx.get(f"{url}charts/order").text
    with httpx.stream("GET", f"{url}events?chart=order", timeout=WAIT) as response:
        messages = _messages(response)
        assert next(messages)["counts"] == {"new": 1}
        eng.fire("u1", "pay")  # another process's commit, seen by reading the outbox
        while (m := next(messages))["type"] != "counts":
            pass
        assert m["counts"] == {"paid": 1}
    refused = httpx.post(f"{url}entities/u1/fire", json={"event": "cancel"})
    assert refused.status_code == 403
    assert eng.get("u1").state == "paid"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(WAIT) == 0


def _ui_error(*args: str) -> tuple[int, str]:
    done = subprocess.run(
        [*CHARTD, "ui", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=WAIT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert done.stdout == ""
    return done.returncode, done.stderr


def test_chartd_ui_refuses_what_it_cannot_serve_safely(tmp_path: Path, db_url: str) -> None:
    open_shop(db_url).close()
    code, err = _ui_error("--db", db_url, "--listen", "0.0.0.0:7481")
    assert code == 1
    assert "Error: --listen 0.0.0.0:7481 is not a loopback address" in err
    assert "--tls-client-ca" in err
    code, err = _ui_error("--db", f"sqlite:///{tmp_path / 'none.db'}")
    assert (code, err) == (
        1,
        f"Error: no engine database at sqlite:///{tmp_path / 'none.db'}: no such file\n",
    )
    assert not (tmp_path / "none.db").exists()
    (tmp_path / "empty.db").touch()
    code, err = _ui_error("--db", f"sqlite:///{tmp_path / 'empty.db'}")
    assert code == 1 and "has no chartd schema" in err
    code, err = _ui_error("--db", db_url, "--listen", "nowhere")
    assert code == 1 and "invalid --listen 'nowhere': use HOST:PORT" in err
    code, err = _ui_error("--db", db_url, "--tls-cert", str(tmp_path / "c.pem"))
    assert (code, err) == (1, "Error: --tls-cert and --tls-key go together\n")


def test_serve_http_follows_the_listen_rules_of_the_grpc_api(tmp_path: Path) -> None:
    config = DaemonConfig.resolve(tmp_path, http="127.0.0.1:7482", http_allow_fire=True)
    assert config.http is not None and config.http.target == "127.0.0.1:7482"
    assert config.http_allow_fire and config.http_tls is None
    with pytest.raises(InvalidParameter, match="not a loopback address"):
        DaemonConfig.resolve(tmp_path, http="0.0.0.0:7482")
    with pytest.raises(InvalidParameter, match="--http-allow-fire needs --http"):
        DaemonConfig.resolve(tmp_path, http_allow_fire=True)
    with pytest.raises(InvalidParameter, match="invalid --http"):
        DaemonConfig.resolve(tmp_path, http="127.0.0.1")


def test_beyond_loopback_the_inspector_serves_mutual_tls_clients_only(
    shop: engine.Engine,
    certs: Certificates,  # noqa: F811 - the fixture imported above
) -> None:
    from engine.web import Source  # noqa: PLC0415
    from engine.web.serve import HttpTLS, serve_inspector  # noqa: PLC0415

    shop.create("order", "t1")
    with pytest.raises(InvalidParameter, match="not a loopback address"):
        serve_inspector(
            Source.of_engine(shop),
            Address("tcp", host="0.0.0.0"),
            HttpTLS(certs.server.cert, certs.server.key),
        )
    tls = HttpTLS(certs.server.cert, certs.server.key, certs.ca.cert)
    served = serve_inspector(Source.of_engine(shop), Address("tcp", host="0.0.0.0"), tls)
    try:
        url = f"https://127.0.0.1:{served.server.port}/charts/order"

        def trusting(client: Any = None) -> ssl.SSLContext:
            context = ssl.create_default_context(cafile=str(certs.ca.cert))
            if client is not None:
                context.load_cert_chain(str(client.cert), str(client.key))
            return context

        page = httpx.get(url, verify=trusting(certs.client), timeout=WAIT)
        assert page.status_code == 200 and ">t1</a>" in page.text
        for refused in (trusting(), trusting(certs.stranger)):
            with pytest.raises(httpx.HTTPError):
                httpx.get(url, verify=refused, timeout=WAIT)
    finally:
        served.close()


def test_chartd_serve_http_serves_the_inspector_beside_the_api(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path / "state")
    port = _free_port()
    daemon.start("--http", f"127.0.0.1:{port}")
    try:
        created = daemon.cli("create", "--name", "web", "sleep", "60")
        assert created.returncode == 0, created.stderr
        base = f"http://127.0.0.1:{port}"
        assert '<tr data-chart="container">' in httpx.get(f"{base}/", timeout=WAIT).text
        page = httpx.get(f"{base}/charts/container", timeout=WAIT).text
        assert ">web</a>" in page and 'data-state="created"' in page
        entity = re.search(r'<a href="(/entities/[^"]+)">web</a>', page)
        assert entity is not None
        assert httpx.get(base + entity.group(1), timeout=WAIT).status_code == 200
        assert httpx.post(base + entity.group(1) + "/fire", json={}).status_code == 403
        assert "serving the inspector on http://127.0.0.1:" in daemon.logs()
        assert "lets every local user read every entity's data" in daemon.logs()
    finally:
        assert daemon.stop() == 0
