"""Node affinity across engine processes on one PostgreSQL database (docs/replicas.md).

``pinned`` is the replicas' chart with ``affinity: node``; ``acct`` has none.
An entity of ``pinned`` belongs to the node that created it: another node's
fire is refused naming the owner, its unfinished saga is never taken over by
another node (an ``acct`` entity's is, as before), its due timers are never
fired elsewhere, and the owner finishes what it left when it comes back.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from replica_procs import WAIT, Worker
from worker import CHART, LIMITS, PINNED, bindings

import engine
from engine import Bindings, Step

pytestmark = pytest.mark.usefixtures("pg_url")


def _rows(url: str, sql: str, **params: Any) -> list[Any]:
    db = sa.create_engine(url)
    try:
        with db.connect() as conn:
            return list(conn.execute(sa.text(sql), params))
    finally:
        db.dispose()


def _register(eng: engine.Engine, binds: Bindings) -> engine.Engine:
    for chart in (CHART, PINNED):
        eng.register(chart, binds)
    return eng


def _undo_recording(undone: list[str]) -> Bindings:
    """The workers' steps, with undos that record ``entity:step`` in ``undone``."""
    steps = dict(bindings().steps)
    for name in ("pull", "launch"):
        steps[name] = Step(
            lambda ctx, n=name: None,
            lambda ctx, payload, n=name: undone.append(f"{ctx.entity_name}:{n}"),
        )
    return Bindings(steps=steps)


def test_a_fire_on_another_node_is_refused_naming_the_owner(
    pg_url: str, open_engine: Callable[..., engine.Engine], workers: list[Worker]
) -> None:
    alpha = _register(open_engine(pg_url, timers=False, node="alpha"), bindings())
    alpha.create("pinned", "web")
    alpha.create("acct", "shared")
    assert alpha.get("web").node == "alpha" and alpha.get("shared").node is None

    refused = Worker("fire-one", pg_url, "--node", "beta", "web", "bump")
    workers.append(refused)
    assert refused.line() == {
        "refused": "conflict",  # FAILED_PRECONDITION on the API (engine.api.status)
        "message": "web belongs to node 'alpha', not this node ('beta'): "
        "fire 'bump' on node 'alpha'",
    }
    fired = Worker("fire-one", pg_url, "--node", "beta", "shared", "bump")
    workers.append(fired)
    assert "seq" in fired.line()  # no affinity: any node fires it

    assert [t.event for t in alpha.history("web")] == []  # the refusal wrote nothing
    assert alpha.fire("web", "bump").entity.data == {"n": 1}
    assert alpha.get("shared").data == {"n": 1}


def test_a_dead_node_s_saga_waits_for_it_while_a_chart_without_affinity_is_taken_over(
    pg_url: str, open_engine: Callable[..., engine.Engine], workers: list[Worker]
) -> None:
    maker = _register(open_engine(pg_url, timers=False, node="alpha"), bindings())
    maker.create("pinned", "web")  # belongs to alpha
    maker.create("acct", "db")  # belongs to no node
    maker.close()

    doomed = Worker("saga", pg_url, "--node", "alpha", "web", "db")
    workers.append(doomed)
    held = {doomed.line()["entity"], doomed.line()["entity"]}
    assert held == {"web", "db"}  # both inside their second step, journaled running
    undone_on_beta: list[str] = []
    beta = _register(
        open_engine(pg_url, limits=LIMITS, node="beta"), _undo_recording(undone_on_beta)
    )
    doomed.kill()

    taken = beta.until("db", lambda e: e.state == "failed", timeout=WAIT, poll=LIMITS.beat)
    assert taken is not None, "the live node never took the dead one's unbound saga over"
    # Swept again on purpose: nothing else is left that beta may recover.
    assert beta.recover() == 0
    assert undone_on_beta == ["db:launch", "db:pull"]
    assert beta.get("web").state == "deploying"
    (running,) = _rows(
        pg_url,
        "SELECT t.status, t.owner FROM transitions t JOIN entities e ON e.id = t.entity_id"
        " WHERE e.name = 'web' AND t.event = 'deploy'",
    )
    assert running.status == "running" and running.owner != beta.id

    # The owner comes back (a new engine of node alpha): it undoes its own saga.
    undone_on_alpha: list[str] = []
    alpha = open_engine(pg_url, limits=LIMITS, node="alpha")
    _register(alpha, _undo_recording(undone_on_alpha))  # registering recovers
    assert alpha.get("web").state == "failed"
    assert undone_on_alpha == ["web:launch", "web:pull"]
    record = alpha.history("web")[-1]
    assert record.event == "deploy" and record.status == "failed"
    assert "was interrupted" in (record.error_message or "")


def test_a_dead_node_s_due_timers_are_not_fired_elsewhere(
    pg_url: str,
    open_engine: Callable[..., engine.Engine],
    workers: list[Worker],
    tmp_path: Path,
) -> None:
    log = tmp_path / "rings.log"
    alpha = _register(open_engine(pg_url, timers=False, node="alpha"), bindings(str(log)))
    alpha.create("pinned", "ticking")
    alpha.create("acct", "loose")
    for name in ("ticking", "loose"):
        alpha.fire(name, "arm")  # due at once, fired by none yet
    alpha.close()  # alpha is down: its timers are due while it is away

    beta = Worker("timers", pg_url, "--node", "beta", str(log))
    workers.append(beta)
    beta_pid = beta.line()["ready"]
    watcher = open_engine(pg_url, timers=False, node="gamma")
    rung = watcher.until("loose", lambda e: e.state == "rung", timeout=WAIT, poll=LIMITS.beat)
    assert rung is not None, "the live node never fired the unbound timer"
    # Both were due when beta claimed the first: the pinned one was left to its node.
    assert watcher.get("ticking").state == "idle"
    (pending,) = _rows(
        pg_url,
        "SELECT tm.status, tm.claimed_by FROM timers tm JOIN entities e ON e.id = tm.entity_id"
        " WHERE e.name = 'ticking'",
    )
    assert pending.status == "pending" and pending.claimed_by is None
    beta.stop()

    back = _register(open_engine(pg_url, limits=LIMITS, node="alpha"), bindings(str(log)))
    rung = back.until("ticking", lambda e: e.state == "rung", timeout=WAIT, poll=LIMITS.beat)
    assert rung is not None, "the owner never fired its own timer when it came back"
    rings = sorted(line.split() for line in log.read_text().splitlines())
    assert rings == sorted([[str(beta_pid), "loose"], [str(os.getpid()), "ticking"]])
