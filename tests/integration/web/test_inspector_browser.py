"""The inspector in a real browser: headless Chromium (Debian's) driven by Playwright.

Each test opens a page of an inspector served by uvicorn on loopback, acts
on the engine through its API, and waits (without reloading) for the page
to show it. Screenshots go to tests/artifacts/inspector/ (git-ignored;
docs/inspector.md shows two of them).
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page
from shop import ARTIFACTS, HOSTILE

import engine
from engine.errors import System
from engine.web.serve import Served


def _shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")


def _live(page: Page) -> None:
    """Wait until the page's event stream is open."""
    page.wait_for_selector("body[data-live=yes]", state="attached")


def test_an_entity_page_follows_a_fire_without_reloading(
    shop: engine.Engine, served: Served, page: Page
) -> None:
    e = shop.create("order", "o-1001", {"items": 3})
    page.goto(f"{served.url}entities/{e.id}")
    _live(page)
    new = page.locator('svg.diagram [data-state="new"]')
    assert "active" in (new.get_attribute("class") or "")
    _shot(page, "entity-before")
    page.evaluate("window.__same_document = true")
    shop.fire(e, "pay", idempotency_key="checkout-7")
    page.wait_for_selector('svg.diagram [data-state="paid"].active')
    assert "active" not in (new.get_attribute("class") or "")
    page.wait_for_selector("#timeline li.transition .event:text-is('pay')")
    assert page.text_content("#entity-state") == "paid"
    assert page.text_content("#timeline dd.idempotency-key") == "checkout-7"
    shop.fire(e, "touch", {"note": 1})
    shop.fire(e, "touch", {"note": 2})
    page.wait_for_selector(
        "#timeline li.transition:nth-child(3) dd.params:text-is('{\"note\": 2}')"
    )
    events = page.locator("#timeline li.transition .event").all_text_contents()
    assert events == ["pay", "touch", "touch"]  # each once, oldest first
    assert page.evaluate("window.__same_document") is True  # no reload happened
    _shot(page, "entity-after")


def test_a_failed_saga_shows_its_compensations_in_order(
    shop: engine.Engine, served: Served, page: Page
) -> None:
    e = shop.create("order", "o-1002", {"fail": True})
    shop.fire(e, "pay")
    page.goto(f"{served.url}entities/{e.id}")
    _live(page)
    with pytest.raises(System):
        shop.fire(e, "ship")
    page.wait_for_selector("#timeline ol.compensations")
    names = page.locator("#timeline ol.compensations .name").all_text_contents()
    assert names == ["pack", "reserve"]
    steps = page.locator("#timeline li.transition:last-child ol.steps .name").all_text_contents()
    assert steps == ["reserve", "pack", "label"]
    assert "the printer says <img src=x onerror=alert(1)>" in page.text_content("#timeline .error")
    _shot(page, "entity-failed-saga")


def test_the_chart_page_counts_follow_fires(
    shop: engine.Engine, served: Served, page: Page
) -> None:
    orders = [shop.create("order", f"o-{i}") for i in range(5)]
    page.goto(f"{served.url}charts/order")
    _live(page)
    assert page.get_attribute('svg.diagram [data-state="new"]', "data-count") == "5"
    for e in orders[:3]:
        shop.fire(e, "pay")
    shop.fire(orders[3], "cancel")
    page.wait_for_selector('svg.diagram [data-state="paid"][data-count="3"]')
    page.wait_for_selector('svg.diagram [data-state="new"][data-count="1"]')
    assert page.text_content('[data-count-state="paid"]') == "3"
    state = page.locator(f'tr[data-entity="{orders[0].id}"] .state')
    assert state.text_content() == "paid"
    _shot(page, "chart-counts")


def test_hostile_names_data_and_labels_show_as_text(
    shop: engine.Engine, served: Served, page: Page
) -> None:
    from engine.ports import EntityRow, EventRow, Write  # noqa: PLC0415

    # A name the engine refuses, put in the database behind its back.
    row = EntityRow("evil-1", "order", HOSTILE, ("new",), {"note": HOSTILE}, {}, 0, 0.0, 0.0)
    event = EventRow("evil-1", HOSTILE, "order", "create", {}, None, 0.0)
    assert shop.store.apply([Write(entity=row, events=[event])]) == [None]
    e = shop.create("order", "x-1", {"note": HOSTILE, "fail": True})
    shop.fire(e, "pay")
    with pytest.raises(System):
        shop.fire(e, "ship")
    for path in ("", "charts/order", "entities/evil-1", f"entities/{e.id}"):
        page.goto(f"{served.url}{path}")
        _live(page)
        assert page.locator("img").count() == 0
    page.goto(f"{served.url}entities/evil-1")
    assert page.text_content("h1") is not None and HOSTILE in page.text_content("h1")  # type: ignore[operator]
    assert HOSTILE in (page.text_content("#entity-data") or "")
    page.goto(f"{served.url}charts/order")
    assert HOSTILE in (page.text_content(".description") or "")
    assert page.dialogs == []  # type: ignore[attr-defined]


def test_the_page_fires_an_event_with_its_token(
    shop: engine.Engine, served: Served, page: Page
) -> None:
    e = shop.create("order", "o-2001")
    page.goto(f"{served.url}entities/{e.id}")
    _live(page)
    page.select_option("#fire select[name=event]", "pay")
    page.click("#fire button")
    page.wait_for_selector('svg.diagram [data-state="paid"].active')
    assert page.text_content("#fire-result") == "fired: paid"
    assert shop.get(e.id).state == "paid"
