"""What a new user tripped on (issue 16): the client's start-up, errors, tables, loading, YAML.

Each test here failed on the code before the fix it names.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import engine
from engine.errors import ChartError, NotFound

REPO = Path(__file__).resolve().parents[3]
HEAVY = ("sqlalchemy", "pydantic", "alembic", "engine.store", "engine.runtime", "engine.model")


MAIN = "import sys; sys.argv[0] = 'chartd'; from engine.cli import main; main()"


def chartd(*args: str, cwd: Path = REPO, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", MAIN, *args],
        capture_output=True, text=True, timeout=60, check=False, cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
    )  # fmt: skip


# -- start-up: a client verb loads the generated API, grpc and the parser only ----------


def test_a_client_verb_loads_nothing_of_the_engine(tmp_path: Path) -> None:
    probe = textwrap.dedent(
        f"""
        import atexit, sys
        atexit.register(lambda: print(sorted(m for m in sys.modules if m.startswith({HEAVY!r}))))
        from engine.cli import main
        main(["-H", "unix://{tmp_path}/none.sock", "ps"])
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False,
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert done.returncode == 1 and "Cannot connect" in done.stderr, done.stderr
    assert done.stdout.strip() == "[]"


def test_import_engine_is_light_and_still_exports_everything() -> None:
    probe = (
        "import sys, engine; light = not any(m.startswith(('sqlalchemy', 'pydantic'))"
        " for m in sys.modules); print(light, engine.step.__name__, engine.Engine.__name__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True,
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert done.stdout.split() == ["True", "step", "Engine"]
    assert set(engine.__all__) <= set(dir(engine))


# -- 12: errors -------------------------------------------------------------------------


def test_every_cli_error_starts_with_Error() -> None:
    export = chartd("chart", "export", "--format", "xx")
    show = chartd("chart", "show", "nosuch")
    # (ps --format takes any Go template, as docker's: "xml" is one)
    ps = chartd("events", "--format", "xml")
    for done in (export, show, ps):
        assert done.stderr.startswith("Error: "), done.stderr
    assert export.stderr.splitlines()[0] == (
        "Error: invalid --format 'xx': use json, dot, mermaid, svg, plantuml, scxml, xstate or html"
    )
    assert export.returncode == ps.returncode == 2 and show.returncode == 1


def test_a_bad_log_level_lists_the_levels_and_is_a_usage_error(tmp_path: Path) -> None:
    done = chartd("serve", "--state-dir", str(tmp_path), "--log-level", "loud")
    assert done.returncode == 2
    assert "'loud'" in done.stderr
    assert all(level in done.stderr for level in ("debug", "info", "warning", "error"))
    assert done.stderr.startswith("Error: ")


def test_a_yaml_error_names_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("chart: b\ninitial: a\nstates: {a: {}\n  b: [\n")
    done = chartd("chart", "show", str(broken))
    assert done.returncode == 1
    assert f'in "{broken}", line 3' in done.stderr
    assert "<unicode string>" not in done.stderr


# -- 10: tables --------------------------------------------------------------------------


def test_tables_are_laid_out_as_dockers_tabwriter() -> None:
    from engine.cli_output import Table  # noqa: PLC0415 - one failing test before the fix

    table = Table("NAME", "VERSION", "PATH")
    table.add_row("container", "1", "/a/long/path/chart.yaml")
    table.add_row("x", "12", "")
    assert table.lines() == [
        "NAME        VERSION   PATH",
        "container   1         /a/long/path/chart.yaml",
        "x           12",
    ]


def test_chart_ls_is_not_cut_to_the_terminal_when_piped() -> None:
    done = chartd("chart", "ls", COLUMNS="30")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "NAME        VERSION   PATH"
    assert lines[1].endswith(str(REPO / "statecharts" / "container" / "chart.yaml"))
    assert all(line == line.strip() for line in lines)


# -- 11: docker's times ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10m", 1_000_000_000_000 - 600 * 10**9),
        ("1h30m", 1_000_000_000_000 - 5400 * 10**9),
        ("-5s", 1_000_000_000_000 + 5 * 10**9),
        ("1700000000", 1_700_000_000 * 10**9),
        ("1700000000.5", 1_700_000_000_500_000_000),
        ("0", 0),
        ("2023-11-14T22:13:20Z", 1_700_000_000 * 10**9),
        ("2023-11-14T22:13:20.25Z", 1_700_000_000_250_000_000),
        ("2023-11-15T00:13:20+02:00", 1_700_000_000 * 10**9),
        ("2023-11-14Z", 1_699_920_000 * 10**9),
    ],
)
def test_event_times_take_dockers_forms(text: str, expected: int) -> None:
    from engine.api.times import parse_time  # noqa: PLC0415 - one failing test before the fix

    assert parse_time(text, now_ns=1_000_000_000_000) == expected


