"""Crash harness: SIGKILL the engine everywhere a saga can be, then check what recovery left.

What runs
---------
A chart, ``crashbox``, whose saga steps create real resources under a
resource root (a temporary directory)::

    idle --start--> running     via starting: make_dir, write_file, spawn, register
    running --stop--> idle      via stopping: unregister, halt, remove_file, remove_dir

``make_dir`` creates the directory ``<identity>.d``, ``write_file`` the file
``<identity>.file``, ``spawn`` starts ``sleep 1000`` in its own process group
and writes its pid to ``<identity>.pid``, ``register`` writes the marker
``<identity>.marker``; ``<identity>`` is ``ctx.identity()`` (entity and
transition), so every undo finds what its step made without a payload (the
undo contract of :mod:`engine.runtime.bindings`). Every spawned process
carries ``CHARTD_CRASH_RESOURCE=<run>:<identity>`` in its environment: an undo
kills the group named by the pidfile *and* any process with its tag, so a
crash between starting the process and writing the pidfile leaks nothing
(and a lock held across ``posix_spawn`` makes an undo wait for a child whose
spawner died before the child could exec: see :meth:`Resources.spawning`).
Each undo is safe on a step that never ran. The ``start`` steps record their
identities in the entity's data; the ``stop`` steps remove those resources,
and their undos put them back (the process is started again), so a
compensated ``stop`` leaves the entity ``running`` with everything it owns.
``fail_at=<step>`` in the event's params makes that step raise before it
does anything, so that the saga compensates.

How it crashes
--------------
For every crash *case* the parent creates an entity (and, for ``stop``
cases, starts it), then runs a child, ``python tools/crash_harness.py
--child SPEC``, that opens the engine on the same database and fires one
event with an idempotency key. The child SIGKILLs itself
(``os.kill(os.getpid(), SIGKILL)``) at the case's crash point:

* ``E:writeahead:before|after`` around the commit that journals the
  transition as ``running`` (a wrapper of the store sees the unit);
* ``E:do:S:before|inside|after`` for every step ``S``: before it acts,
  after its resource exists but before ``do`` returns (``spawned``: the
  process runs but its pidfile is not written), after ``do`` returned
  (the engine's observer hook, before the step's end is journaled);
* ``E:commit:before|flushed|after`` around the final commit (``flushed``:
  every step's end made durable first, as the engine's background flusher
  may do, so that recovery finds every step done and finishes the
  transition), and ``E:ack:after``: the fire returned and the client
  recorded its result;
* in a saga that fails (``fail_at`` the last step, or every step without
  ``--quick``): ``E:undo:S:before|inside|after`` for every compensation,
  ``E:failcommit:before|after`` around the commit of the failure, and
  ``E:failack:after``;
* recovery cases: the child is killed inside the last step, then a second
  child, which only opens the engine and registers the chart (so it
  recovers), is killed inside each undo of that recovery and before its
  commit.

``--random N`` adds N cases where the child fires ``start``/``stop`` in a loop
(a third of them with a failing step, chosen by a seeded generator) and the
parent SIGKILLs it after a random delay (seeded by ``--seed``).

What is verified
----------------
After each case the parent opens the engine itself; ``register`` recovers
the transitions the dead child left. Then, for the case's entity:

* **journal** -- no transition is left ``running`` or ``compensating``;
  the version chain is unbroken (each transition starts from the version
  the previous one ended at, the entity is at the last one's); the fire's
  transition says what happened, and it is what the crash point allows:
  absent (killed before the write-ahead), ``interrupted`` (status
  ``failed``, category ``unavailable``, the "was interrupted" message,
  ``plan.recovered_by`` set, every step compensated), ``completed`` by
  recovery (``committed`` with ``plan.recovered_by``, every step done),
  ``committed`` or ``failed`` by the child itself (the failure names the
  injected error, the failed step ``failed``, the others ``compensated``),
  or ``resumed``: a failed saga whose undo the crash interrupted, finished
  by recovery (``failed`` with the injected error and its category, every
  step undone).
* **leaked** -- resources of the entity (paths under the root, live tagged
  processes) that its committed state does not own. A ``running`` entity
  owns exactly the four resources of its last committed ``start``
  (and its data must name them); an ``idle`` one owns none. Resources
  that belong to no entity of the run are counted at the end.
* **lost** -- a fire the child acknowledged (it appends the result to an
  ack file after ``fire`` returns) whose transition the journal does not
  hold with that outcome; a resource the entity owns that is missing (or a
  pidfile whose process is dead); a version bump with no transition.
* **duplicated** -- an idempotency key journaled twice; a transition that
  starts from a version an earlier one already moved past, or that spans
  more versions than its write-ahead and its end (recovery may add one to
  claim it); more than one ``transition``/``transition.failed`` outbox event
  for one transition (none is *lost*); two live processes for one
  resource. The parent then retries the fire with the
  same key, as a client that never heard back would: a key the journal
  holds must replay (same transition, or the recorded error) and add
  nothing; an absent one runs once.
* the entity must still work: the parent stops it (or starts and stops
  it) and checks that nothing of it is left.

``crashes`` counts the SIGKILLs delivered (a recovery case delivers two).
``recovered`` counts those whose case ended with every check above passing:
either recovery found the unfinished transition and finished or undid it,
or (killed before the write-ahead or after the final commit) there was
nothing to fix and the state was already consistent. The harness prints
``crashes: N, recovered: N, leaked: 0, lost: 0, duplicated: 0`` and exits 0
only if recovered == crashes, leaked == lost == duplicated == 0, and every
crash point was reached. ``--plant-leak`` makes the undo of ``write_file`` do
nothing, to show that the harness catches a leak.

``--race-recovery`` recovers each crash with two engines: the second lists
the unfinished transitions, the first recovers them, then the second goes on
with its stale list, as two replicas sweeping at the same moment would.
Recovery must still happen exactly once.

Cases run ``--jobs`` at a time; each worker uses its own chart name
(``crashbox0``, ``crashbox1``, ...) so that one worker's recovery never
touches another's transitions. Children are forked from a zygote per worker
that has imported the engine (``--exec`` starts each from a fresh
interpreter instead: same cases, four times slower).

Usage: ``python tools/crash_harness.py [--db URL] [--quick] [--random N]
[--seed S] [--jobs J] [--only GLOB] [--exec] [--race-recovery] [--plant-leak]
[--list] [--keep] [--verbose] [--json]``.
The default database is a SQLite file in a temporary directory; a
``postgresql+psycopg://`` URL works too (the run's entity names are unique,
so a database can be reused).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import fnmatch
import json
import logging
import os
import queue
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import sqlalchemy as sa  # noqa: E402

import engine  # noqa: E402
from engine.errors import ChartdError, NotFound  # noqa: E402
from engine.ports import EventRow, Store, TransitionRow, Write  # noqa: E402
from engine.runtime import Engine as RuntimeEngine  # noqa: E402
from engine.store import open_store  # noqa: E402

SCRIPT = Path(__file__).resolve()
START_STEPS = ("make_dir", "write_file", "spawn", "register")
STOP_STEPS = ("unregister", "halt", "remove_file", "remove_dir")
# The start step whose resource each stop step removes (and its undo puts back).
REMOVES = dict(zip(STOP_STEPS, reversed(START_STEPS), strict=True))
STEP_EVENT = {**dict.fromkeys(START_STEPS, "start"), **dict.fromkeys(STOP_STEPS, "stop")}
SUFFIX = {"make_dir": ".d", "write_file": ".file", "spawn": ".pid", "register": ".marker"}
TAG = "CHARTD_CRASH_RESOURCE"
TERMINAL = ("committed", "failed", "compensation_failed")
INTERRUPTED = "was interrupted"
INJECTED = "injected failure"
CHILD_TIMEOUT = 60.0

CHART = """
chart: {name}
version: 1
initial: idle
states:
  idle: {{}}
  starting: {{transient: true}}
  running: {{}}
  stopping: {{transient: true}}
