"""tools/bench_api.py runs end to end and reports every figure (it never asserts a speed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
FIGURES = {
    "cycles_per_round",
    "trivial_calls_per_s",
    "trivial_server_cpu_ms",
    "health_calls_per_s",
    "start_stop_round_trips_per_s",
    "lifecycle_calls_per_s",
    "lifecycle_server_cpu_ms",
    "start_ms",
    "stop_ms",
    "direct_start_stop_round_trips_per_s",
    "ratio_lifecycle_to_trivial",
    "ratio_rpc_to_direct",
    "target_met",
}


def test_bench_api_reports_every_figure_as_one_json_object() -> None:
    done = subprocess.run(
        [sys.executable, "tools/bench_api.py", "--json", "--rounds", "1", "--trivial", "20",
         "--cycles", "2"],
        cwd=REPO, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["target_lifecycle_to_trivial"] == 0.6
    assert set(report["runtimes"]) == {"process", "fake"}
    for figures in report["runtimes"].values():
        assert set(figures) == FIGURES
        assert figures["trivial_calls_per_s"] > 0 and figures["lifecycle_calls_per_s"] > 0
        assert figures["ratio_lifecycle_to_trivial"] == (
            figures["lifecycle_calls_per_s"] / figures["trivial_calls_per_s"]
        )
