"""Bringing a database to the current schema with Alembic."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

__all__ = ["HEAD", "alembic_config", "current", "upgrade"]

_SCRIPTS = Path(__file__).resolve().with_name("migrations")


def alembic_config() -> Config:
    """An Alembic config whose scripts are chartd's migrations (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    return config


HEAD: str = ScriptDirectory.from_config(alembic_config()).get_current_head() or ""
"""The newest migration: the schema this version of chartd writes."""


def current(engine: sa.Engine) -> str | None:
    """The revision the database is at (None for an empty database)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


# Held by the migrating transaction on PostgreSQL (pg_advisory_xact_lock's key):
# processes opening one database at once migrate it one after the other.
_MIGRATION_LOCK = 0x63686172_74640001


def upgrade(engine: sa.Engine) -> None:
    """Migrate the database to :data:`HEAD`; cheap when it is there already.

    Several processes may open a new database at once (replicas started
    together): on PostgreSQL each takes a lock for the migration's
    transaction, and the ones that waited find it migrated. (On SQLite the
    first write of the migration holds the file's one write lock.)
    """
    if current(engine) == HEAD:
        return
    config = alembic_config()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            if MigrationContext.configure(conn).get_current_revision() == HEAD:
                return
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
