"""Bulk operations: create_many and fire_many, each unit on its own, nothing lost in a crash.

Every test runs a real engine on a real SQLite file; the crash test kills a
real child process with SIGKILL in the middle of a batch.
"""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

import engine
from engine import Bindings, Context, Step, errors

REPO = Path(__file__).resolve().parents[2]

SERVER_YAML = """
chart: server
initial: stopped
states:
  stopped: {}
  booting: {transient: true}
  running: {}
  gone: {final: true}
transitions:
  - {event: boot, from: stopped, to: running, via: booting, steps: [power, network]}
  - {event: halt, from: running, to: stopped}
  - {event: scrap, from: [stopped, running], to: gone}
rejections:
  - {event: boot, in: running, error: not_modified, message: "{entity} is already running"}
"""
SERVER = engine.parse_chart(SERVER_YAML)


class Rack:
    """Steps that record what they did and undid, failing for the entities named in ``broken``."""

    def __init__(self, broken: set[str] | None = None) -> None:
        self.broken = broken or set()
        self.done: list[tuple[str, str]] = []
        self.undone: list[tuple[str, str]] = []
        self._guard = threading.Lock()

    def _step(self, name: str) -> Step:
        def do(ctx: Context) -> None:
            if name == "network" and ctx.entity_name in self.broken:
                raise errors.Unavailable(f"no network for {ctx.entity_name}")
            with self._guard:
                self.done.append((ctx.entity_name, name))

        def undo(ctx: Context, payload: Any) -> None:
            with self._guard:
                self.undone.append((ctx.entity_name, name))

        return Step(do, undo)

    def bindings(self) -> Bindings:
        return Bindings(steps={"power": self._step("power"), "network": self._step("network")})


@pytest.fixture
def eng(tmp_path: Path) -> Any:
    with engine.Engine.open(f"sqlite:///{tmp_path / 'chartd.db'}") as opened:
        yield opened


def test_create_many_gives_each_unit_its_own_result(eng: engine.Engine) -> None:
    eng.register(SERVER, Rack().bindings())
    eng.create("server", "taken")
    results = eng.create_many(
        "server",
        [
            ("web1", {"rack": 1}),
            ("bad name", {}),
            ("taken", {}),
            ("web2", None),
            ("web1", {"again": True}),
            ("web3", {"when": object()}),
            ("web4", {"nested": {"a": [1, 2]}}),
        ],
    )
    kinds = [type(r).__name__ for r in results]
    assert kinds == [
        "Entity",
        "InvalidParameter",
        "Conflict",
        "Entity",
        "Conflict",
        "InvalidParameter",
        "Entity",
    ]
    assert "given twice" in str(results[4]) and "already in use" in str(results[2])
    assert "JSON" in str(results[5])
    for name, data in (("web1", {"rack": 1}), ("web2", {}), ("web4", {"nested": {"a": [1, 2]}})):
        stored = eng.get(name)
        assert stored.data == data and stored.configuration == ("stopped",)
    with pytest.raises(errors.NotFound):
        eng.get("web3")
    created = [e.entity_name for e in eng.watch(timeout=0) if e.type == "create"]
    assert created == ["taken", "web1", "web2", "web4"]  # one create event per unit created


def test_create_many_refuses_an_unknown_chart_and_takes_a_generator(eng: engine.Engine) -> None:
    eng.register(SERVER, Rack().bindings())
    with pytest.raises(errors.NotFound):
        eng.create_many("nosuch", [("a", {})])
    made = eng.create_many("server", ((f"s{i}", {"i": i}) for i in range(12_000)))
    assert all(isinstance(r, engine.Entity) for r in made) and len(made) == 12_000
    assert [r.name for r in made[:3]] == ["s0", "s1", "s2"]  # in order, across chunks
    assert eng.get("s11999").data == {"i": 11_999}
    assert eng.list("server", limit=1000).items[-1].name == "s999"


def test_fire_many_refuses_fails_compensates_and_replays_unit_by_unit(eng: engine.Engine) -> None:
    rack = Rack(broken={"b"})
    eng.register(SERVER, rack.bindings())
    for name in ("a", "b", "c", "d"):
        eng.create("server", name)
    first = eng.fire("d", "boot", idempotency_key="boot-d")
    results = eng.fire_many(
        [
            ("a", "boot"),
            ("b", "boot"),  # its network step fails: undone, recorded
            ("c", "reboot"),  # an event the chart does not know
            ("d", "boot", None, "boot-d"),  # the same key: the recorded result again
            ("a", "boot"),  # after the first: refused as already running
            ("nosuch", "boot"),
            "not a request",
        ],
        concurrency=1,  # in order, so the second boot of "a" is decided after the first
    )
    assert isinstance(results[0], engine.Result) and results[0].entity.configuration == ("running",)
    assert isinstance(results[1], errors.Unavailable) and "no network for b" in str(results[1])
    assert isinstance(results[2], errors.ChartdError)
    assert isinstance(results[3], engine.Result) and results[3].replayed
    assert results[3].transition_id == first.transition_id
    assert isinstance(results[4], errors.NotModified) and str(results[4]) == "a is already running"
    assert isinstance(results[5], errors.NotFound)
    assert isinstance(results[6], errors.InvalidParameter)
    assert eng.get("b").configuration == ("stopped",)
    assert ("b", "power") in rack.undone and ("a", "power") not in rack.undone
    failed = eng.history("b")[-1]
    assert failed.status == "failed" and [s.status for s in failed.steps] == [
        "compensated",
        "failed",
    ]
    assert [t.event for t in eng.history("d")] == ["boot"]  # the replay ran nothing


