"""Removed containers cost ps nothing, and go (with their history) after the retention.

``ps`` and a lookup read the live containers only: the store is asked for
live entities, so no removed one is ever read, however many there are. A
daemon keeps a removed container's history for ``--retain-removed`` (24 h by
default); housekeeping then deletes it, a bounded batch a beat.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import engine
from engine.daemon import DaemonConfig
from engine.errors import InvalidParameter, NotFound
from engine.runtime.limits import Limits, parse_retention
from statecharts.container.faults import FakeRuntime
from statecharts.container.service import Containers

BOUND = 10.0


class HeldClock:
    def __init__(self) -> None:
        self.at = time.time()
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self.at

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.at += seconds


@pytest.fixture
def clock() -> HeldClock:
    return HeldClock()


@pytest.fixture
def eng(tmp_path: Path, clock: HeldClock) -> Iterator[engine.Engine]:
    limits = Limits(retain_finished=3600.0, beat=0.05, purge_batch=4)
    url = f"sqlite:///{tmp_path / 'chartd.db'}"
    with engine.Engine.open(url, clock=clock, timers=False, limits=limits) as opened:
        yield opened


@pytest.fixture
def svc(eng: engine.Engine, tmp_path: Path) -> Containers:
    return Containers(eng, FakeRuntime(), tmp_path / "state")


def test_ps_and_a_failed_lookup_read_no_removed_container(
    svc: Containers, eng: engine.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [svc.create(["true"], name=f"c{i}").id for i in range(12)]
    for cid in ids[:10]:
        svc.remove(cid)
    read: list[Any] = []
    listing = eng.store.entities

    def entities(**query: Any) -> Any:
        rows = listing(**query)
        read.extend(rows)
        return rows

    monkeypatch.setattr(eng.store, "entities", entities)
    assert sorted(c.id for c in svc.list(all=True)) == sorted(ids[10:])
    with pytest.raises(NotFound):
        svc.get("nosuch")
    assert svc.get(ids[10][:12]).id == ids[10]
    assert read and not [row for row in read if not row.live]


def test_removed_containers_go_after_the_retention(
    svc: Containers, eng: engine.Engine, clock: HeldClock
) -> None:
    kept = svc.create(["true"], name="kept").id
    old = [svc.create(["true"], name=f"old{i}").id for i in range(6)]
    for cid in old:
        svc.remove(cid)
    clock.advance(1800.0)
    recent = svc.create(["true"], name="recent").id
    svc.remove(recent)
    clock.advance(1801.0)  # the first six are past the retention, the last one not

    deadline = time.monotonic() + BOUND
    while any(_exists(eng, cid) for cid in old):  # housekeeping: batches of four, a beat each
        assert time.monotonic() < deadline, "removed containers outlived the retention"
        time.sleep(0.02)
    assert [t.event for t in eng.history(recent)] == ["remove"]
    assert svc.get("kept").id == kept
    assert _exists(eng, recent)


def _exists(eng: engine.Engine, entity_id: str) -> bool:
    try:
        eng.get(entity_id)
    except NotFound:
        return False
    return True


def test_the_retention_of_chartd_serve(tmp_path: Path) -> None:
    assert DaemonConfig.resolve(tmp_path).retain_removed == 24 * 3600
    assert DaemonConfig.resolve(tmp_path, retain_removed="90m").retain_removed == 5400
    assert DaemonConfig.resolve(tmp_path, retain_removed="forever").retain_removed is None
    assert parse_retention("0") == 0 and parse_retention("7d") == 7 * 86400
    assert parse_retention("1.5h") == 5400 and parse_retention("30s") == 30
    with pytest.raises(InvalidParameter, match=r"invalid --retain-removed '1y': a duration"):
        DaemonConfig.resolve(tmp_path, retain_removed="1y")
