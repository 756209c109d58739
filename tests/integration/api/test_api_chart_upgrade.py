"""A daemon restarted with a newer container chart migrates its containers at startup.

Containers are left created, running, paused and exited under the packaged
chart; the daemon is stopped and started again with the next version derived
from it (CHARTD_CONTAINER_CHART, documented for tests and operators). Every
container must come back as a restart without a new version leaves it (moby's
restore: a clean shutdown stops the running ones, ``always`` starts again),
moved once, with one ``chart.migrate`` entry in its journal.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from api_daemon import Daemon
from test_api_restart import alive

from engine.api.chartd.v1 import containers_pb2 as c
from engine.api.chartd.v1 import engine_pb2 as e
from statecharts.container import CHART_ENV, CHART_PATH

CURRENT = int(yaml.safe_load(CHART_PATH.read_text())["version"])
"""The version of the container chart this chartd ships."""
NEXT = CURRENT + 1


def next_version(path: Path) -> Path:
    """The packaged container chart, one version on, with a state more under ``running``."""
    document = yaml.safe_load(CHART_PATH.read_text())
    document["version"] = NEXT
    document["states"]["running"]["states"]["draining"] = {
        "description": "A state the next version adds: no entity of the current one is in it."
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def inspect(daemon: Daemon, name: str) -> dict[str, Any]:
    done = daemon.cli("inspect", name)
    assert done.returncode == 0, done.stderr
    found: dict[str, Any] = json.loads(done.stdout)[0]
    return found


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    """A daemon in the test's directory, stopped at the end whatever the test did."""
    d = Daemon(tmp_path / "state")
    yield d
    if d.proc is not None and d.proc.poll() is None:
        d.stop(signal.SIGKILL)


def test_a_newer_container_chart_migrates_every_container_at_startup(
    tmp_path: Path, daemon: Daemon
) -> None:
    daemon.start()
    with daemon.client() as client:
        for name, policy in (("made", "no"), ("up", "always"), ("frozen", "no"), ("done", "no")):
            cmd = ["sh", "-c", "exit 3"] if name == "done" else ["sleep", "300"]
            client.containers.Create(
                c.CreateContainerRequest(cmd=cmd, name=name, restart_policy=policy)
            )
        first_up = client.containers.Start(c.StartContainerRequest(container="up")).pid
        client.containers.Start(c.StartContainerRequest(container="frozen"))
        client.containers.Pause(c.PauseContainerRequest(container="frozen"))
        client.containers.Start(c.StartContainerRequest(container="done"))
        client.containers.Wait(c.WaitContainerRequest(container="done"))
    before = {n: inspect(daemon, n) for n in ("made", "up", "frozen", "done")}
    assert before["frozen"]["State"]["Status"] == "paused"
    assert daemon.stop(signal.SIGTERM) == 0, daemon.logs()

    daemon.env[CHART_ENV] = str(next_version(tmp_path / "container-v2.yaml"))
    daemon.start()
    logs = daemon.logs()
    assert f"migrating 4 container(s) to container chart version {NEXT}" in logs, logs
    assert f"v{CURRENT} created -> v{NEXT} created: 1" in logs, logs
    assert f"4 container(s) now run on container chart version {NEXT}" in logs, logs
    after = {n: inspect(daemon, n) for n in before}
    # What a restart leaves, as moby's restore does: only `always` runs again.
    assert {n: a["State"]["Status"] for n, a in after.items()} == {
        "made": "created",
        "up": "running",
        "frozen": "exited",
        "done": "exited",
    }
    assert after["done"]["State"]["ExitCode"] == 3
    for name, found in after.items():
        assert found["Id"] == before[name]["Id"]
        assert found["Created"] == before[name]["Created"]
        assert found["Config"] == before[name]["Config"]
    up = after["up"]["State"]["Pid"]
    assert up not in (0, first_up) and alive(up)
    ps = daemon.cli("ps", "-a", "--format", "json")
    assert ps.returncode == 0, ps.stderr
    rows = [json.loads(line) for line in ps.stdout.splitlines()]
    assert sorted((r["Names"], r["State"]) for r in rows) == sorted(
        [("made", "created"), ("up", "running"), ("frozen", "exited"), ("done", "exited")]
    )
    with daemon.client() as client:
        for name in before:
            journal = client.engine.GetHistory(e.GetHistoryRequest(entity=name)).transitions
            moves = [t for t in journal if t.event == "chart.migrate"]
            assert len(moves) == 1, (name, [t.event for t in journal])
            params = moves[0].params.fields
            assert params["from_version"].number_value == CURRENT
            assert params["to_version"].number_value == NEXT
            assert moves[0].chart_version == NEXT
            got = client.engine.GetEntity(e.GetEntityRequest(entity=name, chart="container"))
            assert got.chart_version == NEXT
    assert daemon.stop(signal.SIGTERM) == 0, daemon.logs()

    # Started again with the same version: nothing left to move.
    mark = len(daemon.logs())
    daemon.start()
    assert "migrating" not in daemon.logs()[mark:]
    assert inspect(daemon, "made")["State"]["Status"] == "created"
    assert daemon.stop(signal.SIGTERM) == 0, daemon.logs()