def test_a_time_without_a_zone_is_local() -> None:
    from datetime import datetime  # noqa: PLC0415

    from engine.api.times import parse_time  # noqa: PLC0415

    local = int(datetime(2023, 11, 14, 22, 13, 20).timestamp()) * 10**9
    assert parse_time("2023-11-14T22:13:20") == local
    assert parse_time("2023-11-14T22:13") == local - 20 * 10**9


def test_a_bad_time_is_named_as_docker_names_it() -> None:
    from engine.api.times import TimeError, parse_time  # noqa: PLC0415

    with pytest.raises(TimeError, match=r'^failed to parse value as time or duration: "soon"$'):
        parse_time("soon")
    done = chartd("events", "--since", "soon")
    assert (done.returncode, done.stderr) == (
        1,
        'Error: failed to parse value as time or duration: "soon"\n',
    )


# -- 15: load_chart by name --------------------------------------------------------------


def test_load_chart_takes_an_installed_charts_name_from_any_directory(tmp_path: Path) -> None:
    probe = "import engine; print(engine.load_chart('container').name)"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False,
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert done.stdout.strip() == "container", done.stderr
    with pytest.raises(NotFound, match="no chart file or installed chart named 'nosuch'"):
        engine.load_chart("nosuch")


# -- 18: YAML 1.2 core scalars ------------------------------------------------------------

TOGGLE = """
chart: toggle
initial: off
states: {on: {}, off: {}}
transitions:
  - {event: flip, from: off, to: on}
  - {event: flip, from: on, to: off}
rejections:
  - {event: push, in: [on, off], error: conflict, message: no}
"""


def test_states_named_on_and_off_load() -> None:
    chart = engine.parse_chart(TOGGLE)
    assert chart.model.initial == "off"
    snapshot = engine.step(chart, chart.initial_snapshot(), "flip").snapshot
    assert snapshot.configuration == ("on",)
    assert chart.model.rejections[0].message == "no"


def test_yaml_12_core_numbers_and_booleans() -> None:
    from engine.model.text import parse_text  # noqa: PLC0415

    assert parse_text("a: [yes, y, true, False, 010, 0o17, 0x1f, 2001-12-14, 1:20]") == {
        "a": ["yes", "y", True, False, 10, 15, 31, "2001-12-14", "1:20"]
    }


# -- 6: every problem of one file at once -------------------------------------------------

BOTH = """
chart: both
initial: a
states: {a: {}, b: {bogus: 1}}
transitions:
  - {event: go, from: a, to: c}
  - {event: back, from: b, to: a, bogus: 1}
  - {event: jump, from: a, to: d}
rejections:
  - {event: go, in: b, error: nonsense, message: "no"}
  - {event: back, in: zz, error: conflict, message: "no"}
"""


def test_shape_and_meaning_problems_come_together() -> None:
    with pytest.raises(ChartError) as caught:
        engine.parse_chart(BOTH)
    assert [p for p, _ in caught.value.problems] == [
        "states.b.bogus",
        "transitions[1].bogus",
        "rejections[0].error",
        "transitions[0].to",
        "transitions[2].to",
        "rejections[1].in",
    ]


def test_chart_check_reports_them_all(tmp_path: Path) -> None:
    chart = tmp_path / "both.yaml"
    chart.write_text(BOTH)
    done = chartd("chart", "check", str(chart), "--format", "json")
    assert done.returncode == 1
    where = [e["where"] for e in json.loads(done.stdout)["errors"]]
    assert "transitions[1].bogus" in where and "transitions[2].to" in where


# -- 14: check warnings -------------------------------------------------------------------

