"""Opening a database: the URL checks and what SQLite and PostgreSQL each need.

SQLite is opened in WAL mode with ``synchronous=FULL`` by default, so that a
commit survives a power loss, not only a process crash; a URL query
``?synchronous=normal`` trades that for speed. Transactions on SQLite are begun
by chartd, not by the driver: writes with ``BEGIN IMMEDIATE`` so that two
processes never deadlock upgrading a read lock, and wait up to ``busy_timeout``
for each other. PostgreSQL is reached through psycopg 3; a pooled connection the server
has dropped is replaced on checkout (see :mod:`engine.store.postgres`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.pool import StaticPool

from engine.errors import InvalidParameter
from engine.store.postgres import refuse_dropped

__all__ = ["open_engine", "parse_url"]

_SYNC_MODES = {"off", "normal", "full", "extra"}


def parse_url(url: str) -> sa.URL:
    """``url`` parsed; InvalidParameter if it is not a database URL."""
    try:
        return sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise InvalidParameter(f"invalid database URL {url!r}: {exc}") from None


def open_engine(url: sa.URL, busy_timeout_ms: int) -> tuple[sa.Engine, bool]:
    """An engine on ``url`` set up for chartd, and whether its one connection is shared.

    Only an in-memory SQLite database has one connection, which every thread
    uses; the caller serialises them.
    """
    dialect = url.get_backend_name()
    if dialect == "sqlite":
        return _sqlite_engine(url, busy_timeout_ms)
    if dialect == "postgresql":
        if url.drivername == "postgresql":
            # psycopg 3 is the driver chartd ships with; SQLAlchemy 2.0 would pick psycopg2.
            url = url.set(drivername="postgresql+psycopg")
        engine = _create_engine(url)
        sa.event.listen(engine, "checkout", refuse_dropped)
        return engine, False
    raise InvalidParameter(
        f"unsupported database {dialect!r}: use sqlite:/// or postgresql+psycopg://"
    )


def _create_engine(url: sa.URL, **kwargs: Any) -> sa.Engine:
    try:
        return sa.create_engine(url, **kwargs)
    except (ImportError, sa.exc.NoSuchModuleError) as exc:
        raise InvalidParameter(
            f"cannot use the database driver {url.drivername!r} ({exc}): "
            "use sqlite:/// or postgresql+psycopg://"
        ) from None


# -- SQLite ----------------------------------------------------------------------------------


def _sqlite_engine(url: sa.URL, busy_timeout_ms: int) -> tuple[sa.Engine, bool]:
    sync = str(url.query.get("synchronous", "full")).lower()
    if sync not in _SYNC_MODES:
        raise InvalidParameter(
            f"invalid synchronous={sync!r} in the database URL: use one of "
            f"{', '.join(sorted(_SYNC_MODES))}"
        )
    url = url.difference_update_query(["synchronous"])
    memory = url.database in (None, "", ":memory:")
    if not memory and not url.query.get("uri"):
        folder = Path(url.database or "").absolute().parent
        if not folder.is_dir():
            raise InvalidParameter(
                f"cannot open the database {url.database}: directory {folder} does not exist"
            )
    kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False}}
    if memory:
        kwargs["poolclass"] = StaticPool
    engine = _create_engine(url, **kwargs)
    sa.event.listen(engine, "connect", _sqlite_connect(sync, memory, busy_timeout_ms))
    sa.event.listen(engine, "begin", _sqlite_begin)
    return engine, memory


def _sqlite_connect(sync: str, memory: bool, busy_timeout_ms: int) -> Any:
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Transactions are begun explicitly (see _sqlite_begin), not by the driver.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={sync.upper()}")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.close()

    return on_connect


def _sqlite_begin(conn: sa.Connection) -> None:
    mode = "IMMEDIATE" if conn.get_execution_options().get("chartd_write") else "DEFERRED"
    conn.exec_driver_sql(f"BEGIN {mode}")
