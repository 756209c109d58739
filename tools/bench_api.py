"""Benchmark the API's container lifecycle: a start+stop round trip beside its physical floor.

What is measured
----------------
A daemon runs in its own process on a unix socket in a temporary state
directory; the client is this process, one channel, one call at a time.
Side by side in rounds (each round runs the floor's cycles, then the
daemon's), each figure the median over the rounds of the round's median:

* ``round trip``: ``Containers.Start`` then ``Containers.Stop`` of one
  container running ``sleep 1000``; Stop returns once the container has
  exited and its exit is committed, as docker's does.
* ``floor``: the least a start and a stop can cost on this machine: the same
  command spawned with ``subprocess.Popen``, SIGTERM, wait, plus two fsynced
  SQLite commits (WAL, ``synchronous=FULL``, as the daemon's store), the
  least a durable record of a start and of a stop needs.
* ``trivial`` (information): ``Engine.Version``, the cheapest call: what any
  call costs in gRPC and the servicer plumbing; the standard health Check
  beside it.
* ``direct`` (information): the same round trips on the ``Containers``
  service in this process, without gRPC.

Two runtimes: ``process`` (the real daemon, ``chartd serve``, real
processes, the target's) and ``fake`` (information: the same service on the
in-memory FakeRuntime, served by this script in a subprocess: the API, the
engine and its commits without a process). ``server_cpu_ms`` comes from the
daemon's /proc stat (10 ms ticks).

The target: a round trip on the process runtime at most 4x the floor.
``--profile`` adds where the time of an in-process round trip goes
(:mod:`tools.bench_profile`); ``--baseline CHECKOUT`` runs the process
daemon of another checkout of chartd in the same rounds (``baseline_*``
figures): a before and after measured side by side.

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
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: tools.bench_profile and the engine
    sys.path.insert(0, str(REPO))

TARGET = 4.0
COMMAND = ["sleep", "1000"]
_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def _ms(seconds: list[float]) -> float:
    return statistics.median(seconds) * 1000


# -- the floor ----------------------------------------------------------------------------


class Floor:
    """The bare floor of a start and a stop: a spawn, SIGTERM, a wait, two durable commits."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(folder / "floor.db", isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE container (id INTEGER PRIMARY KEY, state TEXT, at REAL)")
        self._db.execute("INSERT INTO container VALUES (1, 'created', 0)")

    def _commit(self, state: str) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        update = "UPDATE container SET state = ?, at = ? WHERE id = 1"
        self._db.execute(update, (state, time.time()))
        self._db.execute("COMMIT")

    def cycle(self) -> float:
        """One start and stop at the floor: its seconds."""
        began = time.perf_counter()
        proc = subprocess.Popen(COMMAND)
        self._commit("running")
        proc.send_signal(signal.SIGTERM)
        proc.wait()
        self._commit("exited")
        return time.perf_counter() - began

    def close(self) -> None:
        self._db.close()


# -- the servers --------------------------------------------------------------------------


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
def daemon(runtime: str, state_dir: Path, tree: Path = REPO) -> Iterator[tuple[Any, int]]:
    """A server process of ``runtime`` on a socket in ``state_dir``: (client, pid).

    The process daemon runs the code of the checkout ``tree`` (``--baseline``).
    """
    from engine.api import Client  # noqa: PLC0415

    if runtime == "process":
        args = [sys.executable, "-c", "from engine.cli import main; main()", "serve"]
        args += ["--state-dir", str(state_dir), "--log-level", "warning"]
    else:
        args = [sys.executable, str(Path(__file__).resolve()), "--serve-fake", str(state_dir)]
    proc = subprocess.Popen(args, cwd=tree, stderr=subprocess.DEVNULL)
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


# -- the measurements ---------------------------------------------------------------------


def _rate(count: int, call: Callable[[], object], pid: int | None) -> tuple[float, float]:
    """(calls per second, server CPU ms per call) of ``count`` sequential calls."""
    cpu = _cpu_seconds(pid) if pid else 0.0
    start = time.perf_counter()
    for _ in range(count):
        call()
    elapsed = time.perf_counter() - start
    server_ms = (_cpu_seconds(pid) - cpu) * 1000 / count if pid else 0.0
    return count / elapsed, server_ms


class Rounds:
    """Figures kept round by round; each reported as the median over the rounds."""

    def __init__(self) -> None:
        self.kept: dict[str, list[float]] = {}

    def keep(self, name: str, value: float) -> None:
        self.kept.setdefault(name, []).append(value)

    def medians(self) -> dict[str, float]:
        return {name: statistics.median(values) for name, values in self.kept.items()}


