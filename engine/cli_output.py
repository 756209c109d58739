"""What the client verbs of ``chartd`` print, in docker's shapes.

Lines on stdout and stderr (``Error: ...`` for the CLI's own errors), docker's
ages and statuses, its tables (``text/tabwriter`` as the docker CLI sets it
up: columns three spaces apart and at least ten wide, the last column not
padded, nothing cut to a terminal's width), the JSON objects of ``ps``,
``inspect``, ``events`` and ``history``, and the checks of ``--format`` and
``KEY=VALUE`` arguments (a bad one exits 2, as a usage error).

Plain writes, no rich: the client verbs load only what sending an RPC needs.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

from google.protobuf import timestamp_pb2

from engine.api._convert import plain_value
from engine.api.chartd.v1 import containers_pb2 as c_pb2
from engine.api.chartd.v1 import engine_pb2
from engine.api.status_text import human_ago, ps_command, ps_status
from engine.cli_health import health_json, healthcheck_json

__all__ = [
    "Table",
    "check_format",
    "command_text",
    "container_table",
    "echo",
    "echo_err",
    "event_json",
    "event_line",
    "fail",
    "human_ago",
    "inspect_json",
    "journal_table",
    "one_of",
    "pairs",
    "print_json",
    "status_text",
    "transition_json",
]

# docker's formatter: tabwriter.NewWriter(out, 10, 1, 3, ' ', 0).
_MIN_WIDTH = 10
_PADDING = 3


def echo(text: str) -> None:
    """A line on stdout."""
    sys.stdout.write(text + "\n")


def echo_err(text: str) -> None:
    """A line on stderr."""
    sys.stderr.write(text + "\n")


def fail(message: str, status: int = 1) -> NoReturn:
    """``Error: <message>`` on stderr, then exit with ``status`` (2: a usage error)."""
    echo_err(f"Error: {message}")
    raise SystemExit(status)


def one_of(choices: Sequence[str]) -> str:
    """``a, b or c``: the valid values, as an error message lists them."""
    return choices[0] if len(choices) == 1 else f"{', '.join(choices[:-1])} or {choices[-1]}"


class Table:
    """Rows under a header, laid out as docker's tabwriter lays them out."""

    def __init__(self, *header: str) -> None:
        self.rows: list[tuple[str, ...]] = [header]

    def add_row(self, *cells: str) -> None:
        """One more row, a cell per column of the header."""
        self.rows.append(cells)

    def lines(self) -> list[str]:
        """The header and the rows, each line without trailing blanks."""
        columns = len(self.rows[0])
        widths = [
            max(_MIN_WIDTH, max(len(row[i]) for row in self.rows) + _PADDING)
            for i in range(columns - 1)
        ]
        return [
            ("".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + row[-1]).rstrip()
            for row in self.rows
        ]

    def print(self) -> None:
        """Print the table on stdout."""
        sys.stdout.write("".join(line + "\n" for line in self.lines()))


def _seconds(ts: timestamp_pb2.Timestamp, present: bool) -> float | None:
    return ts.ToNanoseconds() / 1e9 if present else None


def status_text(c: c_pb2.ContainerSummary, now: float) -> str:
    """ps's STATUS: ``Up 3 minutes``, ``Exited (0) 2 seconds ago``, ``Created``, ..."""
    return ps_status(
        c.state,
        started=_seconds(c.started_at, c.HasField("started_at")),
        finished=_seconds(c.finished_at, c.HasField("finished_at")),
        exit_code=c.exit_code,
        health=c.health,
        now=now,
    )


def _iso(ts: timestamp_pb2.Timestamp, present: bool = True) -> str:
    if not present:
        return "0001-01-01T00:00:00Z"
    return ts.ToDatetime(tzinfo=UTC).isoformat().replace("+00:00", "Z")


def command_text(cmd: Sequence[str], *, full: bool) -> str:
    """ps's COMMAND: the command quoted, cut to 20 characters unless ``full``."""
    command = ps_command(cmd)
    if not full and len(command) > 20:
        command = command[:19] + "…"
    return json.dumps(command, ensure_ascii=False)


def container_table(found: Sequence[c_pb2.ContainerSummary], now: float, full: bool) -> Table:
    """``ps``'s table; IDs and commands shortened unless ``full`` (``--no-trunc``)."""
    table = Table("CONTAINER ID", "COMMAND", "CREATED", "STATUS", "NAMES")
    for c in found:
        table.add_row(
            c.id if full else c.id[:12],
            command_text(c.cmd, full=full),
            human_ago(_seconds(c.created, True), now),
            status_text(c, now),
            c.name.lstrip("/"),
        )
    return table


def journal_table(journal: Sequence[engine_pb2.Transition]) -> Table:
    """``history``'s table: a row per transition, then one per step and failed undo.

    The columns added later come last, so a script that reads the first ones
    reads what it did: CAUSED BY (the SEQ of the transition whose timer,
    follow-up or process fired this one; a short id when that one is not in
    this journal) and TRACE ID (whole: a trace is looked up by all of it).
    """
    table = Table(
        "SEQ", "EVENT / STEP", "STATUS", "FROM", "TO", "STARTED", "ERROR", "CAUSED BY", "TRACE ID"
    )
    seqs = {t.id: str(t.seq) for t in journal}
    blank = ("",) * 3  # FROM, TO, STARTED
    for t in journal:
        table.add_row(
            str(t.seq),
            t.event,
            t.status,
            _leaves(t.source),
            _leaves(t.target) if t.target else "",
            _iso(t.started_at, t.HasField("started_at")),
            f"{t.error_category}: {t.error_message}" if t.error_category else "",
            seqs.get(t.caused_by, t.caused_by[:12]),
            t.trace_id,
        )
        for step in t.steps:
            status = step.status
            if step.HasField("compensated_at"):
                status += " ↶ compensated"
            error = step.error
            if step.compensation_error:
                error = f"{error}; undo failed: {step.compensation_error}".lstrip("; ")
            table.add_row("", f"  {step.index}. {step.name}", status, *blank, error, "", "")
        for problem in t.compensation_errors:
            table.add_row("", "  compensation", "failed", *blank, problem, "", "")
    return table


