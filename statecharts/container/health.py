"""Health checks: moby's rules for the chart's health region (``running.active.health``).

The chart says when a container is probed and how a result moves its
status; this module holds the rest, as plain functions and steps:

* :func:`healthcheck_data`: ``--health-*`` options checked as moby checks
  them, into the container's data (``healthcheck``, durations in seconds);
* the ``when`` conditions of the region (:data:`CONDITIONS`);
* :class:`HealthSteps`: the region's steps and its guard, on a
  :class:`Prober` that runs the probes (as execs) in the background;
* :func:`next_delay`: when the next probe runs; :func:`go_duration`: Go's
  spelling of a duration, which moby's timeout message uses.

What the steps keep in the data, under ``health``: ``status`` (the
region's state, for inspect and ps), ``failing_streak``, ``log`` (the last
5 results) and ``probe`` (the ID of the probe running, if any).
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping
from typing import Any, Protocol

import engine
from engine.errors import InvalidParameter, NotModified

__all__ = [
    "CONDITIONS",
    "HealthSteps",
    "Prober",
    "go_duration",
    "health_status",
    "healthcheck_data",
    "next_delay",
    "probe_command",
]

DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_START_PERIOD = 0.0
DEFAULT_START_INTERVAL = 5.0
DEFAULT_RETRIES = 3
MINIMUM = 0.001  # moby's container.MinimumDuration: 1 ms
MAX_LOG = 5
MAX_OUTPUT = 4096
STATUSES = ("starting", "healthy", "unhealthy")
_REGION = "running.active.health"
_DURATIONS = (
    ("interval", "Interval"),
    ("timeout", "Timeout"),
    ("start_period", "StartPeriod"),
    ("start_interval", "StartInterval"),
)


def healthcheck_data(given: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The ``healthcheck`` of a new container's data from moby's HealthConfig, checked.

    ``given`` has ``test`` (``["CMD", ...]``, ``["CMD-SHELL", "..."]`` or
    ``["NONE"]``), durations in seconds (0 or absent: moby's default) and
    ``retries``. moby's messages (``daemon/container.go``) for what it refuses.
    """
    if not given:
        return None
    unknown = set(given) - {"test", "retries", *(key for key, _ in _DURATIONS)}
    if unknown:
        raise InvalidParameter(f"unknown healthcheck option: {sorted(unknown)[0]}")
    test = given.get("test") or []
    if not isinstance(test, list | tuple) or not all(isinstance(t, str) for t in test):
        raise InvalidParameter("the healthcheck test must be a list of strings")
    out: dict[str, Any] = {"test": list(test)}
    for key, name in _DURATIONS:
        value = given.get(key) or 0
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise InvalidParameter(f"{name} in Healthcheck must be a duration in seconds")
        if value != 0 and value < MINIMUM:
            raise InvalidParameter(f"{name} in Healthcheck cannot be less than 1ms")
        out[key] = float(value)
    retries = given.get("retries") or 0
    if isinstance(retries, bool) or not isinstance(retries, int):
        raise InvalidParameter("Retries in Healthcheck must be an integer")
    if retries < 0:
        raise InvalidParameter("Retries in Healthcheck cannot be negative")
    if retries >= 2**31:
        raise InvalidParameter(f"Retries in Healthcheck is too large: {retries}")
    out["retries"] = retries
    if out["test"] and out["test"][0] not in ("CMD", "CMD-SHELL", "NONE"):
        raise InvalidParameter(f"unknown healthcheck type {out['test'][0]!r}")
    return out


def probe_command(healthcheck: Mapping[str, Any]) -> list[str] | None:
    """The command a probe runs (moby's getProbe), or None when the container is not probed."""
    test = list(healthcheck.get("test") or ())
    if not test:
        return None
    if test[0] == "CMD-SHELL":
        return ["/bin/sh", "-c", " ".join(test[1:])]
    if test[0] == "CMD" and len(test) > 1:
        return test[1:]
    return None


def _setting(healthcheck: Mapping[str, Any], key: str, default: float) -> float:
    return float(healthcheck.get(key) or 0) or default


