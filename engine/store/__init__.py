"""Storage: the Store port on SQLAlchemy Core (SQLite, PostgreSQL), with Alembic migrations."""

from __future__ import annotations

import sqlalchemy as sa

from engine.errors import Unavailable
from engine.store.migrate import upgrade
from engine.store.sql import SqlStore

__all__ = ["SqlStore", "open_store"]


def open_store(url: str) -> SqlStore:
    """A store on ``url``, migrated to the current schema."""
    store = SqlStore(url)
    try:
        upgrade(store.engine)
    except sa.exc.OperationalError as exc:
        store.close()
        where = store.url.render_as_string(hide_password=True)
        raise Unavailable(f"cannot open the database {where}: {exc.orig or exc}") from exc
    except Exception:
        store.close()
        raise
    return store
