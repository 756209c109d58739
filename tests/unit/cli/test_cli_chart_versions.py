"""`chartd chart diff | check --migrates-from | migrate`, run as real subprocesses."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from test_cli_chart import chartd

import engine
from statecharts.container import CHART_PATH

V1 = """
chart: door
version: 1
initial: closed
states:
  closed: {}
  open: {}
  lamp:
    parallel: true
    states:
      power: {initial: dark, states: {dark: {}, lit: {}}}
      color: {initial: warm, states: {warm: {}, cold: {}}}
transitions:
  - {event: open, from: closed, to: open, steps: [unlatch]}
  - {event: close, from: open, to: closed}
  - {event: light, from: closed, to: lamp}
  - {event: flip, from: lamp.power.dark, to: lamp.power.lit}
  - {event: tint, from: lamp.color.warm, to: lamp.color.cold}
"""


def write(path: Path, text: str, **changes: object) -> str:
    document = yaml.safe_load(text)
    document.update(changes)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return str(path)


def v2(**changes: object) -> dict[str, object]:
    """Version 2: `closed` renamed `shut`, the lamp's color region gone."""
    document = yaml.safe_load(V1)
    document["version"] = 2
    states = document["states"]
    states["shut"] = states.pop("closed")
    del states["lamp"]["states"]["color"]
    document["transitions"] = [
        {"event": "open", "from": "shut", "to": "open", "steps": ["unlatch", "creak"]},
        {"event": "close", "from": "open", "to": "shut"},
        {"event": "light", "from": "shut", "to": "lamp"},
        {"event": "flip", "from": "lamp.power.dark", "to": "lamp.power.lit"},
    ]
    document["initial"] = "shut"
    document["migrations"] = {1: {"states": {"closed": "shut", "lamp.color": None}}}
    document.update(changes)
    return document


def test_diff_lists_what_changed_in_text_and_json(tmp_path: Path) -> None:
    old = write(tmp_path / "v1.yaml", V1)
    new = write(tmp_path / "v2.yaml", yaml.safe_dump(v2()))
    result = chartd("chart", "diff", old, new)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "door v1 -> door v2"
    for expected in (
        "- state closed",
        "+ state shut",
        "- state lamp.color.cold",
        "- transition lamp.color.warm --tint-->",
        "+ transition shut --open-->",
        "+ step creak",
    ):
        assert expected in lines, result.stdout
    rows = json.loads(chartd("chart", "diff", old, new, "--format", "json").stdout)
    assert {"what": "state", "how": "added", "name": "shut", "detail": ""} in rows
    same = chartd("chart", "diff", old, old)
    assert "no states, transitions, rejections or steps changed" in same.stdout


def test_check_migrates_from_proves_every_configuration_maps(tmp_path: Path) -> None:
    old = write(tmp_path / "v1.yaml", V1)
    new = write(tmp_path / "v2.yaml", yaml.safe_dump(v2()))
    result = chartd("chart", "check", new, "--migrates-from", old, "--format", "json")
    report = json.loads(result.stdout)
    assert report["errors"] == [], result.stdout
    assert any("maps to a legal configuration of v2" in n["message"] for n in report["notes"])


def test_check_migrates_from_names_each_configuration_a_planted_mistake_breaks(
    tmp_path: Path,
) -> None:
    old = write(tmp_path / "v1.yaml", V1)
    # A mapping into a state version 2 lacks: refused as the document is read.
    missing = v2(migrations={1: {"states": {"closed": "shutt", "lamp.color": None}}})
    result = chartd("chart", "check", write(tmp_path / "m.yaml", yaml.safe_dump(missing)))
    assert result.returncode == 1
    assert "migrations.1.states.closed: maps to 'shutt', which is not a state" in result.stdout
    # A state left without a line: the configurations holding it name it.
    forgotten = v2(migrations={1: {"states": {"lamp.color": None}}})
    path = write(tmp_path / "f.yaml", yaml.safe_dump(forgotten))
    result = chartd("chart", "check", path, "--migrates-from", old)
    assert result.returncode == 1, result.stdout
    assert (
        "v1 configuration closed maps to no legal configuration of v2: "
        "closed maps to 'closed', which version 2 lacks"
    ) in result.stdout
    # The color region folded into the power region: a region left holding two states.
    into = "lamp.power.lit"
    lines = {"closed": "shut", "lamp.color.warm": into, "lamp.color.cold": into}
    folded = v2(migrations={1: {"states": lines}})
    path = write(tmp_path / "p.yaml", yaml.safe_dump(folded))
    result = chartd("chart", "check", path, "--migrates-from", old)
    assert result.returncode == 1, result.stdout
    assert (
        "v1 configuration lamp.power.dark, lamp.color.warm maps to no legal configuration of "
        "v2: region 'lamp.power' of the parallel state 'lamp' is left with lamp.power.dark "
        "and lamp.power.lit at once"
    ) in result.stdout
    # A mapping from a state version 1 lacks points nowhere too.
    stray = v2(migrations={1: {"states": {"closed": "shut", "lamp.color": None, "ajar": "open"}}})
    path = write(tmp_path / "s.yaml", yaml.safe_dump(stray))
    result = chartd("chart", "check", path, "--migrates-from", old)
    assert result.returncode == 1
    assert "migrations.1.states.ajar: version 1 has no state 'ajar'" in result.stdout


