"""The container endpoints that answer at once: create, the lifecycle verbs, list, inspect,
top, update and prune.

Each is a thin adapter: read docker's request, call the container service
(the one the gRPC API calls), shape its answer. The service's errors are
answered by :mod:`engine.dockerapi.errors`.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import engine
from engine.api.times import unix_seconds
from engine.dockerapi import shapes
from engine.dockerapi.calls import (
    blocking,
    daemon,
    filters,
    flag,
    go_atoi,
    integer,
    json_body,
    ref,
    stop_timeout,
    text,
)
from engine.dockerapi.images import find_image, image_id
from engine.dockerapi.versions import parse_version
from engine.errors import ChartdError, InvalidParameter

__all__ = ["routes"]

# The service's listing checks and applies its filters (moby's messages); these are
# docker's on top, and those whose subject no chartd container has (a swarm task, a
# network, a volume, a port: checked as moby checks them, and matching none).
_SERVICE_FILTERS = ("status", "id", "name", "label", "health", "exited")
_OWN_FILTERS = ("ancestor", "before", "since")
_ABSENT_FILTERS = ("expose", "isolation", "is-task", "network", "publish", "volume")

_PRUNE_FILTERS = ("until", "label", "label!")


def _done() -> Response:
    return Response(status_code=204)


def _new_name(request: Request) -> str:
    """The ``name`` parameter as moby's router reads it (Go's ``Form.Get``: the first
    given), unchecked: the service refuses a bad one with moby's message."""
    return next(iter(request.query_params.getlist("name")), "")


async def create(request: Request) -> Response:
    given = shapes.create_body(await json_body(request))
    api = parse_version(request.scope.get("state", {}).get("api_version", ""))
    options = shapes.create_options(_new_name(request), given, api)
    created = await blocking(request, daemon(request).backend.create, **options)
    return JSONResponse({"Id": created.id, "Warnings": []}, status_code=201)


async def start(request: Request) -> Response:
    # moby's: a body of more than an empty JSON object's 7 bytes, or one of no stated length
    length = request.headers.get("content-length")
    chunked = "chunked" in request.headers.get("transfer-encoding", "").lower()
    if chunked or (length is not None and (not length.isdigit() or int(length) > 7)):
        raise InvalidParameter(
            "starting container with non-empty request body was deprecated since API v1.22 "
            "and removed in v1.24"
        )
    await blocking(request, daemon(request).backend.start, ref(request))
    return _done()


async def stop(request: Request) -> Response:
    container, timeout = ref(request), stop_timeout(request)
    signal = text(request, "signal", 32) or None
    await blocking(request, daemon(request).backend.stop, container, timeout=timeout, signal=signal)
    return _done()


async def restart(request: Request) -> Response:
    container, timeout = ref(request), stop_timeout(request)
    signal = text(request, "signal", 32) or None
    backend = daemon(request).backend
    await blocking(request, backend.restart, container, timeout=timeout, signal=signal)
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
    container, name = ref(request), _new_name(request)
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
    given = filters(request, _SERVICE_FILTERS + _OWN_FILTERS + _ABSENT_FILTERS)
    matches_none = _absent(given)
    limit = integer(request, "limit") or 0
    # As moby: a limit, or a status filter, lists stopped containers too (exited= does
    # not: without all, it matches nothing, as a running container has no exit code).
    wide = flag(request, "all") or limit > 0 or "status" in given
    chosen = {k: v for k, v in given.items() if k in _SERVICE_FILTERS}
    d = daemon(request)
    found = await blocking(request, d.backend.list, all=wide, filters=chosen)
    bounds = await blocking(request, _bounds, d.backend, given)
    ancestors = _ancestors(given.get("ancestor"), {str(e.data.get("image") or "") for e in found})
    kept = [] if matches_none else [e for e in found if _more(e, ancestors, bounds)]
    if limit > 0:
        kept = kept[:limit]
    listed = [shapes.summary(e, d.status_of, health=d.backend.health_of(e) or "none") for e in kept]
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


def _absent(given: dict[str, list[str]]) -> bool:
    """Whether the filters on what no chartd container has match none, as moby's match a
    container without it; a value moby refuses is refused with its message."""
    tasks = given.get("is-task")
    if tasks is not None and "true" not in tasks and "false" not in tasks:
        raise InvalidParameter(f"invalid filter 'is-task={_go_list(tasks)}'")
    for key in ("publish", "expose"):
        for value in given.get(key, ()):
            _port_filter(key, value)
    isolation = given.get("isolation")
    return (
        (tasks is not None and "true" in tasks)  # no container is a swarm task
        or (isolation is not None and not any(_go_match(v, "default") for v in isolation))
        or any(key in given for key in ("network", "volume", "publish", "expose"))
    )


