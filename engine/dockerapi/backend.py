"""What every endpoint reaches: the container service, the engine, moby's status, the version.

The daemon hands in ``statecharts.container.service.Containers``, the same
object the gRPC servicer uses; this room sees it through the API room's
:class:`~engine.api.containers_service.ContainerService` (it never imports
``statecharts``).
"""

from __future__ import annotations

import engine
from engine.api.containers_service import ContainerService, StatusOf

__all__ = ["Daemon"]


class Daemon:
    """The container service ``backend``, the engine ``eng``, ``status_of``, chartd's version."""

    def __init__(
        self, backend: ContainerService, eng: engine.Engine, *, status_of: StatusOf, version: str
    ) -> None:
        self.backend = backend
        self.engine = eng
        self.status_of = status_of
        self.version = version
