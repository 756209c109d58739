"""What the client verbs of ``chartd`` print, in docker's shapes.

The two consoles (stdout, stderr), docker's ages and statuses, the ``ps``
and ``history`` tables, the JSON objects of ``ps``, ``inspect``, ``events``
and ``history``, and the checks of ``--format`` and ``KEY=VALUE`` arguments
(a bad one exits 2, as a usage error).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC
from typing import TYPE_CHECKING, Any

import typer
from google.protobuf import timestamp_pb2
from rich.console import Console

from engine.api._convert import plain_value
from engine.api.chartd.v1 import containers_pb2 as c_pb2
from engine.api.chartd.v1 import engine_pb2

if TYPE_CHECKING:
    from rich.table import Table

__all__ = [
    "check_format",
    "container_table",
    "err",
    "event_json",
    "event_line",
    "inspect_json",
    "journal_table",
    "out",
    "pairs",
    "print_json",
    "print_table",
    "summary_json",
    "transition_json",
]

out = Console(highlight=False, soft_wrap=True)
"""The verbs' output (stdout)."""
err = Console(stderr=True, highlight=False, soft_wrap=True)
"""The verbs' errors (stderr)."""


def _seconds(ts: timestamp_pb2.Timestamp, present: bool) -> float | None:
    return ts.ToNanoseconds() / 1e9 if present else None


def _human_duration(seconds: float) -> str:
    """go-units' HumanDuration, as docker prints ages and uptimes."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(s / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"


def _ago(when: float | None, now: float) -> str:
    return "" if when is None else f"{_human_duration(max(0.0, now - when))} ago"


def _status_text(c: c_pb2.ContainerSummary, now: float) -> str:
    started = _seconds(c.started_at, c.HasField("started_at"))
    finished = _seconds(c.finished_at, c.HasField("finished_at"))
    up = _human_duration(max(0.0, now - started)) if started else ""
    return {
        "created": "Created",
        "running": f"Up {up}",
        "paused": f"Up {up} (Paused)",
        "restarting": f"Restarting ({c.exit_code}) {_ago(finished, now)}",
        "exited": f"Exited ({c.exit_code}) {_ago(finished, now)}",
        "removing": "Removal In Progress",
        "dead": "Dead",
    }.get(c.state, c.state)


def _iso(ts: timestamp_pb2.Timestamp, present: bool = True) -> str:
    if not present:
        return "0001-01-01T00:00:00Z"
    return ts.ToDatetime(tzinfo=UTC).isoformat().replace("+00:00", "Z")


def _command(cmd: Sequence[str]) -> str:
    return " ".join(cmd)  # as docker joins Path and Args: no quoting


def print_table(table: Table) -> None:
    """Print a table at its natural width: never wrapped, as docker's tabwriter."""
    from rich.measure import Measurement  # noqa: PLC0415 - only listings need it

    natural = Measurement.get(out, out.options.update_width(10_000), table).maximum
    Console(highlight=False, width=max(natural, 20)).print(table)


def container_table(found: Sequence[c_pb2.ContainerSummary], now: float, full: bool) -> Table:
    """``ps``'s table; IDs and commands shortened unless ``full`` (``--no-trunc``)."""
    from rich.table import Table  # noqa: PLC0415 - only listings need it

    table = Table("CONTAINER ID", "COMMAND", "CREATED", "STATUS", "NAMES", box=None)
    for c in found:
        command = _command(c.cmd)
        if not full and len(command) > 20:
            command = command[:19] + "…"
        table.add_row(
            c.id if full else c.id[:12],
            json.dumps(command, ensure_ascii=False),
            _ago(_seconds(c.created, True), now),
            _status_text(c, now),
            c.name.lstrip("/"),
        )
    return table


def journal_table(journal: Sequence[engine_pb2.Transition]) -> Table:
    """``history``'s table: a row per transition, then one per step and failed undo."""
    from rich.table import Table  # noqa: PLC0415 - only listings need it

    table = Table("SEQ", "EVENT / STEP", "STATUS", "FROM", "TO", "STARTED", "ERROR", box=None)
    for t in journal:
        table.add_row(
            str(t.seq),
            t.event,
            t.status,
            _leaves(t.source),
            _leaves(t.target) if t.target else "",
            _iso(t.started_at, t.HasField("started_at")),
            f"{t.error_category}: {t.error_message}" if t.error_category else "",
        )
        for step in t.steps:
            status = step.status
            if step.HasField("compensated_at"):
                status += " ↶ compensated"
            error = step.error
            if step.compensation_error:
                error = f"{error}; undo failed: {step.compensation_error}".lstrip("; ")
            table.add_row("", f"  {step.index}. {step.name}", status, "", "", "", error)
        for problem in t.compensation_errors:
            table.add_row("", "  compensation", "failed", "", "", "", problem)
    return table


def _leaves(configuration: Sequence[str]) -> str:
    conf = list(configuration)
    return ",".join(s for s in conf if not any(o.startswith(s + ".") for o in conf))


def summary_json(c: c_pb2.ContainerSummary, now: float) -> dict[str, Any]:
    """One container of ``ps --format json``."""
    return {
        "ID": c.id,
        "Names": c.name.lstrip("/"),
        "Command": _command(c.cmd),
        "CreatedAt": _iso(c.created),
        "RunningFor": _ago(_seconds(c.created, True), now),
        "State": c.state,
        "Status": _status_text(c, now),
        "Labels": dict(c.labels),
        "ExitCode": c.exit_code,
        "RestartCount": c.restart_count,
        "Pid": c.pid,
    }


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
        },
        "RestartCount": i.restart_count,
        "Config": {
            "Cmd": list(cfg.cmd),
            "Env": list(cfg.env),
            "WorkingDir": cfg.working_dir,
            "Labels": dict(cfg.labels),
            "StopSignal": cfg.stop_signal,
            "StopTimeout": cfg.stop_timeout if cfg.HasField("stop_timeout") else None,
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
    when = ev.time.ToDatetime(tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")
    return f"{when} container {ev.action} {ev.id} ({shown})"


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
    # print_json would re-indent and colour; a plain dump is what scripts read.
    out.print(json.dumps(data, indent=4), markup=False)


def check_format(fmt: str, allowed: Sequence[str] = ("table", "json")) -> None:
    """Exit 2 unless ``fmt`` is one of ``allowed``."""
    if fmt not in allowed:
        err.print(f"error: invalid --format {fmt!r}: use {' or '.join(allowed)}", markup=False)
        raise typer.Exit(2)


def pairs(values: Sequence[str], what: str) -> list[tuple[str, str]]:
    """``KEY=VALUE`` arguments split; exit 2 at one without ``=`` or a key."""
    found = []
    for v in values:
        key, eq, val = v.partition("=")
        if not key or not eq:
            err.print(f"error: invalid {what} {v!r}: use KEY=VALUE", markup=False)
            raise typer.Exit(2)
        found.append((key, val))
    return found
