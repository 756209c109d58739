"""The durable engine end to end: sagas, compensation, idempotency, timers, concurrency.

Every test runs a real :class:`engine.Engine` on a real database: an in-memory
SQLite database, a SQLite file in ``tmp_path`` and PostgreSQL (``store_url``),
or, where several engines or a restart share the database, the file and
PostgreSQL only (``shared_store_url``); both fixtures live in tests/conftest.py.
Restarts are real (close the engine, open a new one on the same URL), threads
are real, and three tests run a second Python process.

Steps record what they do and undo in a list, so the order of compensations
is asserted exactly. Every wait polls with a deadline; nothing asserts speed.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from clock import FakeClock

import engine
from engine import Bindings, Context, Step, errors
from engine.errors import InvalidParameter
from engine.runtime import Engine as PortEngine
from engine.runtime.engine import MAX_FOLLOW_UPS
from engine.runtime.limits import Limits
from engine.store import open_store

REPO = Path(__file__).resolve().parents[2]

# -- charts ------------------------------------------------------------------------------

JOB_YAML = """
chart: job
initial: idle
states:
  idle: {}
  starting: {transient: true}
  running:
    initial: active
    states: {active: {}, paused: {}}
  broken: {}
transitions:
  - event: start
    from: idle
    to: running
    via: starting
    guards: [quota]
    steps: [fetch, mount, launch]
    on_failure: {record: [error]}
  - event: deploy
    from: idle
    to: running
    steps: [fetch, mount, launch]
    on_failure: {to: broken, record: [error, code], then: {event: scrap, when: auto_scrap}}
  - {event: scrap, from: broken, to: idle}
  - {event: pause, from: running.active, to: running.paused}
  - {event: resume, from: running.paused, to: running.active}
  - {event: stop, from: running, to: idle, steps: [halt]}
rejections:
  - {event: [start, deploy], in: running, error: not_modified,
     message: "the job is already running"}
  - {event: [start, deploy], in: running.paused, error: conflict,
     message: "cannot start a paused job, resume it first"}
"""

LOCK_YAML = """
chart: lock
initial: free
states: {free: {}, claiming: {transient: true}, taken: {}}
transitions:
  - {event: claim, from: free, to: taken}
  - {event: seize, from: free, to: taken, via: claiming, steps: [grab]}
  - {event: release, from: taken, to: free}
  - {event: tick, from: [free, taken], steps: [inc]}
rejections:
  - {event: [claim, seize], in: taken, error: conflict, message: "the lock is already taken"}
"""

TIMED_YAML = """
chart: timed
initial: idle
states: {idle: {}, waiting: {}, expired: {}, done: {}}
transitions:
  - {event: wait, from: idle, to: waiting, steps: [arm]}
  - {event: timeout, from: waiting, to: expired, steps: [note]}
  - {event: finish, from: waiting, to: done, steps: [disarm]}
  - {event: skip, from: waiting, to: done}
"""

TUNER_YAML = """
chart: tuner
initial: idle
states: {idle: {}, tuned: {}}
transitions:
  - {event: tune, from: idle, to: tuned, steps: [knob, dial, gauge]}
"""

FILES_YAML = """
chart: files
initial: idle
states: {idle: {}, making: {transient: true}, made: {}}
transitions:
  - event: make
    from: idle
    to: made
    via: making
    steps: [a, b, c]
    on_failure: {record: [error]}
"""

JOB = engine.parse_chart(JOB_YAML)
LOCK = engine.parse_chart(LOCK_YAML)
TIMED = engine.parse_chart(TIMED_YAML)
TUNER = engine.parse_chart(TUNER_YAML)
FILES = engine.parse_chart(FILES_YAML)


# -- bindings ----------------------------------------------------------------------------


class Recorder:
    """Steps whose do and undo append to ``calls``; failures injected by step name."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.fail: dict[str, Exception] = {}
        self.undo_fail: dict[str, Exception] = {}

    def step(self, name: str, *, external: bool = True) -> Step:
        def do(ctx: Context) -> Any:
            self.calls.append(("do", name))
            if name in self.fail:
                raise self.fail[name]
            ctx.data[name] = "done"
            return {"step": name}

        def undo(ctx: Context, payload: Any) -> None:
            self.calls.append(("undo", name, payload))
            if name in self.undo_fail:
                raise self.undo_fail[name]

        return Step(do, undo, external=external)

    def done(self) -> list[str]:
        return [c[1] for c in self.calls if c[0] == "do"]

    def undone(self) -> list[str]:
        return [c[1] for c in self.calls if c[0] == "undo"]


def quota(ctx: Context) -> None:
    if ctx.params.get("crash"):
        raise ValueError("quota service returned garbage")
    if ctx.params.get("deny") or ctx.data.get("deny"):
        raise errors.Forbidden("quota exceeded: no more jobs for this tenant")


def job_bindings(rec: Recorder) -> Bindings:
    steps = {name: rec.step(name) for name in ("fetch", "mount", "launch")}
    steps["halt"] = rec.step("halt", external=False)
    return Bindings(guards={"quota": quota}, steps=steps)


def lock_bindings(grabs: list[str] | None = None, inside: list[int] | None = None) -> Bindings:
    """``grab`` records the entity it ran for; ``inc`` counts in data, watching for overlap."""
    grabbed = grabs if grabs is not None else []
    guard = threading.Lock()
    active = [0]

    def grab(ctx: Context) -> None:
        grabbed.append(ctx.entity_name)

    def inc(ctx: Context) -> None:
        with guard:
            active[0] += 1
            if inside is not None:
                inside.append(active[0])
        try:
            time.sleep(0.0005)  # widen the window in which two increments could overlap
            ctx.data["count"] = ctx.data.get("count", 0) + 1
        finally:
            with guard:
                active[0] -= 1

    return Bindings(
        steps={
            "grab": Step(grab, lambda ctx, payload: None),
            "inc": Step(inc, external=False),
        }
    )


def timed_bindings(hook: Callable[[Context], None] | None = None) -> Bindings:
    def arm(ctx: Context) -> None:
        ctx.schedule("timeout", ctx.params.get("delay", 0.3), {"reason": "deadline"})

    def note(ctx: Context) -> None:
        if hook is not None:
            hook(ctx)
        ctx.data["timeouts"] = ctx.data.get("timeouts", 0) + 1

    def disarm(ctx: Context) -> None:
        ctx.cancel_timers("timeout")

    return Bindings(
        steps={
            "arm": Step(arm, lambda ctx, payload: None),
            "note": Step(note, external=False),
            "disarm": Step(disarm, external=False),
        }
    )


class FileSteps:
    """Steps that create real files named from ``ctx.identity()``; undo removes them.

    The undo finds its file without the payload and is safe when the file was
    never created: the undo contract of :mod:`engine.runtime.bindings`.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.calls: list[tuple[str, str, Any]] = []
        self.fail: set[str] = set()
        self.bad_payload: set[str] = set()

    def step(self, name: str) -> Step:
        def do(ctx: Context) -> Any:
            self.calls.append(("do", name, None))
            if name in self.fail:
                raise OSError(f"no space left for {name}")
            path = self.folder / ctx.identity()
            path.write_text(ctx.entity_name)
            if name in self.bad_payload:
                return {"handle": object()}  # took effect, but the payload is not JSON
            return {"path": str(path)}

        def undo(ctx: Context, payload: Any) -> None:
            self.calls.append(("undo", name, payload))
            (self.folder / ctx.identity()).unlink(missing_ok=True)

        return Step(do, undo)

    def bindings(self) -> Bindings:
        return Bindings(steps={name: self.step(name) for name in ("a", "b", "c")})

    def files(self) -> list[str]:
        return sorted(p.name for p in self.folder.iterdir())


class WatchedStore:
    """A Store that records the housekeeping calls made on it: timer sweeps and heartbeats.

    The housekeeping thread makes them one after another, so once a sweep
    begins, every earlier sweep, the fires it made included, is over.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[str] = []  # "sweep" or "beat", in the order they were made
        self._changed = threading.Condition()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def claim_timers(self, *args: Any, **kwargs: Any) -> Any:
        self._record("sweep")
        return self.inner.claim_timers(*args, **kwargs)

    def heartbeat(self, *args: Any, **kwargs: Any) -> Any:
        self._record("beat")
        return self.inner.heartbeat(*args, **kwargs)

    def _record(self, call: str) -> None:
        with self._changed:
            self.calls.append(call)
            self._changed.notify_all()

    def wait_for(self, holds: Callable[[list[str]], bool], what: str) -> None:
        with self._changed:
            assert self._changed.wait_for(lambda: holds(self.calls), 10.0), f"no {what} in 10 s"

    def next_sweep(self) -> None:
        """Wait until a timer sweep begins after this call."""
        with self._changed:
            seen = self.calls.count("sweep")
        self.wait_for(lambda calls: calls.count("sweep") > seen, "timer sweep")


# Housekeeping that beats (and sweeps, if nothing is due sooner) five times a second.
QUICK = Limits(beat=0.2)


# -- helpers -----------------------------------------------------------------------------


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def events(eng: engine.Engine, since: int = 0, **filter: str) -> list[engine.Event]:
    """Every outbox event after ``since`` that is there now."""
    return list(eng.watch(since, filter=filter or None, timeout=0))


