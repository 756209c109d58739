"""chartd's error categories as moby's HTTP answers: its status codes, ``{"message": ...}``.

The same messages as the gRPC API: an endpoint raises the service's
:class:`~engine.errors.ChartdError` and this one map turns it into moby's
answer (``daemon/server/httpstatus``). A NotModified is 304 with no body, as
moby sends it: the docker CLI takes it as done.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import MappingProxyType

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from engine.errors import Category, ChartdError, NotFound

__all__ = [
    "HTTP_STATUS",
    "error_response",
    "on_disconnect",
    "on_error",
    "on_unexpected",
    "page_not_found",
]

log = logging.getLogger("chartd.dockerapi")

HTTP_STATUS: Mapping[Category, int] = MappingProxyType(
    {
        Category.NOT_FOUND: 404,
        Category.INVALID_PARAMETER: 400,
        Category.CONFLICT: 409,
        Category.NOT_MODIFIED: 304,
        Category.FORBIDDEN: 403,
        Category.UNAVAILABLE: 503,
        Category.NOT_IMPLEMENTED: 501,
        Category.CANCELLED: 500,
        Category.DEADLINE_EXCEEDED: 500,
        Category.SYSTEM: 500,
    }
)
"""moby's HTTP status of each category."""


def error_response(error: ChartdError) -> Response:
    """moby's answer to ``error``: its status and ``{"message": ...}`` (none for a 304)."""
    status = HTTP_STATUS[error.category]
    if status == 304:
        return Response(status_code=304)
    return JSONResponse({"message": error.message}, status_code=status)


async def on_error(request: Request, exc: Exception) -> Response:
    """Starlette's handler of ChartdError: every endpoint's errors leave here."""
    assert isinstance(exc, ChartdError)
    log.debug("%s %s: %s: %s", request.method, request.url.path, exc.category, exc.message)
    return error_response(exc)


async def on_unexpected(request: Request, exc: Exception) -> Response:
    """Anything else: logged with its traceback, answered as moby answers a System error."""
    log.error("%s %s failed unexpectedly", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"message": f"{type(exc).__name__}: {exc}"}, status_code=500)


async def page_not_found(request: Request, exc: Exception) -> Response:
    """moby's answer to a path it has no route for."""
    return error_response(NotFound("page not found"))


async def on_disconnect(request: Request, exc: Exception) -> Response:
    """A client that went before its request's body was read: nothing to answer, no
    fault of the daemon's (logged quietly, not as an unexpected failure)."""
    log.debug("%s %s: the client went before its body was read", request.method, request.url.path)
    return Response(status_code=400)
