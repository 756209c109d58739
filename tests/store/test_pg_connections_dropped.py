"""Fires on PostgreSQL survive connections the server drops, each applied exactly once.

The store does not ping a pooled connection before using it (a round trip
per checkout, two per fire): it looks whether the server has closed it, and
runs a write again on a new connection when the old one was lost before its
COMMIT was sent, when nothing of it can have committed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import psycopg
import sqlalchemy as sa

import engine

CHART = """
chart: acct
initial: idle
states: {idle: {}}
transitions:
  - {event: bump, from: idle, to: idle}
"""


def journal_and_outbox(eng: engine.Engine, name: str) -> tuple[list[int], list[int], int]:
    """The entity's journal (versions from), the outbox's seqs, and its version."""
    history = [tr.version_from for tr in eng.history(name)]
    events = [e.seq for e in eng.watch(0, timeout=0, poll=0.01)]
    return history, events, eng.get(name).version


def test_fires_after_every_connection_was_terminated_commit_once(
    pg_server: Any, pg_url: str
) -> None:
    with engine.Engine.open(pg_url, timers=False) as eng:
        eng.register(engine.parse_chart(CHART))
        created = eng.create("acct", "a").version
        for _ in range(5):
            # Terminated, not waited for: the backend may still be going as the fire
            # checks its connection out, and fail the fire's first statement.
            assert pg_server.terminate() >= 1
            eng.fire("a", "bump")
        history, events, version = journal_and_outbox(eng, "a")
    assert history == [created + i for i in range(5)]
    assert events == list(range(1, 7))  # the creation's event and one per fire
    assert version == created + 5


def test_a_fire_whose_connection_is_terminated_before_its_commit_commits_once(
    pg_server: Any, pg_url: str, lock_waiter: Callable[..., int]
) -> None:
    conninfo = sa.make_url(pg_url).set(drivername="postgresql").render_as_string(False)
    with engine.Engine.open(pg_url, timers=False) as eng:
        eng.register(engine.parse_chart(CHART))
        row = eng.create("acct", "a")
        outcome: dict[str, Any] = {}

        def fire() -> None:
            try:
                outcome["result"] = eng.fire("a", "bump")
            except Exception as exc:
                outcome["error"] = exc

        # The entity's row locked elsewhere: the fire's first statement waits, its
        # backend is terminated there, and the fire goes on on a new connection.
        with psycopg.connect(conninfo) as locker:
            locker.execute("SELECT 1 FROM entities WHERE id = %s FOR UPDATE", (row.id,))
            writer = threading.Thread(target=fire)
            writer.start()
            first = lock_waiter()
            pg_server.admin.execute("SELECT pg_terminate_backend(%s)", (first,))
            assert lock_waiter(other_than=first) != first
            locker.rollback()
            writer.join(timeout=60)
            assert not writer.is_alive()
        assert "error" not in outcome, outcome
        assert outcome["result"].entity.version == row.version + 1
        history, events, version = journal_and_outbox(eng, "a")
    assert history == [row.version]
    assert events == [1, 2]
    assert version == row.version + 1
