"""The step code of the crashbox chart: real resources under a root, made and removed.

``make_dir`` makes ``<identity>.d``, ``write_file`` ``<identity>.file``,
``spawn`` a tagged ``sleep`` process and its pidfile ``<identity>.pid``,
``register`` ``<identity>.marker``. The stop steps remove them and their
undos put them back. Each do and undo passes its crash points.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import engine
from tools.crash.crashbox import INJECTED, REMOVES, START_STEPS, STOP_STEPS, SUFFIX
from tools.crash.injection import crash_point
from tools.crash.processes import TAG, in_exec, kill_processes, live_processes, read_pid


class Resources:
    """Creates and removes the resources of the crashbox steps under ``root``."""

    def __init__(self, root: Path, run: str, *, plant_leak: bool = False) -> None:
        self.root = root
        self.locks = root.with_name(f"{root.name}-locks")
        self.run = run
        self.plant_leak = plant_leak

    @contextlib.contextmanager
    def spawning(self, identity: str) -> Iterator[None]:
        """Hold while starting, or looking for, the process of ``identity``.

        A spawner SIGKILLed inside ``posix_spawn`` leaves a child that has not
        exec'd yet: it still has the spawner's environment, so no tag, and it
        becomes ``sleep`` with its tag only later, after the spawner is dead
        and reaped. Undo would miss it and it would leak; ensure would start a
        second one. So the spawn happens under an ``flock`` whose descriptor
        is close-on-exec: the unborn child shares it, and the lock is free
        only once the child has exec'd. The waiter then also waits out the
        instant inside ``execve`` where ``/proc/PID/environ`` reads empty.
        """
        self.locks.mkdir(exist_ok=True)
        path = self.locks / f"{identity}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            session, deadline = os.getsid(0), time.monotonic() + 1.0
            while in_exec(session) and time.monotonic() < deadline:
                time.sleep(0.001)
            yield
        finally:
            os.close(fd)

    def path(self, step: str, identity: str) -> Path:
        """Where the resource that ``step`` makes for ``identity`` lives."""
        return self.root / f"{identity}{SUFFIX[step]}"

    def processes(self, identity: str) -> list[int]:
        """Live processes tagged with ``identity``."""
        return live_processes(self.run).get(identity, [])

    def create(self, step: str, identity: str, point: str) -> dict[str, Any]:
        """Make the resource of ``step`` (idempotent: an existing one is kept)."""
        path = self.path(step, identity)
        if step == "make_dir":
            path.mkdir(exist_ok=True)
            return {"dir": path.name}
        if step in ("write_file", "register"):
            path.write_text(f"{identity}\n")
            return {"file": path.name}
        with self.spawning(identity):
            pids = self.processes(identity)
            if pids:
                pid = pids[0]
            else:
                env = {
                    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                    TAG: f"{self.run}:{identity}",
                }
                devnull = [(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_RDWR, 0) for fd in (0, 1, 2)]
                pid = os.posix_spawnp(
                    "sleep", ["sleep", "1000"], env, file_actions=devnull, setpgroup=0
                )
                crash_point(f"{point}:spawned")
            path.write_text(f"{pid}\n")
        return {"pid": pid, "pidfile": path.name}

    def remove(self, step: str, identity: str, point: str) -> None:
        """Remove the resource of ``step``; nothing to remove is fine."""
        path = self.path(step, identity)
        if step == "make_dir":
            shutil.rmtree(path, ignore_errors=True)
        elif step in ("write_file", "register"):
            path.unlink(missing_ok=True)
        else:
            with self.spawning(identity):
                pids = set(self.processes(identity))
                pid = read_pid(path)
                if pid is not None and pid in live_processes(self.run).get(identity, []):
                    pids.add(pid)  # the pidfile is the handle; the tag finds an unwritten one
                kill_processes(sorted(pids))
                crash_point(f"{point}:inside")
                path.unlink(missing_ok=True)
            return
        crash_point(f"{point}:inside")

    def world(self, prefix: str = "") -> dict[str, dict[str, list[Any]]]:
        """What exists under the root and among live processes, by identity.

        Each identity maps kinds of resource (``.d``, ``.file``, ``.pid``,
        ``.marker``, or ``proc``) to the names or pids found.
        """
        out: dict[str, dict[str, list[Any]]] = {}
        for entry in os.scandir(self.root):
            if entry.name.startswith(prefix):
                identity, dot, suffix = entry.name.partition(".")
                out.setdefault(identity, {}).setdefault(dot + suffix, []).append(entry.name)
        for identity, pids in live_processes(self.run).items():
            if identity.startswith(prefix):
                out.setdefault(identity, {})["proc"] = pids
        return out

    def bindings(self) -> engine.Bindings:
        """The step code of the crashbox chart."""
        steps: dict[str, engine.Step] = {}
        for name in START_STEPS:
            steps[name] = engine.Step(do=self._start_do(name), undo=self._start_undo(name))
        for name in STOP_STEPS:
            steps[name] = engine.Step(do=self._stop_do(name), undo=self._stop_undo(name))
        return engine.Bindings(steps=steps)

    def _start_do(self, step: str) -> Callable[[engine.Context], Any]:
        def do(ctx: engine.Context) -> Any:
            point = f"{ctx.event}:do:{step}"
            crash_point(f"{point}:before")
            _maybe_fail(ctx, step)
            identity = ctx.identity()
            payload = self.create(step, identity, point)
            crash_point(f"{point}:inside")
            ctx.data[f"res_{step}"] = identity
            return payload

        return do

    def _start_undo(self, step: str) -> Callable[[engine.Context, Any], None]:
        def undo(ctx: engine.Context, payload: Any) -> None:
            point = f"{ctx.event}:undo:{step}"
            crash_point(f"{point}:before")
            if self.plant_leak and step == "write_file":
                crash_point(f"{point}:inside")
                return  # the planted bug: this undo forgets to remove the file
            self.remove(step, ctx.identity(), point)

        return undo

    def _stop_do(self, step: str) -> Callable[[engine.Context], Any]:
        target = REMOVES[step]

        def do(ctx: engine.Context) -> Any:
            point = f"{ctx.event}:do:{step}"
            crash_point(f"{point}:before")
            _maybe_fail(ctx, step)
            identity = _owned(ctx, target)
            self.remove(target, identity, point)
            ctx.data.pop(f"res_{target}", None)
            return {"removed": identity}

        return do

    def _stop_undo(self, step: str) -> Callable[[engine.Context, Any], None]:
        target = REMOVES[step]

        def undo(ctx: engine.Context, payload: Any) -> None:
            point = f"{ctx.event}:undo:{step}"
            crash_point(f"{point}:before")
            self.create(target, _owned(ctx, target), point)
            crash_point(f"{point}:inside")

        return undo


def _maybe_fail(ctx: engine.Context, step: str) -> None:
    if ctx.params.get("fail_at") == step:
        raise RuntimeError(f"{step} refused: {INJECTED} (fail_at={step})")


def _owned(ctx: engine.Context, start_step: str) -> str:
    identity = ctx.source.data.get(f"res_{start_step}")
    if not isinstance(identity, str):
        raise RuntimeError(f"the entity's data names no {start_step} resource")
    return identity