transitions:
  - {{event: start, from: idle, to: running, via: starting,
     steps: [make_dir, write_file, spawn, register]}}
  - {{event: stop, from: running, to: idle, via: stopping,
     steps: [unregister, halt, remove_file, remove_dir]}}
"""


def chart_for(name: str) -> engine.Chart:
    """The crashbox chart under ``name``."""
    return engine.parse_chart(CHART.format(name=name))


# -- crash injection ----------------------------------------------------------------------


class _Crash:
    point: str | None = None
    armed = False


CRASH = _Crash()


def crash_point(name: str) -> None:
    """SIGKILL this process if ``name`` is the armed crash point (only ever in a child)."""
    if CRASH.armed and CRASH.point == name:
        os.kill(os.getpid(), signal.SIGKILL)


class CrashingStore:
    """A store that SIGKILLs the process around the commits of one fire's transition.

    It recognises the write-ahead (a new ``running`` transition), the final
    commit (an update to ``committed``) and the commit of a failure (an
    update to ``failed``) by the fire's idempotency key.
    """

    def __init__(self, inner: Store, key: str | None) -> None:
        self._inner = inner
        self._key = key

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def apply(self, batch: Sequence[Write]) -> list[Exception | None]:
        point: str | None = None
        final: Write | None = None
        for unit in batch:
            for tr in unit.transitions:
                if tr.idempotency_key == self._key and tr.status == "running":
                    point = f"{tr.event}:writeahead"
            for tr in unit.transition_updates:
                if tr.idempotency_key == self._key and tr.status in TERMINAL:
                    kind = "commit" if tr.status == "committed" else "failcommit"
                    point, final = f"{tr.event}:{kind}", unit
        if point is None:
            return self._inner.apply(batch)
        crash_point(f"{point}:before")
        if final is not None and CRASH.armed and CRASH.point == f"{point}:flushed":
            # The step ends queued without waiting reach the disk first, as the
            # engine's background flusher may make them do; then the process dies.
            rest = [u for u in batch if u is not final]
            if rest:
                self._inner.apply(rest)
            crash_point(CRASH.point)
        results = self._inner.apply(batch)
        crash_point(f"{point}:after")
        return results


class CrashingObserver:
    """Crash points right after a step's do or undo returned, before its end is journaled."""

    def transition_started(self, chart: str, entity_id: str, event: str, name: str) -> None:
        pass

    def transition(
        self,
        chart: str,
        entity_id: str,
        event: str,
        outcome: str,
        seconds: float,
        error: BaseException | None,
    ) -> None:
        pass

    def step_started(self, chart: str, entity_id: str, name: str, phase: str, index: int) -> None:
        pass

    def step(
        self,
        chart: str,
        entity_id: str,
        name: str,
        phase: str,
        outcome: str,
        seconds: float,
        error: BaseException | None,
    ) -> None:
        if outcome == "ok":
            crash_point(f"{STEP_EVENT.get(name, '?')}:{phase}:{name}:after")


