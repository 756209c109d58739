"""The state directory and what it holds are the daemon's user's alone.

The database and every container's ``config.json`` hold the containers'
environments (secrets among them): a state directory that exists with
loose permissions is narrowed to 0700, one of another user is refused,
and those files are never readable by others, wherever ``--db`` puts the
database.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from api_daemon import Daemon

from engine.api.chartd.v1 import containers_pb2 as c


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_loose_state_directory_is_narrowed_and_its_files_are_private(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    os.chmod(state, 0o755)
    loose_db = state / "chartd.db"
    loose_db.touch(mode=0o644)
    os.chmod(loose_db, 0o644)
    daemon = Daemon(state)
    daemon.start()
    try:
        assert _mode(state) == 0o700
        with daemon.client() as client:
            created = client.containers.Create(
                c.CreateContainerRequest(cmd=["sleep", "60"], env={"TOKEN": "secret"})
            )
            client.containers.Start(c.StartContainerRequest(container=created.id))
            spec = state / "run" / created.id / "config.json"
            assert "secret" in spec.read_text()
            assert _mode(spec) & 0o077 == 0
            for path in state.glob("chartd.db*"):
                assert _mode(path) & 0o077 == 0, path
            client.containers.Remove(c.RemoveContainerRequest(container=created.id, force=True))
    finally:
        assert daemon.stop() == 0, daemon.logs()
    assert f"the state directory {state} was mode 0755: now 0700" in daemon.logs()


def test_a_database_elsewhere_is_private_too(tmp_path: Path) -> None:
    elsewhere = tmp_path / "db"
    elsewhere.mkdir(mode=0o755)
    database = elsewhere / "chartd.db"
    daemon = Daemon(tmp_path / "state")
    daemon.start("--db", f"sqlite:///{database}")
    try:
        with daemon.client() as client:
            client.containers.Create(c.CreateContainerRequest(cmd=["true"]))
        files = list(elsewhere.iterdir())
        assert database in files
        for path in files:
            assert _mode(path) & 0o077 == 0, path
    finally:
        assert daemon.stop() == 0, daemon.logs()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory away needs root")
def test_a_state_directory_of_another_user_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    os.chown(state, 65534, 65534)
    daemon = Daemon(state)
    refused = daemon.cli("serve", "--state-dir", str(state))
    assert refused.returncode == 1
    assert f"the state directory {state} belongs to uid 65534, not to uid 0" in refused.stderr
    assert list(state.iterdir()) == []