def _leaves(configuration: Sequence[str]) -> str:
    conf = list(configuration)
    return ",".join(s for s in conf if not any(o.startswith(s + ".") for o in conf))


def inspect_json(i: c_pb2.ContainerInspect) -> dict[str, Any]:
    """One container of ``inspect``, in docker's field names."""
    st, cfg, host = i.state, i.config, i.host_config
    return {
        "Id": i.id,
        "Name": i.name,
        "Created": i.created,
        "State": {
            "Status": st.status,
            "Running": st.running,
            "Paused": st.paused,
            "Restarting": st.restarting,
            "OOMKilled": st.oom_killed,
            "Dead": st.dead,
            "Pid": st.pid,
            "ExitCode": st.exit_code,
            "Error": st.error,
            "StartedAt": st.started_at,
            "FinishedAt": st.finished_at,
            **health_json(st),
        },
        "RestartCount": i.restart_count,
        "Config": {
            "Cmd": list(cfg.cmd),
            "Env": list(cfg.env),
            "WorkingDir": cfg.working_dir,
            "Labels": dict(cfg.labels),
            "StopSignal": cfg.stop_signal,
            "StopTimeout": cfg.stop_timeout if cfg.HasField("stop_timeout") else None,
            **healthcheck_json(cfg),
        },
        "HostConfig": {
            "RestartPolicy": {
                "Name": host.restart_policy.name,
                "MaximumRetryCount": host.restart_policy.maximum_retry_count,
            },
            "AutoRemove": host.auto_remove,
        },
        "NetworkSettings": {"IPAddress": i.ip_address},
        "LogPath": i.log_path,
        "ExecIDs": list(i.exec_ids) or None,
    }


def event_json(ev: c_pb2.ContainerEvent) -> dict[str, Any]:
    """One event of ``events --format json``, as docker's with the ``seq`` added."""
    return {
        "seq": ev.seq,
        "Type": "container",
        "Action": ev.action,
        "Actor": {"ID": ev.id, "Attributes": {"name": ev.name, **dict(ev.attributes)}},
        "time": ev.time.seconds,
        "timeNano": ev.time.ToNanoseconds(),
    }


def event_line(ev: c_pb2.ContainerEvent) -> str:
    """One event of ``events``, as docker's line with the ``seq`` among the attributes."""
    attrs = {"name": ev.name, **dict(ev.attributes), "seq": str(ev.seq)}
    shown = ", ".join(f"{k}={v}" for k, v in sorted(attrs.items()))
    return f"{_local_nano(ev.time)} container {ev.action} {ev.id} ({shown})"


def _local_nano(ts: timestamp_pb2.Timestamp) -> str:
    """Go's RFC3339NanoFixed in local time, as docker prints an event's time."""
    when = datetime.fromtimestamp(ts.seconds, UTC).astimezone()
    offset = when.utcoffset()
    minutes = int(offset.total_seconds()) // 60 if offset is not None else 0
    sign = "-" if minutes < 0 else "+"
    zone = "Z" if minutes == 0 else f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    return f"{when:%Y-%m-%dT%H:%M:%S}.{ts.nanos:09d}{zone}"


def transition_json(t: engine_pb2.Transition) -> dict[str, Any]:
    """One transition of ``history --format json``, its steps inside."""

    def when(ts: timestamp_pb2.Timestamp, present: bool) -> str | None:
        return _iso(ts) if present else None

    return {
        "id": t.id,
        "seq": t.seq,
        "event": t.event,
        "params": {k: plain_value(v) for k, v in t.params.fields.items()},
        "status": t.status,
        "source": list(t.source),
        "target": list(t.target) if t.target else None,
        "version_from": t.version_from,
        "version_to": t.version_to if t.HasField("version_to") else None,
        "error_category": t.error_category or None,
        "error_message": t.error_message or None,
        "compensation_errors": list(t.compensation_errors),
        "idempotency_key": t.idempotency_key or None,
        "started_at": when(t.started_at, t.HasField("started_at")),
        "finished_at": when(t.finished_at, t.HasField("finished_at")),
        "caused_by": t.caused_by or None,
        "trace_id": t.trace_id or None,
        "steps": [
            {
                "index": s.index,
                "name": s.name,
                "status": s.status,
                "payload": plain_value(s.payload),
                "error": s.error or None,
                "started_at": when(s.started_at, s.HasField("started_at")),
                "finished_at": when(s.finished_at, s.HasField("finished_at")),
                "compensated_at": when(s.compensated_at, s.HasField("compensated_at")),
                "compensation_error": s.compensation_error or None,
            }
            for s in t.steps
        ],
    }


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON."""
    echo(json.dumps(data, indent=4))


def check_format(fmt: str, allowed: Sequence[str] = ("table", "json")) -> None:
    """Exit 2 unless ``fmt`` is one of ``allowed``."""
    if fmt not in allowed:
        fail(f"invalid --format {fmt!r}: use {one_of(allowed)}", 2)


def pairs(values: Sequence[str], what: str) -> list[tuple[str, str]]:
    """``KEY=VALUE`` arguments split; exit 2 at one without ``=`` or a key."""
    found = []
    for v in values:
        key, eq, val = v.partition("=")
        if not key or not eq:
            fail(f"invalid {what} {v!r}: use KEY=VALUE", 2)
        found.append((key, val))
    return found
