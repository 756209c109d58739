"""The inspector's pages and its fire endpoint, through Starlette's test client.

A real engine on a SQLite file; the assertions read the HTML the server
sends (what a browser receives before any script runs).
"""

from __future__ import annotations

import json
import re

import pytest
from shop import CHART, HOSTILE, eventually
from starlette.testclient import TestClient

import engine
from engine.errors import System
from engine.ports import EntityRow, EventRow, Write
from engine.web import Inspector


def _page_data(html: str) -> dict[str, object]:
    found = re.search(r'<script type="application/json" id="chartd-page">(.*?)</script>', html)
    assert found is not None
    return json.loads(found.group(1))  # type: ignore[no-any-return]


def test_the_charts_page_lists_each_chart_its_version_and_live_counts(
    shop: engine.Engine, inspector: Inspector, client: TestClient
) -> None:
    for name in ("a", "b", "c"):
        shop.create("order", name)
    shop.fire("a", "pay")
    # A feed that reads a create after the entity moved on counts it at the next recount.
    expected = {"new": 2, "paid": 1}
    eventually(lambda: inspector.feed.counts("order") == expected, "the feed saw the fire")
    page = client.get("/")
    assert page.status_code == 200
    row = re.search(r'<tr data-chart="order">(.*?)</tr>', page.text)
    assert row is not None
    assert "<td>3</td>" in row.group(1)  # the version
    assert '<td class="total">3</td>' in row.group(1)
    assert "new: <b>2</b>" in row.group(1) and "paid: <b>1</b>" in row.group(1)


def test_a_chart_page_draws_the_diagram_and_the_counts_of_each_state(
    shop: engine.Engine, inspector: Inspector, client: TestClient
) -> None:
    shop.create("order", "a")
    shop.fire(shop.create("order", "b"), "pay")
    eventually(lambda: inspector.feed.counts("order") == {"new": 1, "paid": 1}, "counts")
    page = client.get("/charts/order")
    assert page.status_code == 200
    for state in ("new", "paid", "shipped", "cancelled"):
        assert f'data-state="{state}"' in page.text  # the diagram's shapes are marked
    assert '<td data-count-state="paid">1</td>' in page.text
    assert _page_data(page.text)["counts"] == {"new": 1, "paid": 1}


def test_finished_entities_leave_the_counts_and_a_failed_saga_is_counted_again(
    shop: engine.Engine, inspector: Inspector
) -> None:
    shop.fire(shop.create("order", "gone"), "cancel")
    failing = shop.create("order", "f", {"fail": True})
    shop.fire(failing, "pay")
    with pytest.raises(System):
        shop.fire(failing, "ship")
    eventually(lambda: inspector.feed.counts("order") == {"paid": 1}, "counts after a failure")


def test_entities_are_filtered_by_state_and_name_and_paged_by_key(
    shop: engine.Engine, client: TestClient
) -> None:
    made = shop.create_many("order", [(f"n{i:03d}", None) for i in range(120)])
    for e in made[:7]:
        assert isinstance(e, engine.Entity)
        shop.fire(e, "pay")
    first = client.get("/charts/order")
    assert first.text.count("<tr data-entity=") == 50
    link = re.search(r'<a rel="next" href="([^"]+)">', first.text)
    assert link is not None
    second = client.get(link.group(1).replace("&amp;", "&"))
    names = re.findall(r'">(n\d{3})</a>', second.text)
    assert names == [f"n{i:03d}" for i in range(50, 100)]
    third = client.get(
        re.search(r'<a rel="next" href="([^"]+)">', second.text).group(1)  # type: ignore[union-attr]
    )
    assert re.findall(r'">(n\d{3})</a>', third.text) == [f"n{i:03d}" for i in range(100, 120)]
    assert 'rel="next"' not in third.text
    paid = client.get("/charts/order", params={"state": "paid"})
    assert re.findall(r'">(n\d{3})</a>', paid.text) == [f"n{i:03d}" for i in range(7)]
    named = client.get("/charts/order", params={"name": "n11"})
    assert re.findall(r'">(n\d{3})</a>', named.text) == [f"n11{i}" for i in range(10)]
    # LIKE's wildcards in a name filter are plain characters.
    assert "No entities here" in client.get("/charts/order", params={"name": "n_"}).text
    assert client.get("/charts/order", params={"after": "-1"}).status_code == 400
    assert client.get("/charts/order", params={"after": "x"}).status_code == 400
    assert client.get("/charts/nothing").status_code == 404


