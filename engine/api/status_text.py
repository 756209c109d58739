"""ps's STATUS and COMMAND columns as docker writes them, for both clients of the container
service.

chartd's own CLI (from the API's messages) and docker's Engine API (from the
container's data) show the same words: ``Up 3 minutes (healthy)``,
``Exited (0) 2 seconds ago``, ``Created``...
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["health_suffix", "human_ago", "human_duration", "ps_command", "ps_status"]


def human_duration(seconds: float) -> str:
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


def ps_command(argv: Sequence[str]) -> str:
    """A listing's command as moby's container view writes it: the path, then the
    arguments, one that holds a space in single quotes (``sh -c 'exit 3'``)."""
    if not argv:
        return ""
    args = [f"'{a}'" if " " in a else a for a in argv[1:]]
    return " ".join([argv[0], *args])


def human_ago(when: float | None, now: float) -> str:
    """``3 minutes ago``, as docker prints a time before ``now`` (empty if None)."""
    return "" if when is None else f"{human_duration(max(0.0, now - when))} ago"


def health_suffix(health: str) -> str:
    """What ``ps`` adds to a running container's status: `` (healthy)``, as docker."""
    if not health:
        return ""
    return " (health: starting)" if health == "starting" else f" ({health})"


def ps_status(
    state: str,
    *,
    started: float | None,
    finished: float | None,
    exit_code: int,
    health: str,
    now: float,
) -> str:
    """The STATUS of a container in ``state`` (times in seconds since the epoch).

    ``health`` is its health status, empty without a health check.
    """
    up = human_duration(max(0.0, now - started)) if started else ""
    ago = human_ago(finished, now)
    return {
        "created": "Created",
        "running": f"Up {up}{health_suffix(health)}",
        "paused": f"Up {up} (Paused)",
        "restarting": f"Restarting ({exit_code}) {ago}",
        "exited": f"Exited ({exit_code}) {ago}",
        "removing": "Removal In Progress",
        "dead": "Dead",
    }.get(state, state)