def state_of(eng: engine.Engine, name: str) -> tuple[tuple[str, ...], int, list[str]]:
    """What a refusal must leave untouched: configuration, version, journal."""
    ent = eng.get(name)
    return ent.configuration, ent.version, [t.id for t in eng.history(ent)]


def outcome(call: Callable[[], Any]) -> str:
    try:
        call()
    except errors.ChartdError as exc:
        return f"{exc.category.value}: {exc.message}"
    except Exception as exc:
        return f"UNEXPECTED {type(exc).__name__}: {exc}"
    return "ok"


def run_threads(targets: list[Callable[[], None]], timeout: float = 30.0) -> None:
    threads = [threading.Thread(target=t, daemon=True) for t in targets]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "threads did not finish in time"


def python(script: str, *args: str, stderr: Any = subprocess.PIPE) -> subprocess.Popen[str]:
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    )
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )


# -- a saga, end to end ------------------------------------------------------------------


def test_saga_success_runs_steps_in_order_and_commits_everything(store_url, open_engine):
    rec = Recorder()
    eng = open_engine(store_url)
    eng.register(JOB, job_bindings(rec))
    web = eng.create("job", "web", {"image": "nginx"})
    assert (web.configuration, web.version, web.data) == (("idle",), 0, {"image": "nginx"})

    result = eng.fire(web, "start", {"replicas": 2})

    assert rec.calls == [("do", "fetch"), ("do", "mount"), ("do", "launch")]
    assert result.steps == ("fetch", "mount", "launch")
    assert result.replayed is False
    stored = eng.get("web")
    assert stored.configuration == ("running", "running.active")
    assert stored.state == "running.active"
    assert stored.in_state("running")
    assert stored.data == {"image": "nginx", "fetch": "done", "mount": "done", "launch": "done"}
    # A saga bumps the version twice: the write-ahead and the commit.
    assert stored.version == 2
    assert (result.entity.configuration, result.entity.version) == (stored.configuration, 2)
    assert result.entity.data == stored.data

    [tr] = eng.history(web)
    assert tr.id == result.transition_id
    assert (tr.event, tr.status, tr.params) == ("start", "committed", {"replicas": 2})
    assert (tr.source, tr.target) == (("idle",), ("running", "running.active"))
    assert (tr.version_from, tr.version_to) == (0, 2)
    assert (tr.error_category, tr.error_message, tr.compensation_errors) == (None, None, ())
    assert tr.finished_at is not None and tr.finished_at >= tr.started_at
    assert [(s.index, s.name, s.status, s.payload) for s in tr.steps] == [
        (0, "fetch", "done", {"step": "fetch"}),
        (1, "mount", "done", {"step": "mount"}),
        (2, "launch", "done", {"step": "launch"}),
    ]
    assert all(s.compensated_at is None and s.error is None for s in tr.steps)

    evs = events(eng)
    assert [(e.type, e.entity_name, e.chart) for e in evs] == [
        ("create", "web", "job"),
        ("transition", "web", "job"),
    ]
    assert evs[0].entity_id == web.id and evs[0].transition_id is None
    assert evs[1].attributes == {
        "event": "start",
        "from": ["idle"],
        "to": ["running", "running.active"],
    }
    assert evs[1].transition_id == result.transition_id

    # A transition with no step outside the database commits once: one version.
    paused = eng.fire(web, "pause")
    assert (paused.entity.version, paused.entity.state) == (3, "running.paused")
    last = eng.history(web)[-1]
    assert (last.event, last.version_from, last.version_to, last.steps) == ("pause", 2, 3, ())
    # An internal step runs on the same single commit.
    eng.fire(web, "resume")
    stopped = eng.fire(web, "stop")
    assert (stopped.entity.configuration, stopped.entity.version) == (("idle",), 5)
    assert [(s.name, s.status) for s in eng.history(web)[-1].steps] == [("halt", "done")]


@pytest.mark.parametrize(
    ("raised", "category", "message"),
    [
        (
            RuntimeError("exit status 1"),
            errors.System,
            "step launch failed: RuntimeError: exit status 1",
        ),
        (errors.Unavailable("the registry is down"), errors.Unavailable, "the registry is down"),
    ],
    ids=["plain-exception", "chartd-error"],
)
def test_step_failure_compensates_newest_first_and_records_the_error(
    store_url, open_engine, raised, category, message
):
    rec = Recorder()
    rec.fail["launch"] = raised
    eng = open_engine(store_url)
    eng.register(JOB, job_bindings(rec))
    web = eng.create("job", "web", {"image": "nginx"})

    with pytest.raises(errors.ChartdError) as info:
        eng.fire(web, "start")

    exc = info.value
    assert type(exc) is category
    assert exc.message == message
    # The completed steps are undone newest first, with their payloads; the failed
    # step itself is not undone.
    assert rec.calls == [
        ("do", "fetch"),
        ("do", "mount"),
        ("do", "launch"),
        ("undo", "mount", {"step": "mount"}),
        ("undo", "fetch", {"step": "fetch"}),
    ]
    stored = eng.get(web)
    assert stored.configuration == ("idle",)
    # The steps' data changes are dropped; the error is recorded (on_failure.record).
    assert stored.data == {"image": "nginx", "error": message}
    assert stored.version == 2  # write-ahead, then the failure record

    [tr] = eng.history(web)
    assert tr.id == exc.transition_id
    assert tr.status == "failed"
    assert (tr.error_category, tr.error_message) == (category.category.value, message)
    assert tr.compensation_errors == ()
    assert (tr.version_from, tr.version_to, tr.target) == (0, 2, ("idle",))
    assert [(s.name, s.status) for s in tr.steps] == [
        ("fetch", "compensated"),
        ("mount", "compensated"),
        ("launch", "failed"),
    ]
    assert tr.steps[2].error == message
    assert tr.steps[0].compensated_at is not None and tr.steps[2].compensated_at is None

    evs = events(eng)
    assert [e.type for e in evs] == ["create", "transition.failed"]
    assert evs[1].attributes == {
        "event": "start",
        "category": category.category.value,
        "error": message,
    }
    assert evs[1].transition_id == exc.transition_id

    # The entity is usable again: the same event now succeeds.
    del rec.fail["launch"]
    assert eng.fire(web, "start").entity.state == "running.active"


def test_direct_transition_failure_undoes_internal_steps_and_bumps_once(store_url, open_engine):
    rec = Recorder()
    rec.fail["gauge"] = RuntimeError("out of range")
    eng = open_engine(store_url)
    eng.register(
        TUNER, Bindings(steps={n: rec.step(n, external=False) for n in ("knob", "dial", "gauge")})
    )
    radio = eng.create("tuner", "radio")

    with pytest.raises(errors.System, match="step gauge failed: RuntimeError: out of range"):
        eng.fire(radio, "tune")

    assert rec.undone() == ["dial", "knob"]
    stored = eng.get(radio)
    assert (stored.configuration, stored.data, stored.version) == (("idle",), {}, 1)
    [tr] = eng.history(radio)
    assert (tr.status, tr.version_from, tr.version_to) == ("failed", 0, 1)
    assert [(s.name, s.status) for s in tr.steps] == [
        ("knob", "compensated"),
        ("dial", "compensated"),
        ("gauge", "failed"),
    ]
    assert [e.type for e in events(eng)] == ["create", "transition.failed"]


def test_files_named_from_identity_are_created_and_removed_by_undo(
    store_url, open_engine, tmp_path
):
    folder = tmp_path / "work"
    folder.mkdir()
    steps = FileSteps(folder)
    eng = open_engine(store_url)
    eng.register(FILES, steps.bindings())
    ok = eng.create("files", "ok")
    result = eng.fire(ok, "make")
    prefix = f"{ok.id[:12]}-{result.transition_id[:12]}"
    assert steps.files() == [f"{prefix}-a", f"{prefix}-b", f"{prefix}-c"]
    assert [s.payload for s in eng.history(ok)[0].steps] == [
        {"path": str(folder / f"{prefix}-{n}")} for n in "abc"
    ]

    steps.fail.add("c")
    bad = eng.create("files", "bad")
    with pytest.raises(errors.System, match="step c failed: OSError: no space left for c"):
        eng.fire(bad, "make")
    # Only the files of the successful entity remain: b and a were undone, newest first.
    assert steps.files() == [f"{prefix}-a", f"{prefix}-b", f"{prefix}-c"]
    assert [(c[0], c[1]) for c in steps.calls[-5:]] == [
        ("do", "a"),
        ("do", "b"),
        ("do", "c"),
        ("undo", "b"),
        ("undo", "a"),
    ]


def test_compensation_failure_is_recorded_and_never_hides_the_error(store_url, open_engine):
    rec = Recorder()
    rec.fail["launch"] = RuntimeError("exit status 1")
    rec.undo_fail["mount"] = RuntimeError("umount: target is busy")
    eng = open_engine(store_url)
    eng.register(JOB, job_bindings(rec))
    web = eng.create("job", "web")

    with pytest.raises(errors.System) as info:
        eng.fire(web, "start")

    exc = info.value
    assert exc.message == "step launch failed: RuntimeError: exit status 1"  # the original
    undo_error = "undo of step mount failed: RuntimeError: umount: target is busy"
    assert exc.compensation_errors == (undo_error,)
    # The failed undo did not stop the remaining ones.
    assert rec.undone() == ["mount", "fetch"]
    stored = eng.get(web)
    assert stored.configuration == ("idle",)
    assert stored.data["error"] == exc.message

    [tr] = eng.history(web)
    assert tr.status == "compensation_failed"
    assert tr.error_message == exc.message and tr.error_category == "system"
    assert tr.compensation_errors == (undo_error,)
    assert [(s.name, s.status, s.compensation_error) for s in tr.steps] == [
        ("fetch", "compensated", None),
        ("mount", "compensation_failed", undo_error),
        ("launch", "failed", None),
    ]
    assert events(eng)[-1].type == "transition.failed"


