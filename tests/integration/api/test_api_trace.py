"""Trace context end to end: a caller's ``traceparent``, the fire's span, the journal, the CLI.

The daemon runs in this process, wired as ``chartd serve`` wires it (the
engine on a SQLite file with the Telemetry observer, the real process
runtime, the Containers service, the gRPC server on a unix socket), with
the SDK's in-memory span exporter where a collector would be. The calls
come from a real gRPC client and from the ``chartd`` CLI in a subprocess.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from api_daemon import CHARTD, REPO, eventually
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import format_span_id, format_trace_id

import engine
from engine.api import ApiServer, Client, parse_address
from engine.api.chartd.v1 import containers_pb2 as c
from engine.api.chartd.v1 import engine_pb2 as e
from engine.telemetry import Telemetry
from statecharts.container.process import ProcessRuntime
from statecharts.container.service import Containers, status_of

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE}-{PARENT}-01"


@dataclass
class Served:
    """An in-process daemon and what the tests read of it."""

    eng: engine.Engine
    spans: InMemorySpanExporter
    host: str
    env: dict[str, str]

    def client(self) -> Client:
        return Client(self.host)

    def cli(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """``chartd ARGS...`` against this daemon, with ``env`` added to its environment."""
        return subprocess.run(
            [*CHARTD, *args],
            cwd=REPO,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def fires(self, event: str, entity_id: str) -> list[ReadableSpan]:
        """The finished spans of fires of ``event`` on the entity, oldest first."""
        found = [
            s
            for s in self.spans.get_finished_spans()
            if s.name == f"chartd.fire container.{event}"
            and (s.attributes or {}).get("chartd.entity.id") == entity_id
        ]
        return sorted(found, key=lambda s: s.start_time or 0)

    def journal(self, name: str) -> list[dict[str, Any]]:
        done = self.cli("history", "--format", "json", name)
        assert done.returncode == 0, done.stderr
        journal: list[dict[str, Any]] = json.loads(done.stdout)
        return journal


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    eng = engine.Engine.open(
        f"sqlite:///{tmp_path / 'chartd.db'}", observer=Telemetry(tracer_provider=provider)
    )
    runtime = ProcessRuntime(tmp_path / "runtime")
    api: ApiServer | None = None
    try:
        containers = Containers(eng, runtime, tmp_path / "state")
        api = ApiServer(eng, version="test", containers=containers, status_of=status_of)
        socket = tmp_path / "chartd.sock"
        api.bind(parse_address(f"unix://{socket}"))
        api.start()
        env = {
            **os.environ,
            "CHARTD_HOST": f"unix://{socket}",
            "XDG_STATE_HOME": str(tmp_path / "xdg-state"),
        }
        env.pop("TRACEPARENT", None)
        env.pop("TRACESTATE", None)
        yield Served(eng, spans, f"unix://{socket}", env)
    finally:
        if api is not None:
            api.stop(0)
        for task in runtime.tasks():
            with contextlib.suppress(Exception):
                runtime.delete_task(task.container_id)
        runtime.close()
        eng.close()


def _create(served: Served, name: str, *cmd: str, **fields: Any) -> str:
    with served.client() as client:
        made = client.containers.Create(
            c.CreateContainerRequest(cmd=list(cmd), name=name, **fields)
        )
    return made.id


def test_a_traceparent_in_the_metadata_parents_the_fire_and_history_shows_its_trace(
    served: Served,
) -> None:
    cid = _create(served, "traced", "sleep", "60")
    with served.client() as client:
        client.containers.Start(
            c.StartContainerRequest(container="traced"),
            metadata=[("traceparent", TRACEPARENT), ("tracestate", "chartd=t1,other=x")],
        )
        # An invalid trace context (W3C forbids all-zero ids) is ignored, not refused.
        zero = f"00-{'0' * 32}-{'0' * 16}-01"
        client.containers.Stop(
            c.StopContainerRequest(container="traced", timeout=5),
            metadata=[("traceparent", zero), ("tracestate", "=,not valid")],
        )
        journal = client.history(e.GetHistoryRequest(entity=cid, chart="container"))

    [start] = served.fires("start", cid)
    assert start.parent is not None and start.parent.is_remote
    assert format_span_id(start.parent.span_id) == PARENT
    assert format_trace_id(start.context.trace_id) == TRACE
    assert start.context.trace_state.get("chartd") == "t1"
    steps = [s for s in served.spans.get_finished_spans() if s.name == "chartd.step task_start"]
    assert [s.parent.span_id for s in steps if s.parent] == [start.context.span_id]
    # A call without a valid traceparent: the fire starts a trace of its own, journaled too.
    [stop] = served.fires("stop", cid)
    assert stop.parent is None
    own = format_trace_id(stop.context.trace_id)
    assert own != TRACE

    assert [(t.event, t.trace_id) for t in journal[:2]] == [("start", TRACE), ("stop", own)]
    printed = served.journal("traced")
    assert [(t["event"], t["trace_id"]) for t in printed[:2]] == [("start", TRACE), ("stop", own)]
    table = served.cli("history", "traced")
    assert table.returncode == 0, table.stderr
    header, first = table.stdout.splitlines()[:2]
    # The columns there were keep their order; the new ones come last.
    assert header.split() == [
        "SEQ", "EVENT", "/", "STEP", "STATUS", "FROM", "TO", "STARTED", "ERROR",
        "CAUSED", "BY", "TRACE", "ID",
    ]  # fmt: skip
    assert first.split()[:3] == ["1", "start", "committed"] and first.endswith(TRACE)


def test_the_cli_forwards_traceparent_and_tracestate_from_its_environment(
    served: Served,
) -> None:
    run = served.cli(
        "run", "-d", "--name", "from-env", "sleep", "60",
        TRACEPARENT=TRACEPARENT, TRACESTATE="ci=job-7",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    cid = run.stdout.strip()
    [start] = served.fires("start", cid)
    assert start.parent is not None and format_span_id(start.parent.span_id) == PARENT
    assert format_trace_id(start.context.trace_id) == TRACE
    assert start.context.trace_state.get("ci") == "job-7"
    assert served.journal("from-env")[0]["trace_id"] == TRACE

    # What is not W3C trace context is left out; the command goes on as if untraced.
    for bad in ("garbage", TRACEPARENT.upper(), f"00-{TRACE}-{PARENT}", "00-\n-x"):
        stopped = served.cli("restart", "-t", "1", "from-env", TRACEPARENT=bad)
        assert (stopped.returncode, stopped.stderr) == (0, ""), bad
    restarts = served.fires("restart", cid)
    assert len(restarts) == 4
    assert all(s.parent is None for s in restarts)
    traces = [t["trace_id"] for t in served.journal("from-env") if t["event"] == "restart"]
    assert TRACE not in traces and all(traces)


def test_a_container_exit_and_its_restart_link_to_the_transitions_that_caused_them(
    served: Served,
) -> None:
    cid = _create(served, "flaky", "sh", "-c", "exit 3", restart_policy="on-failure:1")
    with served.client() as client:
        client.containers.Start(c.StartContainerRequest(container="flaky"))
    journal = eventually(
        lambda: (j := served.journal("flaky")) and j[-1]["target"] == ["exited"] and j,
        "the restart policy gives up",
    )
    assert [t["event"] for t in journal] == ["start", "exit", "retry", "exit"]
    start, exit1, retry, exit2 = journal
    # Each exit is caused by the start of its process; the retry by the exit whose
    # policy scheduled it (its timer).
    assert start["caused_by"] is None
    assert (exit1["caused_by"], retry["caused_by"], exit2["caused_by"]) == (
        start["id"],
        exit1["id"],
        retry["id"],
    )
    # The fire's span links to the span its cause journaled.
    spans = {s.context.span_id: s for s in served.spans.get_finished_spans()}
    records = {r.id: r for r in served.eng.history(cid)}
    for caused in (exit1, retry, exit2):
        record, cause = records[caused["id"]], records[caused["caused_by"]]
        assert record.span_id is not None and cause.span_id is not None
        [link] = spans[int(record.span_id, 16)].links
        assert format_span_id(link.context.span_id) == cause.span_id
        assert format_trace_id(link.context.trace_id) == cause.trace_id
    table = served.cli("history", "flaky").stdout.splitlines()
    rows = [line.split() for line in table[1:] if line[:1].isdigit()]
    # SEQ, EVENT, ..., CAUSED BY (the cause's SEQ), TRACE ID
    assert [(r[0], r[1], r[-2]) for r in rows[1:]] == [
        ("2", "exit", "1"),
        ("3", "retry", "2"),
        ("4", "exit", "3"),
    ]


def test_a_stop_timeout_links_to_the_stop_that_set_it(served: Served) -> None:
    cid = _create(served, "stubborn", "sh", "-c", "trap '' TERM; sleep 60 & wait; sleep 60")
    with served.client() as client:
        client.containers.Start(c.StartContainerRequest(container="stubborn"))
        client.containers.Stop(c.StopContainerRequest(container="stubborn", timeout=1))
    journal = eventually(
        lambda: (j := served.journal("stubborn")) and any(t["event"] == "exit" for t in j) and j,
        "the stop timeout killed it",
    )
    stop = next(t for t in journal if t["event"] == "stop")
    timeout = next(t for t in journal if t["event"] == "stop_timeout")
    assert timeout["caused_by"] == stop["id"]
    [stop_span] = served.fires("stop", cid)
    [timeout_span] = served.fires("stop_timeout", cid)
    [link] = timeout_span.links
    assert link.context.span_id == stop_span.context.span_id
    assert format_trace_id(timeout_span.context.trace_id) == timeout["trace_id"]
