"""The container endpoints that stream: wait, logs, attach, events.

None holds a thread while it waits: each is an async generator that sleeps
on the event loop between looks, and takes a worker thread of the bounded
pool only for a short read (the engine's events, a container's state).
The exception is wait, which blocks in the service until the condition
holds, on a bounded pool of its own; it ends when its client goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import struct
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, BinaryIO

import anyio
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

import engine
from engine.api._event_times import EventClock, Window, earlier_events
from engine.api.containers_service import CONDITIONS, LogLine, OutputTap
from engine.dockerapi import shapes, stdin
from engine.dockerapi.backend import Daemon
from engine.dockerapi.calls import blocking, daemon, filters, flag, go_int, negotiate, ref, text
from engine.dockerapi.images import familiar_name
from engine.dockerapi.pump import Pumped
from engine.dockerapi.reads import has_label, log_entries
from engine.dockerapi.versions import parse_version
from engine.errors import ChartdError, InvalidParameter, NotFound

__all__ = ["frame", "framing", "media", "routes", "unframed"]

_POLL = 0.1  # seconds between looks at a followed log or the event outbox
_TAP_LOOK = 0.5  # seconds between looks for an exit while an attach's tap is idle
_BATCH = 500  # events read in one look
_STREAMS = {"stdout": 1, "stderr": 2}
_TAIL = re.compile(r"[+-]?[0-9]{1,18}", re.ASCII)  # Go's Atoi, within reason
_BATCH_BYTES = 64 * 1024  # a window not followed is sent in pieces of about this size
# moby's event filters that match an actor by ID or name prefix, whatever the event's type
_ACTOR_FILTERS = (
    "container",
    "daemon",
    "plugin",
    "volume",
    "network",
    "service",
    "node",
    "secret",
    "config",
)
_EVENT_TYPES = ("application/jsonl", "application/x-ndjson", "application/json-seq")
_ENGINE_EVENTS = ("transition", "transition.failed")  # the engine's own, not docker's
_DETAILED = ("health_status", "exec_create", "exec_start")


def frame(stream: str, data: bytes) -> bytes:
    """docker's stdcopy frame: the stream's number, three zeros, the length, the data."""
    return struct.pack(">BxxxI", _STREAMS[stream], len(data)) + data


def media(request: Request, tty: bool = False) -> str:
    """The media type of a stream: multiplexed from API 1.42 on, raw before, and raw for
    a TTY container's output (one stream, unframed), as moby's attach and logs say."""
    version = request.scope.get("state", {}).get("api_version", "")
    if parse_version(version) >= (1, 42) and not tty:
        return "application/vnd.docker.multiplexed-stream"
    return "application/vnd.docker.raw-stream"


Framing = Callable[[str, bytes], bytes]
"""How a chunk of a stream is sent: :func:`frame`, or as it is (a TTY's)."""


def unframed(stream: str, data: bytes) -> bytes:
    """A chunk as it is: a TTY's stream (one stream, no framing)."""
    return data


def framing(container: engine.Entity) -> Framing:
    """docker's framing of the container's output: none for a TTY's, stdcopy's otherwise."""
    return unframed if container.data.get("tty") else frame


def _stamp(time_text: str) -> bytes:
    """A log entry's time as moby prints it with timestamps: nine digits of nanoseconds."""
    head, _, rest = time_text.rstrip("Z").partition(".")
    return f"{head}.{rest.ljust(9, '0')[:9]}Z ".encode()


# -- wait ---------------------------------------------------------------------------------


class _Waiting(Response):
    """200 at once (the caller may start the container then), the outcome when it comes."""

    def __init__(self, request: Request, args: tuple[str, str, int]):
        super().__init__(media_type="application/json")
        self.daemon, self.args = daemon(request), args
        self.limiter, self.stopping = request.app.state.waiters, request.app.state.stopping

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        # Not the Response's headers: they say the body is empty.
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        gone = threading.Event()  # the client went, or the server cancelled the answer
        container, condition, since = self.args

        def wait() -> tuple[int, str]:
            left = lambda: 0.0 if gone.is_set() or self.stopping.is_set() else None  # noqa: E731
            return self.daemon.backend.wait(container, condition, time_left=left, since=since)

        try:
            async with anyio.create_task_group() as group:
                group.start_soon(_note_disconnect, receive, gone)
                try:
                    code, error = await anyio.to_thread.run_sync(
                        wait, limiter=self.limiter, abandon_on_cancel=True
                    )
                    outcome: dict[str, Any] = {"StatusCode": code}
                    if error:
                        outcome["Error"] = {"Message": error}
                except ChartdError as exc:
                    why = "chartd is shutting down" if self.stopping.is_set() else exc.message
                    outcome = {"StatusCode": -1, "Error": {"Message": why}}
                group.cancel_scope.cancel()
        except BaseException:
            gone.set()  # cancelled (a server that stops): the thread ends within its slice
            raise
        if not gone.is_set():
            body = (json.dumps(outcome) + "\n").encode()
            await send({"type": "http.response.body", "body": body, "more_body": False})


async def _note_disconnect(receive: Any, gone: threading.Event) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    gone.set()


async def wait(request: Request) -> Response:
    condition = text(request, "condition", 32) or "not-running"
    if condition not in CONDITIONS:
        raise InvalidParameter(f'invalid condition: "{condition}"')
    d = daemon(request)
    # Read before the answer starts: every exit from here on counts.
    since = await blocking(request, d.engine.sequence)
    found = await blocking(request, d.backend.get, ref(request))
    return _Waiting(request, (found.id, condition, since))


# -- logs and attach ----------------------------------------------------------------------


def _chosen(request: Request) -> set[str]:
    chosen = {s for s in _STREAMS if flag(request, s)}
    if not chosen:
        raise InvalidParameter("Bad parameters: you must choose at least one stream")
    return chosen


def _frames(log: BinaryIO, chosen: set[str], timestamps: bool, framed: Framing) -> bytes:
    entries, _ = log_entries(log)
    out = []
    for entry in entries:
        if entry["stream"] in chosen:
            data = entry["log"].encode("utf-8", "surrogateescape")
            if timestamps:
                data = _stamp(str(entry.get("time", ""))) + data
            out.append(framed(entry["stream"], data))
    return b"".join(out)


def _stopping(request: Request) -> bool:
    """Whether the server is stopping: a stream ends (as dockerd's do at its shutdown)."""
    stopping: threading.Event = request.app.state.stopping
    return stopping.is_set()


async def _running(request: Request, container: str) -> bool:
    def look() -> bool:
        try:
            return daemon(request).engine.get(container).in_state("running")
        except NotFound:
            return False

    return await blocking(request, look)


async def logs(request: Request) -> Response:
    chosen, follow = _chosen(request), flag(request, "follow")
    timestamps = flag(request, "timestamps")
    d = daemon(request)
    found = await blocking(request, d.backend.get, ref(request))
    window = _log_window(request)  # as moby's: read once the container is found
    if window is not None:
        return await _windowed(request, (chosen, follow, timestamps), window)
    path = d.backend.logs(found.id)
    framed = framing(found)

    async def stream() -> AsyncIterator[bytes]:
        try:
            log = open(path, "rb")  # noqa: SIM115 - a local file: no wait
        except FileNotFoundError:
            return  # never started: no output yet
        with log:
            while True:
                data = _frames(log, chosen, timestamps, framed)
                if data:
                    yield data
                    continue
                if not follow or _stopping(request) or not await _running(request, found.id):
                    yield _frames(log, chosen, timestamps, framed)  # written before the exit
                    return
                await asyncio.sleep(_POLL)

    return StreamingResponse(stream(), media_type=media(request, bool(found.data.get("tty"))))


def _log_window(request: Request) -> tuple[int, int, int] | None:
    """``since``, ``until`` (ns; 0: no bound) and ``tail`` (-1: all); None if none is set.

    As moby's: a ``tail`` that is no number, or is negative, is all of it.
    """
    given = request.query_params.get("tail", "")
    tail = min(int(given), 2**31) if _TAIL.fullmatch(given) else -1
    since, until = (max(0, _log_time_ns(request, name)) for name in ("since", "until"))
    return (since, until, tail) if tail >= 0 or since or until else None


def _log_time_ns(request: Request, name: str) -> int:
    """A log's ``since`` or ``until`` as moby's ``ParseTimestamps`` reads it: seconds, and
    after a dot nanoseconds scaled by their digits (0, or none given: no bound)."""
    value = request.query_params.get(name, "")
    if not value or (name == "until" and value == "0"):
        return 0
    seconds, dot, fraction = value.partition(".")
    whole = go_int(seconds, "strconv.ParseInt")
    if not dot:
        return whole * 10**9
    nanos = go_int(fraction, "strconv.ParseInt")
    return whole * 10**9 + int(nanos * 10.0 ** (9 - len(fraction)))


async def _windowed(
    request: Request, how: tuple[set[str], bool, bool], window: tuple[int, int, int]
) -> Response:
    """The service's log entries in a window (the last ``tail``, from ``since`` to ``until``).

    Read on a worker of the waits' pool (:mod:`engine.dockerapi.pump`): a
    followed window holds one while it follows.
    """
    chosen, follow, timestamps = how
    since, until, tail = window
    found = await blocking(request, daemon(request).backend.get, ref(request))
    tty = bool(found.data.get("tty"))
    answer = Pumped(request, 200, [(b"content-type", media(request, tty).encode())])
    entries = await blocking(
        request,
        daemon(request).backend.read_logs,
        ref(request),
        follow=follow,
        since_ns=since,
        until_ns=until,
        tail=tail,
        time_left=answer.time_left,
    )
    framed = framing(found)
    answer.chunks = _entry_frames(entries, chosen, (timestamps, framed), batched=not follow)
    return answer


def _entry_frames(
    entries: Iterable[LogLine],
    chosen: set[str],
    how: tuple[bool, Framing],
    *,
    batched: bool,
) -> Iterator[bytes]:
    """The entries of the chosen streams, framed; joined up to 64 KiB unless followed."""
    timestamps, framed = how
    pending: list[bytes] = []
    size = 0
    for entry in entries:
        if entry.stream not in chosen:
            continue
        data = _stamp_ns(entry.time_ns) + entry.data if timestamps else entry.data
        pending.append(framed(entry.stream, data))
        size += len(pending[-1])
        if not batched or size >= _BATCH_BYTES:
            yield b"".join(pending)
            pending, size = [], 0
    if pending:
        yield b"".join(pending)


def _stamp_ns(time_ns: int) -> bytes:
    """A time in nanoseconds as moby prints it with timestamps (RFC 3339, nine digits)."""
    seconds, nanos = divmod(time_ns, 10**9)
    head = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{head}.{nanos:09d}Z ".encode()


async def attach(request: Request) -> Response:
    """moby's attach. ``stream=1`` without ``logs`` (``docker run``, ``docker attach``)
    streams the runtime's live tap: the bytes as written, and a slow client makes the
    container wait, as moby's broadcaster does. With ``logs=1`` the json-file log is
    replayed and followed (lossy for binary output, as its file is)."""
    # stdin=1 feeds the container's stdin (engine.dockerapi.stdin); for a container
    # created without OpenStdin what comes is dropped, as moby does.
    chosen = {s for s in _STREAMS if flag(request, s)}
    d = daemon(request)
    since = await blocking(request, d.engine.sequence)
    found = await blocking(request, d.backend.get, ref(request))
    live = flag(request, "stream")
    tap: OutputTap | None = None
    if live and not flag(request, "logs"):
        # Subscribed before the answer: what the process writes after the attach is seen.
        tap = await blocking(request, d.backend.tap_output, found.id)
        output = _tapped(request, tap, chosen, (found, since))
    else:
        log = await blocking(request, d.backend.open_log, found.id)
        if flag(request, "logs"):
            log.seek(0)
        output = _output(request, log, found, (chosen, live, since))
    reader = stdin.claimed_stdin(request, found)

    async def stream() -> AsyncIterator[bytes]:
        feeding = asyncio.ensure_future(stdin.feed(request, found, reader)) if reader else None
        tty, once = bool(found.data.get("tty")), bool(found.data.get("stdin_once"))
        ending = None if stdin.closes_stdin(once, tty) else feeding
        try:
            async for data in _until(output, ending):
                yield data
        finally:
            if feeding is not None:
                feeding.cancel()

    upgrade = request.headers.get("upgrade", "").lower() == "tcp"
    headers = {"Connection": "Upgrade", "Upgrade": "tcp"} if upgrade else {}
    kind = media(request, bool(found.data.get("tty")))
    return _Attached(
        stream(), status_code=101 if upgrade else 200, headers=headers, media_type=kind
    ).closing(tap)


async def _until(
    output: AsyncIterator[bytes], fed: asyncio.Future[None] | None
) -> AsyncIterator[bytes]:
    """``output`` to its end, or until ``fed`` is done: moby ends an attach's output when
    the client's stdin ends, unless that closes the process's (StdinOnce, no TTY)."""
    if fed is None:
        async for data in output:
            yield data
        return
    while True:
        following = asyncio.ensure_future(anext(output))
        either: set[asyncio.Future[Any]] = {following, fed}
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if not following.done():
            following.cancel()  # the output's generator ends (its tap closed) there
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await following
            return
        try:
            data = following.result()
        except StopAsyncIteration:
            return
        yield data


class _Attached(StreamingResponse):
    """An attach's answer; its tap closed when it ends, even if its stream never started
    (the client went first), so that no container waits for a subscriber gone."""

    tap: OutputTap | None = None

    def closing(self, tap: OutputTap | None) -> _Attached:
        self.tap = tap
        return self

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            if self.tap is not None:
                self.tap.close()


async def _tapped(
    request: Request, tap: OutputTap, chosen: set[str], watch: tuple[engine.Entity, int]
) -> AsyncIterator[bytes]:
    """An attach's output from the live tap, framed, until its end mark."""
    container, since = watch
    framed = framing(container)
    loop = asyncio.get_running_loop()
    came = asyncio.Event()

    def wake() -> None:  # on the runtime's copier thread
        with contextlib.suppress(RuntimeError):  # the loop is closed: the server stopped
            loop.call_soon_threadsafe(came.set)

    tap.set_waker(wake)
    try:
        while True:
            came.clear()
            chunks, ended = tap.take()
            data = b"".join(framed(stream, part) for stream, part in chunks if stream in chosen)
            if data:
                yield data
            if ended or _stopping(request):
                return
            if not chunks:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(came.wait(), _TAP_LOOK)
                # No output read for it yet: its process may have ended (or the container
                # gone) before the tap was made, when no end mark will come.
                if (
                    not came.is_set()
                    and not tap.joined
                    and await _exited(request, container.id, since)
                ):
                    return
    finally:
        tap.close()


async def _output(
    request: Request, log: BinaryIO, container: engine.Entity, how: tuple[set[str], bool, int]
) -> AsyncIterator[bytes]:
    """An attach's output: the log from where it is, until the container exits (if live)."""
    chosen, live, since = how
    framed = framing(container)
    with log:
        ended = not live
        while True:
            data = _frames(log, chosen, False, framed)
            if data:
                yield data
                continue
            if ended or _stopping(request):
                return
            ended = await _exited(request, container.id, since)
            if not ended:
                await asyncio.sleep(_POLL)


async def _exited(request: Request, container: str, since: int) -> bool:
    """Whether the container's process has ended (or it went) since the attach began."""

    def look() -> bool:
        events = daemon(request).engine.watch(since, filter={"entity": container}, timeout=0)
        return any(ev.type in ("die", "destroy") for ev in itertools.islice(events, _BATCH))

    return await blocking(request, look)


# -- events -------------------------------------------------------------------------------


def _time_ns(request: Request, name: str) -> int | None:
    """``since``/``until``: seconds since the epoch, with up to nine decimals."""
    value = text(request, name, 64)
    if not value:
        return None
    seconds, _, fraction = value.partition(".")
    if not seconds.lstrip("-").isdigit() or (fraction and not fraction.isdigit()):
        raise InvalidParameter(f"invalid {name}: {value!r} is not a timestamp")
    return int(seconds) * 10**9 + int((fraction or "0").ljust(9, "0")[:9])


async def events(request: Request) -> Response:
    # As moby's: any key is taken (one it does not know filters nothing), and the
    # filters of other types (type=image, network=x) leave only what they match here.
    given = filters(request, None)
    since, until = _time_ns(request, "since"), _time_ns(request, "until")
    if since is not None and until is not None and until < since:
        raise InvalidParameter(
            f"`since` time ({text(request, 'since', 64)}) cannot be after "
            f"`until` time ({text(request, 'until', 64)})"
        )
    window = Window(since, until)
    d = daemon(request)
    # Where the stream starts: the oldest event if it looks back (moby's replay its buffer
    # for an until alone too: the past up to it), else what comes next.
    looks_back = window.since_ns is not None or window.until_ns is not None
    last = 0 if looks_back else await blocking(request, d.engine.sequence)
    # moby's: JSON lines, or RFC 7464's JSON text sequence (each record after an RS)
    media_type = negotiate(request, _EVENT_TYPES, "application/json")
    record = b"\x1e" if media_type == "application/json-seq" else b""
    stream = _events(request, d, given, window, (last, record))
    return StreamingResponse(stream, media_type=media_type)


async def _events(
    request: Request,
    d: Daemon,
    given: dict[str, list[str]],
    window: Window,
    start: tuple[int, bytes],
) -> AsyncIterator[bytes]:
    """The events in ``window`` after sequence number ``last``, each after ``record``
    (``start``)."""
    last, record = start
    clock = EventClock(earlier_events(d.engine))
    images: dict[str, engine.Entity | None] = {}
    while True:
        batch = await blocking(request, _batch, d.engine, last)
        for ev in batch:
            last = ev.seq
            at = clock.time_ns(ev)
            if window.after(at):
                return
            if ev.chart != "container" or ev.type in _ENGINE_EVENTS or window.before(at):
                continue
            if ev.entity_id not in images:
                images[ev.entity_id] = await blocking(request, _entity, d, ev.entity_id)
            found = images[ev.entity_id]
            data = found.data if found is not None else {}
            document = shapes.event_document(
                ev, at, str(data.get("image") or ""), data.get("labels") or {}
            )
            if _wanted(document, given):
                yield record + (json.dumps(document) + "\n").encode()
        if not batch:
            if window.after(time.time_ns()) or _stopping(request):
                return
            await asyncio.sleep(_POLL)


def _batch(eng: engine.Engine, last: int) -> list[engine.Event]:
    return list(itertools.islice(eng.watch(last, timeout=0), _BATCH))


def _entity(d: Daemon, entity_id: str) -> engine.Entity | None:
    try:
        return d.engine.get(entity_id)
    except NotFound:
        return None


def _fuzzy(wanted: list[str] | None, *sources: str) -> bool:
    """moby's FuzzyMatch: no values, or one that is a source or a prefix of one."""
    return not wanted or any(s.startswith(w) for w in wanted for s in sources)


def _wanted(document: Mapping[str, Any], given: dict[str, list[str]]) -> bool:
    """Whether a container event (as ``GET /events`` sends it) passes moby's event filters."""
    actor, attributes = document["Actor"]["ID"], document["Actor"]["Attributes"]
    name, image = attributes["name"], attributes["image"]
    images = given.get("image")
    return (
        ("event" not in given or _action_matches(document["Action"], given["event"]))
        and ("type" not in given or "container" in given["type"])
        and ("scope" not in given or "local" in given["scope"])
        and all(_fuzzy(given.get(key), actor, name) for key in _ACTOR_FILTERS)
        and (not images or bool({actor, image, familiar_name(image)} & set(images)))
        and all(has_label(attributes, spec) for spec in given.get("label", ()))
    )


def _action_matches(action: str, wanted: list[str]) -> bool:
    """moby's event filter: exact, but a prefix for the actions that carry a detail
    (``health_status: healthy``, ``exec_start: sh -c ...``) once one of them is asked for."""
    if any(w in _DETAILED for w in wanted):
        return any(action == w or action.startswith(w) for w in wanted)
    return action in wanted


def routes() -> list[Route]:
    """The routes of this module's endpoints."""
    c = "/containers/{ref}"
    return [
        Route(f"{c}/wait", wait, methods=["POST"]),
        Route(f"{c}/logs", logs, methods=["GET"]),
        Route(f"{c}/attach", attach, methods=["POST"]),
        Route("/events", events, methods=["GET"]),
    ]
