"""Store fixtures: an opened store on each backend.

The databases themselves (``store_url``, ``shared_store_url``, ``pg_url``,
``pg_server``) come from ``tests/conftest.py`` so that other test rooms can
use them too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from engine.store import SqlStore, open_store


@pytest.fixture
def store(store_url: str) -> Iterator[SqlStore]:
    """A migrated, empty store on each backend."""
    opened = open_store(store_url)
    yield opened
    opened.close()


@pytest.fixture
def lock_waiter(pg_server: Any) -> Callable[..., int]:
    """Waits for a backend of the test database to wait for a lock; returns its pid."""

    def waiting(other_than: int | None = None) -> int:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            row = pg_server.admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s"
                " AND wait_event_type = 'Lock' AND pid IS DISTINCT FROM %s",
                (pg_server.database, other_than),
            ).fetchone()
            if row:
                return int(row[0])
            time.sleep(0.01)
        raise AssertionError("nothing waited for the lock")

    return waiting