# -- resources ----------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _describe(pid: int) -> str:
    """A process's pid, parent and age, to tell who started it."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except OSError:
        return f"{pid} (gone)"
    age = uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK")
    return f"{pid} (parent {fields[1]}, {age:.2f}s old)"


def live_processes(run: str) -> dict[str, list[int]]:
    """Live processes this run spawned, by the identity in their tag."""
    prefix = f"{TAG}={run}:".encode()
    found: dict[str, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry.name}/environ").read_bytes()
        except OSError:
            continue
        for var in environ.split(b"\0"):
            if var.startswith(prefix):
                pid = int(entry.name)
                if _alive(pid):
                    found.setdefault(var[len(prefix) :].decode(), []).append(pid)
                break
    return found


def _in_exec(session: int) -> bool:
    """Whether a process of ``session`` is inside execve: its environment reads empty."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text().rpartition(")")[2].split()
            if stat[0] == "Z" or int(stat[3]) != session:
                continue
            if not Path(f"/proc/{entry.name}/environ").read_bytes():
                return True
        except (OSError, ValueError, IndexError):
            continue
    return False


def kill_processes(pids: Sequence[int]) -> None:
    """SIGKILL each process and its group, and wait until they are gone (reaping our own)."""
    for pid in pids:
        for kill in (os.killpg, os.kill):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    for pid in pids:
        while True:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            if not _alive(pid) or time.monotonic() > deadline:
                break
            time.sleep(0.002)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


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
            while _in_exec(session) and time.monotonic() < deadline:
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
                pid = _read_pid(path)
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


def _append(path: Path, record: Mapping[str, Any]) -> None:
    """Append one JSON line with one write(2): a SIGKILL keeps it whole or drops it."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(record) + "\n").encode())
    finally:
        os.close(fd)


def _records(path: Path) -> list[dict[str, Any]]:
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        with contextlib.suppress(ValueError):
            out.append(json.loads(line))
    return out


# -- the child ----------------------------------------------------------------------------


def _fire(
    eng: RuntimeEngine, spec: Mapping[str, Any], event: str, params: dict[str, Any], key: str
) -> str:
    acks = Path(spec["acks"])
    _append(acks, {"kind": "intent", "key": key, "event": event, "params": params})
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
        _append(acks, record)
        CRASH.armed = True
        crash_point(f"{event}:failack:after")
        CRASH.armed = False
        return "idle" if event == "start" else "running"
    CRASH.armed = False
    _append(
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


# -- cases --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Case:
    """One crash case: the fire, where the child dies, and what the journal may say after."""

    label: str
    event: str
    crash: str | None
    fail_at: str | None = None
    expect: frozenset[str] = frozenset()
    recovery_crash: str | None = None  # a second child recovers and dies here
    random_seed: int | None = None  # a random kill of a start/stop loop


def cases(*, quick: bool) -> list[Case]:
    """Every deterministic crash case; ``quick`` fails sagas at the last step only."""
    out: list[Case] = []
    for event, steps in (("start", START_STEPS), ("stop", STOP_STEPS)):

        def add(point: str, expect: set[str], fail_at: str | None = None) -> None:
            label = point if fail_at is None else f"{point} [fail_at={fail_at}]"
            out.append(Case(label, event, point, fail_at, frozenset(expect)))  # noqa: B023

        add(f"{event}:writeahead:before", {"absent"})
        add(f"{event}:writeahead:after", {"interrupted"})
        for step in steps:
            add(f"{event}:do:{step}:before", {"interrupted"})
            if step == "spawn":
                add(f"{event}:do:{step}:spawned", {"interrupted"})
            add(f"{event}:do:{step}:inside", {"interrupted"})
            add(f"{event}:do:{step}:after", {"interrupted"})
        add(f"{event}:commit:before", {"interrupted", "completed"})
        add(f"{event}:commit:flushed", {"completed"})
        add(f"{event}:commit:after", {"committed"})
        add(f"{event}:ack:after", {"committed"})
        for k, failing in enumerate(steps):
            if quick and k != len(steps) - 1:
                continue
            # The failure is journaled (compensating, with its error) before any
            # undo: recovery finishes the undo and keeps that error ("resumed").
            for step in reversed(steps[:k]):  # compensations run newest first
                add(f"{event}:undo:{step}:before", {"resumed"}, failing)
                if step == "halt":
                    add(f"{event}:undo:{step}:spawned", {"resumed"}, failing)
                add(f"{event}:undo:{step}:inside", {"resumed"}, failing)
                add(f"{event}:undo:{step}:after", {"resumed"}, failing)
            add(f"{event}:failcommit:before", {"resumed"}, failing)
            add(f"{event}:failcommit:after", {"failed"}, failing)
            add(f"{event}:failack:after", {"failed"}, failing)
        # The child dies with every resource made; the engine recovering after it dies too.
        first = f"{event}:do:{steps[-1]}:inside"
        recovery = [f"{event}:undo:{s}:inside" for s in reversed(steps)]
        for then in [*recovery, f"{event}:failcommit:before"]:
            label = f"{first} -> recovery {then}"
            out.append(Case(label, event, first, None, frozenset({"interrupted"}), then))
    return out


# -- verification -------------------------------------------------------------------------


@dataclass(slots=True)
class Audit:
    """What one look at an entity found."""

    leaked: int = 0
    lost: int = 0
    duplicated: int = 0
    problems: list[str] = field(default_factory=list)

    def merge(self, other: Audit, stage: str) -> None:
        """Keep the worst of each count (a leak seen twice is one leak) and every problem."""
        self.leaked = max(self.leaked, other.leaked)
        self.lost = max(self.lost, other.lost)
        self.duplicated = max(self.duplicated, other.duplicated)
        seen = {p.partition(": ")[2] for p in self.problems}
        self.problems += [f"{stage}: {p}" for p in other.problems if p not in seen]


@dataclass(slots=True)
class Outcome:
    """The result of one crash case."""

    label: str
    kills: int = 0
    recovery: str = ""
    journal: str = ""
    leaked: int = 0
    lost: int = 0
    duplicated: int = 0
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether every check passed."""
        return not (self.problems or self.leaked or self.lost or self.duplicated)

    def line(self) -> str:
        """One human line."""
        head = "ok " if self.ok else "BAD"
        text = (
            f"{head} {self.label}: killed {self.kills}x; recovery: {self.recovery}; "
            f"journal: {self.journal}; leaked {self.leaked}, lost {self.lost}, "
            f"duplicated {self.duplicated} ({self.seconds:.2f}s)"
        )
        return "\n      ".join([text, *self.problems])


