"""moby's rules as plain functions: names, signals, restart policies, exit codes, backoff.

Each function reproduces one of moby's checks with its message, so the
bindings, the service and the API all refuse bad input the same way.
"""

from __future__ import annotations

import re
import signal as _signal
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.errors import InvalidParameter

__all__ = [
    "DEFAULT_STOP_SIGNAL",
    "DEFAULT_STOP_TIMEOUT",
    "MAX_NAME",
    "RestartPolicy",
    "backoff",
    "ends",
    "kill_signal",
    "parse_restart_policy",
    "parse_signal",
    "should_restart",
    "valid_name",
]

DEFAULT_STOP_SIGNAL = int(_signal.SIGTERM)
DEFAULT_STOP_TIMEOUT = 10  # seconds, moby's default on Linux
MAX_NAME = 253  # moby has no bound; a DNS name's, so that every listing stays small
_NAME = re.compile(r"/?[a-zA-Z0-9][a-zA-Z0-9_.-]+")  # whole (Go's $ takes no newline)
_POLICIES = ("no", "always", "unless-stopped", "on-failure")
# Go's strconv.Atoi, which moby parses numbers with: ASCII digits only (Python's int()
# also takes "٣", "²", " 3" and "3_0"), a sign for the retry count.
_DIGITS = re.compile(r"[0-9]+", re.ASCII)
_COUNT = re.compile(r"[+-]?[0-9]+", re.ASCII)
# The API carries the retry count as an int32: a larger one could be stored but never shown.
_COUNT_MAX = 2**31 - 1
_REALTIME = re.compile(r"(RTMIN|RTMAX)(?:([+-])([1-9][0-9]?))?")
_LAST = {"RTMIN": 15, "RTMAX": 14}
# moby's restart manager: 100 ms doubling to a minute, reset after 10 s of running.
BACKOFF_FIRST = 0.1
BACKOFF_MAX = 60.0
BACKOFF_RESET_AFTER = 10.0


def valid_name(name: str) -> str:
    """The canonical name (``/web``) of a valid container name, or InvalidParameter."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        shown = name if not isinstance(name, str) or len(name) <= 64 else name[:64] + "…"
        raise InvalidParameter(
            f"Invalid container name ({shown}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )
    if len(name.lstrip("/")) > MAX_NAME:
        raise InvalidParameter(
            f"Invalid container name ({name[:64]}…): at most {MAX_NAME} characters"
        )
    return name if name.startswith("/") else "/" + name


def parse_signal(value: Any) -> int:
    """A signal number from ``9``, ``"9"``, ``"KILL"`` or ``"SIGKILL"`` (any case)."""
    text = str(value).strip()
    number: int | None = None
    if _DIGITS.fullmatch(text):
        number = int(text) if len(text) <= 20 else None  # int() refuses 4300 digits
    else:
        name = text.upper()
        name = name if name.startswith("SIG") else "SIG" + name
        found = getattr(_signal.Signals, name, None) if name.isidentifier() else None
        number = int(found) if found is not None else _realtime(name[3:])
    if number is None or not 0 < number < _signal.NSIG:
        raise InvalidParameter(f"invalid signal: {value}")
    return number


# The signals moby's Linux daemon knows by name (moby/sys/signal's SignalMap): 1 to 31
# and the real-time ones from RTMIN (34); 32 and 33 are the C library's own.
_KILLABLE = frozenset(range(1, 32)) | frozenset(range(34, 65))
_GO_ATOI = re.compile(r"[+-]?[0-9]+", re.ASCII)


def kill_signal(value: Any) -> int:
    """The signal of a kill, checked as moby's ``ContainerKill`` checks it.

    A number is read as Go's ``Atoi`` reads it (a sign allowed); 0, or a name
    moby does not know, is ``invalid signal: X``; a number that is no signal of
    the platform's is ``the linux daemon does not support signal N``.
    """
    text = str(value)
    if _GO_ATOI.fullmatch(text) and -(2**63) <= int(text) < 2**63:
        number = int(text)
        if number == 0:
            raise InvalidParameter(f"invalid signal: {value}")
        if number not in _KILLABLE:
            raise InvalidParameter(f"the linux daemon does not support signal {number}")
        return number
    if text != text.strip():  # moby's names have no blanks around them
        raise InvalidParameter(f"invalid signal: {value}")
    return parse_signal(value)


def _realtime(name: str) -> int | None:
    """moby's names of the real-time signals: RTMIN, RTMIN+1..+15, RTMAX-14..-1, RTMAX."""
    found = _REALTIME.fullmatch(name)
    if found is None:
        return None
    base, sign, offset = found.group(1), found.group(2), int(found.group(3) or 0)
    if (sign is not None and (sign == "+") != (base == "RTMIN")) or offset > _LAST[base]:
        return None  # RTMIN-n and RTMAX+n are not names, nor RTMIN+16 or RTMAX-15
    return _signal.SIGRTMIN + offset if base == "RTMIN" else _signal.SIGRTMAX - offset


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """A restart policy as moby keeps it: ``name`` and ``maximum_retry_count``."""

    name: str = "no"
    maximum_retry_count: int = 0

    def as_data(self) -> dict[str, Any]:
        """The JSON form kept in the container's data."""
        return {"name": self.name, "maximum_retry_count": self.maximum_retry_count}

    @classmethod
    def from_data(cls, data: Mapping[str, Any] | None) -> RestartPolicy:
        """The policy kept in a container's data (``no`` if none)."""
        if not data:
            return cls()
        return cls(str(data.get("name") or "no"), int(data.get("maximum_retry_count") or 0))


