"""Migrations build exactly the schema the store writes, both ways, on every server.

``engine.store.schema.metadata`` is what SqlStore reads and writes; the
Alembic scripts are what builds real databases. Autogenerate's comparison
between a migrated empty database and the metadata must find nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from engine.store import SqlStore
from engine.store.migrate import HEAD, alembic_config, current, upgrade
from engine.store.schema import metadata

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite-file", "postgresql"])
def db(request: pytest.FixtureRequest) -> Iterator[sa.Engine]:
    """The engine SqlStore uses, on an empty database of each server."""
    if request.param == "sqlite-file":
        tmp_path: Path = request.getfixturevalue("tmp_path")
        url = f"sqlite:///{tmp_path / 'chartd.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    store = SqlStore(url)  # SqlStore does not migrate; open_store does
    yield store.engine
    store.close()


def differences(engine: sa.Engine) -> list[object]:
    with engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), metadata))


def tables(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def downgrade(engine: sa.Engine, revision: str) -> None:
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, revision)


def test_the_migrations_are_one_line_of_history() -> None:
    scripts = ScriptDirectory.from_config(alembic_config())
    assert scripts.get_heads() == [HEAD]
    assert HEAD
    revisions = list(scripts.walk_revisions())
    assert revisions[-1].down_revision is None


def test_upgrading_an_empty_database_builds_exactly_the_schema(db: sa.Engine) -> None:
    assert tables(db) == set()
    assert current(db) is None
    upgrade(db)
    assert current(db) == HEAD
    assert tables(db) == set(metadata.tables) | {"alembic_version"}
    assert differences(db) == []


def test_the_comparison_sees_a_drift(db: sa.Engine) -> None:
    upgrade(db)
    with db.begin() as conn:
        conn.execute(sa.text("DROP INDEX ix_timers_status_due_at"))
    assert differences(db) != []


def test_a_second_upgrade_changes_nothing(db: sa.Engine) -> None:
    upgrade(db)
    with db.begin() as conn:
        conn.execute(sa.text("INSERT INTO owners VALUES ('engine-a', 1, 'h', 1.0)"))
    upgrade(db)
    assert current(db) == HEAD
    assert differences(db) == []
    with db.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar() == 1
        assert conn.execute(sa.text("SELECT owner FROM owners")).scalars().all() == ["engine-a"]


def test_downgrading_to_base_and_upgrading_again(db: sa.Engine) -> None:
    upgrade(db)
    downgrade(db, "base")
    assert current(db) is None
    assert tables(db) <= {"alembic_version"}
    upgrade(db)
    assert current(db) == HEAD
    assert differences(db) == []


def test_processes_opening_a_new_postgresql_database_at_once_migrate_it_once(
    pg_url: str,
) -> None:
    # Replicas started together: every one's store migrates the new database, in turn.
    opener = "import sys; from engine.store import open_store; open_store(sys.argv[1]).close()"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *sys.path])}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", opener, pg_url], env=env, stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, errors
    store = SqlStore(pg_url)
    try:
        assert current(store.engine) == HEAD
        assert differences(store.engine) == []
    finally:
        store.close()
