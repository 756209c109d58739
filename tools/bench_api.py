"""Benchmark the gRPC API: container start/stop round trips beside a trivial call.

What is measured
----------------
A daemon runs in its own process on a unix socket in a temporary state
directory; the client is this process, one channel, one call at a time.
Side by side in rounds, each figure the median over the rounds:

* ``trivial``: ``Engine.Version``, the cheapest call there is: what any call
  costs in gRPC and the servicer plumbing. ``health`` (the standard health
  Check) is measured beside it.
* ``lifecycle``: ``Containers.Start`` then ``Containers.Stop`` of one
  container, repeated; each is a call, a round trip is both. Stop returns
  once the container has exited, as docker's does.
* ``direct``: the same start/stop on the ``Containers`` service in this
  process, with no gRPC: the engine and the runtime alone.

Two runtimes: ``process`` (the real daemon, ``chartd serve``, real
processes: ``sleep`` started and stopped with SIGTERM) and ``fake`` (the
same service on the in-memory FakeRuntime, served by this script in a
subprocess: the cost of the API, the engine and its SQLite commits without
the cost of a process).

The issue's target: lifecycle calls reach at least 60% of the trivial
call's rate. ``server_cpu_ms`` figures come from the daemon's /proc stat
(10 ms ticks), to say where the time of a call goes.

Run ``python tools/bench_api.py`` (``--json`` for one JSON object with
every figure and ratio; ``--runtime process`` or ``fake`` for one only).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TARGET = 0.6
REPO = Path(__file__).resolve().parents[1]
_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


# -- the servers ------------------------------------------------------------------------


def _fake_runtime() -> Any:
    """A FakeRuntime whose exits reach subscribers from a thread of their own.

    FakeRuntime calls subscribers inside ``kill``, that is inside the stop
    saga, which holds the container's lock: the exit it reports would wait
    for that lock forever. The process runtime reports exits from its own
    thread; so does this wrapper.
    """
    from statecharts.container.faults import FakeRuntime  # noqa: PLC0415

    class ThreadedExits(FakeRuntime):
        def __init__(self) -> None:
            super().__init__()
            self._exits: queue.SimpleQueue[tuple[Any, Any]] = queue.SimpleQueue()
            threading.Thread(target=self._pump, daemon=True).start()

        def subscribe(self, callback: Any) -> None:
            super().subscribe(lambda event: self._exits.put((callback, event)))

        def _pump(self) -> None:
            while True:
                callback, event = self._exits.get()
                callback(event)

    return ThreadedExits()


def serve_fake(state_dir: Path) -> None:
    """Serve the Containers API on a FakeRuntime until SIGTERM (the ``fake`` server)."""
    import engine  # noqa: PLC0415 - the server side's imports, in the server process only
    from engine.api import ApiServer, parse_address  # noqa: PLC0415
    from statecharts.container.service import Containers, status_of  # noqa: PLC0415

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    state_dir.mkdir(parents=True, exist_ok=True)
    with engine.Engine.open(f"sqlite:///{state_dir / 'chartd.db'}") as eng:
        containers = Containers(eng, _fake_runtime(), state_dir)
        api = ApiServer(eng, version="bench", containers=containers, status_of=status_of)
        api.bind(parse_address(f"unix://{state_dir / 'chartd.sock'}"))
        api.start()
        while not stop.wait(0.2):
            pass
        api.stop(0)


@contextmanager
def daemon(runtime: str, state_dir: Path) -> Iterator[tuple[Any, int]]:
    """A server process of ``runtime`` on a socket in ``state_dir``: (client, pid)."""
    from engine.api import Client  # noqa: PLC0415

    if runtime == "process":
        args = [sys.executable, "-c", "from engine.cli import main; main()", "serve"]
        args += ["--state-dir", str(state_dir), "--log-level", "warning"]
    else:
        args = [sys.executable, str(Path(__file__).resolve()), "--serve-fake", str(state_dir)]
    proc = subprocess.Popen(args, cwd=REPO, stderr=subprocess.DEVNULL)
    client = Client(f"unix://{state_dir / 'chartd.sock'}")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                client.wait_ready(timeout=0.5)
                break
            except Exception:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the {runtime} server did not start") from None
        yield client, proc.pid
    finally:
        client.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


# -- the measurements -------------------------------------------------------------------


def _rate(count: int, call: Callable[[], object], pid: int | None) -> tuple[float, float]:
    """(calls per second, server CPU ms per call) of ``count`` sequential calls."""
    cpu = _cpu_seconds(pid) if pid else 0.0
    start = time.perf_counter()
    for _ in range(count):
        call()
    elapsed = time.perf_counter() - start
    server_ms = (_cpu_seconds(pid) - cpu) * 1000 / count if pid else 0.0
    return count / elapsed, server_ms


def measure_rpc(
    runtime: str, rounds: int, trivial: int, cycles: int, state_dir: Path
) -> dict[str, float]:
    """The trivial and lifecycle rates through gRPC on one server of ``runtime``."""
    from grpc_health.v1 import health_pb2  # noqa: PLC0415

    from engine.api.chartd.v1 import containers_pb2 as c  # noqa: PLC0415
    from engine.api.chartd.v1 import engine_pb2 as e  # noqa: PLC0415

    figures: dict[str, list[float]] = {}

    def keep(name: str, value: float) -> None:
        figures.setdefault(name, []).append(value)

    with daemon(runtime, state_dir) as (client, pid):
        created = client.containers.Create(
            c.CreateContainerRequest(cmd=["sleep", "1000"], name="bench")
        )
        start = c.StartContainerRequest(container=created.id)
        stop = c.StopContainerRequest(container=created.id)
        version = e.VersionRequest()
        health = health_pb2.HealthCheckRequest()
        # Warm up: channel, caches, the first commit.
        for _ in range(3):
            client.engine.Version(version)
            client.containers.Start(start)
            client.containers.Stop(stop)
        for _ in range(rounds):
            rate, cpu = _rate(trivial, lambda: client.engine.Version(version), pid)
            keep("trivial_calls_per_s", rate)
            keep("trivial_server_cpu_ms", cpu)
            rate, _ = _rate(trivial, lambda: client.health_check(health), pid)
            keep("health_calls_per_s", rate)
            starts: list[float] = []
            stops: list[float] = []

            def cycle(starts: list[float] = starts, stops: list[float] = stops) -> None:
                t0 = time.perf_counter()
                client.containers.Start(start)
                t1 = time.perf_counter()
                client.containers.Stop(stop)
                starts.append(t1 - t0)
                stops.append(time.perf_counter() - t1)

            rate, cpu = _rate(cycles, cycle, pid)
            keep("start_stop_round_trips_per_s", rate)
            keep("lifecycle_calls_per_s", 2 * rate)
            keep("lifecycle_server_cpu_ms", cpu / 2)
            keep("start_ms", statistics.median(starts) * 1000)
            keep("stop_ms", statistics.median(stops) * 1000)
    return {name: statistics.median(values) for name, values in figures.items()}


def measure_direct(runtime: str, rounds: int, cycles: int, state_dir: Path) -> float:
    """Start/stop round trips per second on the Containers service in this process."""
    import engine  # noqa: PLC0415
    from statecharts.container.process import ProcessRuntime  # noqa: PLC0415
    from statecharts.container.runtime import Runtime  # noqa: PLC0415
    from statecharts.container.service import Containers  # noqa: PLC0415

    state_dir.mkdir(parents=True, exist_ok=True)
    rt: Runtime = ProcessRuntime(state_dir / "runtime") if runtime == "process" else _fake_runtime()
    rates = []
    with engine.Engine.open(f"sqlite:///{state_dir / 'chartd.db'}") as eng:
        containers = Containers(eng, rt, state_dir)
        created = containers.create(["sleep", "1000"], name="bench")

        def cycle() -> None:
            containers.start(created.id)
            containers.stop(created.id)

        for _ in range(3):
            cycle()
        for _ in range(rounds):
            rates.append(_rate(cycles, cycle, None)[0])
        containers.shutdown()
    rt.close()
    return statistics.median(rates)


def run(runtimes: list[str], rounds: int, trivial: int, cycles: dict[str, int]) -> dict[str, Any]:
    """Every figure of every runtime, and the ratios."""
    report: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
        "rounds": rounds,
        "trivial_calls_per_round": trivial,
        "target_lifecycle_to_trivial": TARGET,
        "runtimes": {},
    }
    for runtime in runtimes:
        with tempfile.TemporaryDirectory(prefix="chartd-bench-") as tmp:
            figures: dict[str, Any] = {"cycles_per_round": cycles[runtime]}
            figures |= measure_rpc(runtime, rounds, trivial, cycles[runtime], Path(tmp) / "rpc")
            direct = measure_direct(runtime, rounds, cycles[runtime], Path(tmp) / "direct")
        figures["direct_start_stop_round_trips_per_s"] = direct
        figures["ratio_lifecycle_to_trivial"] = (
            figures["lifecycle_calls_per_s"] / figures["trivial_calls_per_s"]
        )
        figures["ratio_rpc_to_direct"] = figures["start_stop_round_trips_per_s"] / direct
        figures["target_met"] = figures["ratio_lifecycle_to_trivial"] >= TARGET
        report["runtimes"][runtime] = figures
    return report


def _print(report: dict[str, Any]) -> None:
    print(f"python {report['python']} on {report['machine']}; medians of {report['rounds']} rounds")
    for runtime, f in report["runtimes"].items():
        print(f"\n{runtime} runtime ({f['cycles_per_round']} start/stop cycles a round)")
        print(f"  trivial call (Engine.Version)  {f['trivial_calls_per_s']:9.0f} calls/s"
              f"   server CPU {f['trivial_server_cpu_ms']:.2f} ms/call")  # fmt: skip
        print(f"  health Check                   {f['health_calls_per_s']:9.0f} calls/s")
        print(f"  start + stop through gRPC      {f['lifecycle_calls_per_s']:9.1f} calls/s"
              f"   server CPU {f['lifecycle_server_cpu_ms']:.2f} ms/call")  # fmt: skip
        print(f"    round trips                  {f['start_stop_round_trips_per_s']:9.1f} /s"
              f"   start {f['start_ms']:.1f} ms, stop {f['stop_ms']:.1f} ms")  # fmt: skip
        print(f"  start + stop in process        {f['direct_start_stop_round_trips_per_s']:9.1f}"
              " round trips/s (no gRPC)")  # fmt: skip
        verdict = "met" if f["target_met"] else "NOT met"
        ratio, over = f["ratio_lifecycle_to_trivial"], f["ratio_rpc_to_direct"]
        print(f"  lifecycle / trivial = {ratio:.3f} (target {TARGET}: {verdict});"
              f" gRPC / in-process = {over:.2f}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with ``--serve-fake``, be its fake-runtime server)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="one JSON object of every figure")
    parser.add_argument("--runtime", choices=("process", "fake", "both"), default="both")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--trivial", type=int, default=500, help="trivial calls a round")
    parser.add_argument("--cycles", type=int, default=0, help="start/stop cycles a round")
    parser.add_argument("--serve-fake", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_fake:
        serve_fake(args.serve_fake)
        return 0
    runtimes = ["process", "fake"] if args.runtime == "both" else [args.runtime]
    cycles = {"process": args.cycles or 20, "fake": args.cycles or 100}
    report = run(runtimes, args.rounds, args.trivial, cycles)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
