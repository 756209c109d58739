"""The inspector as a Starlette application: pages, the event stream, and (if allowed) fire.

Routes::

    GET  /                       the charts, with live entities by state
    GET  /charts/{chart}         a chart: diagram with live counts, entities (?state=&name=&after=)
    GET  /entities/{id}          an entity: its configuration lit, data, timeline
    GET  /events                 Server-Sent Events (?chart= or ?entity=; none: all counts)
    POST /entities/{id}/fire     {"event": ..., "params": {...}}, only with allow_fire
    GET  /static/...             the stylesheet and the script

Read-only unless built with ``allow_fire``: then a fire must carry the
page's token in the ``X-Chartd-CSRF`` header (a header no other site's form
or image can send) and, if the browser says where it comes from, come from
this origin. Every response forbids framing and any script or style not
from here (Content-Security-Policy). Requests must name one of ``hosts``
(the address served, and the loopback names): a page of another site that
rebinds its DNS name to 127.0.0.1 gets nothing.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.api._fields import decode_json
from engine.errors import ChartdError, InvalidParameter
from engine.web.diagram import Diagrams
from engine.web.feed import Feed, Subscription, Topic, frame
from engine.web.markup import html
from engine.web.pages import Listing, Page, chart_href, chart_page, charts_page, entity_page
from engine.web.source import Source
from engine.web.timeline import entity_view

__all__ = ["LOOPBACK_HOSTS", "Inspector"]

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
"""Host names a loopback inspector answers to."""

_PAGE_SIZE = 50
_KEEPALIVE = 15.0  # seconds between comments on a quiet stream, so proxies keep it open
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
_MAX_AFTER = 2**63 - 1  # the largest sequence number a store keeps (a signed 64-bit integer)
_MAX_FILTER = 1024  # a state's path or a name prefix: past any real one
_MAX_FIRE_BODY = 1024 * 1024  # a fire's JSON: an event name and its parameters
# How a fire's error category is answered over HTTP.
_STATUS = {"invalid_parameter": 400, "not_found": 404, "conflict": 409, "forbidden": 403}


class _KnownHosts:
    """Answers 400 to a request whose Host is not one of ``hosts`` (``*``: any)."""

    def __init__(self, app: ASGIApp, hosts: Sequence[str]) -> None:
        self.app = app
        self.hosts = {h.strip("[]").lower() for h in hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and "*" not in self.hosts:
            named = Headers(scope=scope).get("host", "")
            try:
                host = urlsplit(f"//{named}").hostname or ""
            except ValueError:
                host = ""
            if host not in self.hosts:
                await PlainTextResponse("Invalid host header", 400)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _SecurityHeaders:
    """Adds :data:`_HEADERS` to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.extend((k.lower().encode(), v.encode()) for k, v in _HEADERS.items())
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, sending)


