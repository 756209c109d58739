"""The container endpoints that answer at once: create, the lifecycle verbs, list, inspect.

Each is a thin adapter: read docker's request, call the container service
(the one the gRPC API calls), shape its answer. The service's errors are
answered by :mod:`engine.dockerapi.errors`.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import engine
from engine.api.containers_service import STATUSES
from engine.dockerapi import shapes
from engine.dockerapi.calls import blocking, body, daemon, filters, flag, integer, ref, text
from engine.dockerapi.reads import matches
from engine.errors import InvalidParameter
from engine.errors import NotImplemented as Unsupported

__all__ = ["PENDING", "routes"]

_LIST_FILTERS = (
    "status", "id", "name", "label", "exited", "ancestor", "before", "since", "health",
)  # fmt: skip
# Filters moby knows whose subject chartd has not: refused, not ignored.
_UNSUPPORTED_FILTERS = ("expose", "isolation", "is-task", "network", "publish", "volume")
_HEALTH = ("starting", "healthy", "unhealthy", "none")  # moby's IsValidHealthString

_SAFE_PATTERN = re.compile(r"\^?[\w./-]*\$?")

PENDING = {
    "top": ("GET", "/containers/{ref}/top"),
    "update": ("POST", "/containers/{ref}/update"),
    "prune": ("POST", "/containers/prune"),
}
"""Endpoints whose service capability this chartd lacks: 501 until it lands."""


def _done() -> Response:
    return Response(status_code=204)


async def create(request: Request) -> Response:
    given = shapes.decode_json(await body(request))
    options = shapes.create_options(text(request, "name"), given)
    created = await blocking(request, daemon(request).backend.create, **options)
    return JSONResponse({"Id": created.id, "Warnings": []}, status_code=201)


async def start(request: Request) -> Response:
    await blocking(request, daemon(request).backend.start, ref(request))
    return _done()


async def stop(request: Request) -> Response:
    container, timeout = ref(request), integer(request, "t")
    signal = text(request, "signal", 32) or None
    await blocking(request, daemon(request).backend.stop, container, timeout=timeout, signal=signal)
    return _done()


async def restart(request: Request) -> Response:
    container, timeout = ref(request), integer(request, "t")
    if text(request, "signal", 32):
        raise Unsupported(
            "restart with a signal is not supported: chartd stops with the container's stop signal"
        )
    await blocking(request, daemon(request).backend.restart, container, timeout=timeout)
    return _done()


async def kill(request: Request) -> Response:
    container, signal = ref(request), text(request, "signal", 32) or None
    await blocking(request, daemon(request).backend.kill, container, signal=signal)
    return _done()


async def pause(request: Request) -> Response:
    await blocking(request, daemon(request).backend.pause, ref(request))
    return _done()


async def unpause(request: Request) -> Response:
    await blocking(request, daemon(request).backend.unpause, ref(request))
    return _done()


async def rename(request: Request) -> Response:
    container, name = ref(request), text(request, "name")
    await blocking(request, daemon(request).backend.rename, container, name)
    return _done()


async def remove(request: Request) -> Response:
    container = ref(request)
    if flag(request, "link"):
        raise InvalidParameter("chartd has no container links: there is no link to remove")
    # v (remove anonymous volumes) has nothing to act on: chartd makes no volumes.
    await blocking(request, daemon(request).backend.remove, container, force=flag(request, "force"))
    return _done()


async def inspect(request: Request) -> Response:
    found = await blocking(request, daemon(request).backend.inspect, ref(request))
    document = shapes.inspect_document(found)
    if flag(request, "size"):
        document.update(SizeRw=0, SizeRootFs=0)
    return JSONResponse(document)


async def listing(request: Request) -> Response:
    given = filters(request, _LIST_FILTERS + _UNSUPPORTED_FILTERS)
    for key in given.keys() & set(_UNSUPPORTED_FILTERS):
        raise InvalidParameter(f"filter '{key}' is not supported by chartd")
    statuses = set(given.get("status", ()))
    for status in statuses - set(STATUSES):
        raise InvalidParameter(f"invalid filter 'status={status}'")
    for health in set(given.get("health", ())) - set(_HEALTH):
        raise InvalidParameter(f"Unrecognised filter value for health: {health}")
    limit = integer(request, "limit") or 0
    # As moby: a limit, or a filter on what stopped, lists stopped containers too.
    wide = flag(request, "all") or limit > 0 or bool(statuses) or "exited" in given
    d = daemon(request)
    found = await blocking(request, d.backend.list, all=wide)
    bounds = await blocking(request, _bounds, d.backend, given)
    shared = {k: v for k, v in given.items() if k != "name"}  # docker's name filter is its own
    healths = {e.id: d.backend.health_of(e) or "none" for e in found}
    kept = [
        e
        for e in found
        if matches(e, shared, statuses, d.status_of)
        and _more(e, given, bounds)
        and healths[e.id] in given.get("health", (healths[e.id],))
    ]
    if limit > 0:
        kept = kept[:limit]
    listed = [shapes.summary(e, d.status_of, health=healths[e.id]) for e in kept]
    if flag(request, "size"):
        for item in listed:
            item.update(SizeRw=0, SizeRootFs=0)
    return JSONResponse(listed)


def _bounds(backend: Any, given: dict[str, list[str]]) -> dict[str, float]:
    """The creation times ``before`` and ``since`` name (the containers they name)."""
    return {
        key: float(backend.get(given[key][-1]).created_at)
        for key in ("before", "since")
        if key in given
    }


def _more(e: engine.Entity, given: dict[str, list[str]], bounds: dict[str, float]) -> bool:
    """The filters docker has and the gRPC listing has not: exited, ancestor, before, since."""
    data = e.data
    code = str(int(data.get("exit_code") or 0))
    if "exited" in given and (not e.in_state("exited") or code not in given["exited"]):
        return False
    if "ancestor" in given:
        image = str(data.get("image") or "")
        if not any(image == a or image.partition(":")[0] == a for a in given["ancestor"]):
            return False
    if "name" in given and not any(
        _name_matches(v, str(data.get("name") or "")) for v in given["name"]
    ):
        return False
    created = float(e.created_at)
    return created < bounds.get("before", float("inf")) and created > bounds.get(
        "since", float("-inf")
    )


def _name_matches(pattern: str, name: str) -> bool:
    """moby's name filter: the name with or without its slash, equal or matched by ``pattern``.

    moby takes the value as a (linear-time) Go regular expression. Python's
    backtracks, so only the safe part is a pattern here: letters, digits,
    ``_ . - /`` (``.`` any character) between optional ``^`` and ``$``; any
    other value matches as a part of the name.
    """
    names = (name, name.lstrip("/"))
    if pattern in names:
        return True
    if _SAFE_PATTERN.fullmatch(pattern):
        return any(re.search(pattern, n) for n in names)
    return any(pattern in n for n in names)


async def pending(request: Request) -> Response:
    """An endpoint of docker's whose service capability has not landed in this chartd."""
    raise Unsupported(f"{request.method} {request.url.path} is not supported by this chartd yet")


def routes() -> list[Route]:
    """The routes of this module's endpoints."""
    c = "/containers/{ref}"
    return [
        Route("/containers/create", create, methods=["POST"]),
        Route("/containers/json", listing, methods=["GET"]),
        *(Route(path, pending, methods=[method]) for method, path in PENDING.values()),
        Route(f"{c}/json", inspect, methods=["GET"]),
        Route(f"{c}/start", start, methods=["POST"]),
        Route(f"{c}/stop", stop, methods=["POST"]),
        Route(f"{c}/restart", restart, methods=["POST"]),
        Route(f"{c}/kill", kill, methods=["POST"]),
        Route(f"{c}/pause", pause, methods=["POST"]),
        Route(f"{c}/unpause", unpause, methods=["POST"]),
        Route(f"{c}/rename", rename, methods=["POST"]),
        Route(c, remove, methods=["DELETE"]),
    ]
