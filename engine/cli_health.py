"""The health-check options of ``chartd create`` and ``chartd run``, as docker's CLI reads them.

``--health-cmd`` (run by ``/bin/sh -c``), ``--health-interval``,
``--health-timeout``, ``--health-start-period``, ``--health-start-interval``
(Go durations: ``30s``, ``1m30s``, ``250ms``), ``--health-retries`` and
``--no-healthcheck``. The checks are docker's (``opts.go``), with its
messages and its exit status 125; the daemon checks the rest (moby's
minimum of 1 ms).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from engine.api.chartd.v1 import containers_pb2 as c_pb2
from engine.api.times import TimeError, parse_duration
from engine.cli_verbs import arg

__all__ = ["HEALTH_OPTIONS", "health_json", "healthcheck", "healthcheck_json"]


def _duration(text: str) -> float:
    try:
        return parse_duration(text) / 1e9
    except TimeError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


HEALTH_OPTIONS = (
    arg("--health-cmd", help="Command to run to check health (by /bin/sh -c)."),
    arg("--health-interval", type=_duration, help="Time between checks (ms|s|m|h) (default 30s)."),
    arg("--health-timeout", type=_duration, help="Maximum time to allow one check (default 30s)."),
    arg("--health-retries", type=int, help="Consecutive failures needed to report unhealthy."),
    arg("--health-start-period", type=_duration, help="Start period before counting retries."),
    arg("--health-start-interval", type=_duration, help="Time between checks in the start period."),
    arg(
        "--no-healthcheck", action="store_true", help="Disable any container-specified HEALTHCHECK."
    ),
)
"""The options, for the create options of ``create`` and ``run``."""

_NAMED = (
    ("health_interval", "--health-interval"),
    ("health_timeout", "--health-timeout"),
    ("health_retries", "--health-retries"),
    ("health_start_period", "--health-start-period"),
    ("health_start_interval", "--health-start-interval"),
)


def healthcheck(args: argparse.Namespace) -> c_pb2.Healthcheck | None:
    """The health check the options ask for (None: none); exit 125 on a conflict, as docker."""
    given = any(getattr(args, key) for key, _ in _NAMED) or bool(args.health_cmd)
    if args.no_healthcheck:
        if given:
            _refuse("--no-healthcheck conflicts with --health-* options")
        return c_pb2.Healthcheck(test=["NONE"])
    if not given:
        return None
    for key, flag in _NAMED:
        if (getattr(args, key) or 0) < 0:
            _refuse(f"{flag} cannot be negative")
    return c_pb2.Healthcheck(
        test=["CMD-SHELL", args.health_cmd] if args.health_cmd else [],
        interval=args.health_interval or 0,
        timeout=args.health_timeout or 0,
        start_period=args.health_start_period or 0,
        start_interval=args.health_start_interval or 0,
        retries=args.health_retries or 0,
    )


def _refuse(message: str) -> None:
    sys.stderr.write(message + "\n")
    raise SystemExit(125)


def health_json(state: c_pb2.ContainerState) -> dict[str, Any]:
    """``State.Health`` of inspect's JSON, if the container has a health check."""
    if not state.HasField("health"):
        return {}
    h = state.health
    log = [
        {"Start": e.start, "End": e.end, "ExitCode": e.exit_code, "Output": e.output} for e in h.log
    ]
    return {"Health": {"Status": h.status, "FailingStreak": h.failing_streak, "Log": log}}


def healthcheck_json(config: c_pb2.ContainerConfig) -> dict[str, Any]:
    """``Config.Healthcheck`` of inspect's JSON (durations in nanoseconds, as docker's)."""
    if not config.HasField("healthcheck"):
        return {}
    hc = config.healthcheck
    out: dict[str, Any] = {"Test": list(hc.test)}
    for key, name in (
        ("interval", "Interval"),
        ("timeout", "Timeout"),
        ("start_period", "StartPeriod"),
        ("start_interval", "StartInterval"),
    ):
        if getattr(hc, key):
            out[name] = round(getattr(hc, key) * 1e9)
    if hc.retries:
        out["Retries"] = hc.retries
    return {"Healthcheck": out}
