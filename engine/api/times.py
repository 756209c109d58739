"""Docker's times (``--since``, ``--until``, ``until=`` filters), as its CLI and daemon read them.

docker's ``timetypes.GetTimestamp``: a Go duration before now (``10m``,
``1h30m``, ``-5s`` for five seconds ahead; ``0`` is no duration), an RFC 3339
date or time (``2025-01-02``, ``2025-01-02T15:04``,
``2025-01-02T15:04:05.123Z``, ``...+02:00``; without a zone, local time), or
a Unix timestamp (``1736000000``, ``1736000000.5``).
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta, timezone

from engine.errors import InvalidParameter

__all__ = ["TimeError", "parse_duration", "parse_time", "rfc3339_nano", "unix_seconds"]

_NS = 1_000_000_000
_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": _NS,
    "m": 60 * _NS,
    "h": 3600 * _NS,
}
_DURATION = re.compile(r"([+-]?)((?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+)")
_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:T(\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?)?"
    r"([zZ]|[+-]\d{2}:\d{2})?"
)
_UNIX = re.compile(r"(\d+)(?:\.(\d{1,9}))?")


class TimeError(ValueError):
    """A value that is none of docker's forms; the message is docker's."""


def _duration_ns(value: str) -> int | None:
    """A Go duration in nanoseconds, None if ``value`` is not one."""
    match = _DURATION.fullmatch(value)
    if match is None:
        return None
    total = sum(
        round(float(number) * _UNITS[unit]) for number, unit in _PART.findall(match.group(2))
    )
    return -total if match.group(1) == "-" else total


def _rfc3339_ns(match: re.Match[str]) -> int:
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    tz: timezone | None = None
    if zone in ("z", "Z"):
        tz = UTC
    elif zone:
        sign = -1 if zone[0] == "-" else 1
        tz = timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    try:
        when = datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0)
        )
    except ValueError as exc:
        raise TimeError(f"parsing time {match.group(0)!r}: {exc}") from None
    # Without a zone, local time, as docker's CLI reads it.
    aware = when.replace(tzinfo=tz) if tz is not None else when.astimezone()
    return int(aware.timestamp()) * _NS + int((fraction or "0").ljust(9, "0"))


def parse_time(value: str, now_ns: int | None = None) -> int:
    """``value`` as nanoseconds since the epoch; ``now_ns`` is what a duration counts back from."""
    reference = time.time_ns() if now_ns is None else now_ns
    if value != "0":
        duration = _duration_ns(value)
        if duration is not None:
            return reference - duration
    stamp = _RFC3339.fullmatch(value)
    if stamp is not None:
        return _rfc3339_ns(stamp)
    unix = _UNIX.fullmatch(value)
    if unix is None or "-" in value:
        raise TimeError(f'failed to parse value as time or duration: "{value}"')
    return int(unix.group(1)) * _NS + int((unix.group(2) or "0").ljust(9, "0"))


def parse_duration(value: str) -> int:
    """A Go duration (``30s``, ``1m30s``, ``500ms``, ``0``) in nanoseconds; Go's messages."""
    if value in ("0", "+0", "-0"):
        return 0
    found = _duration_ns(value)
    if found is not None:
        return found
    if re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)", value):
        raise TimeError(f'time: missing unit in duration "{value}"')
    unit = re.fullmatch(r"[+-]?(?:\d+\.?\d*|\.\d+)([^\d.]+)", value)
    if unit is not None:
        raise TimeError(f'time: unknown unit "{unit.group(1)}" in duration "{value}"')
    raise TimeError(f'time: invalid duration "{value}"')


def unix_seconds(value: str) -> str:
    """A time in docker's forms (``10m``, RFC 3339, Unix) as Unix seconds (``S.NNNNNNNNN``),
    as a daemon passes an ``until=`` filter on; InvalidParameter with docker's message."""
    try:
        ns = parse_time(value)
    except TimeError as exc:
        raise InvalidParameter(str(exc)) from None
    return f"{ns // 10**9}.{ns % 10**9:09d}"


def rfc3339_nano(ns: int) -> str:
    """Nanoseconds since the epoch as Go's ``RFC3339Nano`` in UTC (trailing zeros dropped);
    0 is Go's zero time, ``0001-01-01T00:00:00Z``."""
    if ns == 0:
        return "0001-01-01T00:00:00Z"
    seconds, nanos = divmod(ns, 10**9)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    fraction = f"{nanos:09d}".rstrip("0")
    return f"{stamp}.{fraction}Z" if fraction else f"{stamp}Z"
