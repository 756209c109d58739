"""The lifecycle verbs of ``chartd`` on existing containers.

``start``, ``stop``, ``restart``, ``pause``, ``unpause``, ``kill``, ``rm`` and
``rename``. Those given several names act on each in turn and print each
name that succeeded, as docker's do.
"""

from __future__ import annotations

import contextlib
from typing import Annotated

import typer

from engine.api.chartd.v1 import containers_pb2 as c_pb2
from engine.cli_session import CallFailed, NamesArg, Session, each_container

__all__ = ["kill", "pause", "rename", "restart", "rm", "start", "stop", "unpause"]

TimeoutOpt = Annotated[
    int | None, typer.Option("-t", "--time", "--timeout", help="Seconds before SIGKILL.")
]
SignalOpt = Annotated[str | None, typer.Option("-s", "--signal", help="Signal to send.")]


def start(ctx: typer.Context, containers: NamesArg) -> None:
    """Start one or more containers."""
    each_container(
        ctx,
        containers,
        lambda s, n: s.call(
            s.client.containers.Start,
            c_pb2.StartContainerRequest(container=n),
            not_modified_ok=True,
        ),
    )


def stop(
    ctx: typer.Context, containers: NamesArg, time: TimeoutOpt = None, signal: SignalOpt = None
) -> None:
    """Stop one or more running containers (stop signal, then SIGKILL after the timeout)."""

    def act(s: Session, n: str) -> None:
        request = c_pb2.StopContainerRequest(container=n, signal=signal or "")
        if time is not None:
            request.timeout = time
        s.call(s.client.containers.Stop, request, not_modified_ok=True)

    each_container(ctx, containers, act)


def restart(ctx: typer.Context, containers: NamesArg, time: TimeoutOpt = None) -> None:
    """Restart one or more containers."""

    def act(s: Session, n: str) -> None:
        request = c_pb2.RestartContainerRequest(container=n)
        if time is not None:
            request.timeout = time
        s.call(s.client.containers.Restart, request)

    each_container(ctx, containers, act)


def pause(ctx: typer.Context, containers: NamesArg) -> None:
    """Pause every process of one or more containers."""
    each_container(
        ctx,
        containers,
        lambda s, n: s.call(s.client.containers.Pause, c_pb2.PauseContainerRequest(container=n)),
    )


def unpause(ctx: typer.Context, containers: NamesArg) -> None:
    """Unpause one or more containers."""
    each_container(
        ctx,
        containers,
        lambda s, n: s.call(
            s.client.containers.Unpause, c_pb2.UnpauseContainerRequest(container=n)
        ),
    )


def kill(ctx: typer.Context, containers: NamesArg, signal: SignalOpt = None) -> None:
    """Send a signal (SIGKILL by default) to one or more containers."""
    each_container(
        ctx,
        containers,
        lambda s, n: s.call(
            s.client.containers.Kill, c_pb2.KillContainerRequest(container=n, signal=signal or "")
        ),
    )


def rm(
    ctx: typer.Context,
    containers: NamesArg,
    force: Annotated[
        bool, typer.Option("-f", "--force", help="Kill a running container first.")
    ] = False,
) -> None:
    """Remove one or more containers."""
    each_container(
        ctx,
        containers,
        lambda s, n: s.call(
            s.client.containers.Remove, c_pb2.RemoveContainerRequest(container=n, force=force)
        ),
    )


def rename(
    ctx: typer.Context,
    container: Annotated[str, typer.Argument(help="The container.")],
    new_name: Annotated[str, typer.Argument(help="Its new name.")],
) -> None:
    """Rename a container."""
    with Session(ctx) as s:
        with contextlib.suppress(CallFailed):  # printed already; done() exits 1
            s.call(
                s.client.containers.Rename,
                c_pb2.RenameContainerRequest(container=container, new_name=new_name),
            )
        s.done()
