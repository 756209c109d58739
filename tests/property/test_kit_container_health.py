"""The container chart's health region (version 2), property-tested on a real engine.

Two parts. The test kit drives the chart's real code (on the fake runtime)
with random events, failing steps and crashes, containers created with and
without a health check; on top of the kit's checks, an invariant: a probe is
running (``health.probe``) only in an active container's health region, so
none survives a pause, a stop or an exit.

Then the rules of moby's ``handleProbeResult`` for any sequence of probe
results, pauses and waits: the engine's clock is a fake one, its durable
timers are run by hand, so each probe is the ``health_check`` timer firing;
after each result the status and failing streak are those a model of moby's
rules computes, the log keeps the last five, and while the container is
paused no timer starts a probe, however long it waits.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engine
from engine.errors import NotModified
from engine.testing import state_machine
from statecharts.container import load_chart
from statecharts.container.bindings import container_bindings
from statecharts.container.faults import FakeRuntime
from statecharts.container.health import health_status
from statecharts.container.network import AddressPool

CHART = load_chart()
PROBING = tuple(f"running.active.health.{s}" for s in ("starting", "healthy", "unhealthy"))


class Recorder:
    """A prober that runs nothing and remembers what it was asked."""

    def __init__(self) -> None:
        self.started: list[tuple[str, str]] = []
        self.cancelled: list[str] = []

    def start(self, container_id: str, probe_id: str, cmd: list[str], timeout: float) -> None:
        self.started.append((container_id, probe_id))

    def cancel(self, container_id: str, probe_id: str) -> None:
        self.cancelled.append(probe_id)


def health_code() -> tuple[engine.Bindings, list[Any]]:
    root = Path(tempfile.mkdtemp(prefix="chartd-kit-health-"))
    pool = AddressPool("10.88.0.0/24", root / "network")
    code = container_bindings(FakeRuntime(), pool, root, clock=time.time, prober=Recorder())

    def probes_run_only_while_active(eng: engine.Engine) -> None:
        for page_item in eng.list("container", limit=100).items:
            probe = (page_item.data.get("health") or {}).get("probe")
            if probe:
                assert any(page_item.in_state(s) for s in PROBING), (
                    f"{page_item.name} is {page_item.state} with a probe running"
                )

    return code, [probes_run_only_while_active]


HEALTHCHECK = st.fixed_dictionaries(
    {"test": st.sampled_from([["CMD-SHELL", "true"], ["CMD", "true"], ["NONE"]])},
    optional={"interval": st.sampled_from([0.0, 1.0]), "retries": st.integers(0, 3)},
)
DATA = st.fixed_dictionaries(
    {"cmd": st.just(["sleep", "100"]), "restart_policy": st.just({"name": "no"})},
    optional={"healthcheck": HEALTHCHECK},
)
PARAMS = {
    "probe": st.sampled_from(["p1", "p2"]),
    "exit_code": st.sampled_from([0, 1, -1]),
    "signal": st.sampled_from(["SIGTERM", "SIGKILL"]),
}
EVENTS = sorted(e for e in CHART.events if not e.startswith("done."))

CI = settings.default.max_examples >= 200
TestHealthRegionWithTheKit = state_machine(
    CHART, health_code, data=DATA, params=PARAMS, events=EVENTS
).TestCase
TestHealthRegionWithTheKit.settings = settings(
    max_examples=60 if CI else 10,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


# -- moby's rules, for any sequence ------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def now(self) -> float:
        return self.t


@dataclass
class Model:
    """moby's handleProbeResult, as the reference says it."""

    retries: int
    start_period: float
    started_at: float
    status: str = "starting"
    streak: int = 0
    results: int = 0

    def result(self, passed: bool, start: float) -> None:
        self.results += 1
        if passed:
            self.status, self.streak = "healthy", 0
            return
        if self.status == "starting" and start - self.started_at < self.start_period:
            return
        self.streak += 1
        if self.streak >= self.retries:
            self.status = "unhealthy"


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("probe"), st.sampled_from([0, 1, 2, -1]), st.floats(1.0, 4.0)),
        st.tuples(st.just("pause"), st.just(0), st.just(0.0)),
        st.tuples(st.just("unpause"), st.just(0), st.just(0.0)),
    ),
    max_size=25,
)


@settings(max_examples=60 if CI else 15, deadline=None)
@given(ops=OPS, retries=st.integers(0, 4), start_period=st.sampled_from([0.0, 3.0, 10.0]))
def test_status_and_streak_follow_moby_for_any_results(
    ops: list[tuple[str, int, float]], retries: int, start_period: float
) -> None:
    clock = Clock()
    recorder = Recorder()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        eng = engine.Engine.open(f"sqlite:///{root / 'db'}", clock=clock, timers=False)
        try:
            pool = AddressPool("10.88.0.0/24", root / "network")
            eng.register(
                CHART,
                container_bindings(FakeRuntime(), pool, root, clock=clock.now, prober=recorder),
            )
            hc = {
                "test": ["CMD-SHELL", "probe"],
                "interval": 1.0,
                "start_interval": 1.0,
                "start_period": start_period,
                "retries": retries,
            }
            c = eng.create("container", "web", {"cmd": ["sleep", "1"], "healthcheck": hc})
            c = eng.fire(c, "start").entity
            model = Model(retries or 3, start_period, float(c.data["started_at"]))
            for op, code, gap in ops:
                _apply(eng, clock, recorder, model, op, code, gap)
            # Once the process exited, no timer starts a probe, however long it waits.
            eng.fire("web", "exit", {"exit_code": 0})
            probes = len(recorder.started)
            clock.t += 1000.0
            eng.run_due_timers()
            assert len(recorder.started) == probes, "a stopped container was probed"
        finally:
            eng.close()


def _apply(
    eng: engine.Engine,
    clock: Clock,
    recorder: Recorder,
    model: Model,
    op: str,
    code: int,
    gap: float,
) -> None:
    c = eng.get("web")
    paused = c.in_state("running.paused")
    if op == "pause" and not paused:
        eng.fire(c, "pause")
    elif op == "unpause" and paused:
        eng.fire(c, "unpause")
        assert health_status(eng.get("web")) == model.status  # kept across the pause
    elif op == "probe":
        before = len(recorder.started)
        clock.t += gap if not paused else 1000.0
        eng.run_due_timers()
        if paused:
            assert len(recorder.started) == before, "a paused container was probed"
            return
        assert len(recorder.started) == before + 1, "the probe's timer did not fire once"
        probe = eng.get("web").data["health"]["probe"]
        assert recorder.started[-1] == (c.id, probe)
        start = clock.t
        clock.t += 0.01
        event = "probe_passed" if code == 0 else "probe_failed"
        params = {"probe": probe, "exit_code": code, "output": "", "start": start, "end": clock.t}
        eng.fire("web", event, params)
        model.result(code == 0, start)
        # A result delivered twice (or late) is refused: it counts once.
        try:
            eng.fire("web", event, params)
        except NotModified:
            pass
        else:
            raise AssertionError("a probe's result was counted twice")
    after = eng.get("web")
    health = after.data["health"]
    assert health_status(after) == model.status
    assert health["failing_streak"] == model.streak
    assert len(health["log"]) == min(5, model.results)