def parse_restart_policy(text: str | None) -> RestartPolicy:
    """``no``, ``always``, ``unless-stopped`` or ``on-failure[:N]``, checked as moby does."""
    if text is None or text == "":
        return RestartPolicy()
    name, colon, count_text = str(text).partition(":")
    if colon and not name:
        raise InvalidParameter("invalid restart policy format: no policy provided before colon")
    count = 0
    if count_text:
        if not _COUNT.fullmatch(count_text) or len(count_text) > 20 or int(count_text) > _COUNT_MAX:
            raise InvalidParameter(
                "invalid restart policy format: maximum retry count must be an integer"
            )
        count = int(count_text)
    if name not in _POLICIES:
        raise InvalidParameter(
            f"invalid restart policy: unknown policy '{name}'; use one of 'no', 'always', "
            "'on-failure', or 'unless-stopped'"
        )
    if count and name != "on-failure":
        raise InvalidParameter(
            "invalid restart policy: maximum retry count can only be used with 'on-failure'"
            + (" and cannot be negative" if count < 0 else "")
        )
    if count < 0:
        raise InvalidParameter("invalid restart policy: maximum retry count cannot be negative")
    return RestartPolicy(name, count)


def ends(signal: int, stop_signal: int, stop_signal_set: bool) -> bool:
    """Whether ``signal`` ends the container as moby's killWithSignal sees it.

    SIGKILL, the configured stop signal, or any signal when no stop signal
    was configured: then the restart manager is cancelled (ExitOnNext) and a
    paused container is resumed after the signal.
    """
    return signal == int(_signal.SIGKILL) or signal == stop_signal or not stop_signal_set


def should_restart(
    policy: RestartPolicy, exit_code: int, manually_stopped: bool, restart_count: int
) -> bool:
    """moby's ShouldRestart decision for one exit (the restart manager not cancelled)."""
    if policy.name == "always":
        return True
    if policy.name == "unless-stopped":
        return not manually_stopped
    if policy.name == "on-failure":
        limit = policy.maximum_retry_count
        return exit_code != 0 and (limit == 0 or restart_count < limit)
    return False


def backoff(previous: float, ran_for: float) -> float:
    """The next restart delay: 100 ms, doubling to a minute; reset after 10 s of running."""
    if ran_for >= BACKOFF_RESET_AFTER:
        previous = 0.0
    return BACKOFF_FIRST if previous <= 0 else min(previous * 2, BACKOFF_MAX)
