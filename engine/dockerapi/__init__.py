"""Docker's Engine API on the container service: the docker CLI and SDKs drive chartd.

``chartd serve`` serves it on a unix socket (``--docker-socket``) beside
the gRPC API; both call the one container service, so a container made
through one is seen, changed and removed through the other, with the same
errors and messages (moby's HTTP codes here, :mod:`engine.dockerapi.errors`).

* :mod:`.versions`: ``/v1.xx/`` paths and the version headers;
* :mod:`.system`: ping, version, info, images (host images, no registry);
* :mod:`.containers`: create, the lifecycle verbs, list, inspect, top, update, prune;
* :mod:`.stats`: a container's usage, once or a document a second;
* :mod:`.streams`: wait, logs, attach, events;
* :mod:`.execs`: exec create, start, inspect, resize;
* :mod:`.hijack`: the raw connection ``docker run`` and ``docker exec`` attach on;
* :mod:`.pump`: a stream read from one of the service's blocking iterators;
* :mod:`.reads`: what it reads itself (an attached log, events' labels);
* :mod:`.shapes`: docker's JSON shapes; :mod:`.calls`: queries, worker threads.

docs/docker-api.md lists the endpoints and what each ignores.
"""

from __future__ import annotations

import threading
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Route

import engine
from engine.api.containers_service import StatusOf
from engine.dockerapi import absent, containers, errors, execs, stats, streams, system
from engine.dockerapi.backend import Backend, Daemon
from engine.dockerapi.calls import THREADS, WAITERS
from engine.dockerapi.hijack import HijackingH11
from engine.dockerapi.versions import API_VERSION, MIN_API_VERSION, VersionMiddleware
from engine.errors import ChartdError

__all__ = ["API_VERSION", "MIN_API_VERSION", "DockerApp", "HijackingH11", "docker_app"]


def docker_app(
    backend: Backend, eng: engine.Engine, *, status_of: StatusOf, version: str
) -> DockerApp:
    """The Engine API as an ASGI app, on the container service ``backend`` and ``eng``.

    Serve it with :func:`engine.httpserve.serve_in_thread` and
    ``http=HijackingH11``, which ``docker run``'s attach needs.
    """
    app = Starlette(
        routes=[
            *system.routes(),
            *containers.routes(),
            *stats.routes(),
            *execs.routes(),
            *streams.routes(),
            *absent.routes(),
        ],
        exception_handlers={
            ChartdError: errors.on_error,
            ClientDisconnect: errors.on_disconnect,
            HTTPException: errors.page_not_found,
            Exception: errors.on_unexpected,
        },
    )
    # moby's router has no trailing-slash redirect (/containers/x/json/ is "page not
    # found"), and answers HEAD only where a route says so (Starlette adds it to every GET).
    app.router.redirect_slashes = False
    for route in app.routes:
        if isinstance(route, Route) and route.methods and route.path != "/_ping":
            route.methods.discard("HEAD")
    app.state.daemon = Daemon(backend, eng, status_of=status_of, version=version)
    app.state.limiter = anyio.CapacityLimiter(THREADS)
    app.state.waiters = anyio.CapacityLimiter(WAITERS)
    app.state.stopping = threading.Event()
    return DockerApp(VersionMiddleware(app, version, errors.error_response), app.state.stopping)


class DockerApp:
    """The Engine API's ASGI app; :meth:`stopping` ends its streams (before the server stops)."""

    def __init__(self, app: Any, stopping: threading.Event) -> None:
        self._app = app
        self._stopping = stopping

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._app(scope, receive, send)

    def stopping(self) -> None:
        """End the streams (logs -f, attach, events, waits) at their next look."""
        self._stopping.set()
