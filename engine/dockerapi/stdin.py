"""An attach's stdin (``docker run -i``, ``docker attach``, ``docker exec -i``) into its process.

moby's attach with ``stdin=1`` copies what the client sends on the hijacked
connection to the container's stdin, if it was created with ``OpenStdin``
(else the bytes are dropped); when the client's stdin ends (its half-close)
the container's is closed if it was created with ``StdinOnce``. Here the
bytes come from :mod:`~engine.dockerapi.hijack`'s reader, which stops
reading the connection while it holds 64 KiB, and go to the service's
``write_stdin``, which writes only what the process's stdin has room for:
a process that never reads holds the client back, never the daemon's
memory. A write waits a short slice at a time on the waits' pool, so that a
feed whose attach ended (the container exited, the client went) is
cancelled at its next look.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable

import anyio
from starlette.requests import Request

import engine
from engine.dockerapi.calls import daemon, flag
from engine.dockerapi.hijack import StdinReader
from engine.errors import Conflict, NotFound

__all__ = ["claimed_stdin", "closes_stdin", "feed", "pour"]

Write = Callable[[bytes, float], int]
"""Write a prefix of the bytes to a process's stdin, waiting up to the seconds for room."""

_SLICE = 0.2  # seconds one write waits for room in the process's stdin
_POLL = 0.05  # seconds between looks for a process not started yet


def claimed_stdin(request: Request, container: engine.Entity) -> StdinReader | None:
    """The client's stdin, if the attach asks for it, is hijacked, and the container has one."""
    claim = request.scope.get("extensions", {}).get("chartd.stdin")
    if claim is None or not flag(request, "stdin"):
        return None
    if not container.data.get("open_stdin"):
        return None  # moby: no OpenStdin, what the client sends is dropped
    reader: StdinReader = claim()
    return reader


def closes_stdin(stdin_once: bool, tty: bool) -> bool:
    """Whether the end of the client's stdin closes the process's (moby's CloseStdin
    without a TTY); otherwise it ends the attach's output instead, as moby's does."""
    return stdin_once and not tty


async def feed(request: Request, container: engine.Entity, read: StdinReader) -> None:
    """Copy the client's stdin to the container's until it ends; then close it if StdinOnce.

    Runs beside the attach's output and is cancelled when that ends. Once the
    container's stdin is closed (or its process ended), the rest is dropped.
    """
    backend = daemon(request).backend
    # moby leaves a TTY's stdin open at the client's end, StdinOnce or not.
    once = closes_stdin(bool(container.data.get("stdin_once")), bool(container.data.get("tty")))
    close = functools.partial(backend.close_stdin, container.id) if once else None
    await pour(request, read, functools.partial(backend.write_stdin, container.id), close)


async def pour(
    request: Request, read: StdinReader, write: Write, close: Callable[[], None] | None
) -> None:
    """Copy the client's stdin through ``write`` until it ends; then ``close`` (if any).

    ``write(data, timeout)`` writes a prefix of ``data``, waiting up to
    ``timeout`` for room: how much went in; NotFound while there is no
    process yet, Conflict once the stdin is closed (the rest is dropped).
    ``close`` raises NotFound while there is no process to close it on.
    """
    open_ = True
    while (data := await read()) is not None:
        while open_ and data:
            written = await _write(request, write, data)
            if written is None:
                open_ = False
            else:
                data = data[written:]
    if open_ and close is not None:
        while not await _close(request, close):
            await asyncio.sleep(_POLL)


async def _write(request: Request, write: Write, data: bytes) -> int | None:
    """How much of ``data`` went in (0: not started yet, or no room); None: its stdin is closed."""
    try:
        written = await anyio.to_thread.run_sync(
            write, data, _SLICE, limiter=request.app.state.waiters
        )
    except NotFound:  # no process yet: the client attached before the start
        await asyncio.sleep(_POLL)
        return 0
    except Conflict:
        return None
    return int(written)


async def _close(request: Request, close: Callable[[], None]) -> bool:
    """Close the stdin; False while it has no process to close it on."""
    try:
        await anyio.to_thread.run_sync(close, limiter=request.app.state.waiters)
    except NotFound:
        return False
    return True
