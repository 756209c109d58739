"""Benchmark the ``chartd`` client's start-up: each verb's wall time beside ``import grpc``.

What is measured
----------------
A daemon (``chartd serve``) runs on a unix socket in a temporary state
directory. In rounds, side by side, this script times as subprocesses:

* ``python -c 'import grpc'``: the floor of any gRPC client in Python;
* ``chartd --help``;
* every client verb against the daemon, on containers of its own: ``create``,
  ``start``, ``pause``, ``unpause``, ``stop``, ``restart``, ``kill``,
  ``rename``, ``rm``, ``run -d``, ``ps``, ``inspect``, ``wait``, ``logs``,
  ``events`` (a closed time window), ``history`` and ``version``.

Each figure is the median over the rounds; each verb's ratio is its median
over the ``import grpc`` median. The issue's target: every verb at most 2x.
A lifecycle verb's time includes what the daemon does for it (a start runs
a saga of nine steps, a stop waits for the process to exit): ``serve_ms``
figures say how much, from the same calls made in process on one channel.

``import_engine_cli_ms`` is what ``python -X importtime -c 'import
engine.cli'`` reports for ``engine.cli`` (its cumulative time), and
``heavy_modules`` lists the engine's modules (store, runtime, SQLAlchemy,
pydantic, Alembic) a client verb loaded: none, when the client is right.

Run ``python tools/bench_cli.py`` (``--json`` for one JSON object with
every figure; ``--rounds N``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TARGET = 2.0
REPO = Path(__file__).resolve().parents[1]
# The console script, run from this tree whatever is installed.
CHARTD = (sys.executable, "-c", "import sys; from engine.cli import main; sys.exit(main())")
HEAVY = ("sqlalchemy", "pydantic", "alembic", "engine.store", "engine.runtime", "engine.model")
# A verb's command line, after the names of its round's two containers are filled in.
VERBS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("create", ("create", "--name", "{a}", "sleep", "1000")),
    ("start", ("start", "{a}")),
    ("pause", ("pause", "{a}")),
    ("unpause", ("unpause", "{a}")),
    ("stop", ("stop", "-t", "5", "{a}")),
    ("restart", ("restart", "-t", "5", "{a}")),
    ("kill", ("kill", "{a}")),
    ("rename", ("rename", "{a}", "{b}")),
    ("wait", ("wait", "{b}")),
    ("rm", ("rm", "{b}")),
    ("run -d", ("run", "-d", "--name", "{a}", "sleep", "1000")),
    ("rm -f", ("rm", "-f", "{a}")),
    ("ps", ("ps", "-a")),
    ("inspect", ("inspect", "bench")),
    ("logs", ("logs", "bench")),
    ("history", ("history", "bench")),
    ("events", ("events", "--since", "1h", "--until", "0s", "--filter", "container=bench")),
    ("version", ("version",)),
)


def _env(state_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "CHARTD_HOST": f"unix://{state_dir / 'chartd.sock'}",
        "XDG_STATE_HOME": str(state_dir / "xdg"),
    }


def _wall(args: Sequence[str], env: dict[str, str]) -> float:
    """Seconds ``args`` took, from the fork to its exit; it must succeed."""
    start = time.perf_counter()
    done = subprocess.run(args, cwd=REPO, env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} exited {done.returncode}: {done.stderr.decode()}")
    return elapsed


@contextmanager
def daemon(state_dir: Path) -> Iterator[dict[str, str]]:
    """``chartd serve`` on a socket in ``state_dir``: the environment that reaches it."""
    from engine.api.client import Client  # noqa: PLC0415 - the measuring side's imports

    env = _env(state_dir)
    args = [*CHARTD, "serve", "--state-dir", str(state_dir), "--log-level", "warning"]
    proc = subprocess.Popen(args, cwd=REPO, env=env, stderr=subprocess.DEVNULL)
    try:
        with Client(env["CHARTD_HOST"]) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    client.wait_ready(timeout=0.5)
                    break
                except Exception:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit("the daemon did not start") from None
        yield env
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def _serve_ms(env: dict[str, str], rounds: int) -> dict[str, float]:
    """Milliseconds the daemon takes for the verbs' calls, made in process on one channel."""
    from engine.api.chartd.v1 import containers_pb2 as c  # noqa: PLC0415
    from engine.api.chartd.v1 import engine_pb2 as e  # noqa: PLC0415
    from engine.api.client import Client  # noqa: PLC0415

    figures: dict[str, list[float]] = {}

    def timed(name: str, call: Callable[[], object]) -> None:
        start = time.perf_counter()
        call()
        figures.setdefault(name, []).append((time.perf_counter() - start) * 1000)

    with Client(env["CHARTD_HOST"]) as client:
        cc = client.containers
        for i in range(rounds):
            cid = cc.Create(c.CreateContainerRequest(cmd=["sleep", "1000"], name=f"s{i}")).id
            timed("start", lambda cid=cid: cc.Start(c.StartContainerRequest(container=cid)))
            timed("stop", lambda cid=cid: cc.Stop(c.StopContainerRequest(container=cid, timeout=5)))
            timed("ps", lambda: cc.List(c.ListContainersRequest(all=True)))
            timed("version", lambda: client.engine.Version(e.VersionRequest()))
            cc.Remove(c.RemoveContainerRequest(container=cid, force=True))
    return {name: statistics.median(values) for name, values in figures.items()}


