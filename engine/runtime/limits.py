"""The bounds an engine keeps to: memory it holds, races it retries, how long a beat lasts."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MAX_FOLLOW_UPS", "Limits"]

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
