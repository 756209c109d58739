"""A lower bound for the API's start+stop round trip on this machine, from its parts.

What ``tools/bench_api.py`` measures (``Containers.Start`` then
``Containers.Stop`` of one ``sleep 1000`` through the daemon) cannot cost
less than the parts this design is made of, each measured here on its own,
as fast as it goes, medians over the rounds:

* ``trivial_ms``: one ``Engine.Version`` through gRPC to a process daemon
  (sequential calls on one channel): the round trip makes two calls.
* ``runtime_ms``: the process runtime's own part, no engine: ``create_task``
  (the shim spawned, its cgroup, its records), ``start_task`` (released, the
  command exec'd), SIGTERM, the exit seen, ``delete_task`` (each part also
  on its own: ``create_task_ms`` ... ``delete_task_ms``). Its cgroup move
  is warmed ahead (``prepare_task``, then an untimed 3 ms pause), as a
  start's first commit and steps give it time to be.
* ``engine_saga_ms`` and ``engine_direct_ms``: a durable engine fire of a
  saga with three no-op steps (write-ahead and final commit; the start has
  nine steps) and of a transition without write-ahead (one commit), from
  ``tools/bench_durable.py``; ``commit_ms`` a bare fsynced SQLite commit.
* ``popen_ms`` (information): ``subprocess.Popen``, SIGTERM, wait: the
  process part of bench_api's floor.

``bound_ms`` = 2 trivial calls + the runtime's part + a saga (the start) +
a direct fire (the exit) + a direct fire less its commit (the stop, whose
record rides with the exit's commit). It leaves out what a real start adds
to them (six more steps, the container's files, directories and address,
the exit's way through the runtime's threads to the engine), so the round
trip is more. Run ``python tools/bench_bound.py`` (``--json``: one object).
"""

from __future__ import annotations

import argparse
import json
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: the tools and the engine
    sys.path.insert(0, str(REPO))

from tools.bench_api import COMMAND, daemon  # noqa: E402
from tools.bench_durable import engine_rate  # noqa: E402

# Seconds between the cgroup warm-up and the task, untimed: about what a start's first
# commit and steps take. A warm-up lasts one grace period after it ended: 20 ms later, the
# move waits again.
_WARM = 0.003


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def trivial_ms(folder: Path, calls: int) -> float:
    """The median latency of ``Engine.Version`` to a process daemon."""
    from engine.api.chartd.v1 import engine_pb2 as e  # noqa: PLC0415

    with daemon("process", folder) as (client, _):
        request = e.VersionRequest()
        for _ in range(10):
            client.engine.Version(request)
        samples = []
        for _ in range(calls):
            began = time.perf_counter()
            client.engine.Version(request)
            samples.append(time.perf_counter() - began)
    return _median_ms(samples)


_RUNTIME_PARTS = ("create_task", "start_task", "exit", "delete_task")


def runtime_ms(folder: Path, cycles: int) -> tuple[dict[str, float], str]:
    """The medians of the process runtime's task cycle and of its parts; and its freezer."""
    from statecharts.container.process import ProcessRuntime  # noqa: PLC0415
    from statecharts.container.runtime import ContainerSpec  # noqa: PLC0415

    runtime = ProcessRuntime(folder / "runtime")
    try:
        root = folder / "container"
        runtime.create(
            ContainerSpec(
                id="bound", name="/bound", cmd=COMMAND, log_path=root / "log", root=root / "run"
            )
        )
        samples: dict[str, list[float]] = {part: [] for part in ("runtime", *_RUNTIME_PARTS)}
        for _ in range(cycles):
            runtime.prepare_task("bound")
            time.sleep(_WARM)
            marks = [time.perf_counter()]
            runtime.create_task("bound")
            marks.append(time.perf_counter())
            runtime.start_task("bound")
            marks.append(time.perf_counter())
            runtime.kill("bound", signal.SIGTERM)
            runtime.wait("bound")  # the exit seen, reaped and recorded
            marks.append(time.perf_counter())
            runtime.delete_task("bound")
            marks.append(time.perf_counter())
            samples["runtime"].append(marks[-1] - marks[0])
            for part, began, ended in zip(_RUNTIME_PARTS, marks, marks[1:], strict=False):
                samples[part].append(ended - began)
        runtime.delete("bound")
        medians = {f"{part}_ms": _median_ms(values) for part, values in samples.items()}
        return medians, runtime.freezer
    finally:
        runtime.close()


def commit_ms(folder: Path, count: int) -> float:
    """The median bare fsynced SQLite commit (WAL, synchronous=FULL), as bench_api's floor's."""
    db = sqlite3.connect(folder / "commit.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE c (id INTEGER PRIMARY KEY, at REAL)")
    db.execute("INSERT INTO c VALUES (1, 0)")
    samples = []
    for _ in range(count):
        began = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        db.execute("UPDATE c SET at = ? WHERE id = 1", (began,))
        db.execute("COMMIT")
        samples.append(time.perf_counter() - began)
    db.close()
    return _median_ms(samples)


def popen_ms(cycles: int) -> float:
    """The median of Popen, SIGTERM, wait of the benchmark's command."""
    samples = []
    for _ in range(cycles):
        began = time.perf_counter()
        proc = subprocess.Popen(COMMAND)
        proc.send_signal(signal.SIGTERM)
        proc.wait()
        samples.append(time.perf_counter() - began)
    return _median_ms(samples)


def measure(rounds: int, cycles: int, fires: int) -> dict[str, Any]:
    """Every part, ``rounds`` times; the medians and the bound."""
    kept: dict[str, list[float]] = {}
    freezer = ""
    with tempfile.TemporaryDirectory(prefix="chartd-bound-") as tmp:
        folder = Path(tmp)
        for n in range(rounds):
            here = folder / str(n)
            here.mkdir()
            url = f"sqlite:///{here / 'engine.db'}?synchronous=full"
            runtime, freezer = runtime_ms(here, cycles)
            parts = {
                **runtime,
                "trivial_ms": trivial_ms(here / "daemon", cycles * 10),
                "engine_saga_ms": 1000 / engine_rate(url, fires // 2, "saga", 1),
                "engine_direct_ms": 1000 / engine_rate(url, fires, "flip", 1),
                "commit_ms": commit_ms(here, fires),
                "popen_ms": popen_ms(cycles),
            }
            for name, value in parts.items():
                kept.setdefault(name, []).append(value)
    f = {name: statistics.median(values) for name, values in kept.items()}
    f["bound_ms"] = (
        2 * f["trivial_ms"]
        + f["runtime_ms"]
        + f["engine_saga_ms"]
        + 2 * f["engine_direct_ms"]
        - f["commit_ms"]
    )
    return {"rounds": rounds, "freezer": freezer, **f}


def main(argv: list[str] | None = None) -> int:
    """Measure and print the parts and the bound."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="one JSON object of every figure")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cycles", type=int, default=20, help="runtime and Popen cycles a round")
    parser.add_argument("--fires", type=int, default=300, help="engine fires and commits a round")
    args = parser.parse_args(argv)
    report = measure(args.rounds, args.cycles, args.fires)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"medians of {report['rounds']} rounds (freezer: {report['freezer']})")
    for name, value in report.items():
        if name.endswith("_ms"):
            print(f"  {name:18s} {value:7.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
