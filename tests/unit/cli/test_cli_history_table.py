"""``chartd history``'s table: the columns there were, in order, then CAUSED BY and TRACE ID."""

from __future__ import annotations

from engine.api.chartd.v1 import engine_pb2 as e
from engine.cli_output import journal_table

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def _column(header: str, line: str, name: str) -> str:
    """The text of ``line`` under the column ``name`` of ``header`` (to the next column)."""
    start = header.index(name)
    rest = line[start:]
    return rest.split("  ")[0].strip() if rest else ""


def test_every_row_keeps_each_value_under_its_column() -> None:
    start = e.Transition(id="t1", seq=1, event="start", status="committed", source=["created"])
    start.target.extend(["running", "running.active"])
    start.trace_id = TRACE
    start.started_at.FromSeconds(1_800_000_000)
    failed = e.Transition(
        id="t2",
        seq=2,
        event="exit",
        status="failed",
        source=["running", "running.active"],
        error_category="system",
        error_message="step cleanup failed",
        caused_by="t1",
        compensation_errors=["undo mounts: busy"],
    )
    failed.steps.add(index=0, name="cleanup", status="failed", error="boom")
    remote = e.Transition(id="t3", seq=3, event="retry", status="committed", caused_by="f" * 32)
    lines = journal_table([start, failed, remote]).lines()
    header = lines[0]
    assert header.split("  ")[0] == "SEQ"
    names = ["SEQ", "EVENT / STEP", "STATUS", "FROM", "TO", "STARTED", "ERROR", "CAUSED BY"]
    assert [header.index(n) for n in names] == sorted(header.index(n) for n in names)
    assert header.endswith("TRACE ID")
    first, second, step, compensation, third = lines[1:]
    assert first.endswith(TRACE) and _column(header, first, "CAUSED BY") == ""
    assert _column(header, first, "TO") == "running.active"
    assert _column(header, second, "ERROR") == "system: step cleanup failed"
    assert _column(header, second, "CAUSED BY") == "1"  # the cause's SEQ in this journal
    assert _column(header, step, "STATUS") == "failed"
    assert _column(header, step, "ERROR") == "boom"
    assert _column(header, compensation, "ERROR") == "undo mounts: busy"
    assert _column(header, third, "CAUSED BY") == "f" * 12  # not in this journal: a short id
    assert first.split() == [
        "1", "start", "committed", "created", "running.active", "2027-01-15T08:00:00Z", TRACE
    ]  # fmt: skip
    assert step.split() == ["0.", "cleanup", "failed", "boom"]
