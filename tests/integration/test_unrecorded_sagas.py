"""A saga whose end the database would not take is finished by the live engine once it answers.

The database fills up (every commit fails as SQLite's does on a full disk)
while a saga runs: its failure, its final commit, or the end of its point of
no return cannot be recorded. The engine keeps what it knows of the saga,
refuses fires on the entity meanwhile (Unavailable), and its housekeeping
finishes the saga the way recovery finishes a dead engine's, as soon as the
database takes commits again: no restart is needed, no undo runs twice, and
the journal ends up saying what happened.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import engine
from engine import Bindings, Context, Step
from engine.errors import System, Unavailable
from engine.runtime.engine import Engine
from engine.runtime.limits import Limits
from engine.store import open_store
from engine.testing.databases import FullStore

BOUND = 10.0

CHART = engine.parse_chart(
    """
chart: box
initial: idle
states:
  idle: {}
  starting: {transient: true}
  up: {}
  broken: {}
transitions:
  - event: start
    from: idle
    to: up
    via: starting
    steps: [make, boot]
    on_failure: {after: make, to: broken, record: [error]}
"""
)


class Box:
    """Steps that record what they ran; ``fill_at`` fills the disk there (and ``fail`` fails)."""

    def __init__(self, disk: FullStore) -> None:
        self.disk = disk
        self.fill_at: str | None = None
        self.fail = False
        self.done: list[str] = []
        self.undone: list[str] = []
        self._lock = threading.Lock()

    def step(self, name: str) -> Step:
        def do(ctx: Context) -> None:
            with self._lock:
                self.done.append(name)
            if self.fill_at == name:
                self.disk.full = True
                if self.fail:
                    raise System(f"{name} failed")

        def undo(ctx: Context, payload: Any) -> None:
            with self._lock:
                self.undone.append(name)

        return Step(do, undo)

    def bindings(self) -> Bindings:
        return Bindings(steps={"make": self.step("make"), "boot": self.step("boot")})


@pytest.fixture
def disk(tmp_path: Path) -> FullStore:
    return FullStore(open_store(f"sqlite:///{tmp_path / 'chartd.db'}"))


@pytest.fixture
def box(disk: FullStore) -> Box:
    return Box(disk)


@pytest.fixture
def eng(disk: FullStore, box: Box) -> Iterator[Engine]:
    with Engine(disk, limits=Limits(beat=0.05)) as opened:  # type: ignore[arg-type]
        opened.register(CHART, box.bindings())
        yield opened


def settled(eng: Engine, entity_id: str) -> engine.Entity:
    """The entity once it is out of its transient state (bounded: fails after BOUND s)."""
    deadline = time.monotonic() + BOUND
    while True:
        found = eng.get(entity_id)
        if not found.in_state("starting"):
            return found
        assert time.monotonic() < deadline, "still in starting: nothing recovered it"
        time.sleep(0.01)


def test_a_failure_that_could_not_be_recorded_is_recorded_once_the_database_answers(
    eng: Engine, disk: FullStore, box: Box
) -> None:
    one = eng.create("box", "one")
    box.fill_at, box.fail = "make", True  # the first step fails, and the disk is full
    with pytest.raises(System, match="make failed"):
        eng.fire(one, "start")
    assert eng.get(one.id).in_state("starting")  # the write-ahead, as nothing else landed
    with pytest.raises(Unavailable, match="is being recovered"):
        eng.fire(one, "start")

    disk.full = False
    after = settled(eng, one.id)
    assert after.state == "idle"  # failed before its point of no return: back to the source
    [record] = eng.history(one)
    assert (record.status, record.error_message) == ("failed", "make failed")
    assert [s.status for s in record.steps] == ["failed", "pending"]
    assert box.undone == []  # a step whose do raised is not undone, by either side
    box.fill_at = None
    assert eng.fire(one, "start").entity.state == "up"


def test_a_saga_whose_final_commit_failed_is_committed_once_the_database_answers(
    eng: Engine, disk: FullStore, box: Box
) -> None:
    one = eng.create("box", "one")
    box.fill_at = "boot"  # every step completes, then the final commit cannot be made
    with pytest.raises(Unavailable, match=r"could not be recorded: .*database or disk is full"):
        eng.fire(one, "start")
    assert eng.get(one.id).in_state("starting")

    disk.full = False
    assert settled(eng, one.id).state == "up"
    [record] = eng.history(one)
    assert record.status == "committed" and [s.status for s in record.steps] == ["done", "done"]
    assert (box.done, box.undone) == (["make", "boot"], [])  # nothing undone, nothing redone


def test_a_point_of_no_return_that_could_not_be_journaled_ends_the_saga(
    eng: Engine, disk: FullStore, box: Box
) -> None:
    one = eng.create("box", "one")
    box.fill_at = "make"  # `make` is the `after` step: its end must be on disk to go on
    with pytest.raises(Unavailable, match="database or disk is full"):
        eng.fire(one, "start")
    assert box.done == ["make"] and box.undone == ["make"]

    disk.full = False
    after = settled(eng, one.id)
    assert after.state == "broken"  # past its point of no return: the failure policy's target
    assert "database or disk is full" in after.data["error"]
    [record] = eng.history(one)
    assert record.status == "failed"
    assert [s.status for s in record.steps] == ["compensated", "pending"]
    assert box.undone == ["make"]  # undone once, by the engine that ran it
