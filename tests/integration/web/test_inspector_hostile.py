"""Hostile requests to the inspector, on SQLite and on PostgreSQL.

Query parameters and path segments with NUL, huge numbers and huge text,
fire bodies nested too deep or too large, forged tokens and origins: each
is refused with a 4xx that says what was wrong, never a 500, and nothing
is fired. PostgreSQL matters here: it refuses to compare a NUL at all, so
what SQLite answers "not found" to, PostgreSQL failed on.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shop import open_shop
from starlette.testclient import TestClient

import engine
from engine.web import Inspector, Source


@pytest.fixture(params=["sqlite-file", "postgresql"])
def hostile(
    request: pytest.FixtureRequest, tmp_path: Path, graphviz: str
) -> Iterator[tuple[engine.Engine, Inspector, TestClient]]:
    """An order shop on each backend, its inspector that may fire, and a client of it."""
    if request.param == "postgresql":
        url: str = request.getfixturevalue("pg_url")
    else:
        url = f"sqlite:///{tmp_path / 'chartd.db'}"
    shop = open_shop(url)
    inspector = Inspector(Source.of_engine(shop, fire=True), hosts=["testserver"])
    inspector.start()
    try:
        with TestClient(inspector.app, raise_server_exceptions=False) as client:
            yield shop, inspector, client
    finally:
        inspector.close()
        shop.close()


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/charts/order?after=" + "9" * 30, 400, "invalid after '999"),
        ("/charts/order?after=" + "9" * 5000, 400, "a sequence number >= 0"),
        ("/charts/order?after=-1", 400, "a sequence number >= 0"),
        ("/charts/order?after=%00", 400, "a sequence number >= 0"),
        ("/charts/order?state=%00", 400, "invalid state '\\x00': at most 1024 characters, no NUL"),
        ("/charts/order?name=a%00", 400, "invalid name 'a\\x00'"),
        ("/charts/order?name=" + "x" * 60_000, 400, "at most 1024 characters"),
        ("/charts/%00", 404, "no chart '\\x00'"),
        ("/entities/%00", 404, "no entity '\\x00'"),
        ("/entities/" + "e" * 3000, 404, "no entity 'eee"),
    ],
)
def test_hostile_page_queries_are_refused_clearly(
    hostile: tuple[engine.Engine, Inspector, TestClient], path: str, status: int, message: str
) -> None:
    _, _, client = hostile
    answer = client.get(path)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["message"]
    assert len(answer.json()["message"]) < 200  # what was sent is named, not echoed whole
    assert client.get("/charts/order").status_code == 200


def test_the_event_stream_of_a_hostile_entity_is_empty(
    hostile: tuple[engine.Engine, Inspector, TestClient],
) -> None:
    _, _, client = hostile
    with client.stream("GET", "/events?entity=%00") as stream:
        assert stream.status_code == 200
        assert next(stream.iter_lines()) == ": live"


def test_hostile_fires_are_refused_and_fire_nothing(
    hostile: tuple[engine.Engine, Inspector, TestClient],
) -> None:
    shop, inspector, client = hostile
    e = shop.create("order", "h1")
    url = f"/entities/{e.id}/fire"
    token = {"X-Chartd-CSRF": str(inspector.csrf)}
    for headers, body, status, message in (
        ({}, b'{"event": "pay"}', 403, "missing or wrong CSRF token"),
        ({"X-Chartd-CSRF": "forged"}, b'{"event": "pay"}', 403, "missing or wrong CSRF token"),
        ({"X-Chartd-CSRF": ""}, b'{"event": "pay"}', 403, "missing or wrong CSRF token"),
        ({**token, "Origin": "null"}, b'{"event": "pay"}', 403, "another origin (null)"),
        ({**token, "Origin": "http://testserver.evil"}, b'{"event": "pay"}', 403, "origin"),
        (token, b"[" * 100_000 + b"]" * 100_000, 400, "invalid JSON: nested too deeply"),
        (token, b'{"a": ' * 100_000 + b"1" + b"}" * 100_000, 400, "nested too deeply"),
        (token, b" " * (1024 * 1024 + 1), 400, "the body is too large"),
        (token, b"\xff", 400, "can't decode"),
    ):
        answer = client.post(url, content=body, headers=headers)
        assert answer.status_code == status, (headers, body[:20], answer.text)
        assert message in answer.json()["message"]
    gone = client.post("/entities/%00/fire", json={"event": "pay"}, headers=token)
    assert (gone.status_code, gone.json()["message"]) == (404, "no entity '\\x00'")
    assert shop.get(e.id).state == "new"  # none of them fired


def test_hostile_host_names_get_nothing(
    hostile: tuple[engine.Engine, Inspector, TestClient],
) -> None:
    _, _, client = hostile
    for host in (
        "evil.example",
        "[::1",
        "testserver.evil",
        "testserver@evil",
        "\u202etestserver".encode(),
    ):
        answer = client.get("/", headers={"Host": host})
        assert (answer.status_code, answer.text) == (400, "Invalid host header"), host


@settings(
    max_examples=max(10, settings.default.max_examples // 6),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    state=st.text(max_size=20),
    name=st.text(max_size=20),
    after=st.one_of(st.text(max_size=10), st.integers(-(2**70), 2**70).map(str)),
)
def test_drawn_chart_queries_never_fail(
    hostile: tuple[engine.Engine, Inspector, TestClient], state: str, name: str, after: str
) -> None:
    _, _, client = hostile
    answer = client.get("/charts/order", params={"state": state, "name": name, "after": after})
    assert answer.status_code in (200, 400), answer.text


def test_a_lone_surrogate_in_a_fire_spoils_no_page(
    hostile: tuple[engine.Engine, Inspector, TestClient],
) -> None:
    """Decoded as Go decodes it (U+FFFD): kept, the refusal naming it, and every page
    showing the fire's params, could not be encoded."""
    shop, inspector, client = hostile
    e = shop.create("order", "h2")
    token = {"X-Chartd-CSRF": str(inspector.csrf), "Content-Type": "application/json"}
    url = f"/entities/{e.id}/fire"
    unknown = client.post(url, content=b'{"event": "\\ud800"}', headers=token)
    assert unknown.status_code == 400 and "unknown event '\ufffd'" in unknown.json()["message"]
    touched = client.post(
        url, content=b'{"event": "touch", "params": {"n": 1, "s": "\\udc00"}}', headers=token
    )
    assert touched.status_code == 200, touched.text
    page = client.get(f"/entities/{e.id}")
    assert page.status_code == 200, page.text