def _import_ms() -> float:
    """What ``python -X importtime -c 'import engine.cli'`` reports for engine.cli, in ms."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import engine.cli"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(x for x in done.stderr.splitlines() if x.rstrip().endswith("| engine.cli"))
    return int(line.split("|")[1]) / 1000


def _heavy_modules(env: dict[str, str]) -> list[str]:
    """The engine's heavy modules a client verb (``ps``) has loaded when it ends."""
    probe = (
        "import atexit, sys; from engine.cli import main\n"
        "atexit.register(lambda: print(sorted(m for m in sys.modules"
        f" if m.startswith({HEAVY!r})), file=sys.stderr))\n"
        "sys.argv[1:] = ['ps']; main()"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    found: list[str] = json.loads(done.stderr.strip().splitlines()[-1].replace("'", '"'))
    return found


def run(rounds: int) -> dict[str, Any]:
    """Every figure: medians over ``rounds`` of each command, side by side."""
    times: dict[str, list[float]] = {}

    def keep(name: str, seconds: float) -> None:
        times.setdefault(name, []).append(seconds)

    with tempfile.TemporaryDirectory(prefix="chartd-bench-cli-") as tmp, daemon(Path(tmp)) as env:
        _wall([*CHARTD, "run", "-d", "--name", "bench", "sh", "-c", "echo hi; sleep 1000"], env)
        for i in range(rounds):
            keep("import grpc", _wall([sys.executable, "-c", "import grpc"], env))
            keep("--help", _wall([*CHARTD, "--help"], env))
            names = {"a": f"a{i}", "b": f"b{i}"}
            for verb, args in VERBS:
                keep(verb, _wall([*CHARTD, *(a.format(**names) for a in args)], env))
        serve = _serve_ms(env, rounds)
        heavy = _heavy_modules(env)
    floor = statistics.median(times.pop("import grpc"))
    medians = {name: statistics.median(values) for name, values in times.items()}
    ratios = {name: seconds / floor for name, seconds in medians.items()}
    return {
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
        "rounds": rounds,
        "target_ratio": TARGET,
        "import_grpc_s": floor,
        "verbs_s": medians,
        "ratios": ratios,
        "worst": max(ratios, key=ratios.__getitem__),
        "target_met": all(r <= TARGET for r in ratios.values()),
        "serve_ms": serve,
        "import_engine_cli_ms": _import_ms(),
        "heavy_modules": heavy,
    }


def _print(report: dict[str, Any]) -> None:
    print(f"python {report['python']} on {report['machine']}; medians of {report['rounds']} rounds")
    print(f"  python -c 'import grpc'   {report['import_grpc_s'] * 1000:7.0f} ms")
    for name, seconds in report["verbs_s"].items():
        label = "chartd " + name
        print(f"  {label:<25} {seconds * 1000:7.0f} ms   {report['ratios'][name]:.2f}x")
    verdict = "met" if report["target_met"] else "NOT met"
    print(f"  target: every verb at most {TARGET}x ({verdict}; worst: {report['worst']})")
    serve = ", ".join(f"{k} {v:.1f} ms" for k, v in report["serve_ms"].items())
    print(f"  the daemon's part, in process: {serve}")
    print(f"  import engine.cli: {report['import_engine_cli_ms']:.0f} ms (-X importtime)")
    print(f"  heavy modules a client verb loads: {', '.join(report['heavy_modules']) or 'none'}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures (``--json``: one JSON object)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="one JSON object of every figure")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    report = run(args.rounds)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
