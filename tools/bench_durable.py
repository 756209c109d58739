"""Benchmark the durable engine against the floor: one bare SQLAlchemy Core commit.

What is measured
----------------
All on the same kind of SQLite file (WAL, the same ``synchronous`` setting),
side by side in rounds, each figure the median over the rounds:

* ``floor``: a bare SQLAlchemy Core transaction that updates one row and
  inserts one row, committed; one thread; statements built once. This is
  what any durable transition must pay at least.
* ``direct``: ``Engine.fire`` of a transition with no external step (a
  toggle between two states), one thread: the engine's minimum, one commit.
* ``saga3``: ``Engine.fire`` of a transition with three no-op external
  steps, one thread: the write-ahead commit, the steps (each journaled
  without waiting), the final commit.
* ``threads16``: 16 threads each firing direct transitions on its own
  entity; the total rate. Group commit lets them share commits.

Targets (from the issue): direct >= 0.5x floor, saga3 >= 0.25x floor,
threads16 >= 3x floor.

Run ``python tools/bench_durable.py`` (add ``--json`` for one JSON object
with every figure, ``--sync normal`` for SQLite's faster, less durable
mode).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

import engine
from engine import Bindings, Step

TARGETS = {"direct": 0.5, "saga3": 0.25, "threads16": 3.0}
THREADS = 16

CHART = {
    "chart": "bench",
    "initial": "off",
    "states": {"off": {}, "on": {}},
    "transitions": [
        {"event": "flip", "from": "off", "to": "on"},
        {"event": "flip", "from": "on", "to": "off"},
        {"event": "saga", "from": "off", "to": "on", "steps": ["s1", "s2", "s3"]},
        {"event": "saga", "from": "on", "to": "off", "steps": ["s1", "s2", "s3"]},
    ],
}


def _noop(ctx: engine.Context) -> None:
    return None


def _noop_undo(ctx: engine.Context, payload: Any) -> None:
    return None


BINDINGS = Bindings(steps={name: Step(_noop, _noop_undo) for name in ("s1", "s2", "s3")})


def _sqlite_url(path: Path, sync: str) -> str:
    return f"sqlite:///{path}?synchronous={sync}"


def floor_rate(path: Path, sync: str, count: int) -> float:
    """Commits per second of one UPDATE plus one INSERT, in SQLAlchemy Core."""
    eng = sa.create_engine(f"sqlite:///{path}")

    @sa.event.listens_for(eng, "connect")
    def _pragmas(dbapi: Any, _record: Any) -> None:
        cursor = dbapi.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={sync.upper()}")
        cursor.close()

    meta = sa.MetaData()
    counter = sa.Table(
        "floor_counter",
        meta,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("v", sa.Integer),
    )
    log = sa.Table(
        "floor_log", meta, sa.Column("id", sa.Integer, primary_key=True), sa.Column("x", sa.Text)
    )
    meta.create_all(eng)
    with eng.begin() as conn:
        conn.execute(counter.delete())
        conn.execute(counter.insert().values(id=1, v=0))
    # Statements built once, as a careful hand-written data layer would: the
    # floor is the best that bare Core does, not a straw man.
    bump = counter.update().where(counter.c.id == sa.bindparam("key")).values(v=counter.c.v + 1)
    append = log.insert()
    with eng.connect() as conn:
        start = time.perf_counter()
        for _ in range(count):
            with conn.begin():
                conn.execute(bump, {"key": 1})
                conn.execute(append, {"x": "flip"})
        seconds = time.perf_counter() - start
    eng.dispose()
    return count / seconds


def engine_rate(url: str, count: int, event: str, threads: int) -> float:
    """Fires per second of ``event`` by ``threads`` threads, each on its own entity."""
    with engine.Engine.open(url, timers=False) as eng:
        eng.register(engine.parse_chart(CHART), BINDINGS)
        tag = f"{event}-{time.monotonic_ns()}"
        entities = [eng.create("bench", f"{tag}-{i}") for i in range(threads)]
        per_thread = max(1, count // threads)
        barrier = threading.Barrier(threads + 1)
        errors: list[BaseException] = []

        def work(entity: engine.Entity) -> None:
            barrier.wait()
            try:
                for _ in range(per_thread):
                    eng.fire(entity, event)
            except BaseException as exc:  # reported after the run
                errors.append(exc)

        workers = [threading.Thread(target=work, args=(e,)) for e in entities]
        for w in workers:
            w.start()
        barrier.wait()
        start = time.perf_counter()
        for w in workers:
            w.join()
        seconds = time.perf_counter() - start
        if errors:
            raise RuntimeError(f"{event}: {errors[0]!r}")
        versions = [eng.get(e.id).version for e in entities]
        expected = per_thread * (2 if event == "saga" else 1)
        if any(v != expected for v in versions):
            raise RuntimeError(f"{event}: versions {versions} != {expected} each")
        return per_thread * threads / seconds


def measure(directory: Path, sync: str, rounds: int, count: int) -> dict[str, list[float]]:
    """Every figure, ``rounds`` times, interleaved in rotating order."""
    url = _sqlite_url(directory / "engine.db", sync)
    runs: dict[str, Callable[[], float]] = {
        "floor": lambda: floor_rate(directory / "floor.db", sync, count),
        "direct": lambda: engine_rate(url, count, "flip", 1),
        "saga3": lambda: engine_rate(url, count // 2, "saga", 1),
        "threads16": lambda: engine_rate(url, count * 2, "flip", THREADS),
    }
    names = list(runs)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            samples[name].append(runs[name]())
    return samples


def report(samples: dict[str, list[float]], args: argparse.Namespace) -> dict[str, Any]:
    """Medians, ratios to the floor and the targets, as one JSON-ready object."""
    medians = {name: statistics.median(values) for name, values in samples.items()}
    ratios = {name: medians[name] / medians["floor"] for name in TARGETS}
    return {
        "benchmark": "bench_durable",
        "sqlite_synchronous": args.sync,
        "rounds": args.rounds,
        "events_per_sample": args.count,
        "threads": THREADS,
        "median_per_s": medians,
        "samples_per_s": samples,
        "ratios_to_floor": ratios,
        "targets": {
            name: {
                "at_least": TARGETS[name],
                "ratio": ratios[name],
                "met": ratios[name] >= TARGETS[name],
            }
            for name in TARGETS
        },
        "python": platform.python_version(),
        "sqlalchemy": sa.__version__,
        "sqlite": __import__("sqlite3").sqlite_version,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--count", type=int, default=600, help="fires per sample")
    parser.add_argument("--sync", choices=["full", "normal", "off"], default="full")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="chartd-bench-") as tmp:
        samples = measure(Path(tmp), args.sync, args.rounds, args.count)
    result = report(samples, args)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"SQLite WAL, synchronous={args.sync}, {args.rounds} rounds, medians")
    for name, rate in result["median_per_s"].items():
        line = f"  {name:<10} {rate:>9,.0f}/s"
        if name in TARGETS:
            target = result["targets"][name]
            verdict = "met" if target["met"] else "NOT met"
            line += f"   {target['ratio']:.2f}x floor (target >= {target['at_least']}x: {verdict})"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