@pytest.mark.parametrize(
    "undo_error",
    [RuntimeError("dial stuck"), errors.Unavailable("dial controller unreachable")],
    ids=["plain-exception", "chartd-error"],
)
def test_direct_transition_records_a_failed_compensation_on_its_step(
    store_url, open_engine, undo_error
):
    """A failed undo on the direct path (internal steps only) is journaled on its step.

    It once was not: the failure record rewrote every compensated step without
    its ``compensation_error``, and told "compensated" from "compensation_failed"
    by a message prefix that a ChartdError raised by the undo lacks.
    """
    rec = Recorder()
    rec.fail["gauge"] = RuntimeError("out of range")
    rec.undo_fail["dial"] = undo_error
    eng = open_engine(store_url)
    eng.register(
        TUNER, Bindings(steps={n: rec.step(n, external=False) for n in ("knob", "dial", "gauge")})
    )
    radio = eng.create("tuner", "radio")

    with pytest.raises(errors.System) as info:
        eng.fire(radio, "tune")

    assert rec.undone() == ["dial", "knob"]
    [message] = info.value.compensation_errors
    [tr] = eng.history(radio)
    assert tr.status == "compensation_failed"
    assert tr.compensation_errors == (message,)
    dial = tr.steps[1]
    assert (dial.name, dial.status, dial.compensation_error) == (
        "dial",
        "compensation_failed",
        message,
    )


def test_guard_refusal_and_chart_rejection_write_nothing(store_url, open_engine):
    rec = Recorder()
    eng = open_engine(store_url)
    eng.register(JOB, job_bindings(rec))
    web = eng.create("job", "web")
    eng.fire(web, "start")
    quiet = eng.create("job", "quiet", {"deny": True})
    rec.calls.clear()
    before = {n: state_of(eng, n) for n in ("web", "quiet")}
    seen = events(eng)

    with pytest.raises(errors.NotModified, match=r"^the job is already running$"):
        eng.fire(web, "start")
    with pytest.raises(errors.Forbidden, match="quota exceeded"):
        eng.fire(quiet, "start")
    with pytest.raises(errors.System, match="guard quota failed: ValueError: quota service"):
        eng.fire("quiet", "start", {"crash": True})
    with pytest.raises(errors.Conflict, match="'pause' is not allowed in state 'idle'"):
        eng.fire(quiet, "pause")
    with pytest.raises(errors.InvalidParameter, match="explode"):
        eng.fire(quiet, "explode")

    assert {n: state_of(eng, n) for n in ("web", "quiet")} == before
    assert events(eng) == seen
    assert rec.calls == []

    # A deeper state's rejection wins over its ancestor's.
    eng.fire(web, "pause")
    before = state_of(eng, "web")
    with pytest.raises(errors.Conflict, match="resume it first"):
        eng.fire(web, "start")
    assert state_of(eng, "web") == before


class ExitError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@pytest.mark.parametrize("auto_scrap", [True, False])
def test_on_failure_target_record_and_follow_up(store_url, open_engine, auto_scrap):
    rec = Recorder()
    rec.fail["mount"] = ExitError("mount exited", 42)
    eng = open_engine(store_url)
    eng.register(JOB, job_bindings(rec))
    job = eng.create("job", "batch", {"auto_scrap": auto_scrap})

    with pytest.raises(errors.System, match="step mount failed: ExitError: mount exited"):
        eng.fire(job, "deploy")

    assert rec.undone() == ["fetch"]
    history = eng.history(job)
    failed = history[0]
    assert (failed.event, failed.status, failed.target) == ("deploy", "failed", ("broken",))
    stored = eng.get(job)
    assert stored.data["error"] == "step mount failed: ExitError: mount exited"
    assert stored.data["code"] == 42
    if auto_scrap:
        # The follow-up event ran after the failure was recorded.
        assert [(t.event, t.status) for t in history] == [
            ("deploy", "failed"),
            ("scrap", "committed"),
        ]
        assert history[1].source == ("broken",)
        assert stored.configuration == ("idle",)
    else:
        assert [t.event for t in history] == ["deploy"]
        assert stored.configuration == ("broken",)
    kinds = [e.type for e in events(eng)]
    assert kinds == ["create", "transition.failed"] + (["transition"] if auto_scrap else [])


def test_events_emitted_by_steps_are_appended_only_on_commit(store_url, open_engine):
    rec = Recorder()
    bindings = job_bindings(rec)
    launch = bindings.steps["launch"]

    def launch_and_emit(ctx: Context) -> Any:
        ctx.emit("started", pid=4242)
        return launch.do(ctx)

    steps = dict(bindings.steps, launch=Step(launch_and_emit, launch.undo))
    eng = open_engine(store_url)
    eng.register(JOB, Bindings(guards=bindings.guards, steps=steps))
    web = eng.create("job", "web")
    result = eng.fire(web, "start")
    rec.fail["launch"] = RuntimeError("exit status 2")
    other = eng.create("job", "other")
    with pytest.raises(errors.System):
        eng.fire(other, "start")

    evs = events(eng)
    assert [(e.type, e.entity_name) for e in evs] == [
        ("create", "web"),
        ("transition", "web"),
        ("started", "web"),
        ("create", "other"),
        ("transition.failed", "other"),
    ]
    assert evs[2].attributes == {"pid": 4242}
    assert evs[2].transition_id == result.transition_id


# -- idempotency -------------------------------------------------------------------------


def test_idempotency_key_replays_the_recorded_outcome(store_url, open_engine):
    rec = Recorder()
    eng = open_engine(store_url)
    eng.register(JOB, job_bindings(rec))
    web = eng.create("job", "web")
    first = eng.fire(web, "start", idempotency_key="start-1")
    rec.calls.clear()
    seen = events(eng)

    again = eng.fire(web, "start", idempotency_key="start-1")

    assert again.replayed is True
    assert (again.transition_id, again.steps, again.event) == (
        first.transition_id,
        first.steps,
        "start",
    )
    assert (again.entity.version, again.entity.configuration) == (2, first.configuration)
    assert rec.calls == []
    assert len(eng.history(web)) == 1
    assert events(eng) == seen
    # Without the key the chart decides again: already running.
    with pytest.raises(errors.NotModified):
        eng.fire(web, "start")

    # A failed saga's key re-raises the recorded error and runs nothing.
    rec.fail["launch"] = errors.Unavailable("node is draining")
    other = eng.create("job", "other")
    with pytest.raises(errors.Unavailable, match="node is draining"):
        eng.fire(other, "start", idempotency_key="start-2")
    del rec.fail["launch"]  # it would succeed now; the key says what happened
    rec.calls.clear()
    with pytest.raises(errors.Unavailable) as info:
        eng.fire(other, "start", idempotency_key="start-2")
    assert info.value.message == "node is draining"
    assert rec.calls == []
    assert len(eng.history(other)) == 1
    # Keys are per entity: the same key on another entity is a new fire.
    third = eng.create("job", "third")
    assert eng.fire(third, "start", idempotency_key="start-1").replayed is False


def test_idempotency_survives_a_restart(shared_store_url, open_engine):
    rec = Recorder()
    eng = open_engine(shared_store_url)
    eng.register(JOB, job_bindings(rec))
    web = eng.create("job", "web")
    first = eng.fire(web, "start", idempotency_key="k-ok")
    rec.fail["mount"] = ExitError("mount exited", 3)
    bad = eng.create("job", "bad")
    with pytest.raises(errors.System) as failed:
        eng.fire(bad, "start", idempotency_key="k-bad")
    eng.close()

    rec = Recorder()
    eng = open_engine(shared_store_url)
    eng.register(JOB, job_bindings(rec))
    again = eng.fire("web", "start", idempotency_key="k-ok")
    assert again.replayed and again.transition_id == first.transition_id
    with pytest.raises(errors.System) as replayed:
        eng.fire("bad", "start", idempotency_key="k-bad")
    assert replayed.value.message == failed.value.message
    assert rec.calls == []
    assert [len(eng.history(n)) for n in ("web", "bad")] == [1, 1]


def test_same_key_from_two_engines_at_once_commits_once(shared_store_url, open_engine):
    a = open_engine(shared_store_url)
    b = open_engine(shared_store_url)
    for eng in (a, b):
        eng.register(LOCK, lock_bindings())
    rounds = 10
    for i in range(rounds):
        a.create("lock", f"k{i}")
    barrier = threading.Barrier(2, timeout=10)
    results: dict[int, list[Any]] = {i: [] for i in range(rounds)}

    def run(eng: engine.Engine) -> None:
        for i in range(rounds):
            barrier.wait()
            try:
                results[i].append(eng.fire(f"k{i}", "claim", idempotency_key="once"))
            except Exception as exc:
                results[i].append(exc)

    run_threads([lambda: run(a), lambda: run(b)])
    for i in range(rounds):
        pair = results[i]
        assert all(isinstance(r, engine.Result) for r in pair), pair
        assert sorted(r.replayed for r in pair) == [False, True]
        assert pair[0].transition_id == pair[1].transition_id
        assert len(a.history(f"k{i}")) == 1


