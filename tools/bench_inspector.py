"""Benchmark the inspector: a chart page at 1k and 100k entities, and 50 live pages vs none.

What is measured
----------------
* ``page_ms``: the server time of a chart's page (``GET /charts/bench``,
  through Starlette's test client in this process: the app, the store's
  reads and the rendering, no network), median of ``--requests`` requests,
  at ``--small`` and at ``--entities`` live entities on a SQLite file. Three
  pages: the first, a deep one (keyset-paged: ``?after=`` near the end), and
  the first filtered by state. The diagram is drawn once per chart and
  kept, so it is left out by a warm-up request. The target: the page at
  100k within the same server time as at 1k (ratio near 1), since a page
  reads one index range and the counts come from the feed's memory.
* ``count_ms`` (information): the feed's one grouped count of the live
  entities when the inspector starts (and when an event does not say where
  an entity went): the one read that grows with the entities.
* ``fires_per_s``: the engine's fire rate on one entity (toggled on and
  off, one fire at a time) that ``--clients`` pages follow on uvicorn
  (clients in a subprocess of their own, so their parsing is not this
  process's GIL), beside the rate on an entity no page follows, in
  ``--rounds`` alternating rounds of ``--fires``, medians. The target: with
  50 clients at least 90% of the rate without (``ratio_fires_with_clients``),
  since one feed renders the entity once per change for all of them.

Run ``python tools/bench_inspector.py`` (``--json`` for one JSON object).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script
    sys.path.insert(0, str(REPO))

import engine  # noqa: E402
from engine.api.address import Address  # noqa: E402
from engine.web import Inspector, Source  # noqa: E402
from engine.web.serve import serve_inspector  # noqa: E402

CHART = engine.parse_chart(
    """
chart: bench
initial: off
states:
  off: {}
  on: {}
transitions:
  - {event: flip, from: off, to: on}
  - {event: flip, from: on, to: off}
"""
)

# The clients' process: N streams of one entity's events, counting messages.
_CLIENTS = """
import asyncio, sys, httpx
url, n = sys.argv[1], int(sys.argv[2])
async def follow(client, ready):
    async with client.stream("GET", url) as r:
        ready.append(1)
        if len(ready) == n:
            print("ready", flush=True)
        async for line in r.aiter_lines():
            pass
async def main():
    ready = []
    async with httpx.AsyncClient(timeout=None) as client:
        await asyncio.gather(*(follow(client, ready) for _ in range(n)))
asyncio.run(main())
"""


def _fill(eng: engine.Engine, count: int, prefix: str) -> None:
    batch = 5000
    for start in range(0, count, batch):
        items = [(f"{prefix}{i:07d}", None) for i in range(start, min(start + batch, count))]
        eng.create_many("bench", items)


def page_figures(eng: engine.Engine, count: int, requests: int) -> dict[str, float]:
    """Median server times of three chart pages, and of the feed's count."""
    from starlette.testclient import TestClient  # noqa: PLC0415

    started = time.perf_counter()
    Source.of_engine(eng).counts()
    count_ms = (time.perf_counter() - started) * 1000
    inspector = Inspector(Source.of_engine(eng), hosts=["testserver"])
    inspector.start()
    try:
        with TestClient(inspector.app) as client:
            client.get("/charts/bench")  # draws the diagram once
            figures = {"count_ms": count_ms}
            for name, params in (
                ("first", {}),
                # Entities' seqs count up from 1 in creation order: this is the last page.
                ("deep", {"after": str(max(count - 60, 0))}),
                ("state", {"state": "on"}),
            ):
                times = []
                for _ in range(requests):
                    t = time.perf_counter()
                    assert client.get("/charts/bench", params=params).status_code == 200
                    times.append((time.perf_counter() - t) * 1000)
                figures[f"page_{name}_ms"] = statistics.median(times)
        return figures
    finally:
        inspector.close()


def fire_rate(eng: engine.Engine, entity: str, fires: int) -> float:
    """Fires per second on ``entity``, one at a time."""
    started = time.perf_counter()
    for _ in range(fires):
        eng.fire(entity, "flip")
    return fires / (time.perf_counter() - started)


def live_figures(eng: engine.Engine, clients: int, fires: int, rounds: int) -> dict[str, float]:
    """The fire rate on an entity ``clients`` pages follow, and on one nobody follows.

    The clients stay connected throughout; the rounds alternate between the
    two entities, so both see the same machine (disk, load) at nearly the
    same moments.
    """
    followed, alone = eng.create("bench", "followed"), eng.create("bench", "alone")
    served = serve_inspector(Source.of_engine(eng), Address("tcp", host="127.0.0.1"))
    url = f"{served.url}events?entity={followed.id}"
    proc = subprocess.Popen(
        [sys.executable, "-c", _CLIENTS, url, str(clients)], stdout=subprocess.PIPE, text=True
    )
    with_clients, without = [], []
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 60
        while served.inspector.feed.clients() < clients and time.monotonic() < deadline:
            time.sleep(0.05)
        for entity in (alone, followed):
            fire_rate(eng, entity.id, fires // 4)  # warm
        for _ in range(rounds):
            without.append(fire_rate(eng, alone.id, fires))
            with_clients.append(fire_rate(eng, followed.id, fires))
    finally:
        proc.kill()
        proc.wait()
        served.close()
    none, some = statistics.median(without), statistics.median(with_clients)
    return {
        "fires_per_s_no_clients": none,
        f"fires_per_s_{clients}_clients": some,
        "ratio_fires_with_clients": some / none,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="one JSON object of every figure")
    parser.add_argument("--small", type=int, default=1_000, help="entities of the small case")
    parser.add_argument("--entities", type=int, default=100_000, help="entities of the large case")
    parser.add_argument("--requests", type=int, default=30, help="page requests per figure")
    parser.add_argument("--clients", type=int, default=50, help="live pages on one entity")
    parser.add_argument("--fires", type=int, default=500, help="fires per round")
    parser.add_argument("--rounds", type=int, default=10, help="alternating rounds")
    args = parser.parse_args(argv)
    report: dict[str, Any] = {"entities": {"small": args.small, "large": args.entities}}
    with tempfile.TemporaryDirectory(prefix="bench-inspector-") as tmp:
        for case, count in (("small", args.small), ("large", args.entities)):
            url = f"sqlite:///{Path(tmp) / f'{case}.db'}"
            with engine.Engine.open(url) as eng:
                eng.register(CHART)
                _fill(eng, count, "e")
                # A tenth of them in 'on', for the page filtered by state.
                eng.fire_many([(f"e{i:07d}", "flip") for i in range(count // 10)])
                for name, value in page_figures(eng, count, args.requests).items():
                    report[f"{case}_{name}"] = value
        for name in ("first", "deep", "state"):
            large, small = report[f"large_page_{name}_ms"], report[f"small_page_{name}_ms"]
            report[f"ratio_page_{name}_large_to_small"] = large / small
        with engine.Engine.open(f"sqlite:///{Path(tmp) / 'live.db'}") as eng:
            eng.register(CHART)
            report |= live_figures(eng, args.clients, args.fires, args.rounds)
    report["clients"] = args.clients
    report["machine"] = f"{os.cpu_count()} cores, Python {sys.version.split()[0]}"
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        for key, value in sorted(report.items()):
            shown = f"{value:.3f}" if isinstance(value, float) else value
            print(f"{key:40} {shown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
