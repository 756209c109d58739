"""The child: opens the engine on the run's database, fires one event, and dies at a crash point.

A child runs ``spec`` (a JSON object the parent writes): ``fire`` fires one
event with an idempotency key, ``loop`` fires ``start``/``stop`` until the
parent kills it, ``recover`` only opens the engine and registers the chart,
so that it recovers what an earlier child left. Children are forked by a
:func:`zygote`, or started as fresh interpreters (``--child SPEC``).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import sys
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa

import engine
from engine.errors import ChartdError
from engine.ports import Store
from engine.runtime import Engine as RuntimeEngine
from engine.store import open_store
from tools.crash.acks import append_record
from tools.crash.crashbox import START_STEPS, STOP_STEPS, chart_for
from tools.crash.injection import CRASH, CrashingObserver, CrashingStore, crash_point
from tools.crash.resources import Resources


def _fire(
    eng: RuntimeEngine, spec: Mapping[str, Any], event: str, params: dict[str, Any], key: str
) -> str:
    acks = Path(spec["acks"])
    append_record(acks, {"kind": "intent", "key": key, "event": event, "params": params})
    CRASH.armed = True
    try:
        result = eng.fire(spec["entity"], event, params, idempotency_key=key)
    except ChartdError as exc:
        CRASH.armed = False
        record = {
            "kind": "ack",
            "key": key,
            "outcome": "failed",
            "tid": getattr(exc, "transition_id", None),
            "error": exc.message,
        }
        append_record(acks, record)
        CRASH.armed = True
        crash_point(f"{event}:failack:after")
        CRASH.armed = False
        return "idle" if event == "start" else "running"
    CRASH.armed = False
    append_record(
        acks,
        {
            "kind": "ack",
            "key": key,
            "outcome": "committed",
            "tid": result.transition_id,
            "version": result.entity.version,
            "configuration": list(result.configuration),
        },
    )
    CRASH.armed = True
    crash_point(f"{event}:ack:after")
    CRASH.armed = False
    return result.entity.state


def child(spec: Mapping[str, Any]) -> int:
    """Open the engine, then fire (or loop, or only recover) as ``spec`` says."""
    CRASH.point = spec.get("crash")
    resources = Resources(Path(spec["root"]), spec["run"], plant_leak=spec["plant_leak"])
    store = cast(Store, CrashingStore(open_store(spec["db"]), spec.get("key")))
    with engine.Engine(store, observer=CrashingObserver()) as eng:
        chart = chart_for(spec["chart"])
        if spec["mode"] == "recover":
            CRASH.armed = True
            eng.register(chart, resources.bindings())
            CRASH.armed = False
            return 0
        eng.register(chart, resources.bindings())
        if spec["mode"] == "fire":
            _fire(eng, spec, spec["event"], dict(spec["params"]), spec["key"])
            return 0
        # loop: start/stop until killed
        rng = random.Random(spec["seed"])
        state = eng.get(spec["entity"]).state
        Path(spec["ready"]).touch()
        for n in range(100_000):
            event = "start" if state == "idle" else "stop"
            params: dict[str, Any] = {}
            if rng.random() < 1 / 3:
                params["fail_at"] = rng.choice(START_STEPS if event == "start" else STOP_STEPS)
            state = _fire(eng, spec, event, params, f"{spec['name']}-{n}")
    return 0


def zygote() -> int:
    """Fork a child per request line on stdin; report its pid, then its exit code."""
    chart_for("warmup")  # import what parsing a chart imports lazily
    for name in ("sqlite", "postgresql"):
        with contextlib.suppress(Exception):
            sa.create_engine(f"{name}+{'pysqlite' if name == 'sqlite' else 'psycopg'}://")
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 2
            try:
                fd = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                os.close(fd)
                null = os.open(os.devnull, os.O_RDONLY)
                os.dup2(null, 0)
                os.close(null)
                code = child(request["spec"])
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"exit": os.waitstatus_to_exitcode(status)}), flush=True)
    return 0
