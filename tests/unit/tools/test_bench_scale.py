"""tools/bench_scale.py runs end to end and reports every figure.

The benchmark runs at its smallest size with a few samples, on real SQLite
files. The test checks the shape of the report and that the ratios are
those of the sizes measured in turn; it never asserts a speed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "tools" / "bench_scale.py"
COSTS = {
    "fire_per_s",
    "fire_cpu_us",
    "get_id_us",
    "get_id_cpu_us",
    "get_name_us",
    "get_name_cpu_us",
    "list_page_us",
    "list_page_cpu_us",
}


def test_the_report_has_every_figure_and_the_ratios_of_the_paired_measures() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *sys.path])}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--entities", "1000", "--samples", "20", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    out = json.loads(done.stdout)
    assert set(out["sizes"]) == {"1000"}
    assert set(out["sizes"]["1000"]) == COSTS | {"open_s"}
    assert set(out["paired"]) == {"small", "large"}
    small, large = out["paired"]["small"], out["paired"]["large"]
    assert set(small) == set(large) == COSTS
    ratios = out["ratios"]
    assert ratios["get_id_cost"] == large["get_id_us"] / small["get_id_us"]
    assert ratios["fire_cost"] == small["fire_per_s"] / large["fire_per_s"]
    assert set(out["met"]) == {"create_many", "fire", "get", "rss", "open"}
    assert out["create_many_per_s"] > 0 and out["create_per_s"] > 0 and out["rss_mb"] > 0
