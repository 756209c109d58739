"""Where a start+stop round trip spends its time (``python tools/bench_api.py --profile``).

The ``Containers`` service runs in this process on the process runtime, as
the daemon runs it (no gRPC). For the measured cycles only, the functions
that do the parts of a round trip are wrapped and timed: the engine's
commits, each saga step, the runtime's spawn and cgroup entry, the address
lease, and the exit's way from the kernel to the engine. Spans nest (a step
includes the runtime calls it makes) and run on several threads, so the
parts do not add up: each is the time that part took in a round trip (the
median over the cycles), with how many times it ran. Two are gaps between
threads rather than calls: from the signal to the runtime seeing the exit,
and from there to the service's exit fire.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["print_profile", "profile"]

_STEPS = (
    "mount_rootfs", "network_sandbox", "container_dirs", "mounts", "spec", "runtime_container",
    "task_create", "task_start", "stop_signal", "task_delete", "cleanup", "record_exit",
)  # fmt: skip


class Spans:
    """Time spent per label in the current cycle, from any thread; the cycles kept."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._now: dict[str, list[float]] = defaultdict(list)
        self.cycles: list[dict[str, list[float]]] = []
        self.marks: dict[str, float] = {}
        self._undo: list[tuple[Any, str, Any]] = []
        self.on = False

    def add(self, label: str, seconds: float) -> None:
        if self.on:
            with self._lock:
                self._now[label].append(seconds)

    def gap(self, label: str, since: str) -> None:
        """Add the time since mark ``since`` (if it was set) under ``label``."""
        began = self.marks.pop(since, None)
        if began is not None:
            self.add(label, time.perf_counter() - began)

    def wrap(self, owner: Any, name: str, label: str, *, mark: str | None = None) -> None:
        """Time every call of ``owner.name`` under ``label``; with ``mark``, note when it ended."""
        original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                ended = time.perf_counter()
                self.add(label, ended - began)
                if mark is not None:
                    self.marks[mark] = ended

        self._undo.append((owner, name, original))
        setattr(owner, name, timed)

    def before(self, owner: Any, name: str, hook: Callable[[], None]) -> None:
        """Call ``hook`` before every call of ``owner.name``."""
        original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)

        def hooked(*args: Any, **kwargs: Any) -> Any:
            hook()
            return original(*args, **kwargs)

        self._undo.append((owner, name, original))
        setattr(owner, name, hooked)

    def next_cycle(self) -> None:
        with self._lock:
            self.cycles.append(dict(self._now))
            self._now = defaultdict(list)

    def restore(self) -> None:
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)
        self._undo.clear()


def _instrument(spans: Spans) -> None:
    """Wrap the classes and modules a round trip goes through (before any is instantiated)."""
    from engine.runtime.commit import GroupCommit  # noqa: PLC0415
    from statecharts.container import exits, process, shim, tasks  # noqa: PLC0415
    from statecharts.container.exit_recorder import ExitRecorder  # noqa: PLC0415
    from statecharts.container.network import AddressPool  # noqa: PLC0415
    from statecharts.container.steps import ContainerSteps  # noqa: PLC0415

    spans.wrap(GroupCommit, "commit", "engine: waited commit (GroupCommit.commit)")
    for step in _STEPS:
        spans.wrap(ContainerSteps, step, f"step {step}")
    spans.wrap(shim, "spawn", "runtime: spawn the shim (posix_spawn)")
    spans.wrap(process.ProcessRuntime, "_enter_cgroup", "runtime: move the shim into its cgroup")
    spans.wrap(tasks.Task, "save", "runtime: write task.json")
    spans.wrap(tasks.Task, "remove_remains", "runtime: remove an ended task's cgroup, records")
    spans.wrap(process.ProcessRuntime, "delete", "runtime: delete the container's records")
    spans.wrap(shutil, "rmtree", "files: shutil.rmtree (directories of a start)")
    spans.wrap(AddressPool, "allocate", "network: lease an address")
    spans.wrap(AddressPool, "release", "network: release the lease")
    runtime = process.ProcessRuntime

    def signalled() -> None:
        spans.marks["signal"] = time.perf_counter()

    spans.before(runtime, "kill", signalled)
    spans.before(
        runtime, "_on_exit", lambda: spans.gap("exit: signal -> runtime sees it", "signal")
    )
    spans.wrap(runtime, "_on_exit", "exit: runtime's handler (reap, exit.json)")

    def told() -> None:
        # When the handler tells the exit (before it writes exit.json): the exit fire
        # may begin before the handler ends.
        spans.marks["told"] = time.perf_counter()

    spans.before(exits.ExitDispatcher, "put", told)
    spans.before(ExitRecorder, "_try", lambda: spans.gap("exit: runtime -> exit fire", "told"))
    spans.wrap(ExitRecorder, "_try", "exit: the exit fire")


def profile(cycles: int) -> dict[str, Any]:
    """Figures of ``cycles`` instrumented in-process round trips (see the module docstring)."""
    import engine  # noqa: PLC0415
    from statecharts.container.process import ProcessRuntime  # noqa: PLC0415
    from statecharts.container.service import Containers  # noqa: PLC0415

    spans = Spans()
    _instrument(spans)
    starts, stops = [], []
    try:
        with tempfile.TemporaryDirectory(prefix="chartd-profile-") as tmp:
            root = Path(tmp)
            runtime = ProcessRuntime(root / "runtime")
            with engine.Engine.open(f"sqlite:///{root / 'chartd.db'}") as eng:
                spans.wrap(eng.store, "apply", "engine: store transaction (Store.apply)")
                containers = Containers(eng, runtime, root)
                cid = containers.create(["sleep", "1000"], name="bench").id
                for n in range(3 + cycles):
                    spans.on = n >= 3  # three to warm up
                    t0 = time.perf_counter()
                    containers.start(cid)
                    t1 = time.perf_counter()
                    containers.stop(cid)
                    t2 = time.perf_counter()
                    time.sleep(0.005)  # the exit's thread finishes its fire
                    if spans.on:
                        starts.append(t1 - t0)
                        stops.append(t2 - t1)
                        spans.next_cycle()
                containers.shutdown()
            freezer = runtime.freezer
            runtime.close()
    finally:
        spans.restore()
    return {
        "cycles": cycles,
        "freezer": freezer,
        "start_ms": statistics.median(starts) * 1000,
        "stop_ms": statistics.median(stops) * 1000,
        "parts": _parts(spans.cycles),
    }


def _parts(cycles: list[dict[str, list[float]]]) -> dict[str, dict[str, float]]:
    """Each label's median time (ms) and calls per round trip, the longest first."""
    labels = {label for cycle in cycles for label in cycle}
    parts = {
        label: {
            "ms": statistics.median(sum(c.get(label, [])) for c in cycles) * 1000,
            "calls": statistics.median(len(c.get(label, [])) for c in cycles),
        }
        for label in labels
    }
    return dict(sorted(parts.items(), key=lambda item: -item[1]["ms"]))


def print_profile(report: dict[str, Any]) -> None:
    """The profile as a table."""
    print(f"\nwhere an in-process round trip goes (process runtime, freezer {report['freezer']};"
          f" medians of {report['cycles']} cycles): start {report['start_ms']:.2f} ms,"
          f" stop {report['stop_ms']:.2f} ms")  # fmt: skip
    for label, part in report["parts"].items():
        print(f"  {label:50s} {part['ms']:7.2f} ms  x{part['calls']:g}")