def test_chart_migrate_through_the_daemon_streams_the_plan_and_the_progress(
    tmp_path: Path, daemon: Daemon
) -> None:
    daemon.start()
    for name in ("one", "two", "three"):
        assert daemon.cli("create", "--name", name, "sleep", "300").returncode == 0
    missing = daemon.cli("chart", "migrate", "nope")
    assert (missing.returncode, missing.stderr) == (
        1,
        "Error response from daemon: chart 'nope' has no stored version: register it first\n",
    )
    nothing = daemon.cli("chart", "migrate", "container", "--dry-run")
    assert nothing.stdout.splitlines() == [f"0 entities would move to version {CURRENT}"], (
        nothing.stderr
    )
    assert daemon.stop(signal.SIGTERM) == 0, daemon.logs()

    # Version 2 stored beside the daemon's database (no daemon needed for that), while
    # the daemon keeps running version 1: its containers move only when asked.
    v2 = next_version(tmp_path / "container-v2.yaml")
    db = f"sqlite:///{daemon.state_dir / 'chartd.db'}"
    stored = daemon.cli("chart", "migrate", str(v2), "--db", db, "--dry-run")
    assert stored.stdout.splitlines() == [
        f"v{CURRENT} created -> v{NEXT} created: 3",
        f"3 entities would move to version {NEXT}",
    ], stored.stderr
    daemon.start()
    moved = daemon.cli("chart", "migrate", "container", "--to", str(NEXT), "--batch", "2")
    assert moved.returncode == 0, moved.stderr
    assert moved.stdout.splitlines() == [
        f"v{CURRENT} created -> v{NEXT} created: 3",
        f"3 entities moved to version {NEXT}",
    ]
    assert moved.stderr.splitlines() == ["migrated 2/3", "migrated 3/3"]
    # Version 2 runs from its stored document with the daemon's code: start still works.
    assert daemon.cli("start", "one").returncode == 0
    assert inspect(daemon, "one")["State"]["Status"] == "running"
    with daemon.client() as client:
        journal = client.engine.GetHistory(e.GetHistoryRequest(entity="one")).transitions
        assert [t.event for t in journal] == ["chart.migrate", "start"]
    again = daemon.cli("chart", "migrate", "container", "--to", str(NEXT))
    assert again.stdout.splitlines() == [f"0 entities moved to version {NEXT}"]
    assert daemon.stop(signal.SIGTERM) == 0, daemon.logs()


