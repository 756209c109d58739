"""The kit against the shared database: sagas, failures and crashes on PostgreSQL.

The same checks as on SQLite (journal, outbox, recovery, idempotency), on the
store several replicas share. One database serves every example, as a user's
suite would share one; the harness keeps its entities apart by name. The
chart is a small saga lifecycle, so that most fires run steps, fail, or die.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engine
from engine.testing import Harness, StandIns, actions

EXAMPLES = 40 if settings.default.max_examples >= 200 else 10

CHART = engine.parse_chart(
    {
        "chart": "service",
        "initial": "created",
        "states": {
            "created": {},
            "starting": {"transient": True},
            "running": {"initial": "active", "states": {"active": {}, "paused": {}}},
            "stopped": {},
            "broken": {},
            "gone": {"final": True},
        },
        "transitions": [
            {
                "event": "start",
                "from": ["created", "stopped"],
                "to": "running",
                "via": "starting",
                "steps": ["prepare", "launch", "announce"],
                "on_failure": {"after": "launch", "to": "broken", "record": ["error"]},
            },
            {
                "event": "pause",
                "from": "running.active",
                "to": "running.paused",
                "steps": ["freeze"],
            },
            {"event": "resume", "from": "running.paused", "to": "running.active"},
            {"event": "stop", "from": "running", "to": "stopped", "steps": ["halt", "release"]},
            {"event": "remove", "from": ["created", "stopped", "broken"], "to": "gone"},
        ],
        "rejections": [
            {"event": "start", "in": "running", "error": "not_modified", "message": "running"},
        ],
    }
)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(data=st.data())
def test_sagas_failures_and_crashes_keep_the_invariants_on_postgresql(
    pg_url: str, data: st.DataObject
) -> None:
    stand_ins = StandIns(CHART)
    with Harness(CHART, stand_ins.bindings, url=pg_url, invariants=[stand_ins.check]) as harness:
        assert harness.restarts and harness.crashes  # a shared database survives a crash
        for action in data.draw(actions(CHART, max_size=12, enabled=True), label="actions"):
            harness.apply(action)
            harness.check()
