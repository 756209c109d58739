"""tools/bench_core.py runs end to end and reports every figure.

These tests run the benchmark with tiny parameters. They check the shape of
the report and that every library passed its correctness check; they never
assert a speed.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "tools" / "bench_core.py"
LIBRARIES = ("chartd", "chartd-unmemoised", "pytransitions", "python-statemachine")
TARGETS = {"chartd/pytransitions": 10, "chartd/python-statemachine": 20}
RATIOS = {
    *TARGETS,
    "chartd-unmemoised/pytransitions",
    "chartd-unmemoised/python-statemachine",
}


@pytest.fixture(scope="module")
def bench_core() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("bench_core", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve the module by name
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


def run_json(bench_core: ModuleType, capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    status = bench_core.main([*args, "--json"])
    report = json.loads(capsys.readouterr().out)
    return status, report


def test_json_report_holds_every_figure(
    bench_core: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    status, report = run_json(bench_core, capsys, "--rounds", "1", "--events", "200")

    assert status == 0
    assert report["ok"] is True
    assert report["settings"]["rounds"] == 1
    assert report["settings"]["events_per_batch"] == 200
    assert set(report["libraries"]) == set(LIBRARIES)
    for name in LIBRARIES:
        entry = report["libraries"][name]
        assert entry["check"]["passed"] is True, entry["check"]["detail"]
        assert entry["version"]
        assert entry["median_events_per_s"] > 0
        assert entry["median_us_per_event"] > 0
        assert len(entry["samples_events_per_s"]) == 1
        assert len(entry["samples_us_per_event"]) == 1
        assert all(rate > 0 for rate in entry["samples_events_per_s"])
    assert set(report["ratios"]) == set(RATIOS)
    assert all(ratio > 0 for ratio in report["ratios"].values())
    for label, minimum in TARGETS.items():
        target = report["targets"][label]
        assert target["at_least"] == minimum
        assert target["ratio"] == report["ratios"][label]
        assert isinstance(target["met"], bool)
    assert isinstance(report["all_targets_met"], bool)
    assert {"python", "chartd", "transitions", "python-statemachine"} <= set(report["versions"])
    assert report["python"]["version"] == report["versions"]["python"]


def test_rounds_interleave_and_odd_batches_toggle(
    bench_core: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    status, report = run_json(bench_core, capsys, "--rounds", "2", "--events", "7")

    assert status == 0
    for name in LIBRARIES:
        assert len(report["libraries"][name]["samples_events_per_s"]) == 2


def test_a_library_that_does_not_toggle_fails_the_run(
    bench_core: ModuleType, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def stuck(library: Any) -> Any:
        # Ignores its events: the machine stays in running.active.
        return dataclasses.replace(library, prepare=lambda schedule: library.prepare(()))

    libraries = tuple(
        stuck(library) if library.name == "pytransitions" else library
        for library in bench_core.LIBRARIES
    )
    monkeypatch.setattr(bench_core, "LIBRARIES", libraries)

    status, report = run_json(bench_core, capsys, "--rounds", "1", "--events", "4")

    assert status != 0
    assert report["ok"] is False
    assert report["checks"]["pytransitions"]["passed"] is False
    assert "pytransitions" in report["error"]
    assert report["checks"]["chartd"]["passed"] is True


def test_command_line_prints_a_table() -> None:
    # The script must benchmark this checkout's engine, whatever else is installed.
    pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--rounds", "1", "--events", "3"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, "PYTHONPATH": pythonpath},
    )

    assert result.returncode == 0, result.stderr
    for name in LIBRARIES:
        assert name in result.stdout
    assert "chartd/pytransitions" in result.stdout
