"""The port of the Containers API: what the servicers ask of a container service.

The API room (the gRPC servicer, docker's Engine API) sees the container
chart's service only through :class:`ContainerService` and the shapes it
hands back; ``statecharts.container.service.Containers`` provides them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import engine

__all__ = [
    "ContainerService",
    "LogLine",
    "OutputTap",
    "ProcessTable",
    "ResourceUsage",
    "StatusOf",
    "TimeLeft",
]

_Ids = list[str]  # ContainerService has a method named `list`

TimeLeft = Callable[[], float | None]
"""Seconds the caller still waits: None without a deadline; zero or less once it has gone."""

StatusOf = Callable[[Sequence[str], Mapping[str, Any]], str]
"""moby's status string of a container from its configuration and data."""


class OutputTap(Protocol):
    """A live, raw tap on a container's output (what an attach streams).

    Every chunk as the process wrote it, then an end mark once its output is all
    read after its exit. While it holds its bound, the container's output waits.
    """

    @property
    def joined(self) -> bool:
        """Whether a task's output is being read for it (so its end mark will come)."""
        ...

    def set_waker(self, waker: Callable[[], None]) -> None:
        """Call ``waker()`` (from any thread) whenever something comes; once now if some has."""
        ...

    def take(self, timeout: float = 0.0) -> tuple[list[tuple[str, bytes]], bool]:
        """The chunks ``(stream, data)`` that came (waiting up to ``timeout``); whether it ended."""
        ...

    def close(self) -> None:
        """The subscriber goes: its container's output no longer waits for it."""
        ...


class LogLine(Protocol):
    """One entry of a container's log."""

    @property
    def data(self) -> bytes:
        """What the container wrote."""
        ...

    @property
    def stream(self) -> str:
        """stdout or stderr."""
        ...

    @property
    def time_ns(self) -> int:
        """When, in nanoseconds since the epoch."""
        ...


class ProcessTable(Protocol):
    """``docker top``'s answer: column titles and a row per process."""

    @property
    def titles(self) -> list[str]:
        """The columns."""
        ...

    @property
    def processes(self) -> list[list[str]]:
        """A row of cells per process."""
        ...


class ResourceUsage(Protocol):
    """One sample of what a running container's processes have spent (``docker stats``)."""

    @property
    def read_ns(self) -> int:
        """When it was read, in nanoseconds since the epoch."""
        ...

    @property
    def user_ns(self) -> int:
        """CPU time in user mode, in nanoseconds."""
        ...

    @property
    def kernel_ns(self) -> int:
        """CPU time in kernel mode, in nanoseconds."""
        ...

    @property
    def memory_usage(self) -> int:
        """Resident memory, in bytes."""
        ...

    @property
    def memory_stats(self) -> dict[str, int]:
        """The parts of its memory by kind (``anon``, ``file``, ``shmem``), in bytes."""
        ...

    @property
    def threads(self) -> int:
        """Its tasks (threads of every process)."""
        ...

    @property
    def read_bytes(self) -> int:
        """Bytes it had read from block devices."""
        ...

    @property
    def write_bytes(self) -> int:
        """Bytes it had written to block devices."""
        ...