CONTAINER_V1 = Path(__file__).parent / "charts" / "container-v1.yaml"
"""The container chart as chartd shipped it before health checks (version 1)."""
CONTAINER_V2 = Path(__file__).parent / "charts" / "container-v2.yaml"
"""The container chart as chartd shipped it before docker's -i (version 2)."""
CONTAINER_V3 = Path(__file__).parent / "charts" / "container-v3.yaml"
"""The container chart as chartd shipped it before docker's -t (version 3)."""
CONTAINER_V4 = Path(__file__).parent / "charts" / "container-v4.yaml"
"""The container chart as chartd shipped it before restart's signal (version 4)."""


def _migration_notes(new: Path, old: Path) -> list[str]:
    """``chart check NEW --migrates-from OLD``'s notes, once it found no error."""
    result = chartd("chart", "check", str(new), "--migrates-from", str(old), "--format", "json")
    report = json.loads(result.stdout)
    assert report["errors"] == [], result.stdout
    return [str(n["message"]) for n in report["notes"]]


def test_the_container_charts_health_region_needs_no_migration_line() -> None:
    # Version 2 made running.active a parallel state (the health region): every
    # configuration version 1 reaches maps to it by default entry alone.
    assert yaml.safe_load(CONTAINER_V1.read_text())["version"] == 1
    assert yaml.safe_load(CONTAINER_V2.read_text())["version"] == 2
    notes = _migration_notes(CONTAINER_V2, CONTAINER_V1)
    assert any("maps to a legal configuration" in note for note in notes)


def test_the_container_charts_stdin_keys_migrate_from_version_2_as_they_are() -> None:
    # Version 3 only added the stdin keys to the data's schema: `migrations: {2: {}}`.
    document = yaml.safe_load(CONTAINER_V3.read_text())
    assert (document["version"], document["migrations"]) == (3, {2: {}})
    notes = _migration_notes(CONTAINER_V3, CONTAINER_V2)
    assert any("every configuration of v2" in note for note in notes)


def test_the_container_charts_tty_migrates_from_versions_2_and_3_as_they_are() -> None:
    # Version 4 added `tty` to the data's schema and the `resize` event, no state.
    document = yaml.safe_load(CONTAINER_V4.read_text())
    assert (document["version"], document["migrations"]) == (4, {2: {}, 3: {}})
    for old, version in ((CONTAINER_V3, "v3"), (CONTAINER_V2, "v2")):
        notes = _migration_notes(CONTAINER_V4, old)
        assert any(f"every configuration of {version}" in note for note in notes), notes


def test_the_container_charts_restart_signal_migrates_from_versions_2_to_4_as_they_are() -> None:
    # Version 5 added `signal` to the params of `restart`, no state and no data.
    document = yaml.safe_load(CHART_PATH.read_text())
    assert (document["version"], document["migrations"]) == (5, {2: {}, 3: {}, 4: {}})
    for old, version in ((CONTAINER_V4, "v4"), (CONTAINER_V3, "v3"), (CONTAINER_V2, "v2")):
        notes = _migration_notes(CHART_PATH, old)
        assert any(f"every configuration of {version}" in note for note in notes), notes


def test_a_health_region_with_a_state_of_a_migration_that_is_gone_is_named(
    tmp_path: Path,
) -> None:
    document = yaml.safe_load(CHART_PATH.read_text())
    document["version"] += 1
    document.setdefault("migrations", {})[5] = {"states": {"running.paused": "running.frozen"}}
    path = write(tmp_path / "container-v6.yaml", yaml.safe_dump(document))
    result = chartd("chart", "check", path, "--migrates-from", str(CHART_PATH))
    assert result.returncode != 0
    assert "running.frozen" in result.stdout + result.stderr


def test_migrate_plans_moves_and_is_a_no_op_the_second_time(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'chartd.db'}"
    stand_in = engine.Bindings(steps={"unlatch": engine.Step(lambda ctx: None)})
    with engine.Engine.open(url, timers=False) as eng:
        eng.register(engine.parse_chart(V1), stand_in)
        for name in ("a", "b", "c"):
            eng.create("door", name)
        eng.fire("c", "light")
        eng.fire("c", "tint")
    new = write(tmp_path / "v2.yaml", yaml.safe_dump(v2()))
    plan = chartd("chart", "migrate", new, "--db", url, "--dry-run")
    assert plan.returncode == 0, plan.stderr
    assert plan.stdout.splitlines() == [
        "v1 closed -> v2 shut: 2",
        "v1 lamp.power.dark,lamp.color.cold -> v2 lamp.power.dark: 1",
        "3 entities would move to version 2",
    ]
    wrong = chartd("chart", "migrate", new, "--db", url, "--to", "3")
    assert (wrong.returncode, wrong.stderr) == (
        1,
        f"Error: --to 3 is not the version of {new} (2)\n",
    )
    moved = chartd("chart", "migrate", "door", "--db", url, "--batch", "2")
    assert moved.returncode == 0, moved.stderr
    assert moved.stdout.splitlines()[-1] == "3 entities moved to version 2"
    assert moved.stderr.splitlines() == ["migrated 2/3", "migrated 3/3"]
    again = chartd("chart", "migrate", "door", "--db", url)
    assert again.stdout.splitlines() == ["0 entities moved to version 2"]
    with engine.Engine.open(url, timers=False) as eng:
        assert [eng.get(n).chart_version for n in "abc"] == [2, 2, 2]
