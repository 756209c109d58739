"""Fires/s of 1, 2 and 4 engine processes on one PostgreSQL, beside the floor.

``python tools/bench_postgres.py [--url URL] [--seconds S] [--json]``

URL is a database to administer from; the runs use a database of their own,
``chartd_bench``, created there if missing and emptied before each run.

Each run starts N processes at once on a fresh schema; each fires ``bump``
(one durable commit: an entity UPDATE, a journal INSERT, an outbox INSERT)
for S seconds, on entities of its own (``disjoint``) or on a hot set of 8
shared by all (``hot``). The floor is a bare SQLAlchemy Core transaction per
fire, an UPDATE and an INSERT, by N processes. Targets (docs/replicas.md):
per process >= 0.5x the floor's per-process rate on disjoint entities, and
the engine's 1 -> 4 gain >= 0.8x the floor's own.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DEFAULT_URL = os.environ.get(
    "CHARTD_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
CHART = """
chart: acct
initial: idle
states: {idle: {}}
transitions:
  - {event: bump, from: idle, to: idle, set: {touched: true}}
"""
HOT = 8


def _engine_worker(url: str, names: list[str], seconds: float, start: Any, out: Any) -> None:
    import engine  # noqa: PLC0415 (after fork: each process its own)

    with engine.Engine.open(url, timers=False) as eng:
        eng.register(engine.parse_chart(CHART))
        start.wait()
        n, i, end = 0, 0, time.perf_counter() + seconds
        while time.perf_counter() < end:
            try:
                eng.fire(names[i % len(names)], "bump")
                n += 1
            except engine.errors.Conflict:
                pass
            i += 1
        out.put(n)


def _floor_worker(url: str, ids: list[int], seconds: float, start: Any, out: Any) -> None:
    db = sa.create_engine(url)
    start.wait()
    n, end = 0, time.perf_counter() + seconds
    with db.connect() as conn:
        while time.perf_counter() < end:
            with conn.begin():
                conn.execute(
                    sa.text("UPDATE bench_rows SET v = v + 1 WHERE id = :id"),
                    {"id": ids[n % len(ids)]},
                )
                conn.execute(
                    sa.text("INSERT INTO bench_log (id, at) VALUES (:id, :at)"),
                    {"id": ids[n % len(ids)], "at": time.time()},
                )
            n += 1
    db.dispose()
    out.put(n)


def _reset(url: str) -> None:
    db = sa.create_engine(url)
    with db.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
        conn.execute(sa.text("CREATE TABLE bench_rows (id int PRIMARY KEY, v int NOT NULL)"))
        conn.execute(sa.text("CREATE TABLE bench_log (id int, at float8)"))
        conn.execute(sa.text("INSERT INTO bench_rows SELECT g, 0 FROM generate_series(0, 999) g"))
    db.dispose()


def _run(kind: str, url: str, procs: int, hot: bool, seconds: float) -> float:
    _reset(url)
    names = [
        [f"h{i}" for i in range(HOT)] if hot else [f"p{p}-{i}" for i in range(50)]
        for p in range(procs)
    ]
    if kind == "engine":
        import engine  # noqa: PLC0415

        with engine.Engine.open(url, timers=False) as eng:
            eng.register(engine.parse_chart(CHART))
            for name in sorted({n for ns in names for n in ns}):
                eng.create("acct", name)
    ctx = mp.get_context("fork")
    start, out = ctx.Event(), ctx.Queue()
    target = _engine_worker if kind == "engine" else _floor_worker
    args = [
        names[p]
        if kind == "engine"
        else (list(range(HOT)) if hot else list(range(p * 50, p * 50 + 50)))
        for p in range(procs)
    ]
    ps = [ctx.Process(target=target, args=(url, a, seconds, start, out)) for a in args]
    for p in ps:
        p.start()
    time.sleep(1.0)  # every process connected and registered
    start.set()
    total = sum(out.get() for _ in ps)
    for p in ps:
        p.join()
    return total / seconds


def _bench_database(admin_url: str) -> str:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        found = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = 'chartd_bench'"))
        if found.first() is None:
            conn.execute(sa.text("CREATE DATABASE chartd_bench"))
    admin.dispose()
    return sa.make_url(admin_url).set(database="chartd_bench").render_as_string(hide_password=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    url = _bench_database(args.url)
    rows: dict[str, dict[str, float]] = {}
    for kind in ("floor", "engine"):
        for where in ("disjoint", "hot"):
            rows[f"{kind}/{where}"] = {
                str(n): round(_run(kind, url, n, where == "hot", args.seconds), 1)
                for n in (1, 2, 4)
            }
    floor, eng = rows["floor/disjoint"], rows["engine/disjoint"]
    report = {
        "fires_per_second": rows,
        "per_process_vs_floor": round(eng["1"] / floor["1"], 2),
        "gain_1_to_4": {
            "engine": round(eng["4"] / eng["1"], 2),
            "floor": round(floor["4"] / floor["1"], 2),
        },
    }
    report["targets_met"] = {
        "per_process": report["per_process_vs_floor"] >= 0.5,
        "gain": report["gain_1_to_4"]["engine"] >= 0.8 * report["gain_1_to_4"]["floor"],
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for name, by_n in rows.items():
            print(f"{name:16} " + "  ".join(f"{n}p {v:8.1f}/s" for n, v in by_n.items()))
        print(json.dumps({k: v for k, v in report.items() if k != "fires_per_second"}))


if __name__ == "__main__":
    main()