class Inspector:
    """The inspector over ``source``: :attr:`app` to serve, :meth:`start` and :meth:`close`."""

    def __init__(self, source: Source, *, hosts: Sequence[str] = LOOPBACK_HOSTS) -> None:
        self.source = source
        self.diagrams = Diagrams()
        self.feed = Feed(source)
        # Fresh per process: a page of an earlier run cannot fire on this one.
        self.csrf = secrets.token_urlsafe(32) if source.fire is not None else None
        static = Path(__file__).with_name("static")
        self.app = Starlette(
            routes=[
                Route("/", self._charts),
                Route("/charts/{chart}", self._chart),
                Route("/entities/{key}", self._entity),
                Route("/entities/{key}/fire", self._fire, methods=["POST"]),
                Route("/events", self._events),
                Mount("/static", StaticFiles(directory=static), name="static"),
            ],
            middleware=[
                Middleware(_SecurityHeaders),
                Middleware(_KnownHosts, hosts=list(hosts)),
            ],
        )

    def start(self) -> None:
        """Count the entities and start following the engine's events."""
        self.feed.start()

    def close(self) -> None:
        """End every stream and stop following; the source's store is closed if it owns it."""
        self.feed.close()
        self.source.close()

    def view(self, entity_id: str) -> dict[str, Any] | None:
        """An entity's live view (None if it is gone)."""
        entity = self.source.entity(entity_id)
        if entity is None:
            return None
        return entity_view(entity, self.source.history(entity.id))

    def _page(self, stream: str, crumbs: Sequence[tuple[str, str]] = ()) -> Page:
        return Page(stream=stream, csrf=self.csrf, crumbs=crumbs)

    # -- pages ---------------------------------------------------------------------------

    async def _charts(self, request: Request) -> Response:
        counts = self.feed.charts()
        defined = self.source.charts()
        known = {name: defined.get(name) for name in {*defined, *counts}}
        return HTMLResponse(charts_page(known, counts, self._page("/events")))

    async def _chart(self, request: Request) -> Response:
        name = request.path_params["chart"]
        if "\x00" in name:  # no chart has one, and PostgreSQL cannot even look for it
            return _problem(404, f"no chart {name[:80]!r}")
        chart = self.source.charts().get(name)
        counts = self.feed.counts(name)
        q = request.query_params
        state, prefix = q.get("state", ""), q.get("name", "")
        for what, value in (("state", state), ("name", prefix)):
            # PostgreSQL cannot compare a NUL; SQLite refuses a LIKE pattern past 50 000 bytes
            if "\x00" in value or len(value) > _MAX_FILTER:
                why = f"at most {_MAX_FILTER} characters, no NUL"
                return _problem(400, f"invalid {what} {value[:80]!r}: {why}")
        try:
            after = int(q.get("after", "0"))
            if not 0 <= after <= _MAX_AFTER:
                raise ValueError
        except ValueError:
            given = q.get("after", "")[:40]
            return _problem(400, f"invalid after {given!r}: a sequence number >= 0")
        rows, next_after = await run_in_threadpool(
            self.source.page, name, state=state or None, name=prefix or None,
            after=after, limit=_PAGE_SIZE,
        )  # fmt: skip
        if chart is None and not counts and not rows and not after:
            return _problem(404, f"no chart {name!r}")
        diagram = self.diagrams.of(chart) if chart is not None else html("")
        listing = Listing(rows, state, prefix, after, next_after)
        stream = "/events?" + urlencode({"chart": name})
        return HTMLResponse(chart_page(name, chart, diagram, counts, listing, self._page(stream)))

    async def _entity(self, request: Request) -> Response:
        key = request.path_params["key"]
        entity = await run_in_threadpool(self.source.entity, key)
        if entity is None:
            return _problem(404, f"no entity {key[:80]!r}")
        history = await run_in_threadpool(self.source.history, entity.id)
        chart = self.source.charts().get(entity.chart)
        diagram = self.diagrams.of(chart) if chart is not None else html("")
        stream = "/events?" + urlencode({"entity": entity.id})
        page = self._page(stream, [(chart_href(entity.chart), entity.chart)])
        return HTMLResponse(entity_page(entity, chart, diagram, history, page))

    # -- live ----------------------------------------------------------------------------

    async def _events(self, request: Request) -> Response:
        q = request.query_params
        topic: Topic = ("charts", "")
        if "entity" in q:
            topic = ("entity", q["entity"])
        elif "chart" in q:
            topic = ("chart", q["chart"])
        sub = self.feed.subscribe(topic, asyncio.get_running_loop())
        # What the page may have missed between its render and this subscription.
        first = await run_in_threadpool(self._current, topic)

        async def stream() -> AsyncIterator[str]:
            try:
                yield ": live\n\n"
                for current in first:
                    yield frame(current)
                while True:
                    try:
                        message = await asyncio.wait_for(_next(sub), _KEEPALIVE)
                    except TimeoutError:
                        yield ": keepalive\n\n"
                        continue
                    if message is None:
                        return
                    yield message
            finally:
                self.feed.unsubscribe(sub)

        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)

    def _current(self, topic: Topic) -> list[dict[str, Any]]:
        kind, key = topic
        if kind == "entity":
            view = self.view(key)
            return [] if view is None else [{"type": "entity", **view}]
        if kind == "chart":
            return [{"type": "counts", "chart": key, "counts": self.feed.counts(key)}]
        return [{"type": "counts", "chart": c, "counts": n} for c, n in self.feed.charts().items()]

    async def _fire(self, request: Request) -> Response:
        fire = self.source.fire
        if fire is None or self.csrf is None:
            return _problem(403, "this inspector is read-only (start it with --http-allow-fire)")
        token = request.headers.get("x-chartd-csrf", "")
        if not hmac.compare_digest(token.encode(), self.csrf.encode()):
            return _problem(403, "missing or wrong CSRF token: fire from the inspector's page")
        origin = request.headers.get("origin")
        if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
            return _problem(403, f"a fire from another origin ({origin}) is refused")
        try:
            event, params = _fire_request(await _json(request))
        except (ValueError, InvalidParameter) as exc:
            return _problem(400, str(exc))
        key = request.path_params["key"]
        if "\x00" in key:
            return _problem(404, f"no entity {key[:80]!r}")
        try:
            result = await run_in_threadpool(fire, key, event, params)
        except ChartdError as exc:
            status = _STATUS.get(exc.category.value, 422 if exc.category.value != "system" else 500)
            return JSONResponse({"error": exc.category.value, "message": exc.message}, status)
        return JSONResponse({"state": result.entity.state, "version": result.entity.version})


async def _json(request: Request) -> Any:
    """The request's body as JSON: at most :data:`_MAX_FIRE_BODY` bytes, not nested too deep."""
    size, chunks = 0, []
    async for chunk in request.stream():
        size += len(chunk)
        if size > _MAX_FIRE_BODY:
            raise ValueError(f"the body is too large: more than {_MAX_FIRE_BODY} bytes")
        chunks.append(chunk)
    return decode_json(b"".join(chunks), "invalid JSON")


def _fire_request(body: Any) -> tuple[str, dict[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get("event"), str) or not body["event"]:
        raise InvalidParameter('the body must be {"event": NAME, "params": {...}}')
    params = body.get("params", {})
    if not isinstance(params, dict):
        raise InvalidParameter("params must be a JSON object")
    return body["event"], params


def _problem(status: int, message: str) -> Response:
    return JSONResponse({"error": "request", "message": message}, status)


async def _next(sub: Subscription) -> str | None:
    return await sub.queue.get()
