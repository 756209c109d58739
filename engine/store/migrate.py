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


def upgrade(engine: sa.Engine) -> None:
    """Migrate the database to :data:`HEAD`; cheap when it is there already."""
    if current(engine) == HEAD:
        return
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
