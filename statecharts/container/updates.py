"""``docker update``: the restart policy of a container, changed in any live state.

moby's ``update`` (``daemon/update.go``) sets the new policy on the
container and on its restart manager: a running container's next exit is
judged by it, and a restarting one's pending restart still happens (the
policy decides again at the exit after). The guard refuses a policy other
than ``no`` for a container with ``--rm``, with moby's Conflict; the step
keeps the policy and emits ``update``.

``resize`` (moby's ``daemon/resize.go``) changes nothing of the container's
data either: the service sets the TTY's window on the runtime's task, then
the step emits ``resize`` with moby's attributes.
"""

from __future__ import annotations

import engine
from engine.errors import Conflict
from statecharts.container import moby

__all__ = ["resized", "update_allowed", "update_config"]


def update_allowed(ctx: engine.Context) -> None:
    """A new restart policy other than ``no`` needs a container without AutoRemove."""
    given = ctx.params.get("restart_policy")
    if given is None or not ctx.source.data.get("auto_remove"):
        return
    if moby.RestartPolicy.from_data(given).name != "no":
        raise Conflict(
            f"Cannot update container {ctx.entity_id}: Restart policy cannot be updated "
            "because AutoRemove is enabled for the container"
        )


def update_config(ctx: engine.Context) -> None:
    """Keep the new restart policy (if one is given) and emit ``update``."""
    given = ctx.params.get("restart_policy")
    if given is not None:
        ctx.data["restart_policy"] = moby.RestartPolicy.from_data(given).as_data()
    ctx.emit("update")


def resized(ctx: engine.Context) -> None:
    """Emit ``resize`` with the window's ``height`` and ``width`` (moby's attributes)."""
    ctx.emit("resize", height=str(ctx.params["height"]), width=str(ctx.params["width"]))
