"""Storage: the Store port on SQLAlchemy Core (SQLite, PostgreSQL), with Alembic migrations."""

from __future__ import annotations

from engine.store.migrate import upgrade
from engine.store.sql import SqlStore

__all__ = ["SqlStore", "open_store"]


def open_store(url: str) -> SqlStore:
    """A store on ``url``, migrated to the current schema."""
    store = SqlStore(url)
    try:
        upgrade(store.engine)
    except Exception:
        store.close()
        raise
    return store
