"""Fixtures of the inspector's tests: an engine with the order chart, its inspector, served."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from shop import WAIT, open_shop
from starlette.testclient import TestClient

import engine
from engine.api.address import Address
from engine.web import Inspector, Source
from engine.web.serve import Served, serve_inspector


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """A fresh SQLite file's URL."""
    return f"sqlite:///{tmp_path / 'chartd.db'}"


@pytest.fixture
def shop(db_url: str, graphviz: str) -> Iterator[engine.Engine]:
    """An engine on a SQLite file with the order chart registered."""
    eng = open_shop(db_url)
    yield eng
    eng.close()


@pytest.fixture
def inspector(shop: engine.Engine) -> Iterator[Inspector]:
    """An inspector of ``shop`` whose pages may fire, its feed started."""
    found = Inspector(Source.of_engine(shop, fire=True), hosts=["testserver"])
    found.start()
    yield found
    found.close()


@pytest.fixture
def client(inspector: Inspector) -> Iterator[TestClient]:
    """Starlette's test client of ``inspector``."""
    with TestClient(inspector.app) as found:
        yield found


@pytest.fixture
def served(shop: engine.Engine) -> Iterator[Served]:
    """The inspector of ``shop`` on uvicorn, on a loopback port of the system's choice."""
    found = serve_inspector(Source.of_engine(shop, fire=True), Address("tcp", host="127.0.0.1"))
    yield found
    found.close()


@pytest.fixture(scope="session")
def browser(prerequisites: Any) -> Iterator[Browser]:
    """Headless Chromium: Debian's binary, never one Playwright downloads."""
    chromium = prerequisites.command("chromium", "chromium")
    with sync_playwright() as p:
        found = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"], headless=True)
        yield found
        found.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page; any alert(), confirm() or prompt() it opens is recorded in page.dialogs."""
    found = browser.new_page(viewport={"width": 1400, "height": 1000})
    dialogs: list[str] = []
    found.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    found.dialogs = dialogs  # type: ignore[attr-defined]
    found.set_default_timeout(WAIT * 1000)
    yield found
    found.close()