def retries_of(healthcheck: Mapping[str, Any]) -> int:
    """The failing streak that makes the container unhealthy (3 when not set)."""
    return int(healthcheck.get("retries") or 0) or DEFAULT_RETRIES


def timeout_of(healthcheck: Mapping[str, Any]) -> float:
    """How long a probe may run before it is killed and counted a failure."""
    return _setting(healthcheck, "timeout", DEFAULT_TIMEOUT)


def next_delay(data: Mapping[str, Any], status: str, now: float) -> float:
    """Seconds until the next probe, counted from ``now`` (the last probe's end, or the start).

    The interval; while ``starting`` within the start period, the start
    interval, and at most until the start period ends.
    """
    hc = data.get("healthcheck") or {}
    interval = _setting(hc, "interval", DEFAULT_INTERVAL)
    period_end = float(data.get("started_at") or now) + _setting(
        hc, "start_period", DEFAULT_START_PERIOD
    )
    if (
        status == "starting"
        and now < period_end
        and period_end > float(data.get("started_at") or 0)
    ):
        return max(
            0.0, min(_setting(hc, "start_interval", DEFAULT_START_INTERVAL), period_end - now)
        )
    return interval


def go_duration(seconds: float) -> str:
    """``seconds`` as Go's time.Duration prints it: 30s, 1.5s, 500ms, 1m30s, 0s."""
    ns = round(seconds * 1e9)
    if ns == 0:
        return "0s"
    sign, ns = ("-" if ns < 0 else ""), abs(ns)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return sign + _fraction(ns, size) + unit
    hours, rest = divmod(ns, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    text = _fraction(rest, 10**9) + "s"
    if hours or minutes:
        text = f"{minutes}m{text}"
    if hours:
        text = f"{hours}h{text}"
    return sign + text


def _fraction(value: int, size: int) -> str:
    whole, part = divmod(value, size)
    digits = f"{part:0{len(str(size)) - 1}d}".rstrip("0") if part else ""
    return f"{whole}.{digits}" if digits else str(whole)


def health_status(container: engine.Entity) -> str | None:
    """moby's ``State.Health.Status`` of a container (None: it has no health check).

    The region's state while active; otherwise what the steps last recorded
    (a paused container keeps it, and so does a stopped one, as moby's).
    """
    data = container.data
    if not probe_command(data.get("healthcheck") or {}):
        return None
    for status in STATUSES:
        if container.in_state(f"{_REGION}.{status}"):
            return status
    # Never started: moby sets State.Health at the first start.
    recorded = (data.get("health") or {}).get("status")
    return str(recorded) if recorded else None


# -- the region's conditions ------------------------------------------------------------


def probes(snapshot: engine.Snapshot, params: Mapping[str, Any]) -> bool:
    """Whether the container has a health check that runs (not NONE)."""
    return probe_command(snapshot.data.get("healthcheck") or {}) is not None


def in_start_period(snapshot: engine.Snapshot, params: Mapping[str, Any]) -> bool:
    """The probe began within the start period (its failure does not count while starting)."""
    data = snapshot.data
    hc = data.get("healthcheck") or {}
    since_start = float(params.get("start") or 0) - float(data.get("started_at") or 0)
    return since_start < _setting(hc, "start_period", DEFAULT_START_PERIOD)


def counts(snapshot: engine.Snapshot, params: Mapping[str, Any]) -> bool:
    """Whether a failure counts: not while starting within the start period (moby's rule)."""
    starting = f"{_REGION}.starting" in snapshot.configuration
    return not (starting and in_start_period(snapshot, params))


def reaches_retries(snapshot: engine.Snapshot, params: Mapping[str, Any]) -> bool:
    """The failure counts, and makes the streak reach the retries."""
    data = snapshot.data
    streak = int((data.get("health") or {}).get("failing_streak") or 0)
    return counts(snapshot, params) and streak + 1 >= retries_of(data.get("healthcheck") or {})


CONDITIONS: Mapping[str, engine.ConditionFn] = {
    "probes": probes,
    "reaches_retries": reaches_retries,
}


# -- the region's steps -----------------------------------------------------------------


class Prober(Protocol):
    """Runs probes in the background; results come back as ``probe_passed``, ``probe_failed``."""

    def start(self, container_id: str, probe_id: str, cmd: list[str], timeout: float) -> None:
        """Run ``cmd`` in the container; report its result (killed after ``timeout`` s)."""
        ...

    def cancel(self, container_id: str, probe_id: str) -> None:
        """Kill the probe if it still runs; its result is not reported."""
        ...


def _region_status(snapshot: engine.Snapshot) -> str | None:
    for status in STATUSES:
        if f"{_REGION}.{status}" in snapshot.configuration:
            return status
    return None


class HealthSteps:
    """The steps (and guard) of the health region, on a :class:`Prober`."""

    def __init__(self, prober: Prober) -> None:
        self.prober = prober

    def _health(self, ctx: engine.Context) -> dict[str, Any]:
        health = dict(ctx.data.get("health") or {})
        ctx.data["health"] = health
        return health

    def _schedule(self, ctx: engine.Context, status: str) -> None:
        # Once per transition: unpause's resume and a reset entered after it.
        if not any(event == "health_check" for _, event, _, _ in ctx.timers):
            ctx.schedule("health_check", next_delay(ctx.data, status, ctx.now))

    def health_reset(self, ctx: engine.Context) -> None:
        """Entering ``starting`` (start, restart, retry): a streak of 0, the first probe due."""
        health = self._health(ctx)
        health.update(status="starting", failing_streak=0, probe=None)
        health.setdefault("log", [])
        self._schedule(ctx, "starting")

    def probe_start(self, ctx: engine.Context) -> None:
        """Run a probe (an exec) in the background, as moby emits it: exec_create, exec_start."""
        hc = ctx.data.get("healthcheck") or {}
        cmd = probe_command(hc) or []
        probe = secrets.token_hex(32)
        self._health(ctx)["probe"] = probe
        self.prober.start(ctx.entity_id, probe, cmd, timeout_of(hc))
        shown = " ".join(cmd)
        ctx.emit(f"exec_create: {shown}", execID=probe)
        ctx.emit(f"exec_start: {shown}", execID=probe)

    def cancel_probe(self, ctx: engine.Context, payload: Any) -> None:
        """Kill the probe a failed transition started."""
        probe = (ctx.data.get("health") or {}).get("probe")
        if probe:
            self.prober.cancel(ctx.entity_id, str(probe))

    def current_probe(self, ctx: engine.Context) -> None:
        """Refuse the result of a probe that is not the one running (pause or stop came first)."""
        running = (ctx.source.data.get("health") or {}).get("probe")
        if not running or ctx.params.get("probe") != running:
            raise NotModified(f"probe {ctx.params.get('probe')} is not running")

    def record_probe(self, ctx: engine.Context) -> None:
        """Keep the result (log, streak, status), tell a change of status, schedule the next."""
        params = ctx.params
        health = self._health(ctx)
        before = _region_status(ctx.source)
        after = _region_status(ctx.target) or before or "starting"
        code = int(params.get("exit_code", -1))
        if ctx.event == "probe_passed":
            health["failing_streak"] = 0
        elif counts(ctx.source, params):
            health["failing_streak"] = int(health.get("failing_streak") or 0) + 1
        entry = {
            "Start": float(params.get("start") or ctx.now),
            "End": float(params.get("end") or ctx.now),
            "ExitCode": code,
            "Output": str(params.get("output") or ""),
        }
        health["log"] = [*(health.get("log") or []), entry][-MAX_LOG:]
        health.update(status=after, probe=None)
        ctx.emit("exec_die", execID=str(params.get("probe")), exitCode=str(code))
        if after != before:
            ctx.emit(f"health_status: {after}")
        self._schedule(ctx, after)

    def health_stop(self, ctx: engine.Context) -> None:
        """Pause: no more probes (the one running is killed); the status is kept."""
        ctx.cancel_timers("health_check")
        health = ctx.data.get("health")
        if health and health.get("probe"):
            self.prober.cancel(ctx.entity_id, str(health["probe"]))
            self._health(ctx)["probe"] = None

    def health_resume(self, ctx: engine.Context) -> None:
        """Unpause: probing again, the status as it was."""
        status = _region_status(ctx.target)
        if status is not None:
            self._schedule(ctx, status)
