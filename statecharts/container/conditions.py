"""The container chart's ``when`` conditions: pure functions of a snapshot and params.

They need no runtime, so tests of the bare chart use them too.
"""

from __future__ import annotations

import signal as _signal
from collections.abc import Mapping
from typing import Any

import engine
from engine.errors import InvalidParameter
from statecharts.container import moby

__all__ = ["CONDITIONS", "kill_ends", "should_restart", "stop_ends"]

_SIGKILL = int(_signal.SIGKILL)


def should_restart(snapshot: engine.Snapshot, params: Mapping[str, Any]) -> bool:
    """moby's ShouldRestart for the exit in ``params`` (unless a stop cancelled it).

    The exit of a process left by a daemon that crashed (param ``restored``)
    never goes to restarting: as moby's restore does, the container is marked
    stopped, and the daemon's restore then applies the policy with a fresh
    restart manager (``Containers.restore``).
    """
    data = snapshot.data
    if data.get("exit_on_next") or params.get("restored"):
        return False  # a stop or an ending kill cancelled the restart manager
    return moby.should_restart(
        moby.RestartPolicy.from_data(data.get("restart_policy")),
        int(params.get("exit_code") or 0),
        bool(data.get("manually_stopped")),
        int(data.get("restart_count") or 0),
    )


def _ends(snapshot: engine.Snapshot, params: Mapping[str, Any], default: int | None) -> bool:
    data = snapshot.data
    stop = int(data.get("stop_signal") or moby.DEFAULT_STOP_SIGNAL)
    try:
        signal = moby.parse_signal(params.get("signal") or (default or stop))
    except InvalidParameter:
        return False  # the valid_signal guard says why
    return moby.ends(signal, stop, bool(data.get("stop_signal_set")))


def kill_ends(snapshot: engine.Snapshot, params: Mapping[str, Any]) -> bool:
    """Whether a kill's signal (SIGKILL by default) ends the container."""
    return _ends(snapshot, params, _SIGKILL)


def stop_ends(snapshot: engine.Snapshot, params: Mapping[str, Any]) -> bool:
    """Whether a stop's signal (the stop signal by default) ends the container."""
    return _ends(snapshot, params, None)


CONDITIONS: Mapping[str, engine.ConditionFn] = {
    "should_restart": should_restart,
    "kill_ends": kill_ends,
    "stop_ends": stop_ends,
}
