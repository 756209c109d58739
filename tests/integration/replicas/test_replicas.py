"""Several engine processes on one PostgreSQL database (docs/replicas.md).

Each test starts engine processes (``worker.py``) on the test's database and
checks from the database afterwards what the replicas promise: every fire
applied once with no lost update, journals without gaps, an outbox without
holes, a SIGKILLed process's saga taken over by a live one, each timer fired
by one process, and a watcher on one process woken by the others' commits.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from replica_procs import WAIT, Worker
from worker import CHART, LIMITS, bindings

import engine
from engine import Bindings, Step
from engine.store.sequencer import _KEY as NUMBERING_LOCK

pytestmark = pytest.mark.usefixtures("pg_url")

PROCESSES = 4
FIRES = 150  # per process
HOT = 12  # entities every process fires on


def _rows(url: str, sql: str) -> list[Any]:
    db = sa.create_engine(url)
    try:
        with db.connect() as conn:
            return list(conn.execute(sa.text(sql)))
    finally:
        db.dispose()


def test_fires_from_four_processes_on_shared_entities_apply_once_each(
    pg_url: str, open_engine: Callable[..., engine.Engine], workers: list[Worker]
) -> None:
    eng = open_engine(pg_url, timers=False)
    eng.register(CHART, bindings())
    names = [f"e{i}" for i in range(HOT)]
    for name in names:
        eng.create("acct", name)
    workers.extend(
        Worker("fire", pg_url, str(FIRES), str(seed), *names) for seed in range(PROCESSES)
    )
    done = [w.line() for w in workers]
    assert all(d["fired"] == FIRES for d in done)

    # No lost update: every bump counted once in the data.
    total = sum(eng.get(name).data.get("n", 0) for name in names)
    assert total == PROCESSES * FIRES
    # No transition applied twice, each journal a chain of versions without gaps.
    journal = _rows(
        pg_url,
        "SELECT entity_id, event, status, version_from, version_to FROM transitions"
        " ORDER BY entity_id, version_from",
    )
    bumps = [r for r in journal if r.event == "bump"]
    assert len(bumps) == PROCESSES * FIRES
    assert {r.status for r in bumps} == {"committed"}
    by_entity: dict[str, list[Any]] = {}
    for r in journal:
        by_entity.setdefault(r.entity_id, []).append(r)
    for entity_id, rows in by_entity.items():
        versions = [(r.version_from, r.version_to) for r in rows]
        assert all(b == a + 1 for a, b in versions), versions
        assert all(versions[i][1] == versions[i + 1][0] for i in range(len(versions) - 1))
        assert eng.get(entity_id).version == versions[-1][1]
    # The outbox: one number per event, none skipped. A reader numbers the events
    # still waiting for theirs (a worker killed before its sequencer ran).
    eng.sequence()
    assert _rows(pg_url, "SELECT id FROM pending_events") == []
    seqs = [r.seq for r in _rows(pg_url, "SELECT seq FROM events ORDER BY seq")]
    assert seqs == list(range(1, len(seqs) + 1))
    assert len(seqs) == HOT + PROCESSES * FIRES  # a create event each, a transition event each


def test_an_engine_numbers_what_it_committed_before_it_closes(
    pg_url: str, open_engine: Callable[..., engine.Engine]
) -> None:
    # Left pending, a closed writer's last events would wake no watcher of another
    # process (watchers are woken by the numbering's notification) until one polled.
    first = open_engine(pg_url, timers=False)
    first.register(CHART, bindings())
    first.create("acct", "closing")
    first.sequence()  # its creation's event numbered
    writer = engine.Engine.open(pg_url, timers=False)
    writer.register(CHART, bindings())
    with sa.create_engine(pg_url).connect() as holder:
        # Another process numbering: the writer's sequencer finds the lock taken and
        # puts its numbering off; then the writer closes.
        holder.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": NUMBERING_LOCK})
        writer.fire("closing", "bump")
        closing = threading.Thread(target=writer.close)
        closing.start()
        holder.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": NUMBERING_LOCK})
        closing.join(WAIT)
    assert not closing.is_alive()
    assert _rows(pg_url, "SELECT id FROM pending_events") == []
    assert [e.type for e in first.watch(first.sequence() - 1, timeout=0)] == ["transition"]


def test_a_process_killed_mid_saga_is_taken_over_by_a_live_one(
    pg_url: str, open_engine: Callable[..., engine.Engine], workers: list[Worker]
) -> None:
    undone: list[str] = []
    steps = dict(bindings().steps)
    steps["pull"] = Step(lambda ctx: "pulled", lambda ctx, payload: undone.append("pull"))
    steps["launch"] = Step(lambda ctx: None, lambda ctx, payload: undone.append("launch"))
    live = open_engine(pg_url, limits=LIMITS)  # its housekeeping sweeps for dead engines
    live.register(CHART, Bindings(steps=steps))
    live.create("acct", "web")

    doomed = Worker("saga", pg_url, "web")
    workers.append(doomed)
    doomed.line()  # inside its second step, the transition journaled running
    assert live.get("web").state == "deploying"
    doomed.kill()

    failed = live.until("web", lambda e: e.state == "failed", timeout=WAIT, poll=LIMITS.beat)
    assert failed is not None, "the live engine never took the dead one's saga over"
    assert undone == ["launch", "pull"]  # every step not known undone, newest first
    record = live.history("web")[-1]
    assert record.event == "deploy" and record.status == "failed"
    assert "was interrupted" in (record.error_message or "")


TIMED = 30  # entities with a due timer each


def test_each_due_timer_is_fired_by_one_of_three_processes(
    pg_url: str, open_engine: Callable[..., engine.Engine], workers: list[Worker], tmp_path: Any
) -> None:
    eng = open_engine(pg_url, timers=False)
    eng.register(CHART, bindings())
    names = [f"t{i}" for i in range(TIMED)]
    for name in names:
        eng.create("acct", name)
        eng.fire(name, "arm")  # due at once, fired by none yet
    # One more armed by a process that is gone by the time it is due.
    eng.create("acct", "orphan")
    gone = Worker("fire-one", pg_url, "orphan", "arm")
    workers.append(gone)
    gone.line()
    assert gone.proc.wait(WAIT) == 0
    names.append("orphan")

    log = tmp_path / "rings.log"
    workers.extend(Worker("timers", pg_url, str(log)) for _ in range(3))
    for w in workers[1:]:
        w.line()
    for name in names:
        rung = eng.until(name, lambda e: e.state == "rung", timeout=WAIT, poll=LIMITS.beat)
        assert rung is not None, f"{name}'s timer never fired"
    for w in workers[1:]:
        w.stop()

    rings = log.read_text().split("\n")[:-1]
    assert sorted(line.split()[1] for line in rings) == sorted(names)  # each step ran once
    fired = _rows(pg_url, "SELECT status, fired_transition FROM timers")
    assert len(fired) == len(names) and {r.status for r in fired} == {"fired"}


def test_a_watcher_sees_every_process_s_events_in_order_woken_without_polling(
    pg_url: str, open_engine: Callable[..., engine.Engine], workers: list[Worker]
) -> None:
    eng = open_engine(pg_url, timers=False)
    eng.register(CHART, bindings())
    names = [f"w{i}" for i in range(4)]
    for name in names:
        eng.create("acct", name)
    since = eng.sequence()
    expected = 2 * 40
    seen: list[Any] = []

    def follow() -> None:
        # A poll of an hour: only a notification can wake it in time; timeout ends it
        # (and fails the test) if none comes.
        for ev in eng.watch(since, poll=3600.0, timeout=WAIT):
            seen.append(ev)
            if len(seen) == expected:
                return

    watcher = threading.Thread(target=follow)
    watcher.start()
    workers.extend(Worker("fire", pg_url, "40", str(seed), *names) for seed in range(2))
    for w in workers:
        w.line()
    watcher.join(WAIT)
    assert not watcher.is_alive()
    assert [ev.seq for ev in seen] == list(range(since + 1, since + expected + 1))
    assert {ev.type for ev in seen} == {"transition"}

    # Resumed from a sequence on another engine: the same events from there on.
    other = open_engine(pg_url, timers=False)
    middle = seen[expected // 2].seq
    resumed = list(other.watch(middle, timeout=0.0))
    assert [ev.seq for ev in resumed] == [ev.seq for ev in seen if ev.seq > middle]
