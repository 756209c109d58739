"""Benchmark the engine at a control plane's size: a thousand to a million entities.

What is measured
----------------
One engine on one SQLite file (WAL, ``synchronous=FULL``, the embedded
default), grown in steps to 1,000, 100,000 and ``--entities`` entities of a
two-state chart. At each size, side by side in one run:

* ``create_many``: entities/s of the bulk create that grew the database
  (10,000 a call), and the process's CPU per entity;
  ``create``: entities/s of ``Engine.create`` one by one (measured at the
  first size only: each is a durable commit of its own);
* ``fire``: fires/s of a direct transition on random entities, one thread;
* ``get``: microseconds per ``Engine.get`` of a random entity by id and by name;
  each per-call figure also as ``..._cpu_us``, this thread's CPU time, which
  a machine loaded by other processes disturbs far less than the wall clock;
* ``list``: microseconds per page of 100 entities from a random position;
* ``open``: seconds to open the engine on the database and register the
  chart (which recovers unfinished transitions): what a restart costs;
* ``rss_mb``: the peak resident memory of this process at the end.

The ratios (``ratios``, ``met``) compare the largest size with a second
database of 1,000 entities kept open beside it, measured in turn with it
three times once the growth is over (``paired``: the medians): figures taken
minutes apart, on a machine whose load changes meanwhile, moved the ratios
by 2x from one run to the next. The figures at each size as it was reached
are kept under ``sizes``.

Targets (issue 10): create_many >= 20,000/s; fire and get at the largest size
cost at most 1.25x what they cost at 1,000; peak RSS <= 200 MB; open at the
largest size <= 2 s.

Run ``python tools/bench_scale.py`` (a million entities takes a few minutes
and about 1 GB of disk), ``--entities 100000`` for a quicker run, ``--json``
for one JSON object with every figure and ratio.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import engine

TARGETS = {
    "create_many": 20_000.0,
    "fire_ratio": 1.25,
    "get_ratio": 1.25,
    "rss_mb": 200.0,
    "open_s": 2.0,
}

CHART = {
    "chart": "scale",
    "initial": "off",
    "states": {"off": {}, "on": {}},
    "transitions": [
        {"event": "flip", "from": "off", "to": "on"},
        {"event": "flip", "from": "on", "to": "off"},
    ],
}


def _per_call_us(calls: int, run: Callable[[int], object]) -> tuple[float, float]:
    """Median microseconds per call of ``run(i)`` over five rounds of ``calls`` calls:
    of the wall clock, and of this thread's CPU (which other processes on a
    loaded machine disturb far less)."""
    walls, cpus = [], []
    for _ in range(5):
        started, cpu = time.perf_counter(), time.thread_time()
        for i in range(calls):
            run(i)
        cpus.append((time.thread_time() - cpu) / calls * 1e6)
        walls.append((time.perf_counter() - started) / calls * 1e6)
    return statistics.median(walls), statistics.median(cpus)


class Sized:
    """One database grown to ever larger sizes, measured at each."""

    def __init__(self, folder: Path, seed: int) -> None:
        self.url = f"sqlite:///{folder / 'scale.db'}"
        self.chart = engine.parse_chart(CHART)
        self.eng = self._open()
        self.size = 0
        self.random = random.Random(seed)

    def _open(self) -> engine.Engine:
        eng = engine.Engine.open(self.url)
        eng.register(self.chart)
        return eng

    def grow(self, size: int) -> tuple[float, float]:
        """Create entities up to ``size``, 10,000 a ``create_many`` call (the results
        of one call alive at a time, as a loader that keeps none would); their rate
        per second, and the process's CPU microseconds (every thread) per entity."""
        started, cpu = time.perf_counter(), time.process_time()
        batch = 10_000
        for first in range(self.size, size, batch):
            last = min(size, first + batch)
            made = self.eng.create_many("scale", ((f"e{i}", {"i": i}) for i in range(first, last)))
            failed = [r for r in made if not isinstance(r, engine.Entity)]
            if failed:
                raise SystemExit(f"create_many failed: {failed[0]}")
        count = size - self.size
        rate = count / (time.perf_counter() - started)
        cpu_us = (time.process_time() - cpu) / count * 1e6
        self.size = size
        return rate, cpu_us

    def create_one_by_one(self, count: int) -> float:
        started = time.perf_counter()
        for i in range(count):
            self.eng.create("scale", f"single{self.size}-{i}")
        return count / (time.perf_counter() - started)

    def costs(self, samples: int) -> dict[str, float]:
        """Fire, get and list costs at the current size."""
        names = [f"e{self.random.randrange(self.size)}" for _ in range(samples)]
        ids = [self.eng.get(n).id for n in names]
        fire_us, fire_cpu_us = _per_call_us(samples, lambda i: self.eng.fire(ids[i], "flip"))
        figures = {"fire_per_s": 1e6 / fire_us, "fire_cpu_us": fire_cpu_us}
        for key, refs in (("get_id", ids), ("get_name", names)):
            wall, cpu = _per_call_us(samples, lambda i, refs=refs: self.eng.get(refs[i]))
            figures[f"{key}_us"], figures[f"{key}_cpu_us"] = wall, cpu
        after = [self.random.randrange(self.size) for _ in range(samples // 10)]
        figures["list_page_us"], figures["list_page_cpu_us"] = _per_call_us(
            len(after), lambda i: self.eng.list("scale", after=after[i], limit=100)
        )
        return figures

    def measure(self, samples: int) -> dict[str, float]:
        """:meth:`costs` at the current size, and the time to open it again."""
        figures = self.costs(samples)
        self.eng.close()
        started = time.perf_counter()
        self.eng = self._open()
        figures["open_s"] = time.perf_counter() - started
        return figures

    def close(self) -> None:
        self.eng.close()


def _paired(small: Sized, large: Sized, samples: int, turns: int = 3) -> dict[str, Any]:
    """:meth:`Sized.costs` of ``small`` and ``large`` measured in turn, the medians of each
    figure: what the machine's load does meanwhile, it does to both."""
    rounds: dict[str, list[dict[str, float]]] = {"small": [], "large": []}
    for _ in range(turns):
        rounds["small"].append(small.costs(samples))
        rounds["large"].append(large.costs(samples))
    return {
        side: {key: statistics.median(r[key] for r in figures) for key in figures[0]}
        for side, figures in rounds.items()
    }


def run(entities: int, samples: int, seed: int) -> dict[str, Any]:
    sizes = sorted({s for s in (1_000, 100_000, entities) if s <= entities})
    out: dict[str, Any] = {"entities": entities, "sizes": {}, "targets": TARGETS}
    with tempfile.TemporaryDirectory(prefix="chartd-scale-") as tmp:
        sized = Sized(Path(tmp), seed)
        rates = []
        for size in sizes:
            rates.append((size - sized.size, *sized.grow(size)))
            figures = sized.measure(samples)
            if size == sizes[0]:
                out["create_per_s"] = sized.create_one_by_one(min(samples, 500))
            out["sizes"][str(size)] = figures
            print(f"  {size:>9,} entities: {json.dumps(figures)}", file=sys.stderr)
        (Path(tmp) / "small").mkdir()
        reference = Sized(Path(tmp) / "small", seed + 1)
        reference.grow(sizes[0])
        out["paired"] = _paired(reference, sized, samples)
        print(f"  paired: {json.dumps(out['paired'])}", file=sys.stderr)
        reference.close()
        sized.close()
    made = sum(n for n, _, _ in rates)
    out["create_many_per_s"] = made / sum(n / r for n, r, _ in rates)
    out["create_many_cpu_us"] = sum(n * cpu for n, _, cpu in rates) / made
    small, large = out["paired"]["small"], out["paired"]["large"]
    out["ratios"] = {
        "create_many_vs_create": out["create_many_per_s"] / out["create_per_s"],
        "fire_cost": small["fire_per_s"] / large["fire_per_s"],
        "get_id_cost": large["get_id_us"] / small["get_id_us"],
        "get_name_cost": large["get_name_us"] / small["get_name_us"],
        "get_id_cpu_cost": large["get_id_cpu_us"] / small["get_id_cpu_us"],
        "get_name_cpu_cost": large["get_name_cpu_us"] / small["get_name_cpu_us"],
        "fire_cpu_cost": large["fire_cpu_us"] / small["fire_cpu_us"],
        "list_cost": large["list_page_us"] / small["list_page_us"],
    }
    # ru_maxrss is in kilobytes on Linux.
    out["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["met"] = {
        "create_many": out["create_many_per_s"] >= TARGETS["create_many"],
        "fire": out["ratios"]["fire_cost"] <= TARGETS["fire_ratio"],
        "get": max(out["ratios"]["get_id_cost"], out["ratios"]["get_name_cost"])
        <= TARGETS["get_ratio"],
        "rss": out["rss_mb"] <= TARGETS["rss_mb"],
        "open": out["sizes"][str(sizes[-1])]["open_s"] <= TARGETS["open_s"],
    }
    out["machine"] = {"python": platform.python_version(), "machine": platform.machine()}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entities", type=int, default=1_000_000, help="the largest size")
    parser.add_argument("--samples", type=int, default=2_000, help="calls per measure")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args(argv)
    if args.entities < 1_000:
        parser.error("--entities must be at least 1000")
    out = run(args.entities, args.samples, args.seed)
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"create one by one: {out['create_per_s']:,.0f}/s")
    print(
        f"create_many:       {out['create_many_per_s']:,.0f}/s "
        f"({out['create_many_cpu_us']:.1f} us of CPU each)"
    )
    for size, figures in out["sizes"].items():
        print(
            f"{int(size):>9,}: fire {figures['fire_per_s']:,.0f}/s, "
            f"get {figures['get_id_us']:.0f} us "
            f"(by name {figures['get_name_us']:.0f}), list page {figures['list_page_us']:.0f} us, "
            f"open {figures['open_s']:.2f} s"
        )
    small, large = out["paired"]["small"], out["paired"]["large"]
    print(
        f"in turn, 1,000 beside {args.entities:,}: fire {small['fire_per_s']:,.0f}/s "
        f"and {large['fire_per_s']:,.0f}/s, get {small['get_id_us']:.0f} and "
        f"{large['get_id_us']:.0f} us (by name {small['get_name_us']:.0f} and "
        f"{large['get_name_us']:.0f})"
    )
    print(f"ratios: {json.dumps({k: round(v, 2) for k, v in out['ratios'].items()})}")
    print(f"peak RSS {out['rss_mb']:.0f} MB; targets met: {json.dumps(out['met'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
