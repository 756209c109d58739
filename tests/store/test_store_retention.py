"""Finished entities on every backend: left out of live listings, and deleted after a retention.

A listing of live entities reads none of the finished ones (the plan SQLite
makes is checked: it walks the partial index of live entities only). The
retention sweep deletes finished entities older than a time, with their
journals and timers, a bounded batch at a time, and never a live one.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

from test_store_conformance import create, entity, event, step, timer, transition

from engine.ports import Write
from engine.store import SqlStore, open_store


def finish(store: SqlStore, entity_id: str, at: float) -> None:
    """Move the entity to the final state ``removed`` at time ``at``."""
    row = store.entity(entity_id)
    assert row is not None
    done = dataclasses.replace(
        row, configuration=("removed",), live=False, version=row.version + 1, updated_at=at
    )
    assert store.apply([Write(entity=done, expect_version=row.version)]) == [None]


def test_a_live_listing_leaves_finished_entities_out(store: SqlStore) -> None:
    create(store, *(entity(f"e{i}") for i in range(6)), entity("other", chart="job"))
    for i in (0, 2, 3):
        finish(store, f"e{i}", at=500.0)
    listed = store.entities(chart="container", live=True)
    assert [r.id for r in listed] == ["e1", "e4", "e5"]
    assert [r.id for r in store.entities(live=True)] == ["e1", "e4", "e5", "other"]
    page = store.entities(chart="container", live=True, limit=1, after=listed[0].seq)
    assert [r.id for r in page] == ["e4"]
    assert len(store.entities(chart="container")) == 6  # all of them, as before


def test_purge_deletes_old_finished_entities_with_their_journal(store: SqlStore) -> None:
    create(store, *(entity(f"e{i}") for i in range(5)))
    for i in range(5):
        store.apply(
            [
                Write(
                    transitions=[transition(f"t{i}", f"e{i}", status="committed")],
                    steps=[step(f"t{i}", 0, "done"), step(f"t{i}", 1, "done")],
                    timers=[timer(f"tm{i}", f"e{i}", 900.0)],
                    events=[event(f"e{i}", "die", f"t{i}")],
                )
            ]
        )
    finish(store, "e0", at=500.0)
    finish(store, "e1", at=600.0)
    finish(store, "e2", at=700.0)  # finished, but after the retention's time
    assert store.purge_finished(before=650.0, limit=1) == 1  # a bounded batch
    assert store.entity("e0") is None and store.entity("e1") is not None
    assert store.purge_finished(before=650.0, limit=10) == 1
    assert store.purge_finished(before=650.0, limit=10) == 0
    for gone in ("e0", "e1"):
        assert store.entity(gone) is None
        assert store.transitions(gone) == [] and store.timers(gone) == []
    for kept in ("e2", "e3", "e4"):  # finished too recently, or live
        assert store.entity(kept) is not None
        [kept_transition] = store.transitions(kept)
        assert len(kept_transition.steps) == 2 and len(store.timers(kept)) == 1
    assert store.purge_finished(before=10_000.0, limit=10) == 1  # e2; live ones never
    assert [r.id for r in store.entities()] == ["e3", "e4"]


def test_a_name_is_free_and_resolves_once_its_old_holders_are_gone(store: SqlStore) -> None:
    create(store, entity("old", name="/web"))
    finish(store, "old", at=100.0)
    create(store, entity("new", name="/web"))
    assert store.purge_finished(before=1_000.0, limit=10) == 1
    found = store.entity("/web")
    assert found is not None and found.id == "new"


def test_sqlite_plans_a_live_listing_without_reading_finished_entities(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'chartd.db'}")
    try:
        create(store, *(entity(f"e{i}") for i in range(50)))
        for i in range(45):
            finish(store, f"e{i}", at=100.0)
        query = store._reads.entities_page(chart=True, state=False, live=True)
        args = query.args({"after": 0, "chart": "container", "limit": 10})
        with sqlite3.connect(tmp_path / "chartd.db") as conn:
            conn.execute("ANALYZE")
            plan = conn.execute(f"EXPLAIN QUERY PLAN {query.sql}", args).fetchall()
        assert [row[3] for row in plan] == [
            "SEARCH entities USING INDEX ix_entities_live_chart_seq (chart=? AND seq>?)"
        ]
    finally:
        store.close()
