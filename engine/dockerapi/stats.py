"""``GET /containers/{id}/stats``: ``docker stats``, as moby serves it.

moby's stats collector samples every second; a request reads as moby's does:

* ``stream`` (default true): a document a second, each with the one before
  as ``precpu_stats`` (zeros in the first), until the client goes, the
  server stops or the container is removed. One that is not running (it
  stopped meanwhile) gets documents of zeros, as moby's.
* ``stream=false``: one document, two samples a second apart (moby primes
  ``precpu_stats`` so that a CPU percentage can be computed); ``one-shot``
  (API 1.41 on) skips the priming: one sample, ``precpu_stats`` of zeros.
  A container not running gets a document of zeros at once.

The container service measures the processes (its ``stats``); the host's
CPU time, online CPUs and memory (the limit of a container without one, as
moby's) are read here, right after each sample, as moby's collector reads
them.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

import engine
from engine.api.container_port import ResourceUsage
from engine.api.hostinfo import HostCpu, host_cpu, mem_total
from engine.api.times import rfc3339_nano
from engine.dockerapi.backend import Backend
from engine.dockerapi.calls import blocking, daemon, flag, ref
from engine.dockerapi.versions import parse_version
from engine.errors import InvalidParameter, NotFound

__all__ = ["document", "routes"]

INTERVAL = 1.0  # seconds between samples: moby's collector's
_BLKIO = (
    "io_service_bytes_recursive",
    "io_serviced_recursive",
    "io_queue_recursive",
    "io_service_time_recursive",
    "io_wait_time_recursive",
    "io_merged_recursive",
    "io_time_recursive",
    "sectors_recursive",
)


@dataclass(frozen=True, slots=True)
class Sample:
    """A container's usage with the host's CPU time and memory read right after it."""

    usage: ResourceUsage
    host: HostCpu
    memory_total: int


def _sample(backend: Backend, container: str) -> tuple[engine.Entity, Sample | None]:
    """The container and a sample of it (None unless it runs); on a worker thread."""
    found, usage = backend.stats(container)
    if usage is None:
        return found, None
    return found, Sample(usage, host_cpu(), mem_total())


def _cpu(sample: Sample | None) -> dict[str, Any]:
    """moby's ``cpu_stats``: the container's CPU time (ns) and the host's (omitted if zero)."""
    usage = sample.usage if sample is not None else None
    found: dict[str, Any] = {
        "cpu_usage": {
            "total_usage": usage.user_ns + usage.kernel_ns if usage else 0,
            "usage_in_kernelmode": usage.kernel_ns if usage else 0,
            "usage_in_usermode": usage.user_ns if usage else 0,
        }
    }
    if sample is not None and sample.host.usage_ns:
        found["system_cpu_usage"] = sample.host.usage_ns
    if sample is not None and sample.host.online:
        found["online_cpus"] = sample.host.online
    found["throttling_data"] = {"periods": 0, "throttled_periods": 0, "throttled_time": 0}
    return found


def _memory(sample: Sample | None) -> dict[str, Any]:
    """moby's ``memory_stats`` (Go's omitempty: a zero is left out)."""
    if sample is None:
        return {}
    found: dict[str, Any] = {}
    if sample.usage.memory_usage:
        found["usage"] = sample.usage.memory_usage
    if sample.usage.memory_stats:
        found["stats"] = dict(sample.usage.memory_stats)
    if sample.memory_total:
        found["limit"] = sample.memory_total
    return found


def _blkio(sample: Sample | None) -> dict[str, Any]:
    """moby's ``blkio_stats`` of cgroup v2: bytes read and written, no device known."""
    found: dict[str, Any] = dict.fromkeys(_BLKIO)
    if sample is not None:
        done = (("read", sample.usage.read_bytes), ("write", sample.usage.write_bytes))
        found["io_service_bytes_recursive"] = [
            {"major": 0, "minor": 0, "op": op, "value": value} for op, value in done
        ]
    return found


def document(
    container: engine.Entity, sample: Sample | None, previous: Sample | None
) -> dict[str, Any]:
    """moby's stats document of ``container``: ``sample`` (None: zeros, as moby's for a
    container that does not run) with ``previous`` as ``precpu_stats`` and ``preread``."""
    threads = sample.usage.threads if sample is not None else 0
    return {
        "name": "/" + container.name,
        "id": container.id,
        "read": rfc3339_nano(sample.usage.read_ns if sample is not None else 0),
        "preread": rfc3339_nano(previous.usage.read_ns if previous is not None else 0),
        "pids_stats": {"current": threads} if threads else {},
        "blkio_stats": _blkio(sample),
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": _cpu(sample),
        "precpu_stats": _cpu(previous),
        "memory_stats": _memory(sample),
    }


def _line(container: engine.Entity, sample: Sample | None, previous: Sample | None) -> bytes:
    """A document as Go's JSON encoder writes it: compact, one line."""
    found = document(container, sample, previous)
    return (json.dumps(found, separators=(",", ":")) + "\n").encode()


def _bool(request: Request, name: str, default: bool) -> bool:
    """moby's ``BoolValueOrDefault``: the default only if the parameter is absent."""
    return flag(request, name) if name in request.query_params else default


async def stats(request: Request) -> Response:
    stream = _bool(request, "stream", True)
    version = request.scope.get("state", {}).get("api_version", "")
    one_shot = parse_version(version) >= (1, 41) and _bool(request, "one-shot", False)
    backend = daemon(request).backend
    container, first = await blocking(request, _sample, backend, ref(request))
    if stream and one_shot:
        raise InvalidParameter("cannot have stream=true and one-shot=true")
    if stream:
        return StreamingResponse(_stream(request, container, first), media_type="application/json")
    if first is None or one_shot:
        return Response(_line(container, first, None), media_type="application/json")
    await asyncio.sleep(INTERVAL)
    try:
        container, second = await blocking(request, _sample, backend, container.id)
    except NotFound:  # removed meanwhile: nothing more to sample
        second = None
    return Response(_line(container, second, first), media_type="application/json")


async def _stream(
    request: Request, container: engine.Entity, sample: Sample | None
) -> AsyncIterator[bytes]:
    """A document a second until the container is removed or the server stops; the
    response ends it when the client goes."""
    stopping: threading.Event = request.app.state.stopping
    backend = daemon(request).backend
    previous = None
    while True:
        yield _line(container, sample, previous)
        previous = sample
        await asyncio.sleep(INTERVAL)
        if stopping.is_set():
            return
        try:
            container, sample = await blocking(request, _sample, backend, container.id)
        except NotFound:
            return


def routes() -> list[Route]:
    """The routes of this module's endpoints."""
    return [Route("/containers/{ref}/stats", stats, methods=["GET"])]
