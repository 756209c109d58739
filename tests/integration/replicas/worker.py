"""One engine process of the replica tests: ``python worker.py ROLE URL [--node NAME] [ARGS]``.

The tests start several of these on one PostgreSQL database and check what
they did from the database afterwards. Each prints one JSON line when it has
done its part (or, for roles that wait to be killed, when it is in place).

Roles:

- ``fire N SEED ENTITY...``: N fires of ``bump`` on entities picked at random
  (lost races retried), then ``{"fired": N, "conflicts": k}``.
- ``saga ENTITY...``: fires ``deploy`` on each at once, whose second step prints
  ``{"held": pid, "entity": name}`` and blocks: the test SIGKILLs the process there.
- ``timers LOG``: fires due timers until SIGTERM; each ``ring`` step's do
  appends this process's pid to LOG, so the test counts how often each ran.
- ``fire-one ENTITY EVENT``: one fire, then ``{"seq": ...}`` of the newest event,
  or ``{"refused": category, "message": ...}`` if the engine refused it.

Every worker registers ``acct`` and ``pinned``, the same chart with ``affinity:
node``; ``--node`` names the worker's node (the host name by default).
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import threading
from typing import Any

import engine
from engine import Bindings, Context, Step, errors
from engine.runtime.limits import Limits

_LIFECYCLE = """
initial: idle
states:
  idle: {}
  deploying: {transient: true}
  up: {}
  rung: {}
  failed: {}
transitions:
  - {event: bump, from: idle, to: idle, steps: [add]}
  - {event: deploy, from: idle, to: up, via: deploying, steps: [pull, launch],
     on_failure: {to: failed}}
  - {event: arm, from: idle, to: idle, steps: [arm]}
  - {event: ring, from: idle, to: rung, steps: [ring]}
"""
CHART = engine.parse_chart("chart: acct" + _LIFECYCLE)

# The same lifecycle, for steps that act on one machine: entities belong to their node.
PINNED = engine.parse_chart("chart: pinned\naffinity: node" + _LIFECYCLE)

# Quick beats so that a killed process's work is taken over in about a second.
LIMITS = Limits(lease=1.0, beat=0.2)


def bindings(ring_log: str | None = None) -> Bindings:
    """The chart's steps; ``ring`` appends this pid to ``ring_log``."""

    def add(ctx: Context) -> None:
        ctx.data["n"] = int(ctx.data.get("n", 0)) + 1

    def arm(ctx: Context) -> None:
        ctx.schedule("ring", float(ctx.params.get("delay", 0.0)))

    def ring(ctx: Context) -> None:
        if ring_log is not None:
            with open(ring_log, "a") as log:
                log.write(f"{os.getpid()} {ctx.entity_name}\n")

    def pull(ctx: Context) -> str:
        return "pulled"

    def launch(ctx: Context) -> None:
        print(json.dumps({"held": os.getpid(), "entity": ctx.entity_name}), flush=True)
        threading.Event().wait()  # until SIGKILL

    return Bindings(
        steps={
            "add": Step(add, external=False),
            "arm": Step(arm, external=False),
            "ring": Step(ring, external=False),
            "pull": Step(pull, lambda ctx, payload: None),
            "launch": Step(launch, lambda ctx, payload: None),
        }
    )


def main(argv: list[str]) -> None:
    role, url, *args = argv
    node = None
    if args[:1] == ["--node"]:
        node, args = args[1], args[2:]
    timers = role == "timers"
    with engine.Engine.open(url, timers=timers, limits=LIMITS, node=node) as eng:
        for chart in (CHART, PINNED):
            eng.register(chart, bindings(args[0] if timers else None))
        if role == "fire":
            _fire(eng, int(args[0]), int(args[1]), args[2:])
        elif role == "saga":
            eng.fire_many([(name, "deploy") for name in args], concurrency=len(args))
        elif role == "timers":
            stop = threading.Event()
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
            print(json.dumps({"ready": os.getpid()}), flush=True)
            stop.wait()
        elif role == "fire-one":
            try:
                eng.fire(args[0], args[1])
            except errors.ChartdError as exc:
                print(json.dumps({"refused": exc.category, "message": exc.message}), flush=True)
                return
            print(json.dumps({"seq": eng.sequence()}), flush=True)


def _fire(eng: engine.Engine, n: int, seed: int, names: list[str]) -> None:
    rng = random.Random(seed)
    requests: list[Any] = [(rng.choice(names), "bump") for _ in range(n)]
    conflicts = 0
    while requests:
        results = eng.fire_many(requests, concurrency=8)
        again = [
            req for req, r in zip(requests, results, strict=True) if isinstance(r, errors.Conflict)
        ]
        for r in results:
            if isinstance(r, errors.ChartdError) and not isinstance(r, errors.Conflict):
                raise r
        conflicts += len(again)
        requests = again
    print(json.dumps({"fired": n, "conflicts": conflicts}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