# -- timers ------------------------------------------------------------------------------


def test_run_due_timers_with_a_fake_clock(store_url, open_engine):
    clock = FakeClock(1_700_000_000.0)
    eng = open_engine(store_url, clock=clock, timers=False)
    eng.register(TIMED, timed_bindings())
    job = eng.create("timed", "job")
    eng.fire(job, "wait", {"delay": 30})
    [timer] = eng.store.timers(job.id)
    assert (timer.event, timer.status, timer.due_at) == ("timeout", "pending", clock.t + 30)
    assert timer.params == {"reason": "deadline"}

    assert eng.run_due_timers() == 0
    clock.advance(29.5)
    assert eng.run_due_timers() == 0
    clock.advance(1)
    assert eng.run_due_timers() == 1
    assert eng.run_due_timers() == 0

    stored = eng.get(job)
    assert (stored.configuration, stored.data) == (("expired",), {"timeouts": 1})
    last = eng.history(job)[-1]
    assert (last.event, last.status, last.params) == (
        "timeout",
        "committed",
        {"reason": "deadline"},
    )
    assert last.idempotency_key == f"timer:{timer.id}"
    [timer] = eng.store.timers(job.id)
    assert (timer.status, timer.fired_transition, timer.error) == ("fired", last.id, None)

    # A timer whose event the entity no longer accepts is spent, with the refusal.
    late = eng.create("timed", "late")
    eng.fire(late, "wait", {"delay": 10})
    eng.fire(late, "skip")
    clock.advance(11)
    assert eng.run_due_timers() == 1
    [timer] = eng.store.timers(late.id)
    assert timer.status == "fired" and timer.fired_transition is None
    assert timer.error is not None and timer.error.startswith("conflict: ")
    assert eng.get(late).configuration == ("done",)


def test_cancel_timers_cancels_on_commit(store_url, open_engine):
    clock = FakeClock(1_700_000_000.0)
    eng = open_engine(store_url, clock=clock, timers=False)
    eng.register(TIMED, timed_bindings())
    job = eng.create("timed", "job")
    eng.fire(job, "wait", {"delay": 0.3})
    eng.fire(job, "finish")
    clock.advance(60)
    assert eng.run_due_timers() == 0
    [timer] = eng.store.timers(job.id)
    assert timer.status == "cancelled"
    assert eng.get(job).configuration == ("done",)
    assert [t.event for t in eng.history(job)] == ["wait", "finish"]


@pytest.mark.parametrize("engines", [1, 2], ids=["one-engine", "two-engines"])
def test_durable_timer_fires_once_after_a_restart(shared_store_url, open_engine, engines):
    # The first engine's clock never reaches the due time, so only a restart can fire it.
    frozen = FakeClock(time.time())
    first = open_engine(shared_store_url, clock=frozen)
    first.register(TIMED, timed_bindings())
    job = first.create("timed", "job")
    first.fire(job, "wait", {"delay": 0.3})
    first.close()
    store = open_store(shared_store_url)
    try:
        [timer] = store.timers(job.id)
    finally:
        store.close()
    assert timer.status == "pending"

    watched = [WatchedStore(open_store(shared_store_url)) for _ in range(engines)]
    reopened = [open_engine(store, limits=QUICK) for store in watched]
    for eng in reopened:
        eng.register(TIMED, timed_bindings())
    eng = reopened[0]

    def fired() -> bool:
        return eng.store.timers(job.id)[0].status == "fired"

    wait_until(fired, "the timer to fire after the restart")
    # A sweep that found the timer due before it was fired has ended, its fire included,
    # once its engine begins another: any second fire is on record by then.
    for store in watched:
        store.next_sweep()
    stored = eng.get("job")
    assert (stored.configuration, stored.data) == (("expired",), {"timeouts": 1})
    history = eng.history("job")
    assert [(t.event, t.status) for t in history] == [
        ("wait", "committed"),
        ("timeout", "committed"),
    ]
    [timer] = eng.store.timers(job.id)
    assert (timer.status, timer.fired_transition, timer.error) == ("fired", history[1].id, None)
    assert [e.type for e in events(eng, entity="job")] == ["create", "transition", "transition"]


def test_closing_the_engine_during_a_timer_sweep_does_not_spend_the_other_timers(
    shared_store_url, open_engine
):
    """Timers left in a sweep that close() interrupts stay pending, to fire after a restart.

    Once ``close()`` has begun, a fire raises Unavailable("the engine is
    closed"). The sweep once recorded each timer left as fired with that
    error, so its event never happened, not after a restart either. A
    retryable refusal (Unavailable: closing, the entity being recovered)
    leaves the timer pending.
    """
    clock = FakeClock(time.time())
    entered = threading.Event()
    holder: dict[str, engine.Engine] = {}

    def hold_until_closing(ctx: Context) -> None:
        if ctx.entity_name != "first":
            return
        entered.set()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                holder["eng"].get("first")
            except errors.Unavailable:
                return
            time.sleep(0.01)

    eng = open_engine(shared_store_url, clock=clock)
    holder["eng"] = eng
    eng.register(TIMED, timed_bindings(hold_until_closing))
    for name, delay in (("first", 10), ("second", 11)):
        eng.create("timed", name)
        eng.fire(name, "wait", {"delay": delay})
    clock.advance(20)
    eng.create("timed", "waker")
    eng.fire("waker", "wait", {"delay": 1000})  # scheduling a timer wakes the timer thread
    assert entered.wait(10), "the timer sweep did not start"
    eng.close()

    eng = open_engine(shared_store_url, clock=clock, timers=False)
    eng.register(TIMED, timed_bindings())
    eng.run_due_timers()
    [timer] = eng.store.timers(eng.get("second").id)
    assert (timer.status, timer.error) in {("pending", None), ("fired", None)}, timer
    assert eng.get("second").configuration == ("expired",)


def test_timer_thread_does_not_spin_on_a_timer_of_a_chart_it_does_not_serve(
    shared_store_url, open_engine
):
    """A due timer of a chart an engine does not serve must not keep its timer thread busy.

    Such a timer is another replica's to fire, and ``run_due_timers`` leaves
    it; the thread once woke at its due time all the same (the next timer it
    waited for counted it), so it queried the database without pause for as
    long as the timer stayed due. Now it sleeps a beat between sweeps: each
    turn of its loop sweeps, then beats once a beat has passed, so between
    two of its beats it sweeps once (twice if woken early), where a spinning
    loop sweeps as often as the database answers.
    """
    eng = open_engine(shared_store_url, timers=False)
    eng.register(TIMED, timed_bindings())
    eng.create("timed", "job")
    eng.fire("job", "wait", {"delay": 0})
    eng.close()

    watched = WatchedStore(open_store(shared_store_url))
    open_engine(watched, timers=True, limits=Limits(beat=0.5))  # serves no chart
    # Its first beat is before the loop starts; the loop's first sweep is before its beat.
    watched.wait_for(lambda calls: calls.count("beat") >= 3, "third heartbeat")
    calls = list(watched.calls)
    second, third = [i for i, call in enumerate(calls) if call == "beat"][1:3]
    sweeps = calls[second:third].count("sweep")
    assert sweeps <= 2, f"the timer thread swept {sweeps} times in one beat"


# -- concurrency -------------------------------------------------------------------------


@pytest.mark.parametrize("event", ["claim", "seize"], ids=["direct", "saga"])
def test_two_engines_firing_a_conflicting_event_exactly_one_wins(
    shared_store_url, open_engine, event
):
    grabs: list[str] = []
    a = open_engine(shared_store_url)
    b = open_engine(shared_store_url)
    for eng in (a, b):
        eng.register(LOCK, lock_bindings(grabs))
    rounds = 20
    for i in range(rounds):
        a.create("lock", f"r{i}")
    barrier = threading.Barrier(2, timeout=10)
    outcomes: dict[str, list[str]] = {"a": [], "b": []}

    def run(label: str, eng: engine.Engine) -> None:
        for i in range(rounds):
            barrier.wait()
            outcomes[label].append(outcome(lambda i=i: eng.fire(f"r{i}", event)))

    run_threads([lambda: run("a", a), lambda: run("b", b)])
    for i in range(rounds):
        pair = [outcomes["a"][i], outcomes["b"][i]]
        assert pair.count("ok") == 1, (i, pair)
        [lost] = [o for o in pair if o != "ok"]
        assert lost.startswith("conflict: "), (i, pair)
        history = a.history(f"r{i}")
        assert [(t.event, t.status) for t in history] == [(event, "committed")]
        assert a.get(f"r{i}").configuration == ("taken",)
    if event == "seize":
        # The loser never ran its step: its write-ahead was refused.
        assert sorted(grabs) == sorted(f"r{i}" for i in range(rounds))


