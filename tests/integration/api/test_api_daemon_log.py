"""What a daemon writes to its log on a first start: its own lines, not its libraries'."""

from __future__ import annotations

from pathlib import Path

from api_daemon import Daemon


def test_a_first_start_logs_no_migration_chatter(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path / "state")
    daemon.start()
    assert daemon.stop() == 0, daemon.logs()
    lines = daemon.logs().splitlines()
    assert any("chartd.daemon: serving the API" in line for line in lines), lines
    assert not [line for line in lines if " INFO alembic" in line]
    # --log-level debug still shows them, for whoever looks into a migration.
    daemon.start("--log-level", "debug")
    assert daemon.stop() == 0, daemon.logs()
    assert " INFO alembic.runtime.migration: Context impl" in daemon.logs()