def test_containers_of_a_chartd_without_versions_survive_an_upgrade(
    tmp_path: Path, daemon: Daemon
) -> None:
    daemon.start()
    assert daemon.cli("create", "--name", "made", "sleep", "300").returncode == 0
    assert daemon.cli("run", "--name", "done", "sh", "-c", "exit 4").returncode == 4
    assert daemon.stop(signal.SIGTERM) == 0, daemon.logs()
    with sa.create_engine(f"sqlite:///{daemon.state_dir / 'chartd.db'}").begin() as conn:
        # What a chartd before versions left: no version stored, none on the containers.
        conn.execute(sa.text("UPDATE entities SET chart_version = NULL"))
        conn.execute(sa.text("DELETE FROM chart_versions"))
    path = next_version(tmp_path / "container-v2.yaml")
    document = yaml.safe_load(path.read_text())
    document["migrations"] = {1: {"data": {"set": {"upgraded": True}}}}
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    daemon.env[CHART_ENV] = str(path)
    daemon.start()
    assert inspect(daemon, "made")["State"]["Status"] == "created"
    assert inspect(daemon, "done")["State"]["ExitCode"] == 4
    with daemon.client() as client:
        for name in ("made", "done"):
            got = client.engine.GetEntity(e.GetEntityRequest(entity=name, chart="container"))
            assert (got.chart_version, got.data.fields["upgraded"].bool_value) == (NEXT, True)
            journal = client.engine.GetHistory(e.GetHistoryRequest(entity=name)).transitions
            assert journal[-1].event == "chart.migrate"
            assert journal[-1].params.fields["from_version"].number_value == 1
    assert daemon.stop(signal.SIGTERM) == 0, daemon.logs()


def test_a_live_migration_leaves_the_processes_of_running_and_paused_containers_alone(
    tmp_path: Path, daemon: Daemon
) -> None:
    # A restart stops running containers first, as moby does without live-restore;
    # a migration through the live daemon moves them with the very processes they
    # have, and they go on under the new version.
    daemon.start()
    with daemon.client() as client:
        for name in ("up", "frozen", "made"):
            client.containers.Create(c.CreateContainerRequest(cmd=["sleep", "300"], name=name))
        pids = {
            name: client.containers.Start(c.StartContainerRequest(container=name)).pid
            for name in ("up", "frozen")
        }
        client.containers.Pause(c.PauseContainerRequest(container="frozen"))
    db = f"sqlite:///{daemon.state_dir / 'chartd.db'}"
    path = next_version(tmp_path / "container-next.yaml")
    stored = daemon.cli("chart", "migrate", str(path), "--db", db, "--dry-run")
    assert stored.returncode == 0, stored.stderr
    moved = daemon.cli("chart", "migrate", "container", "--to", str(NEXT))
    assert moved.returncode == 0, moved.stderr
    assert moved.stdout.splitlines()[-1] == f"3 entities moved to version {NEXT}", moved.stdout
    after = {name: inspect(daemon, name) for name in ("up", "frozen", "made")}
    assert {n: (a["State"]["Status"], a["State"]["Pid"]) for n, a in after.items()} == {
        "up": ("running", pids["up"]),
        "frozen": ("paused", pids["frozen"]),
        "made": ("created", 0),
    }
    for pid in pids.values():
        os.kill(pid, 0)  # still there
    listed = daemon.cli("ps", "-a", "--format", "{{.Names}} {{.State}}")
    assert sorted(listed.stdout.split("\n")[:-1]) == ["frozen paused", "made created", "up running"]
    with daemon.client() as client:
        got = client.engine.GetEntity(e.GetEntityRequest(entity="frozen", chart="container"))
        assert got.chart_version == NEXT
        # The new version's rules drive them: unpause and stop, on the same processes.
        client.containers.Unpause(c.UnpauseContainerRequest(container="frozen"))
        assert inspect(daemon, "frozen")["State"]["Pid"] == pids["frozen"]
        client.containers.Stop(c.StopContainerRequest(container="up", timeout=0))
    assert inspect(daemon, "up")["State"]["Status"] == "exited"
    assert daemon.stop(signal.SIGTERM) == 0, daemon.logs()
