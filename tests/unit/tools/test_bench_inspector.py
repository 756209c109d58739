"""tools/bench_inspector.py runs end to end and reports every figure (it never asserts a speed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_bench_inspector_reports_pages_and_fire_rates_as_one_json_object(graphviz: str) -> None:
    done = subprocess.run(
        [sys.executable, "tools/bench_inspector.py", "--json", "--small", "60", "--entities",
         "300", "--requests", "2", "--clients", "3", "--fires", "40", "--rounds", "1"],
        cwd=REPO, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["entities"] == {"small": 60, "large": 300}
    for case in ("small", "large"):
        for page in ("first", "deep", "state"):
            assert report[f"{case}_page_{page}_ms"] > 0
        assert report[f"{case}_count_ms"] > 0
    for page in ("first", "deep", "state"):
        assert report[f"ratio_page_{page}_large_to_small"] > 0
    assert report["fires_per_s_no_clients"] > 0 and report["fires_per_s_3_clients"] > 0
    assert report["ratio_fires_with_clients"] > 0