class ContainerService(Protocol):
    """What the servicer needs of the container service (moby's operations).

    Containers are named by ``ref``: a name with or without ``/``, an ID or
    a unique ID prefix. Errors are :mod:`engine.errors` categories.
    ``time_left`` tells an operation how long its caller still waits
    (:data:`TimeLeft`): it waits no longer, and does nothing once the caller
    has gone (DeadlineExceeded).
    """

    def get(self, ref: str) -> engine.Entity:
        """The container ``ref`` names."""
        ...

    # One keyword per moby create option: the signature of Containers.create, which
    # the daemon hands in as this Protocol, so the two change together.
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
        open_stdin: bool = False,
        stdin_once: bool = False,
        attach_stdin: bool = False,
        tty: bool = False,
        console_size: Sequence[int] | None = None,
    ) -> engine.Entity:
        """A new container in state created."""
        ...

    def health_of(self, container: engine.Entity) -> str | None:
        """Its health status (starting, healthy, unhealthy); None without a health check."""
        ...

    def start(self, ref: str, *, time_left: TimeLeft | None = None) -> engine.Entity:
        """Start a created or exited container."""
        ...

    def stop(
        self,
        ref: str,
        *,
        timeout: int | None = None,
        signal: str | int | None = None,
        time_left: TimeLeft | None = None,
    ) -> engine.Entity:
        """Stop it and return once it stopped."""
        ...

    def kill(
        self, ref: str, *, signal: str | int | None = None, time_left: TimeLeft | None = None
    ) -> engine.Entity:
        """Send a signal."""
        ...

    def pause(self, ref: str, *, time_left: TimeLeft | None = None) -> engine.Entity:
        """Freeze it."""
        ...

    def unpause(self, ref: str, *, time_left: TimeLeft | None = None) -> engine.Entity:
        """Thaw it."""
        ...

    def restart(
        self,
        ref: str,
        *,
        timeout: int | None = None,
        signal: str | int | None = None,
        time_left: TimeLeft | None = None,
    ) -> engine.Entity:
        """Stop if running (with ``signal``, else its stop signal), then start."""
        ...

    def remove(
        self, ref: str, *, force: bool = False, time_left: TimeLeft | None = None
    ) -> engine.Entity:
        """Remove it."""
        ...

    def rename(
        self, ref: str, new_name: str, *, time_left: TimeLeft | None = None
    ) -> engine.Entity:
        """Give it a new name."""
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
        """Block until ``condition`` holds (counting exits after ``since``); (exit code, error)."""
        ...

    def logs(self, ref: str) -> Path:
        """The file of its stdout and stderr."""
        ...

    def open_log(self, ref: str) -> BinaryIO:
        """That file open at its end, readable after a removal (an attach reads on)."""

    def tap_output(self, container_id: str) -> OutputTap:
        """A live, raw tap on its output from now on (waiting for its next process if it
        has none); the caller closes it."""
        ...

    def write_stdin(self, container_id: str, data: bytes, timeout: float) -> int:
        """Write a prefix of ``data`` to its process's stdin, waiting up to ``timeout`` for
        room; how much was written (0: none in time).

        NotFound while it has no process yet; Conflict once its stdin is closed or
        its process ended, or if it was created without an open stdin.
        """
        ...

    def resize(self, ref: str, height: int, width: int) -> engine.Entity:
        """Set the window of its TTY (none: nothing to set); Conflict ``container <id> is
        not running`` unless it runs (paused included) with a process."""
        ...

    def close_stdin(self, container_id: str) -> None:
        """Close its process's stdin (EOF once the process read what was written).

        NotFound while it has no process yet; idempotent after.
        """
        ...

    def read_logs(
        self,
        ref: str,
        *,
        follow: bool = False,
        since_ns: int = 0,
        until_ns: int = 0,
        tail: int = -1,
        time_left: TimeLeft | None = None,
    ) -> Iterator[LogLine]:
        """Its log entries: the last ``tail``, in a time window (ns), followed or not."""
        ...

    def update(
        self, ref: str, *, restart: str | None = None, time_left: TimeLeft | None = None
    ) -> engine.Entity:
        """Change its restart policy."""
        ...

    def top(self, ref: str, ps_args: str = "") -> ProcessTable:
        """Its processes, as ps shows them."""
        ...

    def stats(self, ref: str) -> tuple[engine.Entity, ResourceUsage | None]:
        """The container and a sample of its usage now (None unless it is running)."""
        ...

    def prune(self, filters: Mapping[str, Sequence[str]] | None = None) -> _Ids:
        """Remove every stopped container the filters select; the IDs removed."""
        ...

    def inspect(self, ref: str) -> dict[str, Any]:
        """moby's inspect document."""
        ...

    def list(
        self,
        *,
        all: bool = False,
        status: str | None = None,
        filters: Mapping[str, Sequence[str]] | None = None,
    ) -> list[engine.Entity]:
        """Live containers, newest first, as ``ps --filter`` selects them."""
        ...