class Lifecycle:
    """One container on one daemon, started and stopped through gRPC."""

    def __init__(self, client: Any, pid: int) -> None:
        from engine.api.chartd.v1 import containers_pb2 as c  # noqa: PLC0415

        self.client, self.pid = client, pid
        made = client.containers.Create(c.CreateContainerRequest(cmd=COMMAND, name="bench"))
        self._start = c.StartContainerRequest(container=made.id)
        self._stop = c.StopContainerRequest(container=made.id)

    def cycles(self, count: int, figures: Rounds, prefix: str = "") -> None:
        """``count`` round trips; their medians (and the daemon's CPU) kept in ``figures``."""
        starts: list[float] = []
        stops: list[float] = []

        def cycle() -> None:
            t0 = time.perf_counter()
            self.client.containers.Start(self._start)
            t1 = time.perf_counter()
            self.client.containers.Stop(self._stop)
            starts.append(t1 - t0)
            stops.append(time.perf_counter() - t1)

        _, cpu = _rate(count, cycle, self.pid)
        trips = [a + b for a, b in zip(starts, stops, strict=True)]
        figures.keep(f"{prefix}round_trip_ms", _ms(trips))
        figures.keep(f"{prefix}start_ms", _ms(starts))
        figures.keep(f"{prefix}stop_ms", _ms(stops))
        figures.keep(f"{prefix}round_trip_server_cpu_ms", cpu)


def measure_rpc(
    runtime: str,
    rounds: int,
    trivial: int,
    cycles: int,
    state_dir: Path,
    baseline: Path | None = None,
) -> dict[str, float]:
    """Round by round: the floor, the round trips (and the baseline's), the trivial calls."""
    from grpc_health.v1 import health_pb2  # noqa: PLC0415

    from engine.api.chartd.v1 import engine_pb2 as e  # noqa: PLC0415

    figures = Rounds()
    floor = Floor(state_dir / "floor")
    with ExitStack() as stack:
        client, pid = stack.enter_context(daemon(runtime, state_dir / "daemon"))
        runs = {"": Lifecycle(client, pid)}
        if baseline is not None:
            other = stack.enter_context(daemon(runtime, state_dir / "baseline", baseline))
            runs["baseline_"] = Lifecycle(*other)
        version, health = e.VersionRequest(), health_pb2.HealthCheckRequest()
        for _ in range(3):  # warm up: channel, caches, the first commits
            floor.cycle()
            client.engine.Version(version)
            for run in runs.values():
                run.cycles(1, Rounds())
        for n in range(rounds):
            figures.keep("floor_ms", _ms([floor.cycle() for _ in range(cycles)]))
            # The daemons take turns at going first: neither always follows the other.
            for prefix in sorted(runs, reverse=n % 2 == 1):
                runs[prefix].cycles(cycles, figures, prefix)
            rate, cpu = _rate(trivial, lambda: client.engine.Version(version), pid)
            figures.keep("trivial_calls_per_s", rate)
            figures.keep("trivial_server_cpu_ms", cpu)
            rate, _ = _rate(trivial, lambda: client.health_check(health), pid)
            figures.keep("health_calls_per_s", rate)
    floor.close()
    return figures.medians()


def measure_direct(runtime: str, rounds: int, cycles: int, state_dir: Path) -> float:
    """The median round trip (ms) on the Containers service in this process, no gRPC."""
    import engine  # noqa: PLC0415
    from statecharts.container.process import ProcessRuntime  # noqa: PLC0415
    from statecharts.container.runtime import Runtime  # noqa: PLC0415
    from statecharts.container.service import Containers  # noqa: PLC0415

    state_dir.mkdir(parents=True, exist_ok=True)
    rt: Runtime = ProcessRuntime(state_dir / "runtime") if runtime == "process" else _fake_runtime()
    medians = []
    with engine.Engine.open(f"sqlite:///{state_dir / 'chartd.db'}") as eng:
        containers = Containers(eng, rt, state_dir)
        created = containers.create(COMMAND, name="bench")

        def cycle() -> float:
            began = time.perf_counter()
            containers.start(created.id)
            containers.stop(created.id)
            return time.perf_counter() - began

        for _ in range(3):
            cycle()
        for _ in range(rounds):
            medians.append(_ms([cycle() for _ in range(cycles)]))
        containers.shutdown()
    rt.close()
    return statistics.median(medians)