def classify(tr: TransitionRow | None) -> str:
    """What a fire's transition says happened."""
    if tr is None:
        return "absent"
    recovered = "recovered_by" in tr.plan
    if tr.status == "committed":
        return "completed" if recovered else "committed"
    if tr.status == "failed":
        if recovered and INTERRUPTED in (tr.error_message or ""):
            return "interrupted"
        if recovered and INJECTED in (tr.error_message or ""):
            return "resumed"
        return "failed (recovered, without the interruption message)" if recovered else "failed"
    return tr.status


def _story(tr: TransitionRow) -> list[str]:
    """Check that the journal of one finished transition tells a coherent story."""
    kind = classify(tr)
    statuses = {s.index: s.status for s in tr.steps}
    names = list(tr.plan["steps"])
    problems = []
    if len(statuses) != len(names):
        problems.append(f"{tr.event} {tr.id[:8]}: {len(statuses)} step rows for {len(names)} steps")
    if kind in ("committed", "completed"):
        bad = {names[i]: s for i, s in statuses.items() if s != "done"}
        if bad:
            problems.append(f"{tr.event} {tr.id[:8]} {kind} but steps {bad}")
    elif kind == "interrupted":
        bad = {names[i]: s for i, s in statuses.items() if s not in ("compensated", "failed")}
        if bad:
            problems.append(f"{tr.event} {tr.id[:8]} interrupted but steps {bad} not undone")
        if tr.error_category != "unavailable":
            problems.append(f"{tr.event} {tr.id[:8]} interrupted with category {tr.error_category}")
    elif kind == "resumed":
        bad = {names[i]: s for i, s in statuses.items() if s not in ("compensated", "failed")}
        if bad:
            problems.append(f"{tr.event} {tr.id[:8]} resumed but steps {bad} not undone")
        if tr.error_category == "unavailable":
            problems.append(f"{tr.event} {tr.id[:8]} resumed but lost its error's category")
    elif kind == "failed":
        failing = tr.params.get("fail_at")
        if INJECTED not in (tr.error_message or ""):
            problems.append(f"{tr.event} {tr.id[:8]} failed with {tr.error_message!r}")
        at = names.index(failing) if failing in names else len(names)
        for i, s in statuses.items():
            want = "compensated" if i < at else "failed" if i == at else "pending"
            if s != want:
                problems.append(f"{tr.event} {tr.id[:8]}: step {names[i]} is {s}, not {want}")
    else:
        problems.append(f"{tr.event} {tr.id[:8]} ended as {kind}: {tr.error_message}")
    return problems


class RacingStore:
    """A store whose first ``unfinished()`` lets ``meanwhile`` run before it returns."""

    def __init__(self, inner: Store, meanwhile: Callable[[], None]) -> None:
        self._inner = inner
        self._meanwhile: Callable[[], None] | None = meanwhile

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def meanwhile(self) -> None:
        """Run the other engine's part now, if it has not run yet."""
        if self._meanwhile is not None:
            run, self._meanwhile = self._meanwhile, None
            run()

    def unfinished(self) -> list[TransitionRow]:
        rows = self._inner.unfinished()
        self.meanwhile()
        return rows


