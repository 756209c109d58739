"""Which calls the server takes on, so that health checks and reads always get through.

gRPC's server runs every call on one pool of threads, and a call that waits
(a stop until the process exits, a follow of events) holds its thread all
the while. Calls come in three kinds:

* ``change``: the calls that change something and may wait for it (create,
  start, stop, ..., Fire);
* ``stream``: the calls that wait by design (Wait, Logs, Events, Watch);
* ``read``: everything else, and the health service: quick, never waiting.

Each kind that may wait has a quota below the pool's size; a call over its
kind's quota is refused at once (UNAVAILABLE, "the daemon is busy") rather
than queued, so however many calls block, the rest of the pool is left to
health checks and reads. Before its work begins, a call whose client has
gone (deadline passed, or cancelled) is dropped: nothing runs for nobody.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType

import grpc

from engine.errors import Cancelled, DeadlineExceeded, Unavailable

__all__ = ["KINDS", "Admission", "time_left"]

KINDS: Mapping[str, str] = MappingProxyType(
    {
        **dict.fromkeys(
            (
                "Containers.Create",
                "Containers.Start",
                "Containers.Stop",
                "Containers.Kill",
                "Containers.Pause",
                "Containers.Unpause",
                "Containers.Restart",
                "Containers.Remove",
                "Containers.Rename",
                "Containers.Update",
                "Containers.Prune",
                # Runs ps in the container: a process, not a read of the store.
                "Containers.Top",
                "Engine.CreateEntity",
                "Engine.Fire",
                "Engine.CreateMany",
                "Engine.FireMany",
                "Engine.MigrateChart",
                "Exec.CreateExec",
            ),
            "change",
        ),
        **dict.fromkeys(
            (
                "Containers.Wait",
                "Containers.Logs",
                "Containers.Events",
                "Engine.Watch",
                # Attached, it holds its thread while the process runs.
                "Exec.StartExec",
            ),
            "stream",
        ),
    }
)
"""The kind of each method that is not a read, by ``Service.Method``."""


# gRPC gives a call without a deadline one in the far future (its "infinite" deadline).
_NO_DEADLINE = 10 * 365 * 24 * 3600.0


def time_left(context: grpc.ServicerContext) -> float | None:
    """Seconds until the call's deadline (None without one); 0 once its client has gone."""
    if not context.is_active():
        return 0.0
    left = context.time_remaining()
    return None if left is None or left > _NO_DEADLINE else left


class Admission:
    """Quotas of the kinds that may wait, out of a pool of ``workers`` threads.

    A quarter of the pool each for changes and streams: half of it is
    always left for reads and health checks.
    """

    def __init__(self, workers: int) -> None:
        quota = max(1, workers // 4)
        self.quotas = {"change": quota, "stream": quota}
        self._free = {kind: threading.BoundedSemaphore(n) for kind, n in self.quotas.items()}

    @contextmanager
    def admit(self, method: str, context: grpc.ServicerContext) -> Iterator[None]:
        """Run the block for a call of ``method`` (``Service.Method``), or refuse it.

        DeadlineExceeded or Cancelled if its client has gone already;
        Unavailable if its kind is at its quota.
        """
        if not context.is_active():
            left = context.time_remaining()
            if left is not None and left <= 0:
                raise DeadlineExceeded(f"{method}: the deadline passed before the call began")
            raise Cancelled(f"{method}: the client cancelled before the call began")
        kind = KINDS.get(method, "read")
        free = self._free.get(kind)
        if free is None:
            yield
            return
        if not free.acquire(blocking=False):
            raise Unavailable(
                f"the daemon is busy: {self.quotas[kind]} {kind} calls are in progress, "
                "the most it runs at once; try again later"
            )
        try:
            yield
        finally:
            free.release()
