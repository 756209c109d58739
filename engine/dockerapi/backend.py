"""What every endpoint reaches: the container service, the engine, moby's status, the version.

The daemon hands in ``statecharts.container.service.Containers``, the same
object the gRPC servicers use; this room sees it through the API room's
Protocols, :class:`~engine.api.containers_service.ContainerService` and
:class:`~engine.api.exec_service.ExecService` (it never imports
``statecharts``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Protocol

import engine
from engine.api.containers_service import ContainerService, StatusOf
from engine.api.exec_service import ExecService

__all__ = ["Backend", "Daemon"]

_STREAMS = frozenset({"stdout", "stderr"})
# Execs created with fewer streams than both remembered at most: moby forgets an
# ended exec within minutes, and one forgotten here only streams both.
_REMEMBERED = 4096


class Backend(ContainerService, ExecService, Protocol):
    """The container service with its execs: what the Engine API calls."""


class Daemon:
    """The container service ``backend``, the engine ``eng``, ``status_of``, chartd's version."""

    def __init__(
        self, backend: Backend, eng: engine.Engine, *, status_of: StatusOf, version: str
    ) -> None:
        self.backend = backend
        self.engine = eng
        self.status_of = status_of
        self.version = version
        self._lock = threading.Lock()
        self._exec_streams: OrderedDict[str, frozenset[str]] = OrderedDict()

    def keep_exec_streams(self, exec_id: str, streams: frozenset[str]) -> None:
        """Remember the streams an exec's ExecConfig attached (the service streams both)."""
        if streams == _STREAMS:
            return
        with self._lock:
            self._exec_streams[exec_id] = streams
            while len(self._exec_streams) > _REMEMBERED:
                self._exec_streams.popitem(last=False)

    def exec_streams(self, exec_id: str) -> frozenset[str]:
        """The streams an exec attached: ``stdout``, ``stderr`` (both if not remembered)."""
        with self._lock:
            return self._exec_streams.get(exec_id, _STREAMS)