FINAL = """
chart: job
initial: idle
states: {idle: {}, done: {final: true}}
transitions:
  - {event: finish, from: idle, to: done}
  - {event: poke, from: idle}
rejections:
  - {event: finish, in: done, error: conflict, message: "job {name} is done"}
  - {event: poke, in: done, error: conflict, message: "job {id} is done"}
"""


def test_check_has_no_unhandled_warning_for_a_top_level_final_state(tmp_path: Path) -> None:
    chart = tmp_path / "final.yaml"
    chart.write_text(FINAL.replace("rejections:\n", "rejections: []\nx:\n").split("x:\n")[0])
    done = chartd("chart", "check", str(chart), "--format", "json")
    assert done.returncode == 0, done.stdout
    assert json.loads(done.stdout)["warnings"] == []


def test_check_warns_of_a_message_field_the_data_may_lack(tmp_path: Path) -> None:
    chart = tmp_path / "fields.yaml"
    chart.write_text(FINAL)
    done = chartd("chart", "check", str(chart), "--format", "json")
    [warning] = json.loads(done.stdout)["warnings"]
    assert warning["kind"] == "unfilled" and warning["where"] == "{name}"
    assert "rejections[0]" in warning["message"] and "rejections[1]" not in warning["message"]
    chart.write_text("data: [name]\n" + FINAL)
    assert chartd("chart", "check", str(chart)).returncode == 0


def test_check_notes_but_does_not_warn_of_undo_none(tmp_path: Path) -> None:
    chart = tmp_path / "saga.yaml"
    chart.write_text(
        "chart: saga\ninitial: a\nstates: {a: {}, b: {}}\n"
        "transitions:\n  - {event: go, from: a, to: b, steps: [launch]}\n"
        "  - {event: back, from: b, to: a}\n"
        "rejections:\n  - {event: back, in: a, error: conflict, message: x}\n"
        "  - {event: go, in: b, error: conflict, message: x}\n"
    )
    (tmp_path / "saga_code.py").write_text(
        "import engine\nBINDINGS = engine.Bindings(steps={'launch': engine.Step(lambda c: None)})\n"
    )
    done = chartd(
        "chart", "check", str(chart), "--bindings", "saga_code:BINDINGS", "--format", "json",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["warnings"] == []
    assert "uncompensated" in [n["kind"] for n in report["notes"]]


# -- 16: the property kit is quiet in a passing run --------------------------------------


def test_a_recovery_in_a_passing_kit_run_prints_nothing() -> None:
    probe = textwrap.dedent(
        """
        import engine
        from engine.testing import Crash, Create, Fault, Fire, Harness, StandIns
        chart = engine.parse_chart('''
        chart: job
        initial: idle
        states: {idle: {}, starting: {transient: true}, running: {}}
        transitions:
          - {event: start, from: idle, to: running, via: starting, steps: [workdir, launch]}
        ''')
        stand_ins = StandIns(chart)
        with Harness(chart, stand_ins.bindings, invariants=[stand_ins.check]) as harness:
            harness.apply(Create())
            harness.apply(Fire(0, "start", fault=Fault(crash=Crash("do", 1, 0))))
            harness.check()
            assert harness.generation == 2, "no crash happened"
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False,
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_a_param_every_named_event_requires_fills_a_message(tmp_path: Path) -> None:
    # The container chart's exec refusal names `ref`, which exec_create's schema requires.
    required = FINAL.replace('"job {name} is done"', '"job {by} is done"') + (
        "schema:\n  params:\n    finish: {required: [by], properties: {by: {type: string}}}\n"
    )
    chart = tmp_path / "required.yaml"
    chart.write_text(required)
    assert chartd("chart", "check", str(chart)).returncode == 0
    # Required by one event of the rejection but not the other: it may be missing.
    chart.write_text(
        required.replace(
            "- {event: finish, in: done", "- {event: [finish, poke], in: done"
        ).replace('  - {event: poke, in: done, error: conflict, message: "job {id} is done"}\n', "")
    )
    done = chartd("chart", "check", str(chart), "--format", "json")
    [warning] = json.loads(done.stdout)["warnings"]
    assert warning["kind"] == "unfilled" and warning["where"] == "{by}"