_PROCESS_SCRIPT = """
import json, sys
import engine
from engine import Bindings, Step

url, rounds, event = sys.argv[1], int(sys.argv[2]), sys.argv[3]
chart = engine.parse_chart({chart!r})
steps = {{"grab": Step(lambda ctx: None, lambda ctx, payload: None),
          "inc": Step(lambda ctx: None, external=False)}}
out = []
with engine.Engine.open(url, timers=False) as eng:
    eng.register(chart, Bindings(steps=steps))
    for i in range(rounds):
        print("ready", flush=True)
        if sys.stdin.readline().strip() != "go":
            sys.exit("no go for round " + str(i))
        try:
            eng.fire(f"p{{i}}", event)
            out.append("ok")
        except engine.errors.ChartdError as exc:
            out.append(f"{{exc.category.value}}: {{exc.message}}")
print(json.dumps(out))
"""


def _text(log: Any) -> str:
    log.seek(0)
    return str(log.read())


@pytest.mark.parametrize("event", ["claim", "seize"], ids=["direct", "saga"])
def test_two_processes_firing_a_conflicting_event_exactly_one_wins(
    shared_store_url, open_engine, tmp_path, event
):
    eng = open_engine(shared_store_url)
    eng.register(LOCK, lock_bindings())
    rounds = 20
    for i in range(rounds):
        eng.create("lock", f"p{i}")
    script = _PROCESS_SCRIPT.format(chart=LOCK_YAML)
    logs = [(tmp_path / f"stderr-{k}").open("w+") for k in range(2)]
    procs = [python(script, shared_store_url, str(rounds), event, stderr=log) for log in logs]
    # A hung process fails the test instead of hanging it.
    watchdog = threading.Timer(120, lambda: [p.kill() for p in procs])
    watchdog.start()
    try:
        # Each round starts when both processes are ready for it: they fire at once,
        # however slowly either got there.
        for i in range(rounds):
            for proc, log in zip(procs, logs, strict=True):
                assert proc.stdin is not None and proc.stdout is not None
                line = proc.stdout.readline()
                assert line == "ready\n", (i, line, _text(log))
            for proc in procs:
                assert proc.stdin is not None
                proc.stdin.write("go\n")
                proc.stdin.flush()
        outs = []
        for proc, log in zip(procs, logs, strict=True):
            stdout, _ = proc.communicate(timeout=60)
            assert proc.returncode == 0, _text(log)
            outs.append(json.loads(stdout.strip().splitlines()[-1]))
    finally:
        watchdog.cancel()
        for log in logs:
            log.close()
    for i in range(rounds):
        pair = [outs[0][i], outs[1][i]]
        assert pair.count("ok") == 1, (i, pair)
        assert next(o for o in pair if o != "ok").startswith("conflict: "), (i, pair)
        assert [(t.event, t.status) for t in eng.history(f"p{i}")] == [(event, "committed")]


def test_fires_on_different_entities_run_in_parallel_and_all_commit(store_url, open_engine):
    n = 16
    # Every fetch waits for all n: if fires on different entities were serialized,
    # the barrier would break instead.
    meeting = threading.Barrier(n, timeout=15)
    rec = Recorder()
    bindings = job_bindings(rec)
    fetch = bindings.steps["fetch"]

    def fetch_together(ctx: Context) -> Any:
        meeting.wait()
        return fetch.do(ctx)

    steps = dict(bindings.steps, fetch=Step(fetch_together, fetch.undo))
    eng = open_engine(store_url)
    eng.register(JOB, Bindings(guards=bindings.guards, steps=steps))
    for i in range(n):
        eng.create("job", f"e{i}")
    outcomes: dict[int, str] = {}

    def run(i: int) -> None:
        outcomes[i] = outcome(lambda: eng.fire(f"e{i}", "start"))

    run_threads([lambda i=i: run(i) for i in range(n)])
    assert outcomes == dict.fromkeys(range(n), "ok")
    assert len(rec.done()) == 3 * n
    seqs = []
    for i in range(n):
        [tr] = eng.history(f"e{i}")
        assert tr.status == "committed" and [s.status for s in tr.steps] == ["done"] * 3
        seqs.append(tr.seq)
        assert eng.get(f"e{i}").state == "running.active"
    assert len(set(seqs)) == n
    evs = events(eng)
    assert [e.seq for e in evs] == list(range(1, 2 * n + 1))  # gap-free, no duplicates
    assert sorted(e.entity_name for e in evs if e.type == "transition") == sorted(
        f"e{i}" for i in range(n)
    )


def test_fires_on_one_entity_are_serialized(store_url, open_engine):
    inside: list[int] = []
    eng = open_engine(store_url)
    eng.register(LOCK, lock_bindings(inside=inside))
    counter = eng.create("lock", "counter")
    threads, each = 8, 10
    failures: list[str] = []

    def run() -> None:
        for _ in range(each):
            result = outcome(lambda: eng.fire(counter, "tick"))
            if result != "ok":
                failures.append(result)

    run_threads([run] * threads)
    assert failures == []
    assert max(inside) == 1  # never two steps of this entity at once
    stored = eng.get(counter)
    total = threads * each
    assert stored.data == {"count": total}  # no lost update
    assert stored.version == total  # a direct transition bumps the version once
    history = eng.history(counter)
    assert len(history) == total
    assert [(t.version_from, t.version_to) for t in history] == [(k, k + 1) for k in range(total)]


def test_locks_and_cached_rows_do_not_pile_up(tmp_path: Path) -> None:
    # A daemon fires on ever new entities: its per-entity locks and cached rows must not
    # grow without end. The ones nobody holds are forgotten past a bound.
    limits = Limits(cached_rows=8, idle_locks=4)
    with PortEngine(open_store(f"sqlite:///{tmp_path / 'chartd.db'}"), limits=limits) as eng:
        eng.register(LOCK, lock_bindings())
        for i in range(50):
            eng.fire(eng.create("lock", f"c{i}"), "tick")
        kept = eng._footprint()
        assert kept["locks"] <= 8 and kept["cached_rows"] <= 8
        assert kept["awaited"] == 0  # rows kept for until() only while it waits
        assert [eng.get(f"c{i}").data for i in (0, 49)] == [{"count": 1}] * 2


def test_two_engines_on_one_entity_lose_no_update(shared_store_url, open_engine):
    engines = [open_engine(shared_store_url) for _ in range(2)]
    for eng in engines:
        eng.register(LOCK, lock_bindings())
    engines[0].create("lock", "shared")
    results: list[str] = []

    def run(eng: engine.Engine) -> None:
        for _ in range(10):
            results.append(outcome(lambda: eng.fire("shared", "tick")))

    run_threads([lambda e=e: run(e) for e in engines for _ in range(3)])
    # Under contention a fire may give up after its retries, with Conflict; never silently.
    assert all(r == "ok" or r.startswith("conflict: ") for r in results), results
    committed = results.count("ok")
    assert committed > 0
    stored = engines[1].get("shared")
    assert stored.data.get("count", 0) == committed
    assert stored.version == committed
    assert len(engines[1].history("shared")) == committed


def test_two_engines_creating_the_same_name_exactly_one_wins(shared_store_url, open_engine):
    a = open_engine(shared_store_url)
    b = open_engine(shared_store_url)
    for eng in (a, b):
        eng.register(LOCK, lock_bindings())
    rounds = 10
    barrier = threading.Barrier(2, timeout=10)
    outcomes: dict[str, list[str]] = {"a": [], "b": []}

    def run(label: str, eng: engine.Engine) -> None:
        for i in range(rounds):
            barrier.wait()
            outcomes[label].append(outcome(lambda i=i: eng.create("lock", f"n{i}")))

    run_threads([lambda: run("a", a), lambda: run("b", b)])
    for i in range(rounds):
        pair = [outcomes["a"][i], outcomes["b"][i]]
        assert pair.count("ok") == 1, (i, pair)
        assert "already in use" in next(o for o in pair if o != "ok"), (i, pair)
    assert [e.name for e in a.list(chart="lock").items] == [f"n{i}" for i in range(rounds)]
    assert len(events(a, type="create")) == rounds


def test_an_engine_decides_on_the_stored_state_not_its_cache(shared_store_url, open_engine):
    """A fire by Entity or id decides on the stored row, not on the engine's cached one.

    A refusal (a chart rejection, a guard's error) writes nothing, so no
    version check catches a stale cache: engine A once refused from a row
    that engine B had changed since. Here A claims, B releases, and A's
    second claim must find the lock free; by name too (a fire by name
    guesses the entity from the cache as well).
    """
    a = open_engine(shared_store_url)
    b = open_engine(shared_store_url)
    for eng in (a, b):
        eng.register(LOCK, lock_bindings())
    lock = a.create("lock", "door")
    a.fire(lock, "claim")
    b.fire(lock, "release")
    assert a.get(lock).configuration == ("free",)

    result = a.fire(lock, "claim")

    assert result.entity.configuration == ("taken",)
    assert result.entity.version == 3

    b.fire("door", "release")
    assert a.fire("door", "claim").entity.version == 5


SLOT = engine.parse_chart(
    """
chart: slot
initial: open
states: {open: {}, gone: {final: true}}
transitions:
  - {event: ping, from: open, to: open}
  - {event: close, from: open, to: gone}
"""
)