class Verifier:
    """Looks at the database and the resource root after a crash."""

    def __init__(self, eng: RuntimeEngine, resources: Resources, chart: str) -> None:
        self.eng = eng
        self.resources = resources
        self.chart = chart
        self.problems: list[str] = []

    def events(self) -> list[EventRow]:
        """The whole outbox."""
        out: list[EventRow] = []
        while True:
            page = self.eng.store.events(after=out[-1].seq if out else 0, limit=1000)
            out += page
            if len(page) < 1000:
                return out

    def rows(self, entity_id: str) -> list[TransitionRow]:
        """The entity's journal, with plans (the public records leave ``recovered_by`` out)."""
        return self.eng.store.transitions(entity_id)

    def audit(self, name: str, acks: Sequence[Mapping[str, Any]]) -> Audit:
        """Check the journal of entity ``name`` against the acks and against the world."""
        found = Audit()
        try:
            ent = self.eng.get(name, self.chart)
        except NotFound:
            if any(a["kind"] == "ack" for a in acks):
                found.lost += 1
                found.problems.append(f"{name} is gone but fires on it were acknowledged")
            return found
        rows = self.rows(ent.id)
        # every transition finished, and its journal coherent
        for tr in rows:
            if tr.status not in TERMINAL:
                found.problems.append(f"{tr.event} {tr.id[:8]} left {tr.status} after recovery")
            else:
                found.problems += _story(tr)
        # each idempotency key once
        for key, n in Counter(tr.idempotency_key for tr in rows if tr.idempotency_key).items():
            if n > 1:
                found.duplicated += n - 1
                found.problems.append(f"key {key} journaled {n} times")
        # the version chain
        version = 0
        for tr in rows:
            if tr.version_to is None:
                continue
            if tr.version_from < version:
                found.duplicated += 1
                found.problems.append(
                    f"{tr.event} {tr.id[:8]} applied from version {tr.version_from}, "
                    f"already moved to {version}"
                )
            elif tr.version_from > version:
                found.lost += 1
                found.problems.append(
                    f"versions {version}..{tr.version_from} have no transition in the journal"
                )
            span = tr.version_to - tr.version_from
            if span < 2 or (span > 2 and "recovered_by" not in tr.plan):
                # Every crashbox step is external: one version for the write-ahead, one
                # for the end (recovery may add its own, to claim the transition).
                if span > 2:
                    found.duplicated += span - 2
                else:
                    found.lost += 2 - span
                found.problems.append(
                    f"{tr.event} {tr.id[:8]} spans versions {tr.version_from}..{tr.version_to}"
                )
            version = tr.version_to
        if ent.version != version:
            found.lost += 1
            found.problems.append(f"{name} is at version {ent.version}, the journal at {version}")
        # the outbox: one event per finished transition, saying how it ended
        said = Counter(
            (ev.transition_id, ev.type) for ev in self.events() if ev.entity_id == ent.id
        )
        for tr in rows:
            if tr.status not in TERMINAL:
                continue
            want = "transition" if tr.status == "committed" else "transition.failed"
            wrong = "transition.failed" if want == "transition" else "transition"
            n = said[(tr.id, want)]
            if n != 1:
                if n > 1:
                    found.duplicated += n - 1
                else:
                    found.lost += 1
                found.problems.append(f"{tr.event} {tr.id[:8]} {tr.status}: {n} {want} events")
            if said[(tr.id, wrong)]:
                found.problems.append(f"{tr.event} {tr.id[:8]} {tr.status} has a {wrong} event")
        # what the client was told
        by_id = {tr.id: tr for tr in rows}
        for ack in acks:
            if ack["kind"] != "ack":
                continue
            told = by_id.get(ack["tid"] or "")
            if ack["outcome"] == "committed" and (told is None or told.status != "committed"):
                found.lost += 1
                found.problems.append(f"acknowledged commit {ack['key']} is not committed")
            if ack["outcome"] == "failed" and (told is None or told.status == "committed"):
                found.lost += 1
                found.problems.append(f"acknowledged failure {ack['key']} is not failed")
        # what the entity owns, against what exists
        committed = [tr for tr in rows if tr.status == "committed"]
        last = committed[-1] if committed else None
        owned: dict[str, str] = {}
        if ent.configuration == ("running",):
            if last is None or last.event != "start":
                found.problems.append(f"{name} is running but its last commit is not a start")
            else:
                owned = {
                    f"{ent.id[:12]}-{last.id[:12]}-{s}": s for s in START_STEPS
                }  # identity -> start step
                for identity, step in owned.items():
                    if ent.data.get(f"res_{step}") != identity:
                        found.lost += 1
                        found.problems.append(
                            f"{name}'s data names {ent.data.get(f'res_{step}')} for {step}"
                        )
        elif ent.configuration == ("idle",):
            if last is not None and last.event != "stop":
                found.problems.append(f"{name} is idle but its last commit is a {last.event}")
            left = sorted(k for k in ent.data if k.startswith("res_"))
            if left:
                found.problems.append(f"{name} is idle but its data names {left}")
        else:
            found.problems.append(f"{name} left in {ent.state} after recovery")
        world = self.resources.world(ent.id[:12])
        for identity, step in owned.items():
            have = world.pop(identity, {})
            path = self.resources.path(step, identity)
            if step == "make_dir":
                ok = path.is_dir()
            elif step == "spawn":
                procs = have.get("proc", [])
                ok = bool(procs) and _read_pid(path) in procs
                if len(procs) > 1:
                    found.duplicated += len(procs) - 1
                    found.problems.append(f"{len(procs)} processes for {identity}")
            else:
                ok = path.is_file() and path.read_text() == f"{identity}\n"
            if not ok:
                found.lost += 1
                found.problems.append(f"{name} owns {step} {identity} but it is missing")
            extra = [k for k in have if k not in ("proc", SUFFIX[step])]
            if extra:
                found.leaked += len(extra)
                found.problems.append(f"stray {extra} beside {identity}")
        for identity, have in world.items():
            count = sum(len(v) for v in have.values())
            found.leaked += count
            who = "".join(f", process {_describe(pid)}" for pid in have.get("proc", []))
            found.problems.append(
                f"leaked {sorted(have)} of {identity} ({name} does not own it{who})"
            )
        return found

    def fire_outcome(self, name: str, key: str) -> TransitionRow | None:
        """The transition journaled for ``key`` on entity ``name``."""
        ent = self.eng.get(name, self.chart)
        return self.eng.store.transition(ent.id, key)

    def retry(self, name: str, intent: Mapping[str, Any]) -> Audit:
        """Fire ``intent`` again with its key, as a client that never heard back."""
        found = Audit()
        ent = self.eng.get(name, self.chart)
        before = self.rows(ent.id)
        recorded = self.eng.store.transition(ent.id, intent["key"])
        result: engine.Result | None = None
        try:
            result = self.eng.fire(
                ent.id, intent["event"], intent["params"], idempotency_key=intent["key"]
            )
        except ChartdError as exc:
            if recorded is not None and recorded.status == "committed":
                found.problems.append(f"retry of committed {intent['key']} raised {exc.message}")
        after = self.rows(ent.id)
        if recorded is not None:
            if len(after) != len(before):
                found.duplicated += len(after) - len(before)
                found.problems.append(f"retry of {intent['key']} ran again")
            if result is not None and (not result.replayed or result.transition_id != recorded.id):
                found.duplicated += 1
                found.problems.append(f"retry of {intent['key']} was not a replay")
        elif len(after) != len(before) + 1:
            found.problems.append(f"retry of unjournaled {intent['key']} did not run once")
        return found

    def cycle(self, name: str, tag: str) -> Audit:
        """Bring the entity to idle (start and stop it if idle): recovery left it usable."""
        found = Audit()
        try:
            state = self.eng.get(name, self.chart).state
            events = ["stop"] if state == "running" else ["start", "stop"]
            for n, event in enumerate(events):
                self.eng.fire(name, event, idempotency_key=f"{tag}-cycle-{n}")
        except ChartdError as exc:
            found.problems.append(f"{name} cannot cycle after recovery: {exc.message}")
        return found