def test_an_entity_page_shows_its_state_data_and_timeline(
    shop: engine.Engine, client: TestClient
) -> None:
    e = shop.create("order", "o1", {"fail": True, "note": "hello"})
    shop.fire(e, "pay", idempotency_key="pay-once")
    with pytest.raises(System):
        shop.fire(e, "ship")
    page = client.get(f"/entities/{e.id}")
    assert page.status_code == 200
    data = _page_data(page.text)
    assert data["configuration"] == ["paid"] and data["kind"] == "entity"
    assert '<dd id="entity-state">paid</dd>' in page.text
    assert "&quot;note&quot;: &quot;hello&quot;" in page.text
    timeline = page.text[page.text.index('<div id="timeline">') :]
    assert timeline.index(">pay<") < timeline.index(">ship<")
    assert '<dd class="idempotency-key">pay-once</dd>' in timeline
    undone = re.search(r'<ol class="compensations">(.*?)</ol>', timeline)
    assert undone is not None
    assert re.findall(r'<span class="name">(\w+)</span>', undone.group(1)) == ["pack", "reserve"]
    assert '<li class="step status-failed"><span class="name">label</span>' in timeline
    # By name too; an unknown one is a 404.
    assert client.get("/entities/o1").status_code == 200
    assert client.get("/entities/nobody").status_code == 404


def test_every_value_from_the_engine_shows_as_text(shop: engine.Engine, client: TestClient) -> None:
    e = shop.create("order", "x", {"fail": True, "note": HOSTILE, HOSTILE: "</script>"})
    shop.fire(e, "pay")
    with pytest.raises(System):
        shop.fire(e, "ship")
    # A name the engine would refuse, written straight into the database: the page
    # must not trust even what its own engine wrote.
    row = EntityRow("evil", "order", HOSTILE, ("new",), {}, {}, 0, 0.0, 0.0)
    ev = EventRow("evil", HOSTILE, "order", "create", {}, None, 0.0)
    assert shop.store.apply([Write(entity=row, events=[ev])]) == [None]
    pages = [
        client.get("/").text,
        client.get("/charts/order").text,
        client.get(f"/entities/{e.id}").text,
        client.get("/entities/evil").text,
    ]
    for text in pages:
        assert "<img" not in text
        assert (
            text.count("</script>") == 2
        )  # the page's data and its script: nothing ends them early
    assert "&lt;img src=x onerror=alert(1)&gt;" in pages[1]  # the chart's description
    assert "the printer says &lt;img" in pages[2]  # the step's error
    assert _page_data(pages[3])["configuration"] == ["new"]
    assert "<title>&lt;img src=x onerror=alert(1)&gt; · chartd inspector</title>" in pages[3]


def test_the_page_fires_only_with_its_token_and_from_its_origin(
    shop: engine.Engine, inspector: Inspector, client: TestClient
) -> None:
    e = shop.create("order", "f1")
    url = f"/entities/{e.id}/fire"
    page = client.get(f"/entities/{e.id}").text
    token = re.search(r'<meta name="chartd-csrf" content="([^"]+)">', page).group(1)  # type: ignore[union-attr]
    assert token == inspector.csrf
    assert client.post(url, json={"event": "pay"}).status_code == 403
    bad = client.post(url, json={"event": "pay"}, headers={"X-Chartd-CSRF": "guess"})
    assert bad.status_code == 403
    other = client.post(
        url,
        json={"event": "pay"},
        headers={"X-Chartd-CSRF": token, "Origin": "http://evil.example"},
    )
    assert other.status_code == 403
    assert shop.get(e.id).state == "new"  # none of them fired
    ok = client.post(
        url, json={"event": "pay"}, headers={"X-Chartd-CSRF": token, "Origin": "http://testserver"}
    )
    assert ok.status_code == 200 and ok.json()["state"] == "paid"
    refused = client.post(url, json={"event": "pay"}, headers={"X-Chartd-CSRF": token})
    assert refused.status_code >= 400 and refused.json()["message"]
    for body in (b"[", b"[]", b'{"event": 3}', b'{"event": "pay", "params": []}'):
        bad_body = client.post(url, content=body, headers={"X-Chartd-CSRF": token})
        assert bad_body.status_code == 400, body