def _slot_engines(url: str, open_engine: Any) -> tuple[engine.Engine, engine.Engine]:
    """Two engines on one database, each with SLOT registered."""
    a, b = open_engine(url), open_engine(url)
    for eng in (a, b):
        eng.register(SLOT)
    return a, b


def test_a_fire_by_name_follows_the_name_to_the_entity_that_holds_it_now(
    shared_store_url, open_engine
):
    """An engine fires by name without reading the entity first (it guesses it from
    its cache); another engine finishing that entity and giving its name to a new one
    sends the next fire to the new one, as a fresh engine would."""
    a, b = _slot_engines(shared_store_url, open_engine)
    first = a.create("slot", "web")
    a.fire("web", "ping")
    b.fire("web", "close")  # finished: the name is free
    second = b.create("slot", "web")

    result = a.fire("web", "ping")

    assert result.entity.id == second.id
    assert [t.event for t in a.history(first.id)] == ["ping", "close"]
    assert [t.event for t in a.history(second.id)] == ["ping"]


def test_a_fire_by_name_on_an_entity_finished_elsewhere_is_refused_as_without_a_cache(
    shared_store_url, open_engine
):
    a, b = _slot_engines(shared_store_url, open_engine)
    gone = a.create("slot", "db")
    a.fire("db", "ping")
    b.fire("db", "close")

    with pytest.raises(engine.errors.ChartdError) as cached:
        a.fire("db", "ping")
    fresh = open_engine(shared_store_url)
    fresh.register(SLOT)
    with pytest.raises(engine.errors.ChartdError) as read:
        fresh.fire("db", "ping")

    assert type(cached.value) is type(read.value)
    assert cached.value.message == read.value.message
    assert [t.event for t in a.history(gone.id)] == ["ping", "close"]


# -- crash recovery ----------------------------------------------------------------------

_CRASH_SCRIPT = """
import os, sys
from pathlib import Path
import engine
from engine import Bindings, Step

url, folder = sys.argv[1], Path(sys.argv[2])

def make(name):
    def do(ctx):
        (folder / ctx.identity()).write_text(name)
        if name == "b":
            os._exit(17)  # the process dies in the middle of the saga
        return {{"path": str(folder / ctx.identity())}}
    return Step(do, lambda ctx, payload: None)

eng = engine.Engine.open(url, timers=False)
eng.register(engine.parse_chart({chart!r}), Bindings(steps={{n: make(n) for n in "abc"}}))
eng.create("files", "victim")
eng.fire("victim", "make")
"""


def test_recovery_undoes_the_saga_of_a_crashed_process(shared_store_url, open_engine, tmp_path):
    folder = tmp_path / "work"
    folder.mkdir()
    proc = python(_CRASH_SCRIPT.format(chart=FILES_YAML), shared_store_url, str(folder))
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 17, stderr
    assert len(list(folder.iterdir())) == 2  # a's and b's files, left behind

    steps = FileSteps(folder)
    eng = open_engine(shared_store_url)
    before = eng.get("victim")
    assert (before.configuration, before.version) == (("making",), 1)
    eng.register(FILES, steps.bindings())  # recovers the dead engine's transition

    assert steps.files() == []
    # Every step not known to be undone is undone, newest first, c that never ran
    # included; b's end was never journaled, so its payload is None.
    assert [(c[0], c[1]) for c in steps.calls] == [("undo", "c"), ("undo", "b"), ("undo", "a")]
    assert steps.calls[0][2] is None and steps.calls[1][2] is None
    stored = eng.get("victim")
    # 1 the write-ahead, 2 the recovering engine's claim, 3 the recovery's commit.
    assert (stored.configuration, stored.version) == (("idle",), 3)
    assert "interrupted" in stored.data["error"]
    [tr] = eng.history("victim")
    assert (tr.status, tr.error_category) == ("failed", "unavailable")
    assert [s.status for s in tr.steps] == ["compensated"] * 3
    assert events(eng)[-1].type == "transition.failed"
    assert eng.recover() == 0
    steps.calls.clear()
    assert eng.fire("victim", "make").entity.configuration == ("made",)


def test_a_live_engine_without_a_timer_thread_is_not_recovered_by_another(tmp_path, open_engine):
    """An engine opened with ``timers=False`` keeps heartbeating, so others leave its sagas be.

    Its heartbeat once came only from the timer thread, which such an engine
    did not run: 10 s after opening (the lease), any other engine that
    registered the chart took it for dead and "recovered" its in-flight
    sagas, undoing steps still running. The housekeeping thread now runs
    without timers too.

    The fake clock stands for 11 s of a live engine; the test then waits for
    the engine to beat again (it beats every 2 s) before the other engine
    looks. Backend-independent: it runs on a SQLite file only, to keep the
    suite short.
    """
    url = f"sqlite:///{tmp_path / 'chartd.db'}"
    clock = FakeClock(time.time())
    entered, release = threading.Event(), threading.Event()
    rec = Recorder()
    bindings = job_bindings(rec)
    launch = bindings.steps["launch"]

    def slow_launch(ctx: Context) -> Any:
        entered.set()
        release.wait(15)
        return launch.do(ctx)

    steps = dict(bindings.steps, launch=Step(slow_launch, launch.undo))
    a = open_engine(url, clock=clock, timers=False)
    a.register(JOB, Bindings(guards=bindings.guards, steps=steps))
    a.create("job", "web")
    result: dict[str, str] = {}
    thread = threading.Thread(
        target=lambda: result.update(fire=outcome(lambda: a.fire("web", "start"))), daemon=True
    )
    thread.start()
    other = Recorder()
    try:
        assert entered.wait(10)
        opened_at = clock.now()
        clock.advance(11)
        wait_until(
            lambda: a.store.owners()[a.id][2] > opened_at,
            "engine a to beat again (it beats every 2 s)",
            timeout=30,
        )
        b = open_engine(url, clock=clock, timers=False)
        b.register(JOB, job_bindings(other))  # recovers what dead engines left behind
    finally:
        release.set()
        thread.join(15)
    assert other.undone() == [], "engine b undid the steps of a saga that engine a was running"
    assert result["fire"] == "ok"
    assert rec.undone() == []
    assert a.get("web").state == "running.active"


# -- the undo contract: a step that took effect is undone --------------------------------


def test_a_step_with_a_non_json_payload_is_still_undone(store_url, open_engine, tmp_path):
    """A step whose do() returned a payload that is not JSON is still undone.

    do() returned, so the step took effect (here: its file exists), even if
    its payload cannot be journaled. That error once made the step count as
    failed, and a failed step is not undone: the file leaked. It is undone,
    with payload None, which the undo contract allows.
    """
    folder = tmp_path / "work"
    folder.mkdir()
    steps = FileSteps(folder)
    steps.bad_payload.add("b")
    eng = open_engine(store_url)
    eng.register(FILES, steps.bindings())
    ent = eng.create("files", "leaky")

    with pytest.raises(errors.InvalidParameter, match="payload of step b"):
        eng.fire(ent, "make")

    assert eng.get(ent).configuration == ("idle",)
    assert steps.files() == [], "step b's file was left behind"


def test_non_json_data_from_a_step_fails_the_saga_cleanly(store_url, open_engine):
    """Entity data a saga step leaves that is not JSON fails the saga like a step failure.

    The conversion of ``ctx.data`` once raised outside any handler, after the
    write-ahead had committed: no step was undone, the entity stayed in the
    transient state and the transition ``running`` under a live owner (so
    recovery skipped it). The step ends journaled without waiting carried the
    data too, failing the group commit with other entities' writes in it.
    Now the saga is undone and the entity is back in its source state.
    """
    rec = Recorder()
    bindings = job_bindings(rec)
    launch = bindings.steps["launch"]

    def launch_with_a_set(ctx: Context) -> Any:
        ctx.data["ports"] = {80, 443}  # a set: not JSON
        return launch.do(ctx)

    steps = dict(bindings.steps, launch=Step(launch_with_a_set, launch.undo))
    eng = open_engine(store_url)
    eng.register(JOB, Bindings(guards=bindings.guards, steps=steps))
    web = eng.create("job", "web")

    with pytest.raises(errors.InvalidParameter, match="JSON"):
        eng.fire(web, "start")

    assert rec.undone()[-2:] == ["mount", "fetch"]
    assert eng.get(web).configuration == ("idle",)
    [tr] = eng.history(web)
    assert tr.status == "failed"


# -- watch -------------------------------------------------------------------------------


