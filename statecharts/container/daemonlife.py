"""The daemon's life, as methods of the container service: its shutdown and its restore.

moby without live-restore: a daemon that stops stops its running containers
(with their stop signals and timeouts, in parallel, not as manual stops);
a daemon that starts reconciles what the last one left (processes of a
daemon that crashed are killed, their exits recorded as restored) and
applies the restart policies as moby's restore does. :class:`DaemonLife` is
mixed into :class:`~statecharts.container.service.Containers`, whose
listing, waits and exit recorder it uses.
"""

from __future__ import annotations

import builtins
import logging
import signal as _signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from engine import Engine, Entity
from engine.errors import ChartdError
from statecharts.container import moby
from statecharts.container.calls import TimeLeft
from statecharts.container.exit_recorder import ExitRecorder
from statecharts.container.listing import Filters
from statecharts.container.network import AddressPool
from statecharts.container.runtime import Runtime

__all__ = ["DaemonLife", "is_stopped"]

log = logging.getLogger("chartd.containers")

_Ids = list[str]  # the class has a method named `list`
_Exits = list[tuple[str, int, Any]]  # (container id, exit code, pid)
# Containers a restore or a shutdown acts on at once (fires, their sagas and waits).
_IN_PARALLEL = 16


def is_stopped(container: Entity) -> bool:
    """Not running (nor paused, nor restarting): what a stop waits for."""
    return not container.in_state("running")


class DaemonLife:
    """shutdown and restore, on what the container service has."""

    engine: Engine
    runtime: Runtime
    pool: AddressPool
    _clock: Callable[[], float]
    _exits: ExitRecorder
    _inherited: set[tuple[str, int]]

    if TYPE_CHECKING:

        def list(
            self, *, all: bool = False, status: str | None = None, filters: Filters | None = None
        ) -> builtins.list[Entity]: ...

        def _until(
            self,
            entity_id: str,
            holds: Callable[[Entity], bool],
            deadline: float | None,
            time_left: TimeLeft | None = None,
        ) -> Entity: ...

    def shutdown(self) -> None:
        """Stop every running container with its stop signal and timeout, in parallel.

        As moby does without live-restore; it does not count as a manual stop,
        so restart policies apply again when the daemon starts.
        """
        running = [e for e in self.list() if e.in_state("running")]
        # Each stop waits up to its container's timeout: a pool as wide as there are
        # containers (bounded) stops them all in about the longest timeout, as moby does.
        width = max(1, min(len(running), 4 * _IN_PARALLEL))
        with ThreadPoolExecutor(width, "chartd-shutdown") as pool:
            list(pool.map(self._shutdown_one, running))
        self._exits.close()

    def _shutdown_one(self, container: Entity) -> None:
        try:
            if container.in_state("running.restarting"):
                self.engine.fire(container, "stop", {"shutdown": True})
                return
            self.engine.fire(container, "stop", {"shutdown": True})
            limit = container.data.get("stop_timeout")
            limit = moby.DEFAULT_STOP_TIMEOUT if limit is None else max(0, limit)
            self._until(container.id, is_stopped, time.monotonic() + limit + 5)
        except ChartdError as exc:
            log.warning("shutdown of %s: %s", container.id[:12], exc.message)

    def restore(self) -> _Ids:
        """Reconcile after a daemon start; the IDs of the containers started again.

        Processes left by a daemon that crashed are killed and their
        containers marked exited (never restarting: the exit has ``restored``),
        and the address leases of containers not running given back;
        then restart policies apply as moby's restore applies them, with the
        restart manager reset: ``always`` restarts even after a manual stop,
        ``unless-stopped`` does not, a container never started stays created.
        """
        left = {t.container_id: t for t in self.runtime.tasks()}
        exits = []
        for container_id, task in left.items():
            ended = self.runtime.delete_task(container_id)
            code = ended.exit_code if ended is not None else 128 + int(_signal.SIGKILL)
            exits.append((container_id, code, task.pid))
        self._reconcile(exits)
        listed = self.list(all=True)
        # The engine says running, but there is no process: it exited unseen.
        self._reconcile(
            [(c.id, 255, c.data.get("pid")) for c in listed if _has_task(c) and c.id not in left]
        )
        # Leases are not fsynced (see statecharts.container.network): after a power loss a
        # released one may be back. Only a running container holds one now.
        self.pool.release_all_but({c.id for c in self.list()})
        restarting = []
        for seen in listed:
            moved = seen.id in left or _has_task(seen)
            if _restarts_on_restore(self.engine.get(seen.id) if moved else seen):
                restarting.append(seen.id)
        results = self.engine.fire_many(
            [(cid, "start") for cid in restarting], concurrency=_IN_PARALLEL
        )
        started = []
        for cid, result in zip(restarting, results, strict=True):
            if isinstance(result, ChartdError):
                log.warning("restart of %s on restore failed: %s", cid[:12], result.message)
            else:
                started.append(cid)
        return started

    def _reconcile(self, exits: _Exits) -> None:
        """Record the exits a restore found (container, exit code, pid), all at once."""
        requests = []
        for container_id, exit_code, pid in exits:
            params = {
                "exit_code": exit_code,
                "pid": pid,
                "exited_at": self._clock(),
                "restored": True,
            }
            requests.append((container_id, "exit", params))
        for (container_id, _, _), result in zip(
            exits, self.engine.fire_many(requests, concurrency=_IN_PARALLEL), strict=True
        ):
            if isinstance(result, ChartdError):
                # Expected when the runtime's report of the same exit came first.
                log.debug("restore of %s: %s", container_id[:12], result.message)
        # Only now: a report of the runtime read before this point is a restored exit too
        # (one read after is refused, this exit being recorded), whichever commits first.
        for container_id, _, pid in exits:
            self._inherited.discard((container_id, pid))


def _restarts_on_restore(container: Entity) -> bool:
    """Whether moby's restore would start this container again (its restart manager reset)."""
    data = container.data
    if not container.in_state("exited") or not data.get("has_been_started_before"):
        return False
    policy = moby.RestartPolicy.from_data(data.get("restart_policy"))
    return policy.name != "no" and moby.should_restart(
        policy,
        int(data.get("exit_code") or 0),
        bool(data.get("manually_stopped")),
        int(data.get("restart_count") or 0),
    )


def _has_task(container: Entity) -> bool:
    """Running or paused: the engine says it has a process."""
    return container.in_state("running.active") or container.in_state("running.paused")