def _go_list(values: list[str]) -> str:
    """A list of strings as Go's ``%s`` prints one: ``[a b]``."""
    return "[" + " ".join(values) + "]"


def _go_match(pattern: str, subject: str) -> bool:
    """moby's filter Match: the value itself, or a regular expression found in it."""
    if pattern == subject:
        return True
    if len(pattern) > 1024:  # past any isolation's pattern: not compiled
        return False
    try:
        return re.search(pattern, subject) is not None
    except re.error:
        return False  # moby skips a pattern Go cannot compile


def _port_filter(key: str, value: str) -> None:
    """A ``publish``/``expose`` value as moby reads it (``80``, ``80/tcp``, ``8000-8080``)."""
    if ":" in value:
        raise InvalidParameter(f"filter for '{key}' should not contain ':': {value}")
    ports = value.partition("/")[0]
    start, dash, end = ports.partition("-")
    why = ""
    if not ports:
        why = "empty string specified for ports"
    else:
        for part in (start, end) if dash else (start,):
            if not (part.isascii() and part.isdigit()):
                why = f'strconv.ParseUint: parsing "{part}": invalid syntax'
                break
            if int(part) > 65535:
                why = f'strconv.ParseUint: parsing "{part}": value out of range'
                break
        if not why and dash and int(end) < int(start):
            why = f"invalid range specified for port: {ports}"
    if why:
        raise InvalidParameter(f"error while looking up for {key} {value}: {why}")


def _ancestors(wanted: list[str] | None, known: set[str]) -> set[str] | None:
    """The image IDs the ``ancestor`` filter names (None: no filter), as moby looks each
    up: a name in any form (``alpine``, ``docker.io/library/alpine:latest``), an ID or an
    ID prefix; one that names no image names nothing (moby logs it and goes on)."""
    if wanted is None:
        return None
    found = set()
    for name in wanted:
        with contextlib.suppress(ChartdError):
            found.add(image_id(find_image(name, known)))
    return found


def _more(e: engine.Entity, ancestors: set[str] | None, bounds: dict[str, float]) -> bool:
    """The filters docker has and the service's listing has not: ancestor, before, since."""
    if ancestors is not None and image_id(str(e.data.get("image") or "")) not in ancestors:
        return False
    created = float(e.created_at)
    return created < bounds.get("before", float("inf")) and created > bounds.get(
        "since", float("-inf")
    )


async def resize(request: Request) -> Response:
    """moby's: the sizes read as Go's Atoi reads them, then the container's TTY resized
    (nothing to resize without one); Conflict unless it runs."""
    height, width = go_atoi(request, "h"), go_atoi(request, "w")
    await blocking(request, daemon(request).backend.resize, ref(request), height, width)
    return Response(status_code=200)


async def top(request: Request) -> Response:
    ps_args = text(request, "ps_args", 4096)
    table = await blocking(request, daemon(request).backend.top, ref(request), ps_args)
    return JSONResponse({"Titles": table.titles, "Processes": table.processes})


async def update(request: Request) -> Response:
    restart = shapes.update_restart(shapes.decode_json(await json_body(request)))
    await blocking(request, daemon(request).backend.update, ref(request), restart=restart)
    return JSONResponse({"Warnings": []})


async def prune(request: Request) -> Response:
    given = filters(request, _PRUNE_FILTERS)
    if "until" in given:  # docker's time forms, read against the daemon's clock as moby's
        given["until"] = [unix_seconds(v) for v in given["until"]]
    removed = await blocking(request, daemon(request).backend.prune, given)
    # moby's report: no list at all (null) when nothing was removed
    return JSONResponse({"ContainersDeleted": removed or None, "SpaceReclaimed": 0})


def routes() -> list[Route]:
    """The routes of this module's endpoints."""
    c = "/containers/{ref}"
    return [
        Route("/containers/create", create, methods=["POST"]),
        Route("/containers/json", listing, methods=["GET"]),
        Route("/containers/prune", prune, methods=["POST"]),
        Route(f"{c}/top", top, methods=["GET"]),
        Route(f"{c}/resize", resize, methods=["POST"]),
        Route(f"{c}/update", update, methods=["POST"]),
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