def run(
    runtimes: list[str],
    rounds: int,
    trivial: int,
    cycles: dict[str, int],
    baseline: Path | None = None,
) -> dict[str, Any]:
    """Every figure of every runtime, and the ratios."""
    report: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
        "rounds": rounds,
        "trivial_calls_per_round": trivial,
        "target_round_trip_to_floor": TARGET,
        "baseline": None if baseline is None else str(baseline),
        "runtimes": {},
    }
    for runtime in runtimes:
        with tempfile.TemporaryDirectory(prefix="chartd-bench-") as tmp:
            figures: dict[str, Any] = {"cycles_per_round": cycles[runtime]}
            against = baseline if runtime == "process" else None
            figures |= measure_rpc(
                runtime, rounds, trivial, cycles[runtime], Path(tmp) / "rpc", against
            )
            direct = measure_direct(runtime, rounds, cycles[runtime], Path(tmp) / "direct")
        figures["direct_round_trip_ms"] = direct
        figures["ratio_round_trip_to_floor"] = figures["round_trip_ms"] / figures["floor_ms"]
        if "baseline_round_trip_ms" in figures:
            figures["baseline_ratio_round_trip_to_floor"] = (
                figures["baseline_round_trip_ms"] / figures["floor_ms"]
            )
        figures["ratio_rpc_to_direct"] = figures["round_trip_ms"] / direct
        if runtime == "process":
            figures["target_met"] = figures["ratio_round_trip_to_floor"] <= TARGET
        report["runtimes"][runtime] = figures
    return report


def _print(report: dict[str, Any]) -> None:
    print(f"python {report['python']} on {report['machine']}; medians of {report['rounds']} rounds")
    for runtime, f in report["runtimes"].items():
        print(f"\n{runtime} runtime ({f['cycles_per_round']} start/stop cycles a round)")
        print(f"  floor: Popen, SIGTERM, wait, 2 fsynced commits  {f['floor_ms']:7.2f} ms")
        print(f"  start + stop through gRPC                       {f['round_trip_ms']:7.2f} ms"
              f"   start {f['start_ms']:.2f}, stop {f['stop_ms']:.2f};"
              f" server CPU {f['round_trip_server_cpu_ms']:.1f} ms")  # fmt: skip
        if "baseline_round_trip_ms" in f:
            print(f"  the same on the baseline's daemon               "
                  f"{f['baseline_round_trip_ms']:7.2f} ms   start {f['baseline_start_ms']:.2f},"
                  f" stop {f['baseline_stop_ms']:.2f};"
                  f" {f['baseline_ratio_round_trip_to_floor']:.2f}x the floor")  # fmt: skip
        print(f"  start + stop in process (no gRPC)               {f['direct_round_trip_ms']:7.2f}"
              " ms")  # fmt: skip
        print(f"  trivial call (Engine.Version)  {f['trivial_calls_per_s']:9.0f} calls/s"
              f"   server CPU {f['trivial_server_cpu_ms']:.2f} ms/call;"
              f" health Check {f['health_calls_per_s']:.0f} calls/s")  # fmt: skip
        ratio = f["ratio_round_trip_to_floor"]
        verdict = ""
        if "target_met" in f:
            verdict = f" (target {TARGET:g}x: {'met' if f['target_met'] else 'NOT met'})"
        print(f"  round trip / floor = {ratio:.2f}x{verdict};"
              f" gRPC / in-process = {f['ratio_rpc_to_direct']:.2f}")  # fmt: skip
    if "profile" in report:
        from tools.bench_profile import print_profile  # noqa: PLC0415

        print_profile(report["profile"])


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with ``--serve-fake``, be its fake-runtime server)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="one JSON object of every figure")
    parser.add_argument("--runtime", choices=("process", "fake", "both"), default="both")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--trivial", type=int, default=300, help="trivial calls a round")
    parser.add_argument("--cycles", type=int, default=0, help="start/stop cycles a round")
    parser.add_argument(
        "--profile", action="store_true", help="where an in-process round trip spends its time"
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="CHECKOUT",
        help="also run the process daemon of another checkout, side by side (before/after)",
    )
    parser.add_argument("--serve-fake", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_fake:
        serve_fake(args.serve_fake)
        return 0
    runtimes = ["process", "fake"] if args.runtime == "both" else [args.runtime]
    cycles = {"process": args.cycles or 20, "fake": args.cycles or 50}
    baseline = args.baseline.resolve() if args.baseline else None
    report = run(runtimes, args.rounds, args.trivial, cycles, baseline)
    if args.profile:
        from tools.bench_profile import profile  # noqa: PLC0415

        report["profile"] = profile(args.cycles or 20)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
