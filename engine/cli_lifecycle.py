"""The lifecycle verbs of ``chartd`` on existing containers.

``start``, ``stop``, ``restart``, ``pause``, ``unpause``, ``kill``, ``rm`` and
``rename``. Those given several names act on them in parallel (``start``:
in turn) and print each name that succeeded in the order given, as docker's
do. ``rm -f`` of a container that does not exist prints the daemon's error
and succeeds, as docker's has since 20.10.
"""

from __future__ import annotations

import argparse

from engine.api.chartd.v1 import containers_pb2 as c_pb2
from engine.cli_output import echo_err
from engine.cli_session import NAMES, CallFailed, Session, each_container
from engine.cli_verbs import Verb, arg

__all__ = ["VERBS"]

_TIMEOUT = arg("-t", "--time", "--timeout", type=int, help="Seconds before SIGKILL.")
_SIGNAL = arg("-s", "--signal", help="Signal to send.")


def _start(args: argparse.Namespace) -> None:
    each_container(
        args,
        lambda s, n: s.call(
            s.client.containers.Start,
            c_pb2.StartContainerRequest(container=n),
            not_modified_ok=True,
        ),
        parallel=False,  # docker starts them one after the other
        failed_to="start",
    )


def _stop(args: argparse.Namespace) -> None:
    def act(s: Session, n: str) -> None:
        request = c_pb2.StopContainerRequest(container=n, signal=args.signal or "")
        if args.time is not None:
            request.timeout = args.time
        s.call(s.client.containers.Stop, request, not_modified_ok=True)

    each_container(args, act)


def _restart(args: argparse.Namespace) -> None:
    def act(s: Session, n: str) -> None:
        request = c_pb2.RestartContainerRequest(container=n, signal=args.signal or "")
        if args.time is not None:
            request.timeout = args.time
        s.call(s.client.containers.Restart, request)

    each_container(args, act)


def _pause(args: argparse.Namespace) -> None:
    each_container(
        args,
        lambda s, n: s.call(s.client.containers.Pause, c_pb2.PauseContainerRequest(container=n)),
    )


def _unpause(args: argparse.Namespace) -> None:
    each_container(
        args,
        lambda s, n: s.call(
            s.client.containers.Unpause, c_pb2.UnpauseContainerRequest(container=n)
        ),
    )


def _kill(args: argparse.Namespace) -> None:
    each_container(
        args,
        lambda s, n: s.call(
            s.client.containers.Kill,
            c_pb2.KillContainerRequest(container=n, signal=args.signal or ""),
        ),
    )


def _rm(args: argparse.Namespace) -> None:
    each_container(
        args,
        lambda s, n: s.call(
            s.client.containers.Remove,
            c_pb2.RemoveContainerRequest(container=n, force=args.force),
            missing_ok=args.force,
        ),
    )


def _rename(args: argparse.Namespace) -> None:
    with Session(args) as s:
        try:
            s.call(
                s.client.containers.Rename,
                c_pb2.RenameContainerRequest(container=args.container, new_name=args.new_name),
            )
        except CallFailed:  # the daemon's error is printed; then docker's own line
            echo_err(f"Error: failed to rename container named {args.container}")
        s.done()


VERBS = (
    Verb("start", "Start one or more containers.", _start, (NAMES,)),
    Verb(
        "stop",
        "Stop one or more running containers (stop signal, then SIGKILL after the timeout).",
        _stop,
        (_TIMEOUT, _SIGNAL, NAMES),
    ),
    Verb(
        "restart",
        "Restart one or more containers (a running one is stopped first, as by stop).",
        _restart,
        (_TIMEOUT, _SIGNAL, NAMES),
    ),
    Verb("pause", "Pause every process of one or more containers.", _pause, (NAMES,)),
    Verb("unpause", "Unpause one or more containers.", _unpause, (NAMES,)),
    Verb(
        "kill",
        "Send a signal (SIGKILL by default) to one or more containers.",
        _kill,
        (_SIGNAL, NAMES),
    ),
    Verb(
        "rm",
        "Remove one or more containers.",
        _rm,
        (
            arg(
                "-f",
                "--force",
                action="store_true",
                help="Kill a running container first; a missing one is no error.",
            ),
            NAMES,
        ),
    ),
    Verb(
        "rename",
        "Rename a container.",
        _rename,
        (arg("container", help="The container."), arg("new_name", help="Its new name.")),
    ),
)
"""The lifecycle verbs, in the order ``chartd --help`` lists them."""
