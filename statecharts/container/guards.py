"""The container chart's guards: what a transition checks before it is taken.

Each refuses with moby's category and message; none acts on anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import engine
from engine.errors import Forbidden, InvalidParameter, NotModified
from statecharts.container import moby

__all__ = [
    "checkpoint_allowed",
    "current_task",
    "new_name_valid",
    "settings_valid",
    "valid_signal",
]


def checkpoint_allowed(ctx: engine.Context) -> None:
    """A start asks for no checkpoint (moby's experimental feature)."""
    if ctx.params.get("checkpoint"):
        raise InvalidParameter("checkpoint is only supported in experimental mode")
    if ctx.params.get("checkpoint_dir"):
        raise Forbidden("custom checkpointdir is not supported")


def settings_valid(ctx: engine.Context) -> None:
    """The container's restart policy and working directory are valid."""
    moby.parse_restart_policy(_policy_text(ctx.source.data.get("restart_policy")))
    working_dir = ctx.source.data.get("working_dir")
    if working_dir and not Path(working_dir).is_absolute():
        raise InvalidParameter(
            f"the working directory '{working_dir}' is invalid, it needs to be an absolute path"
        )


def valid_signal(ctx: engine.Context) -> None:
    """The signal asked for, if any, is one moby knows."""
    if ctx.params.get("signal") not in (None, ""):
        moby.parse_signal(ctx.params["signal"])


def current_task(ctx: engine.Context) -> None:
    """An exit is of the container's current process (not of one it had before)."""
    pid = ctx.params.get("pid")
    if pid is not None and pid != ctx.source.data.get("pid"):
        raise NotModified(f"exit of process {pid} is not the current task of {ctx.entity_id}")


def new_name_valid(ctx: engine.Context) -> None:
    """A rename's new name is valid and not the current one."""
    new = ctx.params.get("new_name")
    old = ctx.source.data.get("name", "")
    if not new or not old:
        raise InvalidParameter("Neither old nor new names may be empty")
    canonical = moby.valid_name(str(new))
    if canonical == old:
        raise InvalidParameter("Renaming a container with the same name as its current name")


def _policy_text(data: Any) -> str:
    policy = moby.RestartPolicy.from_data(data)
    if policy.name == "on-failure" and policy.maximum_retry_count:
        return f"on-failure:{policy.maximum_retry_count}"
    return policy.name
