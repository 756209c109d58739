"""tools/bench_bound.py runs end to end and reports every part and the bound (never a speed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
PARTS = {"trivial_ms", "runtime_ms", "engine_saga_ms", "engine_direct_ms", "commit_ms", "popen_ms"}
PARTS |= {f"{part}_ms" for part in ("create_task", "start_task", "exit", "delete_task")}


def test_bench_bound_reports_the_parts_and_their_sum_as_one_json_object() -> None:
    done = subprocess.run(
        [sys.executable, "tools/bench_bound.py", "--json", "--rounds", "1", "--cycles", "2",
         "--fires", "10"],
        cwd=REPO, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert set(report) == PARTS | {"bound_ms", "rounds", "freezer"}
    assert report["rounds"] == 1 and report["freezer"] in ("cgroup", "signal")
    assert all(report[part] > 0 for part in PARTS)
    assert report["bound_ms"] == (
        2 * report["trivial_ms"]
        + report["runtime_ms"]
        + report["engine_saga_ms"]
        + 2 * report["engine_direct_ms"]
        - report["commit_ms"]
    )
