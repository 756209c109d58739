"""A stream read from one of the service's blocking iterators: an exec's output, a log window.

The iterator blocks between its items (a process's pipe, a followed log),
so it is read on a worker of the waits' pool (:data:`~engine.dockerapi.calls.WAITERS`,
apart from the pool of short calls) and its chunks cross to the event loop
through a small buffer: a slow client makes the reader wait. When the client
goes, or the server stops, :attr:`Pumped.gone` is set (a service call that
takes ``time_left`` ends at its next look) and the rest is read and dropped:
an exec runs on to its end, and its exit code is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any

import anyio
import anyio.from_thread
from starlette.requests import Request
from starlette.responses import Response

from engine.errors import ChartdError

__all__ = ["Pumped"]

log = logging.getLogger("chartd.dockerapi")

_BUFFERED = 16  # chunks read ahead of a slow client: the reader then waits for it
_POLL = 0.1  # seconds between looks at whether the server stops


class Pumped(Response):
    """``status`` and ``headers`` at once, then ``first``, then the chunks as they come."""

    def __init__(
        self,
        request: Request,
        status: int,
        headers: Sequence[tuple[bytes, bytes]],
        first: bytes = b"",
    ) -> None:
        super().__init__(status_code=status)
        self.head, self.first = list(headers), first
        self.chunks: Iterable[bytes] = ()
        # Run beside the stream (an exec's stdin feed), cancelled when the stream ends;
        # with `ends`, its end ends the stream too.
        self.beside: Callable[[], Coroutine[Any, Any, None]] | None = None
        self.ends = False
        self.limiter = request.app.state.waiters
        self.stopping: threading.Event = request.app.state.stopping
        self.gone = threading.Event()

    def time_left(self) -> float | None:
        """For the service's call: none once the client went or the server stops."""
        return 0.0 if self.gone.is_set() or self.stopping.is_set() else None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.head}
        )
        if self.first:
            await send({"type": "http.response.body", "body": self.first, "more_body": True})
        chunks, reader = anyio.create_memory_object_stream[bytes](_BUFFERED)
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._until_gone, receive, group.cancel_scope)
                group.start_soon(self._until_stopping, group.cancel_scope)
                group.start_soon(self._pump, chunks)
                if self.beside is not None:
                    group.start_soon(self._beside, group.cancel_scope)
                with reader:
                    async for data in reader:
                        await send({"type": "http.response.body", "body": data, "more_body": True})
                group.cancel_scope.cancel()
        finally:
            self.gone.set()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _beside(self, scope: anyio.CancelScope) -> None:
        assert self.beside is not None
        await self.beside()
        if self.ends:
            scope.cancel()

    async def _pump(self, chunks: anyio.abc.ObjectSendStream[bytes]) -> None:
        # Abandoned when the client goes: the thread reads on, to the iterator's end.
        await anyio.to_thread.run_sync(
            _copy, self.chunks, chunks, limiter=self.limiter, abandon_on_cancel=True
        )

    @staticmethod
    async def _until_gone(receive: Any, scope: anyio.CancelScope) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        scope.cancel()

    async def _until_stopping(self, scope: anyio.CancelScope) -> None:
        while not self.stopping.is_set():
            await asyncio.sleep(_POLL)
        scope.cancel()


def _copy(source: Iterable[bytes], chunks: anyio.abc.ObjectSendStream[bytes]) -> None:
    """On a worker thread: ``source`` into ``chunks``; once nobody reads, to its end, dropped."""
    reading = True
    try:
        for data in source:
            if reading:
                try:
                    anyio.from_thread.run(chunks.send, data)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError, RuntimeError):
                    reading = False  # the client went, or the event loop is gone
    except ChartdError:
        pass  # the service ended it (its caller went, the server stops): the stream ends
    except Exception:  # the stream has begun: it ends, and the daemon's log says why
        log.exception("a stream of the Engine API failed")
    finally:
        with contextlib.suppress(RuntimeError):
            anyio.from_thread.run(chunks.aclose)
