"""docker exec's endpoints: create, start (attached or detached), inspect, resize.

Thin adapters over the container service's execs (moby's exec.go): the
service decides whether a container may have one, with moby's refusals,
and runs it. An attached start answers as moby's does: over the hijacked
connection (``Upgrade: tcp``, :mod:`engine.dockerapi.hijack`), the exec's
output in docker's multiplexed framing until the process ends, then the
connection closes; by then its exit code is recorded, so the docker CLI's
exec inspect that follows reads it. A command that cannot be run is
written into the stream, as moby writes it, and its exit code (126 or 127)
is the exec's.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterable
from typing import Any

import anyio
import anyio.from_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from engine.dockerapi import shapes
from engine.dockerapi.calls import blocking, body, daemon, integer, ref
from engine.dockerapi.streams import frame, media
from engine.errors import ChartdError, InvalidParameter

__all__ = ["routes"]

_BUFFERED = 16  # frames read ahead of a slow client: the exec then waits for it
_POLL = 0.1  # seconds between looks at whether the server stops


async def create(request: Request) -> Response:
    given = shapes.decode_json(await body(request))
    options = shapes.exec_options(given)
    d = daemon(request)
    exec_id = await blocking(request, d.backend.exec_create, ref(request), **options)
    d.attach(exec_id, shapes.exec_streams(given))
    return JSONResponse({"Id": exec_id}, status_code=201)


def _in_stream(error: ChartdError) -> bool:
    """Whether moby reports ``error`` in the started exec's stream, not as the answer.

    Its ``getExecConfig`` (no such exec, a container not running or paused)
    answers before the hijack; a second start, or a command that cannot be
    run, is written into the stream.
    """
    return hasattr(error, "exit_code") or error.message.startswith("Error: Exec command")


async def start(request: Request) -> Response:
    given = shapes.decode_json(await body(request))
    exec_id = ref(request)
    detach = shapes.start_detach(given)
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
    return _Attached(request, run, d.attached(exec_id), failed)


class _Attached(Response):
    """The exec's output as it comes, over the hijacked connection (or a plain 200)."""

    def __init__(
        self,
        request: Request,
        run: Iterable[tuple[str, bytes]],
        streams: frozenset[str],
        failed: str,
    ) -> None:
        super().__init__()
        self.run, self.streams, self.failed = run, streams, failed
        self.limiter = request.app.state.waiters
        self.stopping: threading.Event = request.app.state.stopping
        upgrade = request.headers.get("upgrade", "").lower() == "tcp"
        self.status_code = 101 if upgrade else 200
        self.head = [(b"content-type", media(request).encode() if upgrade else _RAW)]
        if upgrade:
            self.head += [(b"connection", b"Upgrade"), (b"upgrade", b"tcp")]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.head}
        )
        if self.failed:
            body = frame("stdout", f"{self.failed}\r\n".encode())
            await send({"type": "http.response.body", "body": body, "more_body": True})
        frames, reader = anyio.create_memory_object_stream[bytes](_BUFFERED)
        async with anyio.create_task_group() as group:
            group.start_soon(self._until_gone, receive, group.cancel_scope)
            group.start_soon(self._until_stopping, group.cancel_scope)
            # The pump outlives a client that goes: the exec runs on to its end.
            group.start_soon(self._pump, frames)
            with reader:
                async for data in reader:
                    await send({"type": "http.response.body", "body": data, "more_body": True})
            group.cancel_scope.cancel()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _pump(self, frames: anyio.abc.ObjectSendStream[bytes]) -> None:
        await anyio.to_thread.run_sync(
            _copy, self.run, self.streams, frames, limiter=self.limiter, abandon_on_cancel=True
        )

    @staticmethod
    async def _until_gone(receive: Any, scope: anyio.CancelScope) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        scope.cancel()

    async def _until_stopping(self, scope: anyio.CancelScope) -> None:
        """The server stops: the stream ends (the exec runs on), as other streams do."""
        while not self.stopping.is_set():
            await asyncio.sleep(_POLL)
        scope.cancel()


_RAW = b"application/vnd.docker.raw-stream"


def _copy(
    run: Iterable[tuple[str, bytes]],
    streams: frozenset[str],
    frames: anyio.abc.ObjectSendStream[bytes],
) -> None:
    """On a worker thread: the exec's output framed into ``frames``, to the exec's end.

    Once nobody reads (the client went, the server stops) the rest is read
    and dropped: the exec ends as it would, and its exit code is recorded.
    """
    reading = True
    for stream, data in run:
        if stream in streams and reading:
            try:
                anyio.from_thread.run(frames.send, frame(stream, data))
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, RuntimeError):
                reading = False
    with contextlib.suppress(RuntimeError):
        anyio.from_thread.run(frames.aclose)


async def inspect(request: Request) -> Response:
    d = daemon(request)
    exec_id = ref(request)
    found = await blocking(request, d.backend.exec_inspect, exec_id)
    streams = d.attached(exec_id)
    found.update(OpenStdout="stdout" in streams, OpenStderr="stderr" in streams)
    return JSONResponse(found)


async def resize(request: Request) -> Response:
    """Accepted and done: an exec has no terminal to resize (moby's is a no-op then too)."""
    for name in ("h", "w"):
        size = integer(request, name)
        if size is None or size < 0:
            raise InvalidParameter(f"invalid {name}: a size of 0 or more is expected")
    await blocking(request, daemon(request).backend.exec_inspect, ref(request))
    return Response(status_code=200)


def routes() -> list[Route]:
    """The routes of this module's endpoints."""
    return [
        Route("/containers/{ref}/exec", create, methods=["POST"]),
        Route("/exec/{ref}/start", start, methods=["POST"]),
        Route("/exec/{ref}/json", inspect, methods=["GET"]),
        Route("/exec/{ref}/resize", resize, methods=["POST"]),
    ]
