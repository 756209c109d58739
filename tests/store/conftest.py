"""Store fixtures: an opened store on each backend.

The databases themselves (``store_url``, ``shared_store_url``, ``pg_url``,
``pg_server``) come from ``tests/conftest.py`` so that other test rooms can
use them too.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from engine.store import SqlStore, open_store


@pytest.fixture
def store(store_url: str) -> Iterator[SqlStore]:
    """A migrated, empty store on each backend."""
    opened = open_store(store_url)
    yield opened
    opened.close()
