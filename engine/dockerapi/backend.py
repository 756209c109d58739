"""What the Engine API needs of the container service, beyond what the gRPC API needs.

The daemon hands in ``statecharts.container.service.Containers``, the same
object the gRPC servicer uses; this room sees it through :class:`Backend`
(it never imports ``statecharts``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, BinaryIO, Protocol

import engine
from engine.api.containers_service import ContainerService, StatusOf, TimeLeft

__all__ = ["Backend", "Daemon"]


class Backend(ContainerService, Protocol):
    """The container service, with the options docker's create has and chartd's gRPC lacks."""

    def create(
        self,
        cmd: Sequence[str],
        *,
        name: str | None = None,
        env: Mapping[str, str] | None = None,
        working_dir: str | None = None,
        labels: Mapping[str, str] | None = None,
        stop_signal: str | int | None = None,
        stop_timeout: int | None = None,
        restart: str | None = None,
        auto_remove: bool = False,
        entrypoint: Sequence[str] | None = None,
        image: str | None = None,
        healthcheck: Mapping[str, Any] | None = None,
    ) -> engine.Entity:
        """A new container in state created."""
        ...

    def wait(
        self,
        ref: str,
        condition: str = "not-running",
        timeout: float | None = None,
        *,
        time_left: TimeLeft | None = None,
        since: int | None = None,
    ) -> tuple[int, str]:
        """Block until ``condition`` holds, counting exits after ``since``; (exit code, error)."""
        ...

    def open_log(self, ref: str) -> BinaryIO:
        """The container's log open at its end, readable after a removal."""
        ...


class Daemon:
    """What every endpoint reaches: the service, the engine, moby's status, the version."""

    def __init__(
        self, backend: Backend, eng: engine.Engine, *, status_of: StatusOf, version: str
    ) -> None:
        self.backend = backend
        self.engine = eng
        self.status_of = status_of
        self.version = version
