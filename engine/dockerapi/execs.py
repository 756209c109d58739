"""docker exec's endpoints: create, start (attached or detached), inspect, resize.

Thin adapters over the container service's execs (moby's exec.go): the
service decides whether a container may have one, with moby's refusals,
and runs it. An attached start answers as moby's does: over the hijacked
connection (``Upgrade: tcp``, :mod:`engine.dockerapi.hijack`), the exec's
output in docker's multiplexed framing until the process ends, then the
connection closes; by then its exit code is recorded, so the docker CLI's
exec inspect that follows reads it. A command that cannot be run is
written into the stream, as moby writes it, and its exit code (126 or 127)
is the exec's. With ``AttachStdin`` (``docker exec -i``) what the client
sends past the start's body is the process's stdin (:mod:`~engine.dockerapi.stdin`);
with ``Tty`` (``docker exec -t``) the process has a terminal of its own,
its stream unframed when the start says ``Tty``, its window set by resize.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from engine.dockerapi import shapes, stdin
from engine.dockerapi.calls import blocking, daemon, go_atoi, json_body, ref
from engine.dockerapi.pump import Pumped
from engine.dockerapi.streams import frame, media, unframed
from engine.errors import ChartdError

__all__ = ["routes"]


async def create(request: Request) -> Response:
    given = shapes.go_fields(
        shapes.decode_json(await json_body(request)), "ExecOptions", shapes.EXEC_FIELDS
    )
    options = shapes.exec_options(given)
    d = daemon(request)
    exec_id = await blocking(request, d.backend.exec_create, ref(request), **options)
    d.keep_exec_streams(exec_id, shapes.exec_streams(given))
    return JSONResponse({"Id": exec_id}, status_code=201)


def _in_stream(error: ChartdError) -> bool:
    """Whether moby reports ``error`` in the started exec's stream, not as the answer.

    Its ``getExecConfig`` (no such exec, a container not running or paused)
    answers before the hijack; a second start, or a command that cannot be
    run, is written into the stream.
    """
    return hasattr(error, "exit_code") or error.message.startswith("Error: Exec command")


async def start(request: Request) -> Response:
    given = shapes.go_fields(
        shapes.decode_json(await json_body(request)), "ExecStartOptions", shapes.START_FIELDS
    )
    exec_id = ref(request)
    detach, tty = shapes.start_options(given)
    d = daemon(request)
    try:
        run = await blocking(request, d.backend.exec_start, exec_id, detach=detach)
    except ChartdError as exc:
        if detach or not _in_stream(exc):
            raise
        run, failed = (), exc.message
    else:
        failed = ""
    if detach:
        return Response(status_code=200)
    upgrade = request.headers.get("upgrade", "").lower() == "tcp"
    # moby's is raw without an upgrade, whatever the API version says
    head = [(b"content-type", media(request, tty or not upgrade).encode())]
    if upgrade:
        head += [(b"connection", b"Upgrade"), (b"upgrade", b"tcp")]
    # moby frames the stream unless the start (not the exec) says Tty.
    framed = unframed if tty else frame
    first = framed("stdout", f"{failed}\r\n".encode()) if failed else b""
    answer = Pumped(request, 101 if upgrade else 200, head, first)
    streams = d.exec_streams(exec_id)
    answer.chunks = (framed(stream, data) for stream, data in run if stream in streams)
    if getattr(run, "reads_stdin", False):
        answer.beside = _stdin_feed(request, run)
        # moby's exec closes the stdin at the client's end (CloseStdin), but a TTY's:
        # the end of the stream then.
        answer.ends = not stdin.closes_stdin(True, run.tty)
    return answer


def _stdin_feed(request: Request, run: Any) -> Callable[[], Coroutine[Any, Any, None]] | None:
    """The feed of an exec's stdin (``docker exec -i``) from the hijacked connection.

    As moby's (its exec attaches with CloseStdin), the client's half-close
    closes the process's stdin, but a terminal's (the stream ends instead);
    without a hijack there is no stdin to read, and the process reads EOF at
    once.
    """
    claim = request.scope.get("extensions", {}).get("chartd.stdin")
    if claim is None:
        run.close_stdin()
        return None
    read = claim()
    close = run.close_stdin if stdin.closes_stdin(True, run.tty) else None
    return functools.partial(stdin.pour, request, read, run.write_stdin, close)


async def inspect(request: Request) -> Response:
    d = daemon(request)
    exec_id = ref(request)
    found = await blocking(request, d.backend.exec_inspect, exec_id)
    streams = d.exec_streams(exec_id)
    found.update(OpenStdout="stdout" in streams, OpenStderr="stderr" in streams)
    return JSONResponse(found)


async def resize(request: Request) -> Response:
    """The window of a running exec's terminal (``docker exec -t``); nothing to do for
    one without (moby's is a no-op then too). The sizes read as moby's router reads them."""
    height, width = go_atoi(request, "h"), go_atoi(request, "w")
    await blocking(request, daemon(request).backend.exec_resize, ref(request), height, width)
    return Response(status_code=200)


def routes() -> list[Route]:
    """The routes of this module's endpoints."""
    return [
        Route("/containers/{ref}/exec", create, methods=["POST"]),
        Route("/exec/{ref}/start", start, methods=["POST"]),
        Route("/exec/{ref}/json", inspect, methods=["GET"]),
        Route("/exec/{ref}/resize", resize, methods=["POST"]),
    ]
