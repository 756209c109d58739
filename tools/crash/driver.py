"""The parent: runs every case on a pool of workers, each with its own chart name, and tallies.

For each case the parent creates an entity (started, for a ``stop`` case),
runs a child that fires on it and dies at the case's crash point (a second
child, for a recovery case, recovers and dies too), then opens the engine
itself, which recovers what the children left, and audits the entity: after
recovery, after retrying every fire the child never heard back from, and
after cycling the entity to ``idle``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import random
import secrets
import shutil
import signal
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa

import engine
from engine.errors import NotFound
from engine.ports import Store, TransitionRow
from engine.runtime import Engine as RuntimeEngine
from engine.store import open_store
from tools.crash.acks import read_records
from tools.crash.audit import Audit, Verifier, classify
from tools.crash.cases import Case
from tools.crash.crashbox import chart_for
from tools.crash.launch import (
    CHILD_TIMEOUT,
    ExecLauncher,
    Launched,
    Launcher,
    ZygoteLauncher,
)
from tools.crash.processes import alive, kill_processes, live_processes
from tools.crash.resources import Resources


@dataclass(frozen=True, slots=True)
class Options:
    """How to run the cases, as the command line asks."""

    db: str | None  # None: a SQLite file in the work directory
    jobs: int
    fresh_interpreters: bool  # start each child as an interpreter instead of forking it
    keep: bool  # keep the work directory
    plant_leak: bool
    window: float
    race: bool


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


@dataclass(slots=True)
class CaseRun:
    """One case under way: its entity's name, its fire's key, its files and its child's spec."""

    case: Case
    chart: str
    name: str
    key: str
    log: Path
    acks: Path
    spec: dict[str, Any]


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
        run = self._prepare(index, case, chart)
        out.kills = self._crash(run, launcher)
        found = self._check(run, out)
        out.leaked, out.lost, out.duplicated = found.leaked, found.lost, found.duplicated
        out.problems = found.problems
        if not out.kills:
            out.problems.append("the child was not killed")
        out.seconds = time.monotonic() - started
        return out

    def _prepare(self, index: int, case: Case, chart: str) -> CaseRun:
        """Create the case's entity (started, for a stop case) and the spec of its child."""
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
        return CaseRun(case, chart, name, key, log, acks, spec)

    def _crash(self, run: CaseRun, launcher: Launcher) -> int:
        """Run the case's child (and its recovering child); how many of them were killed."""
        case, kills = run.case, 0
        proc = launcher.start(run.spec, run.log)
        if case.random_seed is not None:
            delay = random.Random(case.random_seed).uniform(0.0, self.s.window)
            deadline = time.monotonic() + CHILD_TIMEOUT
            while not Path(run.spec["ready"]).exists() and alive(proc.pid):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.005)
            time.sleep(delay)
            proc.kill()
        if self._killed(proc, case.label, run.log):
            kills += 1
        if case.recovery_crash is not None:
            rec = launcher.start(
                run.spec | {"mode": "recover", "crash": case.recovery_crash}, run.log
            )
            if self._killed(rec, f"{case.label} (recovery)", run.log):
                kills += 1
        return kills

    def _check(self, run: CaseRun, out: Outcome) -> Audit:
        """Recover, audit, retry what was never acknowledged, cycle the entity, audit again."""
        name, found = run.name, Audit()
        with self.engine(run.chart, race=self.s.race) as (eng, verifier):
            rows = verifier.rows(eng.get(name, run.chart).id)
            out.recovery = _recovery(eng.id, rows)
            records = read_records(run.acks)
            if run.case.random_seed is None:
                out.journal = classify(verifier.fire_outcome(name, run.key))
                if out.journal not in run.case.expect:
                    found.problems.append(
                        f"journal says {out.journal}, "
                        f"the crash point allows {sorted(run.case.expect)}"
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
            if eng.get(name, run.chart).state != "idle":
                after.problems.append(f"{name} is not idle after the cycle")
            found.merge(after, "after the cycle")
            found.problems += verifier.problems
        return found

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


def _recovery(engine_id: str, rows: Sequence[TransitionRow]) -> str:
    """What the parent's recovery (engine ``engine_id``) did to the entity's transitions."""
    fixed = [tr for tr in rows if tr.plan.get("recovered_by") == engine_id]
    others = [
        tr for tr in rows if "recovered_by" in tr.plan and tr.plan["recovered_by"] != engine_id
    ]
    said = ", ".join(f"{classify(tr)} {tr.event}" for tr in fixed) or "nothing to fix"
    if others:
        said += f" (+{len(others)} by another engine)"
    return said


@dataclass(slots=True)
class Tally:
    """What a run found: the outcome of every case, and what no case accounts for."""

    asked: int  # how many cases were to run
    outcomes: list[Outcome]
    orphans: Audit  # resources of the run that no entity owns
    missed: list[str]  # cases whose crash point was never reached
    errors: list[str]  # children that hung or failed
    db: str  # the database URL, its password hidden
    run: str
    seconds: float

    @property
    def crashes(self) -> int:
        """The SIGKILLs delivered."""
        return sum(o.kills for o in self.outcomes)

    @property
    def recovered(self) -> int:
        """The SIGKILLs whose case passed every check."""
        return sum(o.kills for o in self.outcomes if o.ok)

    @property
    def leaked(self) -> int:
        """Resources left that nothing owns, the orphans included."""
        return sum(o.leaked for o in self.outcomes) + self.orphans.leaked

    @property
    def lost(self) -> int:
        """Acknowledged fires, owned resources and versions missing."""
        return sum(o.lost for o in self.outcomes)

    @property
    def duplicated(self) -> int:
        """Keys, versions, events and processes there twice."""
        return sum(o.duplicated for o in self.outcomes)

    @property
    def summary(self) -> str:
        """The one line the harness ends with."""
        return (
            f"crashes: {self.crashes}, recovered: {self.recovered}, leaked: {self.leaked}, "
            f"lost: {self.lost}, duplicated: {self.duplicated}"
        )

    @property
    def ok(self) -> bool:
        """Whether every crash was recovered, with nothing leaked, lost or doubled."""
        return (
            self.crashes > 0
            and self.recovered == self.crashes
            and self.leaked == self.lost == self.duplicated == 0
            and not self.missed
            and not self.errors
            and len(self.outcomes) == self.asked
        )


def run_cases(cases: Sequence[Case], options: Options) -> Tally:
    """Run ``cases``, ``options.jobs`` at a time, then look for leftovers and clean up."""
    started = time.monotonic()
    _subreaper()
    workdir = Path(tempfile.mkdtemp(prefix="chartd-crash-"))
    root = workdir / "resources"
    root.mkdir()
    db = options.db or f"sqlite:///{workdir / 'chartd.db'}"
    run = secrets.token_hex(3)
    harness = Harness(
        Settings(db, workdir, root, run, options.plant_leak, options.window, options.race)
    )
    open_store(db).close()  # migrate once, before any child races to
    outcomes: dict[int, Outcome] = {}
    work: queue.Queue[tuple[int, Case]] = queue.Queue()
    for item in enumerate(cases):
        work.put(item)

    def worker(w: int) -> None:
        chart = f"crashbox{w}"
        launcher: Launcher = (
            ExecLauncher()
            if options.fresh_interpreters
            else ZygoteLauncher(workdir / f"zygote{w}.log")
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

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(max(1, options.jobs))]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        orphans = harness.leftovers([f"{run}-{i:03d}" for i in range(len(cases))])
    finally:
        harness.cleanup()
        _reap()
        if not options.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return Tally(
        asked=len(cases),
        outcomes=[outcomes[i] for i in sorted(outcomes)],
        orphans=orphans,
        missed=harness.missed,
        errors=harness.errors,
        db=sa.make_url(db).render_as_string(hide_password=True),
        run=run,
        seconds=time.monotonic() - started,
    )


def _subreaper() -> None:
    """Adopt the orphaned processes of killed children, so that killing them reaps them."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def _reap() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