def test_watch_orders_resumes_filters_and_times_out(store_url, open_engine):
    rec = Recorder()
    eng = open_engine(store_url)
    eng.register(JOB, job_bindings(rec))
    eng.register(LOCK, lock_bindings())
    w1 = eng.create("job", "w1")
    eng.create("job", "w2")
    eng.create("lock", "l1")
    eng.fire(w1, "start")
    eng.fire("l1", "claim")
    eng.fire(w1, "pause")
    rec.fail["launch"] = RuntimeError("no")
    with pytest.raises(errors.System):
        eng.fire("w2", "start")

    everything = events(eng)
    assert [e.seq for e in everything] == list(range(1, 8))
    assert [(e.type, e.entity_name) for e in everything] == [
        ("create", "w1"),
        ("create", "w2"),
        ("create", "l1"),
        ("transition", "w1"),
        ("transition", "l1"),
        ("transition", "w1"),
        ("transition.failed", "w2"),
    ]

    # Resume: read three, drop the iterator ("disconnect"), start again from the last seq.
    it = eng.watch()
    head = [next(it) for _ in range(3)]
    it.close()
    tail = list(eng.watch(since=head[-1].seq, timeout=0))
    assert head + tail == everything
    assert events(eng, since=everything[-1].seq) == []

    assert [e.seq for e in events(eng, type="transition")] == [4, 5, 6]
    assert [e.seq for e in events(eng, entity="w1")] == [1, 4, 6]
    assert [e.seq for e in events(eng, entity=w1.id)] == [1, 4, 6]
    assert [e.seq for e in events(eng, chart="lock")] == [3, 5]
    assert [e.seq for e in events(eng, chart="job", type="transition")] == [4, 6]

    def keep(ev: engine.Event) -> bool:
        return ev.attributes.get("event") == "pause"

    assert [e.seq for e in eng.watch(filter=keep, timeout=0)] == [6]

    # With nothing new, the iterator ends after its timeout.
    assert list(eng.watch(since=7, timeout=0.2)) == []
    with pytest.raises(errors.InvalidParameter, match="unknown event filter keys"):
        list(eng.watch(filter={"colour": "red"}, timeout=0))


def test_a_watcher_thread_sees_events_committed_while_it_waits(store_url, open_engine):
    rec = Recorder()
    eng = open_engine(store_url)
    eng.register(JOB, job_bindings(rec))
    web = eng.create("job", "web")
    since = events(eng)[-1].seq
    seen: list[engine.Event] = []
    waiting = threading.Event()

    def watcher() -> None:
        waiting.set()
        for ev in eng.watch(
            since=since, filter={"entity": "web", "type": "transition"}, timeout=10
        ):
            seen.append(ev)
            if len(seen) == 2:
                return

    thread = threading.Thread(target=watcher, daemon=True)
    thread.start()
    assert waiting.wait(5)
    eng.fire(web, "start")
    eng.fire(web, "pause")
    thread.join(15)
    assert not thread.is_alive()
    assert [ev.attributes["event"] for ev in seen] == ["start", "pause"]
    assert seen[0].seq < seen[1].seq


def test_a_watcher_on_one_engine_sees_another_engines_commits(shared_store_url, open_engine):
    a = open_engine(shared_store_url)
    b = open_engine(shared_store_url)
    for eng in (a, b):
        eng.register(LOCK, lock_bindings())
    seen: list[engine.Event] = []

    def watcher() -> None:
        for ev in b.watch(filter={"type": "transition"}, timeout=10, poll=0.05):
            seen.append(ev)
            return

    thread = threading.Thread(target=watcher, daemon=True)
    thread.start()
    a.create("lock", "gate")
    a.fire("gate", "claim")
    thread.join(15)
    assert not thread.is_alive()
    assert [(e.entity_name, e.attributes["event"]) for e in seen] == [("gate", "claim")]

    # A watch with no timeout ends when its engine closes.
    ended = threading.Event()

    def forever() -> None:
        for _ in b.watch(since=10**9, poll=0.05):
            pass
        ended.set()

    threading.Thread(target=forever, daemon=True).start()
    b.close()
    assert ended.wait(10)


def test_until_returns_once_a_commit_of_this_engine_satisfies_it(store_url, open_engine):
    rec = Recorder()
    eng = open_engine(store_url)
    eng.register(JOB, job_bindings(rec))
    web = eng.create("job", "web")
    assert eng.until("web", lambda e: e.in_state("idle"), timeout=0).version == web.version
    assert eng.until(web, lambda e: e.in_state("running"), timeout=0) is None

    waiting = threading.Event()
    found: list[engine.Entity | None] = []

    def waiter() -> None:
        waiting.set()
        # A poll longer than the test: only the commit's own wake-up can end it in time.
        found.append(eng.until(web.id, lambda e: e.in_state("running.paused"), poll=60))

    thread = threading.Thread(target=waiter, daemon=True)
    thread.start()
    assert waiting.wait(5)
    eng.fire(web, "start")
    eng.fire(web, "pause")
    thread.join(15)
    assert not thread.is_alive()
    assert found[0] is not None and found[0].state == "running.paused"
    assert found[0].version == eng.get(web).version


def test_a_fire_not_waited_for_is_committed_no_later_than_the_next_waited_one(
    store_url, open_engine
):
    rec = Recorder()
    eng = open_engine(store_url)
    eng.register(JOB, job_bindings(rec))
    web = eng.create("job", "web")
    # A saga writes ahead: it commits as always, not waited for or not.
    started = eng.fire(web, "start", durable=False).entity
    assert eng.get(web).version == started.version and started.state == "running.active"

    paused = eng.fire(web, "pause", durable=False).entity
    assert paused.state == "running.paused"
    resumed = eng.fire(web, "resume").entity  # waited: its commit carries the pause

    stored = eng.get(web)
    assert (stored.state, stored.version) == ("running.active", resumed.version)
    assert [t.event for t in eng.history(web)] == ["start", "pause", "resume"]
    assert [t.status for t in eng.history(web)] == ["committed"] * 3

    # Alone, it commits within the group commit's linger; until() sees it then.
    eng.fire(web, "pause", durable=False)
    found = eng.until(web, lambda e: e.in_state("running.paused"), timeout=30)
    assert found is not None and found.version == resumed.version + 1

    with pytest.raises(InvalidParameter, match="idempotency key"):
        eng.fire(web, "resume", idempotency_key="k", durable=False)


def test_until_sees_another_engines_commit_and_ends_when_its_engine_closes(
    shared_store_url, open_engine
):
    a = open_engine(shared_store_url)
    b = open_engine(shared_store_url)
    for eng in (a, b):
        eng.register(LOCK, lock_bindings())
    a.create("lock", "gate")
    found: list[engine.Entity | None] = []

    def waiter() -> None:
        found.append(b.until("gate", lambda e: not e.in_state("free"), timeout=10, poll=0.05))

    thread = threading.Thread(target=waiter, daemon=True)
    thread.start()
    a.fire("gate", "claim")
    thread.join(15)
    assert not thread.is_alive()
    assert found[0] is not None and found[0].state == "taken"

    ended: list[BaseException] = []

    def forever() -> None:
        try:
            b.until("gate", lambda e: False, poll=0.05)
        except errors.Unavailable as exc:
            ended.append(exc)

    thread = threading.Thread(target=forever, daemon=True)
    thread.start()
    b.close()
    thread.join(10)
    assert not thread.is_alive() and len(ended) == 1


# -- list, get, history, and the errors of the API ---------------------------------------


def test_list_paginates_and_filters(store_url, open_engine):
    rec = Recorder()
    eng = open_engine(store_url)
    eng.register(JOB, job_bindings(rec))
    eng.register(LOCK, lock_bindings())
    order = ["a0", "l0", "a1", "l1", "a2", "l2", "a3", "a4"]
    for name in order:
        eng.create("lock" if name.startswith("l") else "job", name)
    eng.fire("a1", "start")
    eng.fire("a2", "start")
    eng.fire("a2", "pause")
    eng.fire("l2", "claim")

    def names(**kwargs: Any) -> list[list[str]]:
        pages, after = [], 0
        while True:
            page = eng.list(after=after, **kwargs)
            pages.append([e.name for e in page.items])
            if page.after is None:
                return pages
            after = page.after

    assert names(limit=3) == [order[0:3], order[3:6], order[6:8]]
    assert names(limit=4) == [order[0:4], order[4:8]]
    assert names(limit=8) == [order]
    assert names() == [order]
    assert names(chart="lock") == [["l0", "l1", "l2"]]
    assert names(chart="job", limit=2) == [["a0", "a1"], ["a2", "a3"], ["a4"]]
    assert names(status="running") == [["a1", "a2"]]  # an ancestor state lists paused too
    assert names(status="running.paused") == [["a2"]]
    assert names(status="idle") == [["a0", "a3", "a4"]]
    assert names(chart="lock", status="free") == [["l0", "l1"]]
    assert names(chart="job", status="taken") == [[]]
    assert names(chart="nochart") == [[]]
    page = eng.list(status="running")
    assert [e.state for e in page.items] == ["running.active", "running.paused"]


def test_get_and_history_by_id_and_name(store_url, open_engine):
    rec = Recorder()
    eng = open_engine(store_url)
    eng.register(JOB, job_bindings(rec))
    eng.register(LOCK, lock_bindings())
    web = eng.create("job", "web")
    assert eng.get(web.id) == eng.get("web") == eng.get(web) == eng.get("web", "job")
    eng.fire("web", "start")
    assert eng.history(web.id) == eng.history("web")
    # A name used in two charts names neither without the chart.
    eng.create("lock", "web")
    with pytest.raises(errors.NotFound):
        eng.get("web")
    assert eng.get("web", "job").id == web.id
    assert eng.get("web", "lock").chart == "lock"


