"""How a container looks from outside: moby's status string and inspect document.

The chart's configuration is not what moby shows: :func:`status_of` maps it
(and, while a start runs, the container's data) to moby's status, and
:func:`inspect_document` builds ``docker inspect``'s document from an entity.
"""

from __future__ import annotations

import signal as _signal
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import engine
from statecharts.container import moby
from statecharts.container.health import health_status
from statecharts.container.steps import log_path

__all__ = ["RUNNING", "inspect_document", "status_of"]

RUNNING = ("running", "paused", "restarting")
"""The statuses in which moby's Running flag is set."""


def status_of(configuration: Sequence[str], data: Mapping[str, Any] | None = None) -> str:
    """moby's status string of a configuration: created, running, paused, restarting, ...

    While a start saga runs (``starting``), moby's view still shows the state
    the start began from, which the container's ``data`` tells: restarting
    (the restart policy's retry), running (a restart still stopping the old
    process, whose pid the data keeps until the saga records it deleted),
    exited (it ran before) or created.
    """
    # The process's state: the health region's states lie below running.active.
    leaf = next(
        (
            s
            for s in ("running.active", "running.paused", "running.restarting")
            if s in configuration
        ),
        configuration[-1] if configuration else "created",
    )
    if leaf == "starting":
        data = data or {}
        if data.get("restarting"):
            return "restarting"
        if data.get("pid"):
            return "running"
        return "exited" if data.get("has_been_started_before") else "created"
    return {
        "running.active": "running",
        "running.paused": "paused",
        "running.restarting": "restarting",
    }.get(leaf, leaf)


def _time(value: Any) -> str:
    if not value:
        return "0001-01-01T00:00:00Z"
    return datetime.fromtimestamp(float(value), UTC).isoformat().replace("+00:00", "Z")


def inspect_document(container: engine.Entity, root: Path) -> dict[str, Any]:
    """The container as ``docker inspect`` shows it (the fields chartd has).

    ``root`` is the daemon's state directory, under which the log lives.
    """
    data = container.data
    status = status_of(container.configuration, data)
    policy = moby.RestartPolicy.from_data(data.get("restart_policy"))
    argv = list(data.get("cmd") or [])
    entrypoint = list(data.get("entrypoint") or [])
    return {
        "Id": container.id,
        "Name": data.get("name"),
        "Created": _time(container.created_at),
        "Path": argv[0] if argv else "",
        "Args": argv[1:],
        "Image": str(data.get("image") or ""),
        "State": {
            "Status": status,
            "Running": status in RUNNING,
            "Paused": status == "paused",
            "Restarting": status == "restarting",
            "OOMKilled": bool(data.get("oom_killed")),
            "Dead": status == "dead",
            "Pid": int(data.get("pid") or 0) if status in ("running", "paused") else 0,
            "ExitCode": int(data.get("exit_code") or 0),
            "Error": str(data.get("error") or ""),
            "StartedAt": _time(data.get("started_at")),
            "FinishedAt": _time(data.get("finished_at")),
            **_health(container),
        },
        "RestartCount": int(data.get("restart_count") or 0),
        "Config": {
            "Cmd": argv[len(entrypoint) :],
            "Entrypoint": entrypoint or None,
            "Image": str(data.get("image") or ""),
            "Env": [f"{k}={v}" for k, v in sorted((data.get("env") or {}).items())],
            "WorkingDir": data.get("working_dir") or "",
            "Labels": dict(data.get("labels") or {}),
            "StopSignal": _signal_name(data.get("stop_signal"))
            if data.get("stop_signal_set")
            else "",
            "StopTimeout": data.get("stop_timeout"),
            "Tty": bool(data.get("tty")),
            "OpenStdin": bool(data.get("open_stdin")),
            "StdinOnce": bool(data.get("stdin_once")),
            "AttachStdin": bool(data.get("attach_stdin")),
            **_healthcheck(data.get("healthcheck")),
        },
        "HostConfig": {
            "RestartPolicy": {
                "Name": policy.name,
                "MaximumRetryCount": policy.maximum_retry_count,
            },
            "AutoRemove": bool(data.get("auto_remove")),
            "ConsoleSize": list(data.get("console_size") or [0, 0]),
        },
        "NetworkSettings": {"IPAddress": data.get("address", "")},
        "LogPath": str(log_path(root, container.id)),
        "ExecIDs": list(data.get("exec_ids") or []) or None,
    }


def _health(container: engine.Entity) -> dict[str, Any]:
    """``State.Health`` as moby shows it, for a container with a health check."""
    status = health_status(container)
    if status is None:
        return {}
    health = container.data.get("health") or {}
    return {
        "Health": {
            "Status": status,
            "FailingStreak": int(health.get("failing_streak") or 0),
            "Log": [
                {**entry, "Start": _time(entry.get("Start")), "End": _time(entry.get("End"))}
                for entry in health.get("log") or []
            ],
        }
    }


def _healthcheck(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """``Config.Healthcheck`` (durations in nanoseconds, as moby's JSON), if one was set."""
    if not config:
        return {}
    out: dict[str, Any] = {"Test": list(config.get("test") or [])}
    for key, name in (
        ("interval", "Interval"),
        ("timeout", "Timeout"),
        ("start_period", "StartPeriod"),
        ("start_interval", "StartInterval"),
    ):
        if config.get(key):
            out[name] = round(float(config[key]) * 1e9)
    if config.get("retries"):
        out["Retries"] = int(config["retries"])
    return {"Healthcheck": out}


def _signal_name(number: Any) -> str:
    try:
        return _signal.Signals(int(number)).name
    except (ValueError, TypeError):
        return str(number)
