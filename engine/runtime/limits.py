"""The bounds an engine keeps to: memory it holds, races it retries, how long a beat lasts."""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.errors import InvalidParameter

__all__ = ["MAX_FOLLOW_UPS", "Limits", "parse_retention"]

MAX_FOLLOW_UPS = 100
"""The longest chain of follow-ups (``then``) one fire sets off; the rest are dropped.

``chartd chart check`` reports charts whose follow-ups could chain further.
"""


@dataclass(frozen=True, slots=True)
class Limits:
    """How much an engine keeps in memory and how it paces its housekeeping.

    The defaults suit a daemon; tests shrink them to see the bounds hold
    without creating ten thousand entities.
    """

    cached_rows: int = 10_000
    """Entity rows kept in memory; the oldest go first. A row is only a guess."""
    idle_locks: int = 10_000
    """Per-entity locks kept before the ones nobody holds are forgotten."""
    retries: int = 3
    """Decisions of one fire before a race lost every time is reported as a Conflict."""
    lease: float = 10.0
    """Seconds without a heartbeat after which an engine on another host counts as dead."""
    beat: float = 2.0
    """Seconds between heartbeats, and the longest the housekeeping thread sleeps."""
    timer_claim: float = 30.0
    """Seconds an engine's claim on a due timer holds: longer than a timer's fire takes.

    A timer whose claimer died (or left it pending) is fired by another engine
    once the claim lapses.
    """
    retain_finished: float | None = None
    """Seconds a finished entity (in a top-level final state) and its journal are kept
    after it finished; None keeps them for good. Housekeeping deletes the older ones."""
    purge_batch: int = 100
    """Finished entities deleted a beat at most, in one transaction (about 100 a second)."""


_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_retention(text: str, option: str = "--retain-removed") -> float | None:
    """A retention as people write it (``90m``, ``24h``, ``7d``, ``0``) in seconds, or None
    for ``forever``; InvalidParameter naming ``option`` otherwise."""
    spelled = text.strip().lower()
    if spelled == "forever":
        return None
    found = _DURATION.fullmatch(spelled)
    if found is None:
        raise InvalidParameter(
            f"invalid {option} {text!r}: a duration such as 90m, 24h or 7d, or forever"
        )
    return float(found.group(1)) * _SECONDS[found.group(2)]
