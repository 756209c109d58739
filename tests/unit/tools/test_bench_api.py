"""tools/bench_api.py runs end to end and reports every figure (it never asserts a speed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
FIGURES = {
    "cycles_per_round",
    "floor_ms",
    "round_trip_ms",
    "start_ms",
    "stop_ms",
    "round_trip_server_cpu_ms",
    "trivial_calls_per_s",
    "trivial_server_cpu_ms",
    "health_calls_per_s",
    "direct_round_trip_ms",
    "ratio_round_trip_to_floor",
    "ratio_rpc_to_direct",
}


def test_bench_api_reports_the_round_trip_beside_its_floor_as_one_json_object() -> None:
    done = subprocess.run(
        [sys.executable, "tools/bench_api.py", "--json", "--rounds", "1", "--trivial", "20",
         "--cycles", "2", "--profile", "--baseline", "."],
        cwd=REPO, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["target_round_trip_to_floor"] == 4.0
    assert report["baseline"] == str(REPO)
    assert set(report["runtimes"]) == {"process", "fake"}
    process, fake = report["runtimes"]["process"], report["runtimes"]["fake"]
    # The target is the process runtime's, and so is the baseline (here this checkout again).
    baseline = {f"baseline_{name}" for name in ("round_trip_ms", "start_ms", "stop_ms")}
    baseline |= {"baseline_round_trip_server_cpu_ms", "baseline_ratio_round_trip_to_floor"}
    assert set(process) == FIGURES | {"target_met"} | baseline
    assert set(fake) == FIGURES
    for figures in (process, fake):
        assert figures["floor_ms"] > 0 and figures["round_trip_ms"] > 0
        assert (
            figures["ratio_round_trip_to_floor"] == figures["round_trip_ms"] / figures["floor_ms"]
        )
    assert process["target_met"] == (process["ratio_round_trip_to_floor"] <= 4.0)
    profile = report["profile"]
    assert profile["cycles"] == 2 and profile["start_ms"] > 0 and profile["stop_ms"] > 0
    for part in ("step task_create", "engine: waited commit (GroupCommit.commit)"):
        assert profile["parts"][part]["calls"] >= 1, part