def test_a_name_shaped_like_an_id_still_finds_the_id_first(store_url, open_engine):
    eng = open_engine(store_url)
    eng.register(JOB, job_bindings(Recorder()))
    eng.register(LOCK, lock_bindings())
    web = eng.create("job", "web")
    # Names an engine's id could be (64 lowercase hex digits), and some it could not.
    twin = eng.create("job", web.id)  # the id of another entity
    free = eng.create("job", "ab" * 32)  # the id of none
    upper = eng.create("job", web.id.upper())
    assert eng.get(web.id) == web  # an id first, then a name
    assert eng.get(web.id, "job") == web
    assert eng.get(twin.id) == twin and eng.get(twin.id).name == web.id
    assert eng.get("ab" * 32) == free
    assert eng.get(web.id.upper()) == upper == eng.get(upper.id)
    assert eng.get("web") == web == eng.get("web", "job")
    with pytest.raises(errors.Conflict, match="already in use"):
        eng.create("job", web.id)  # the name is held (by twin), whoever's id it is
    with pytest.raises(errors.Conflict, match="already in use"):
        eng.create("job", "web")
    # The same name in another chart: the id still names its entity, chart or not.
    lock = eng.create("lock", web.id)
    assert eng.get(web.id) == web
    assert eng.get(web.id, "lock") == lock
    with pytest.raises(errors.NotFound):
        eng.get("ab" * 32, "lock")
    with pytest.raises(errors.NotFound):
        eng.get(web.id[:12])
    assert eng.fire(web.id.upper(), "start").entity.id == upper.id


def test_api_errors(store_url, open_engine):
    rec = Recorder()
    eng = open_engine(store_url)
    eng.register(JOB, job_bindings(rec))
    web = eng.create("job", "web")

    for call in (
        lambda: eng.get("nope"),
        lambda: eng.history("nope"),
        lambda: eng.fire("nope", "start"),
        lambda: eng.create("nochart", "x"),
        lambda: eng.get("web", "lock"),
    ):
        with pytest.raises(errors.NotFound):
            call()

    for call in (
        lambda: eng.get(""),
        lambda: eng.history(""),
        lambda: eng.create("job", ""),
        lambda: eng.create("job", "bad name"),
        lambda: eng.create("job", "-leading-dash"),
        lambda: eng.create("job", "x" * 254),
        lambda: eng.create("job", "ok", {"handle": object()}),
        lambda: eng.fire(web, "start", {"ports": {80}}),
        lambda: eng.fire(web, "start", idempotency_key=""),
        lambda: eng.fire(web, "start", idempotency_key="k" * 301),
        lambda: eng.fire(web, "explode"),
        lambda: eng.list(limit=0),
        lambda: eng.list(limit=1001),
    ):
        with pytest.raises(errors.InvalidParameter):
            call()
    assert eng.create("job", "x" * 253).name == "x" * 253
    assert [e.name for e in eng.list().items] == ["web", "x" * 253]
    assert eng.history(web) == []
    assert rec.calls == []

    with pytest.raises(errors.Conflict, match="already in use"):
        eng.create("job", "web")

    with pytest.raises(errors.InvalidParameter) as info:
        eng.register(TIMED, Bindings())
    for name in ("step 'arm'", "step 'note'", "step 'disarm'"):
        assert name in info.value.message
    with pytest.raises(errors.InvalidParameter) as info:
        eng.register(JOB, Bindings(steps={"fetch": Step(lambda ctx: None)}))
    for name in ("guard 'quota'", "step 'mount'", "step 'launch'", "step 'halt'"):
        assert name in info.value.message
    assert "step 'fetch'" not in info.value.message
    with pytest.raises(errors.NotFound):
        eng.create("timed", "never")
    assert set(eng.charts()) == {"job"}

    eng.close()
    eng.close()  # closing twice is harmless
    for call in (
        lambda: eng.get("web"),
        eng.list,
        lambda: eng.history("web"),
        lambda: eng.fire("web", "start"),
        lambda: eng.create("job", "late"),
        lambda: eng.register(LOCK, lock_bindings()),
        lambda: next(eng.watch()),
    ):
        with pytest.raises(errors.Unavailable, match="closed"):
            call()


def test_an_idempotency_key_reused_for_another_request_is_refused(tmp_path: Path) -> None:
    chart = engine.parse_chart(
        {
            "chart": "door",
            "initial": "shut",
            "states": {"shut": {}, "open": {}},
            "transitions": [
                {"event": "open", "from": "shut", "to": "open"},
                {"event": "shut", "from": "open", "to": "shut"},
            ],
        }
    )
    with engine.Engine.open(f"sqlite:///{tmp_path / 'k.db'}") as eng:
        eng.register(chart)
        door = eng.create("door", "front")
        eng.fire(door, "open", {"by": "ann"}, idempotency_key="k")
        assert eng.fire(door, "open", {"by": "ann"}, idempotency_key="k").replayed
        for event, params in (("shut", {"by": "ann"}), ("open", {"by": "bob"})):
            with pytest.raises(InvalidParameter, match="idempotency key 'k' was used for 'open'"):
                eng.fire(door, event, params, idempotency_key="k")
        assert eng.get(door).version == 1


def test_watch_checks_its_arguments_at_the_call(tmp_path: Path) -> None:
    with engine.Engine.open() as eng:
        with pytest.raises(InvalidParameter, match="unknown event filter keys"):
            eng.watch(filter={"colour": "red"})
        with pytest.raises(InvalidParameter, match="since must be a sequence number"):
            eng.watch(-1)


def test_a_finished_entity_frees_its_name_and_keeps_its_journal(tmp_path: Path) -> None:
    chart = engine.parse_chart(
        {
            "chart": "box",
            "initial": "here",
            "states": {"here": {}, "gone": {"final": True}},
            "transitions": [{"event": "remove", "from": "here", "to": "gone"}],
        }
    )
    with engine.Engine.open(f"sqlite:///{tmp_path / 'n.db'}") as eng:
        eng.register(chart)
        first = eng.create("box", "web")
        with pytest.raises(errors.Conflict, match="already in use"):
            eng.create("box", "web")
        eng.fire(first, "remove")
        second = eng.create("box", "web")
        assert second.id != first.id
        assert eng.get("web").id == second.id  # the name names the live one
        assert [t.event for t in eng.history(first.id)] == ["remove"]
        eng.fire(second, "remove")
        assert eng.get("web").id == second.id  # no live one: the latest that had it


def test_then_fires_a_follow_up_after_the_transition_commits() -> None:
    chart = engine.parse_chart(
        {
            "chart": "tmp",
            "initial": "running",
            "states": {"running": {}, "exited": {}, "removed": {"final": True}},
            "transitions": [
                {
                    "event": "exit",
                    "from": "running",
                    "to": "exited",
                    "then": {"event": "remove", "when": "auto_remove"},
                },
                {"event": "remove", "from": "exited", "to": "removed"},
            ],
        }
    )
    with engine.Engine.open() as eng:
        eng.register(chart)
        keep = eng.create("tmp", "keep")
        gone = eng.create("tmp", "gone", {"auto_remove": True})
        assert eng.fire(keep, "exit").entity.configuration == ("exited",)
        assert eng.get(keep.id).configuration == ("exited",)
        assert eng.fire(gone, "exit").entity.configuration == ("exited",)
        assert eng.get(gone.id).configuration == ("removed",)
        assert [t.event for t in eng.history(gone.id)] == ["exit", "remove"]


def test_a_step_firing_on_its_own_entity_is_refused_not_deadlocked() -> None:
    chart = engine.parse_chart(
        {
            "chart": "loop",
            "initial": "a",
            "states": {"a": {}, "b": {}},
            "transitions": [
                {"event": "go", "from": "a", "to": "b", "steps": ["again"]},
                {"event": "back", "from": "b", "to": "a"},
            ],
        }
    )
    with engine.Engine.open() as eng:

        def again(ctx: Context) -> None:
            eng.fire(ctx.entity_id, "back")

        eng.register(chart, Bindings(steps={"again": Step(again, lambda ctx, p: None)}))
        e = eng.create("loop", "x")
        with pytest.raises(errors.Conflict, match="from inside its own transition"):
            eng.fire(e, "go")
        assert eng.get(e.id).configuration == ("a",)


def test_a_cycle_of_follow_ups_is_cut_after_a_bounded_chain(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Found by the property kit on generated charts: ping -> then pong -> then ping ...
    # used to recurse until RecursionError escaped from the first fire.
    chart = engine.parse_chart(
        {
            "chart": "cycle",
            "initial": "a",
            "states": {"a": {}, "b": {}},
            "transitions": [
                {"event": "ping", "from": "a", "to": "b", "then": {"event": "pong"}},
                {"event": "pong", "from": "b", "to": "a", "then": {"event": "ping"}},
            ],
        }
    )
    with engine.Engine.open() as eng:
        eng.register(chart)
        entity = eng.create("cycle", "x")
        with caplog.at_level(logging.ERROR, logger="chartd.engine"):
            result = eng.fire(entity, "ping")
        assert result.entity.configuration == ("b",)  # the first fire's own result
        fired = [t.event for t in eng.history(entity.id)]
        assert len(fired) == 1 + MAX_FOLLOW_UPS
        assert fired[:4] == ["ping", "pong", "ping", "pong"]
        assert "follow-ups did not end: 100 in a row" in caplog.text
        assert eng.get(entity.id).configuration == ("b",)  # ping, then 50 x (pong, ping)
        # Not wedged: the entity takes the next event (which sets off a chain of its own).
        assert eng.fire(entity, "pong").entity.configuration == ("a",)