# -- launching children -------------------------------------------------------------------


class Launched:
    """A running child: its pid, and how to wait for its exit status."""

    def __init__(self, pid: int, wait: Callable[[float], int | None]) -> None:
        self.pid = pid
        self._wait = wait

    def wait(self, timeout: float) -> int | None:
        """The exit code (negative: the signal), or None if it hung and was killed."""
        return self._wait(timeout)

    def kill(self) -> None:
        """SIGKILL the child."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)


class ExecLauncher:
    """Each child is a fresh ``python tools/crash_harness.py --child SPEC``."""

    def start(self, spec: Mapping[str, Any], log: Path) -> Launched:
        """Start a child running ``spec``, its output in ``log``."""
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, str(SCRIPT), "--child", json.dumps(dict(spec))],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                cwd=REPO,
            )

        def wait(timeout: float) -> int | None:
            try:
                return proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                return None

        return Launched(proc.pid, wait)

    def close(self) -> None:
        """Nothing to release."""


class ZygoteLauncher:
    """Each child is forked by a zygote: ``python tools/crash_harness.py --zygote``.

    The zygote has imported the engine and done nothing else (no thread, no
    database), so its forks start in milliseconds instead of the half second
    an interpreter takes to import SQLAlchemy, Alembic and pydantic. It runs
    one child at a time and reports the child's pid, then its exit status.
    """

    def __init__(self, log: Path) -> None:
        with log.open("ab") as err:
            self._proc = subprocess.Popen(
                [sys.executable, str(SCRIPT), "--zygote"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                cwd=REPO,
            )
        self._lines: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self._lines.put(json.loads(line))
        self._lines.put({"eof": True})

    def _next(self, timeout: float) -> dict[str, Any]:
        message = self._lines.get(timeout=timeout)
        if "eof" in message:
            raise RuntimeError("the zygote died")
        return message

    def start(self, spec: Mapping[str, Any], log: Path) -> Launched:
        """Fork a child running ``spec``, its output in ``log``."""
        assert self._proc.stdin is not None
        request = json.dumps({"spec": dict(spec), "log": str(log)}) + "\n"
        self._proc.stdin.write(request.encode())
        self._proc.stdin.flush()
        pid = int(self._next(CHILD_TIMEOUT)["pid"])

        def wait(timeout: float) -> int | None:
            try:
                return int(self._next(timeout)["exit"])
            except queue.Empty:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                self._next(CHILD_TIMEOUT)
                return None

        return Launched(pid, wait)

    def close(self) -> None:
        """Stop the zygote."""
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        self._proc.wait(timeout=CHILD_TIMEOUT)


Launcher = ExecLauncher | ZygoteLauncher


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


# -- the parent ---------------------------------------------------------------------------


@dataclass(slots=True)
class Settings:
    """What every case needs to know."""

    db: str
    workdir: Path
    root: Path
    run: str
    plant_leak: bool
    window: float
    race: bool = False


class Harness:
    """Runs the cases, a worker per chart name, and counts."""

    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.resources = Resources(settings.root, settings.run, plant_leak=settings.plant_leak)
        self.missed: list[str] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def engine(self, chart: str, *, race: bool = False) -> Iterator[tuple[RuntimeEngine, Verifier]]:
        """An engine of the parent on the database, with the chart registered (recovery).

        ``race``: a second engine lists the unfinished transitions, then this
        one recovers them, then the second goes on with its list, as two
        replicas sweeping at the same moment would.
        """
        with engine.Engine.open(self.s.db, timers=False) as eng:
            verifier = Verifier(eng, self.resources, chart)
            if not race:
                eng.register(chart_for(chart), self.resources.bindings())
                yield eng, verifier
                return
            first = RacingStore(
                open_store(self.s.db),
                lambda: eng.register(chart_for(chart), self.resources.bindings()),
            )
            with engine.Engine(cast(Store, first), timers=False) as other:
                try:
                    other.register(chart_for(chart), self.resources.bindings())
                except Exception as exc:
                    verifier.problems.append(
                        f"the second recoverer's register raised {type(exc).__name__}: {exc}"
                    )
            first.meanwhile()  # if the second engine never listed anything
            yield eng, verifier

    def run_case(self, index: int, case: Case, chart: str, launcher: Launcher) -> Outcome:
        """Run one case on worker ``chart``; return what the checks found."""
        started = time.monotonic()
        out = Outcome(case.label)
        name = f"{self.s.run}-{index:03d}"
        key = f"{name}-{case.event}"
        log = self.s.workdir / f"{name}.log"
        acks = self.s.workdir / f"{name}.acks"
        params = {"fail_at": case.fail_at} if case.fail_at else {}
        with self.engine(chart) as (eng, _):
            ent = eng.create(chart, name)
            if case.event == "stop" and case.random_seed is None:
                eng.fire(ent, "start", idempotency_key=f"{name}-setup")
        spec: dict[str, Any] = {
            "db": self.s.db,
            "root": str(self.s.root),
            "run": self.s.run,
            "plant_leak": self.s.plant_leak,
            "chart": chart,
            "entity": ent.id,
            "name": name,
            "acks": str(acks),
            "crash": case.crash,
            "key": key,
            "event": case.event,
            "params": params,
            "mode": "fire",
        }
        if case.random_seed is not None:
            spec |= {"mode": "loop", "seed": case.random_seed, "key": None}
            spec["ready"] = str(self.s.workdir / f"{name}.ready")
        proc = launcher.start(spec, log)
        if case.random_seed is not None:
            delay = random.Random(case.random_seed).uniform(0.0, self.s.window)
            deadline = time.monotonic() + CHILD_TIMEOUT
            while not Path(spec["ready"]).exists() and _alive(proc.pid):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.005)
            time.sleep(delay)
            proc.kill()
        if self._killed(proc, case.label, log):
            out.kills += 1
        if case.recovery_crash is not None:
            rec = launcher.start(spec | {"mode": "recover", "crash": case.recovery_crash}, log)
            if self._killed(rec, f"{case.label} (recovery)", log):
                out.kills += 1
        found = Audit()
        with self.engine(chart, race=self.s.race) as (eng, verifier):
            ent_now = eng.get(name, chart)
            rows = verifier.rows(ent_now.id)
            fixed = [tr for tr in rows if tr.plan.get("recovered_by") == eng.id]
            others = [
                tr for tr in rows if "recovered_by" in tr.plan and tr.plan["recovered_by"] != eng.id
            ]
            out.recovery = (
                ", ".join(f"{classify(tr)} {tr.event}" for tr in fixed) or "nothing to fix"
            )
            if others:
                out.recovery += f" (+{len(others)} by another engine)"
            records = _records(acks)
            if case.random_seed is None:
                tr = verifier.fire_outcome(name, key)
                out.journal = classify(tr)
                if out.journal not in case.expect:
                    found.problems.append(
                        f"journal says {out.journal}, the crash point allows {sorted(case.expect)}"
                    )
            else:
                kinds = Counter(classify(tr) for tr in rows)
                out.journal = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
                out.label += f" ({len([r for r in records if r['kind'] == 'ack'])} fires acked)"
            found.merge(verifier.audit(name, records), "after recovery")
            acked = {r["key"] for r in records if r["kind"] == "ack"}
            pending = [r for r in records if r["kind"] == "intent" and r["key"] not in acked]
            for intent in pending:
                found.merge(verifier.retry(name, intent), "retry")
            found.merge(verifier.audit(name, records), "after the retry")
            found.merge(verifier.cycle(name, name), "cycle")
            after = verifier.audit(name, records)
            if eng.get(name, chart).state != "idle":
                after.problems.append(f"{name} is not idle after the cycle")
            found.merge(after, "after the cycle")
            found.problems += verifier.problems
        out.leaked, out.lost, out.duplicated = found.leaked, found.lost, found.duplicated
        out.problems = found.problems
        if not out.kills:
            out.problems.append("the child was not killed")
        out.seconds = time.monotonic() - started
        return out

    def _killed(self, proc: Launched, label: str, log: Path) -> bool:
        code = proc.wait(CHILD_TIMEOUT)
        if code == -signal.SIGKILL:
            return True
        with self._lock:
            if code is None:
                self.errors.append(f"{label}: the child hung; see {log}")
            elif code == 0:
                self.missed.append(label)
            else:
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                self.errors.append(f"{label}: the child exited {code}:\n{tail}")
        return False

    def leftovers(self, names: Sequence[str]) -> Audit:
        """Resources of this run that belong to no entity the cases created."""
        found = Audit()
        prefixes = set()
        with engine.Engine.open(self.s.db, timers=False) as eng:
            for name in names:
                with contextlib.suppress(NotFound):
                    prefixes.add(eng.get(name).id[:12])
        for identity, have in self.resources.world().items():
            if identity.split("-", 1)[0] not in prefixes:
                found.leaked += sum(len(v) for v in have.values())
                found.problems.append(f"leaked {sorted(have)} of {identity}, owned by no entity")
        return found

    def cleanup(self) -> None:
        """Kill whatever processes of this run are still alive."""
        pids = [p for ps in live_processes(self.s.run).values() for p in ps]
        kill_processes(pids)


def _subreaper() -> None:
    """Adopt the orphaned processes of killed children, so that killing them reaps them."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def _reap() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--db", help="database URL (default: a SQLite file in a temporary directory)")
    p.add_argument("--quick", action="store_true", help="fail sagas at their last step only")
    p.add_argument("--random", type=int, default=0, metavar="N", help="N random-time kills")
    p.add_argument("--seed", type=int, default=1, help="seed of the random kills")
    p.add_argument("--window", type=float, default=0.5, help="random kills within S seconds")
    p.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1))
    p.add_argument("--only", metavar="GLOB", help="only the cases whose label matches")
    p.add_argument("--plant-leak", action="store_true", help="an undo that removes nothing")
    p.add_argument(
        "--race-recovery",
        action="store_true",
        help="recover each crash with two engines, the second with a stale list",
    )
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--verbose", "-v", action="store_true", help="a line per case")
    p.add_argument("--json", action="store_true", help="one JSON object instead of lines")
    p.add_argument(
        "--exec",
        action="store_true",
        help="start every child as a fresh interpreter (slower) instead of forking it",
    )
    p.add_argument("--child", metavar="SPEC", help=argparse.SUPPRESS)
    p.add_argument("--zygote", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the harness; 0 only if every crash was recovered and nothing leaked, lost or doubled."""
    args = parse_args(argv)
    if args.child is not None:
        return child(json.loads(args.child))
    if args.zygote:
        return zygote()
    all_cases = cases(quick=args.quick)
    rng = random.Random(args.seed)
    for i in range(args.random):
        seed = rng.randrange(2**32)
        all_cases.append(Case(f"random #{i} seed={seed}", "loop", None, random_seed=seed))
    if args.only:
        all_cases = [c for c in all_cases if fnmatch.fnmatch(c.label, args.only)]
    if args.list:
        for c in all_cases:
            print(c.label)
        return 0
    started = time.monotonic()
    # Recovery logs a warning per transition it finishes or undoes: expected here.
    logging.getLogger("chartd").addHandler(logging.NullHandler())
    logging.getLogger("chartd").propagate = False
    _subreaper()
    workdir = Path(tempfile.mkdtemp(prefix="chartd-crash-"))
    root = workdir / "resources"
    root.mkdir()
    db = args.db or f"sqlite:///{workdir / 'chartd.db'}"
    run = secrets.token_hex(3)
    harness = Harness(
        Settings(db, workdir, root, run, args.plant_leak, args.window, args.race_recovery)
    )
    open_store(db).close()  # migrate once, before any child races to
    outcomes: dict[int, Outcome] = {}
    work: queue.Queue[tuple[int, Case]] = queue.Queue()
    for item in enumerate(all_cases):
        work.put(item)

    def worker(w: int) -> None:
        chart = f"crashbox{w}"
        launcher: Launcher = (
            ExecLauncher() if args.exec else ZygoteLauncher(workdir / f"zygote{w}.log")
        )
        try:
            while True:
                try:
                    index, case = work.get_nowait()
                except queue.Empty:
                    return
                try:
                    outcome = harness.run_case(index, case, chart, launcher)
                except Exception as exc:  # a harness failure is a failed case, never a pass
                    outcome = Outcome(case.label, problems=[f"harness error: {exc!r}"])
                outcomes[index] = outcome
        finally:
            launcher.close()

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(max(1, args.jobs))]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        names = [f"{run}-{i:03d}" for i in range(len(all_cases))]
        orphans = harness.leftovers(names)
    finally:
        harness.cleanup()
        _reap()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    ordered = [outcomes[i] for i in sorted(outcomes)]
    crashes = sum(o.kills for o in ordered)
    recovered = sum(o.kills for o in ordered if o.ok)
    leaked = sum(o.leaked for o in ordered) + orphans.leaked
    lost = sum(o.lost for o in ordered)
    duplicated = sum(o.duplicated for o in ordered)
    seconds = time.monotonic() - started
    summary = (
        f"crashes: {crashes}, recovered: {recovered}, leaked: {leaked}, "
        f"lost: {lost}, duplicated: {duplicated}"
    )
    good = (
        crashes > 0
        and recovered == crashes
        and leaked == lost == duplicated == 0
        and not harness.missed
        and not harness.errors
        and len(ordered) == len(all_cases)
    )
    where = sa.make_url(db).render_as_string(hide_password=True)
    if args.json:
        report = {
            "summary": summary,
            "crashes": crashes,
            "recovered": recovered,
            "leaked": leaked,
            "lost": lost,
            "duplicated": duplicated,
            "cases": [asdict(o) | {"ok": o.ok} for o in ordered],
            "orphans": orphans.problems,
            "missed": harness.missed,
            "errors": harness.errors,
            "db": where,
            "seconds": round(seconds, 2),
            "ok": good,
        }
        print(json.dumps(report, indent=2))
        return 0 if good else 1
    if args.verbose:
        print(f"# {len(all_cases)} cases on {where}, {args.jobs} at a time, run {run}")
        for o in ordered:
            print(o.line())
        for p in orphans.problems:
            print(f"BAD {p}")
        print(f"# {seconds:.1f}s")
    for label in harness.missed:
        print(f"crash point never reached: {label}", file=sys.stderr)
    for error in harness.errors:
        print(error, file=sys.stderr)
    if not args.verbose:
        for o in ordered:
            if not o.ok:
                print(o.line(), file=sys.stderr)
    print(summary)
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