def test_a_read_only_inspector_has_no_token_and_refuses_fires(shop: engine.Engine) -> None:
    from engine.web import Source  # noqa: PLC0415

    e = shop.create("order", "r1")
    inspector = Inspector(Source.of_engine(shop), hosts=["testserver"])
    inspector.start()
    try:
        with TestClient(inspector.app) as client:
            assert "chartd-csrf" not in client.get(f"/entities/{e.id}").text
            refused = client.post(f"/entities/{e.id}/fire", json={"event": "pay"})
            assert refused.status_code == 403
            assert "read-only" in refused.json()["message"]
    finally:
        inspector.close()
    assert shop.get(e.id).state == "new"


def test_responses_forbid_framing_foreign_scripts_and_other_host_names(
    client: TestClient,
) -> None:
    page = client.get("/")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert client.get("/", headers={"Host": "evil.example"}).status_code == 400
    assert client.get("/", headers={"Host": "evil.example:80"}).status_code == 400
    assert client.get("/", headers={"Host": "[::1"}).status_code == 400
    script = client.get("/static/inspector.js")
    assert script.status_code == 200 and "EventSource" in script.text


def test_the_chart_of_the_page_is_the_chart_registered() -> None:
    assert CHART.name == "order" and CHART.version == 3


def test_an_entity_page_shows_the_newest_transitions_of_a_long_history(
    shop: engine.Engine, client: TestClient
) -> None:
    from engine.web.timeline import HISTORY  # noqa: PLC0415

    e = shop.create("order", "busy")
    for i in range(HISTORY + 5):
        shop.fire(e, "touch", {"n": i})
    page = client.get(f"/entities/{e.id}").text
    assert page.count('<li class="transition') == HISTORY
    assert f"The newest {HISTORY} transitions; older ones are not shown." in page
    assert "{&quot;n&quot;: 5}" in page and "{&quot;n&quot;: 4}" not in page


def test_the_inspector_reads_a_postgresql_database_it_does_not_own(
    pg_url: str, graphviz: str
) -> None:
    from shop import CHART, open_shop  # noqa: PLC0415

    from engine.web import Source  # noqa: PLC0415

    writer = open_shop(pg_url)
    try:
        writer.create("order", "pg1")
        inspector = Inspector(Source.open(pg_url, {"order": CHART}), hosts=["testserver"])
        inspector.start()
        try:
            with TestClient(inspector.app) as client:
                assert ">pg1</a>" in client.get("/charts/order").text
                writer.fire("pg1", "pay")  # heard through LISTEN/NOTIFY
                eventually(lambda: inspector.feed.counts("order") == {"paid": 1}, "the fire")
                assert '<dd id="entity-state">paid</dd>' in client.get("/entities/pg1").text
        finally:
            inspector.close()
    finally:
        writer.close()


def test_a_loopback_inspector_answers_to_its_names_only(shop: engine.Engine) -> None:
    from engine.web import LOOPBACK_HOSTS, Source  # noqa: PLC0415

    inspector = Inspector(Source.of_engine(shop), hosts=LOOPBACK_HOSTS)
    with TestClient(inspector.app, base_url="http://127.0.0.1:7480") as client:
        for host in ("127.0.0.1:7480", "localhost:7480", "[::1]:7480", "LOCALHOST"):
            assert client.get("/", headers={"Host": host}).status_code == 200, host
        for host in ("attacker.example:7480", "127.0.0.2", ""):
            assert client.get("/", headers={"Host": host}).status_code == 400, host


def test_an_event_the_feed_cannot_read_does_not_stop_it(
    shop: engine.Engine, inspector: Inspector
) -> None:
    e = shop.create("order", "after-the-odd-one")
    odd = EventRow(e.id, e.name, "order", "transition", {"event": "pay"}, None, 0.0)
    assert shop.store.apply([Write(events=[odd])]) == [None]
    shop.fire(e, "pay")
    eventually(lambda: inspector.feed.counts("order") == {"paid": 1}, "the feed to go on")


def test_a_chart_without_its_definition_is_listed_without_a_diagram(
    shop: engine.Engine, db_url: str
) -> None:
    from engine.web import Source  # noqa: PLC0415

    e = shop.create("order", "undrawn")
    inspector = Inspector(Source.open(db_url, {}), hosts=["testserver"])
    inspector.start()
    try:
        with TestClient(inspector.app) as client:
            charts = client.get("/").text
            assert '<tr data-chart="order">' in charts and "<td>-</td>" in charts
            page = client.get("/charts/order").text
            assert "no definition" in page and "<svg" not in page and ">undrawn</a>" in page
            entity = client.get(f"/entities/{e.id}")
            assert entity.status_code == 200 and "<svg" not in entity.text
    finally:
        inspector.close()
