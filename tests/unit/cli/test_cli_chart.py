"""`chartd chart ...` run as a real subprocess, as a user would run it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def chartd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from engine.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_chart_ls_lists_the_installed_container_chart() -> None:
    result = chartd("chart", "ls", "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert {"name": "container", "chart": "container"}.items() <= rows[0].items()


def test_chart_show_prints_states_transitions_and_rejections() -> None:
    result = chartd("chart", "show", "container")
    assert result.returncode == 0, result.stderr
    for expected in ("running", "paused", "transient", "start: created, exited -> running"):
        assert expected in result.stdout
    assert "cannot start a paused container, try unpause instead" in result.stdout


def test_chart_show_json_is_the_resolved_chart() -> None:
    result = chartd("chart", "show", "container", "--format", "json")
    shown = json.loads(result.stdout)
    assert shown["chart"] == "container"
    assert {"path": "running.paused", "kind": "atomic"} in shown["states"]
    start = next(t for t in shown["transitions"] if t["event"] == "start")
    assert start["via"] == "starting"
    assert start["steps"][0] == "mount_rootfs"


def test_the_container_chart_checks_clean() -> None:
    # It declares `data: [id, name]`, which its rejection messages name.
    result = chartd("chart", "check", "--format", "json")
    report = json.loads(result.stdout)
    assert (result.returncode, report["errors"], report["warnings"]) == (0, [], []), (
        result.stdout + result.stderr
    )


def test_chart_check_reports_errors_with_paths_and_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "chart: bad\ninitial: a\nstates: {a: {}}\ntransitions:\n  - {event: go, from: a, to: b}\n"
    )
    result = chartd("chart", "check", str(bad), "--format", "json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["status"] == "errors"
    assert report["errors"] == [
        {"kind": "invalid", "where": "transitions[0].to", "message": "unknown state 'b'"}
    ]


def test_chart_check_warnings_only_exits_2(tmp_path: Path) -> None:
    chart = tmp_path / "warn.yaml"
    chart.write_text(
        "chart: warn\ninitial: a\nstates: {a: {}, b: {}, orphan: {}}\n"
        "transitions:\n  - {event: go, from: a, to: b}\n"
    )
    result = chartd("chart", "check", str(chart))
    assert result.returncode == 2
    assert "warning: [unreachable] state 'orphan' can never be entered" in result.stdout
    assert "event 'go' in 'b' has neither a transition nor a declared rejection" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("chart", "show", "nosuch"),
            "no chart file or installed chart named 'nosuch' (installed: container)",
        ),
        (("chart", "show", "/nonexistent/x.yaml"), "no chart file at '/nonexistent/x.yaml'"),
    ],
)
def test_bad_input_is_named_on_stderr_with_exit_1(args: tuple[str, ...], message: str) -> None:
    result = chartd(*args)
    assert result.returncode == 1
    assert result.stderr.strip() == f"Error: {message}"


def test_a_bad_format_is_a_usage_error() -> None:
    result = chartd("chart", "show", "--format", "xml")
    assert result.returncode == 2
    assert result.stderr.strip() == "Error: invalid --format 'xml': use text or json"


LOOP = """
chart: loop
initial: a
states:
  a: {}
  b: {}
  p:
    initial: f
    states: {f: {final: true}}
transitions:
  - {event: go, from: a, to: b, steps: [launch]}
  - {event: back, from: b, to: a}
  - {event: jump, from: a, to: p, when: x}
  - {event: done.state.p, from: p, to: p}
rejections:
  - {event: "*", in: p, error: conflict, message: "busy"}
  - {event: [back, jump], in: a, error: conflict, message: "no"}
  - {event: [go, jump], in: b, error: conflict, message: "no"}
"""

BINDINGS = """
import engine
good = engine.Bindings(steps={"launch": engine.Step(lambda ctx: None, lambda ctx, p: None)})
no_undo = engine.Bindings(steps={"launch": engine.Step(lambda ctx: None)})
nothing = engine.Bindings()
not_bindings = 42
"""


def test_chart_check_explores_and_reports_a_chart_that_never_settles(tmp_path: Path) -> None:
    chart = tmp_path / "loop.yaml"
    chart.write_text(LOOP)
    result = chartd("chart", "check", str(chart), "--format", "json")
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)
    [fault] = report["errors"]
    assert fault["kind"] == "fault" and fault["where"] == "a + jump"
    assert "does not settle" in fault["message"]
    assert [n["kind"] for n in report["notes"]] == ["bindings", "explored"]


def test_chart_check_stops_exploring_at_the_limit(tmp_path: Path) -> None:
    result = chartd("chart", "check", "container", "--max-configurations", "2")
    assert result.returncode == 0, result.stdout + result.stderr  # a limit is a note
    assert "stopped at the limit (2)" in result.stdout


def test_chart_check_with_bindings_reports_missing_code_and_missing_compensation(
    tmp_path: Path,
) -> None:
    chart = tmp_path / "loop.yaml"
    chart.write_text(LOOP.replace("  - {event: done.state.p, from: p, to: p}\n", ""))
    (tmp_path / "loop_code.py").write_text(BINDINGS)

    def check(attr: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-c",
                "from engine.cli import main; main()",
                "chart",
                "check",
                str(chart),
                "--bindings",
                f"loop_code:{attr}",
                "--format",
                "json",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=tmp_path,
        )

    clean = check("good")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    declared = check("no_undo")  # undo=None declares that no compensation is needed
    assert declared.returncode == 0
    [note] = [n for n in json.loads(declared.stdout)["notes"] if n["kind"] == "uncompensated"]
    assert "transitions[0]" in note["message"]
    missing = check("nothing")
    assert missing.returncode == 1
    assert json.loads(missing.stdout)["errors"][0]["message"].startswith(
        "step 'launch' has no code"
    )
    wrong = check("not_bindings")
    assert wrong.returncode == 1
    assert "is not an engine.Bindings (it is int)" in wrong.stderr
