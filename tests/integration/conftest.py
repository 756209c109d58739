"""Fixtures of the engine's integration tests: engines opened for a test, closed after it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

import engine
from engine.runtime import Engine as PortEngine


@pytest.fixture
def open_engine() -> Iterator[Callable[..., engine.Engine]]:
    """Open engines; every one still open is closed at the end of the test."""
    opened: list[engine.Engine] = []

    def _open(url: str | Any, **kwargs: Any) -> engine.Engine:
        """``engine.Engine.open(url)``; given a Store instead, ``engine.runtime.Engine(store)``."""
        eng = (
            engine.Engine.open(url, **kwargs) if isinstance(url, str) else PortEngine(url, **kwargs)
        )
        opened.append(eng)
        return eng

    yield _open
    for eng in opened:
        eng.close()