def test_fire_many_runs_units_concurrently_and_serialises_each_entity(
    eng: engine.Engine,
) -> None:
    rack = Rack()
    eng.register(SERVER, rack.bindings())
    eng.create_many("server", ((f"n{i}", {}) for i in range(40)))
    requests = [(f"n{i}", "boot") for i in range(40)] + [(f"n{i}", "halt") for i in range(40)]
    results = eng.fire_many(requests, concurrency=8)
    boots = results[:40]
    assert all(isinstance(r, engine.Result) for r in boots)
    # A halt either ran after its entity's boot or was refused before it: never both at once.
    for i, halt in enumerate(results[40:]):
        history = [t.event for t in eng.history(f"n{i}") if t.status == "committed"]
        if isinstance(halt, engine.Result):
            assert history == ["boot", "halt"]
        else:
            assert history == ["boot"] and isinstance(halt, errors.ChartdError)
    with pytest.raises(errors.InvalidParameter):
        eng.fire_many([("n0", "halt")], concurrency=0)


CHILD = textwrap.dedent(
    """
    import os, signal, sys
    import engine
    from engine import Bindings, Context, Step

    url, kill_after, SERVER = sys.argv[1], int(sys.argv[2]), engine.parse_chart(sys.argv[3])
    powered = [0]

    def power(ctx: Context) -> None:
        powered[0] += 1
        if powered[0] == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)  # dies mid-batch, mid-saga

    noop = Step(lambda ctx: None, lambda ctx, payload: None)
    bindings = Bindings(steps={"power": Step(power, lambda ctx, p: None), "network": noop})
    with engine.Engine.open(url) as eng:
        eng.register(SERVER, bindings)
        eng.fire_many(
            [(f"m{i}", "boot", None, f"boot-{i}") for i in range(60)], concurrency=4
        )
    """
)


def test_a_crash_in_the_middle_of_a_batch_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'chartd.db'}"
    with engine.Engine.open(url) as eng:
        eng.register(SERVER, Rack().bindings())
        assert all(
            isinstance(r, engine.Entity)
            for r in eng.create_many("server", ((f"m{i}", {}) for i in range(60)))
        )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    child = subprocess.run(
        [sys.executable, "-c", CHILD, url, "25", SERVER_YAML],
        check=False,
        cwd=REPO,
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()
    with engine.Engine.open(url) as eng:
        eng.register(SERVER, Rack().bindings())  # recovers what the dead engine left
        before = {f"m{i}": list(eng.history(f"m{i}")) for i in range(60)}
        for name, journal in before.items():
            assert all(t.status in ("committed", "failed") for t in journal), name
            assert len(journal) <= 1, name  # nothing applied twice
            configuration = eng.get(name).configuration
            committed = [t for t in journal if t.status == "committed"]
            assert configuration == (("running",) if committed else ("stopped",)), name
        assert any(before.values()) and not all(
            t and t[0].status == "committed" for t in before.values()
        )
        # The batch again, with the same keys: what committed is replayed, the rest runs.
        again = eng.fire_many([(f"m{i}", "boot", None, f"boot-{i}") for i in range(60)])
        for i, result in enumerate(again):
            journal = before[f"m{i}"]
            if journal and journal[0].status == "committed":
                assert isinstance(result, engine.Result) and result.replayed, i
            elif journal:  # failed (interrupted and undone): its key replays the failure
                assert isinstance(result, errors.Unavailable), (i, result)
            else:
                assert isinstance(result, engine.Result) and not result.replayed, i
        for i in range(60):
            committed = [t for t in eng.history(f"m{i}") if t.status == "committed"]
            assert len(committed) == (
                0 if before[f"m{i}"] and before[f"m{i}"][0].status == "failed" else 1
            ), i


def test_create_many_gives_the_garbage_collector_back_as_it_found_it(
    eng: engine.Engine,
) -> None:
    eng.register(SERVER, Rack().bindings())

    seen_during: list[bool] = []

    def items(prefix: str, count: int, fail: bool = False) -> Any:
        for i in range(count):
            yield (f"{prefix}{i}", {})
        seen_during.append(gc.isenabled())  # read as the last chunk is being built
        if fail:
            raise RuntimeError("the caller's items broke")

    assert gc.isenabled()
    made = eng.create_many("server", items("big", 25_000))  # two chunks: paused, then back
    assert all(isinstance(r, engine.Entity) for r in made) and gc.isenabled()
    eng.create_many("server", items("small", 10))  # an API-sized call never pauses it
    with pytest.raises(RuntimeError, match="items broke"):
        eng.create_many("server", items("broken", 25_000, fail=True))
    assert gc.isenabled() and seen_during == [False, True, False]
    gc.disable()  # the application's choice: kept
    try:
        assert len(eng.create_many("server", items("off", 3_000))) == 3_000
        assert not gc.isenabled()
    finally:
        gc.enable()
