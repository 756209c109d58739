"""docker's verbs beyond the lifecycle, as methods of the container service.

``update`` (the restart policy), ``top`` (the processes, through the host's
``ps``), ``stats`` (what they spent), ``read_logs`` (``docker logs``' tail,
time window and follow) and ``prune`` (every stopped container, in bulk):
:class:`ContainerVerbs` is mixed into
:class:`~statecharts.container.service.Containers`, whose lookup, fire and
listing they use; their rules are in :mod:`.top`, :mod:`.usage`,
:mod:`.logread`, :mod:`.listing` and :mod:`.pruning`.
"""

from __future__ import annotations

import builtins
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine import Engine, Entity
from engine.errors import ChartdError, Conflict, NotFound
from statecharts.container import calls, moby
from statecharts.container.calls import TimeLeft
from statecharts.container.listing import Filters
from statecharts.container.logread import LogEntry, LogWindow, log_entries
from statecharts.container.pruning import Prune
from statecharts.container.runtime import Runtime
from statecharts.container.status import RUNNING, inspect_document, status_of
from statecharts.container.top import DEFAULT_PS_ARGS, Top, check_ps_args, parse_ps_output, run_ps
from statecharts.container.usage import Usage, measure

__all__ = ["ContainerVerbs"]

log = logging.getLogger("chartd.containers")

_Ids = list[str]  # the class has a method named `list`
_FOLLOW_POLL = 0.1  # seconds between looks at a followed log that has no new output
_IN_PARALLEL = 16  # removals a prune runs at once


class ContainerVerbs:
    """update, top, stats, logs and prune, on what the container service has."""

    engine: Engine
    runtime: Runtime
    root: Path
    _pruning: threading.Lock

    if TYPE_CHECKING:

        def get(self, ref: str | Entity) -> Entity: ...

        def logs(self, ref: str | Entity) -> Path: ...

        def list(
            self, *, all: bool = False, status: str | None = None, filters: Filters | None = None
        ) -> builtins.list[Entity]: ...

        def _fire(
            self,
            ref: str | Entity,
            event: str,
            params: Mapping[str, Any] | None = None,
            time_left: TimeLeft | None = None,
        ) -> Entity: ...

    def update(
        self,
        ref: str | Entity,
        *,
        restart: str | None = None,
        time_left: TimeLeft | None = None,
    ) -> Entity:
        """moby's update of the restart policy (``docker update --restart``).

        The policy is checked before the container is looked up, as moby
        checks settings first; an empty or missing one changes nothing (the
        ``update`` event is still emitted). A restarting container's pending
        restart still happens: the new policy judges its next exit.
        """
        params: dict[str, Any] = {}
        if restart:
            params["restart_policy"] = moby.parse_restart_policy(restart).as_data()
        return self._fire(ref, "update", params, time_left)

    def top(self, ref: str | Entity, ps_args: str = "") -> Top:
        """The container's processes as the host's ``ps`` shows them (``docker top``).

        Conflict for a container that is not running, or restarting, with
        moby's messages; InvalidParameter for options that rename a column
        to PID; System if ``ps`` fails.
        """
        args = ps_args or DEFAULT_PS_ARGS
        check_ps_args(args)
        container = self.get(ref)
        current = status_of(container.configuration, container.data)
        if current not in RUNNING:
            raise Conflict(f"container {container.id} is not running")
        if current == "restarting":
            raise Conflict(
                f"Container {container.id} is restarting, wait until the container is running"
            )
        pids = self.runtime.processes(container.id)
        return parse_ps_output(run_ps(args, pids), set(pids))

    def stats(self, ref: str | Entity) -> tuple[Entity, Usage | None]:
        """The container and a sample of what its processes have spent (``docker stats``).

        None for one that is not running, or restarting (moby's stats of zeros), also
        when its process ends meanwhile; NotFound for an unknown one.
        """
        container = self.get(ref)
        current = status_of(container.configuration, container.data)
        if current not in RUNNING or current == "restarting":
            return container, None
        try:
            pids = self.runtime.processes(container.id)
        except (Conflict, NotFound):  # it ended (or has no task yet) since its state was read
            return container, None
        return container, measure(pids)

    def health(self, container: Entity) -> str:
        """inspect's ``State.Health.Status``; ``none`` without a health check."""
        health = inspect_document(container, self.root)["State"].get("Health") or {}
        return str(health.get("Status") or "none")

    def read_logs(
        self,
        ref: str | Entity,
        *,
        follow: bool = False,
        since_ns: int = 0,
        until_ns: int = 0,
        tail: int = -1,
        time_left: TimeLeft | None = None,
    ) -> Iterator[LogEntry]:
        """The container's log entries, as ``docker logs`` selects them.

        The last ``tail`` entries (all when negative), then those at or after
        ``since_ns`` and at or before ``until_ns`` (0: no bound; nanoseconds
        since the epoch). With ``follow``, new entries as they come, until the
        container stops (or ``until_ns`` passes); DeadlineExceeded once the
        caller has gone.
        """
        container = self.get(ref)
        return log_entries(
            self.logs(container),  # Conflict for another node's container
            LogWindow(since_ns, until_ns, tail, follow),
            running=lambda: self._running(container.id),
            wait=lambda: _pause(time_left),
        )

    def _running(self, container_id: str) -> bool:
        try:
            return self.engine.get(container_id).in_state("running")
        except NotFound:
            return False

    def prune(self, filters: Filters | None = None) -> _Ids:
        """Remove every stopped container the filters select; the IDs removed.

        ``until`` (a Unix timestamp) and ``label``/``label!`` filters (moby's); removals run in
        bulk, and one that fails is logged and skipped, as moby's prune does.
        Conflict while another prune runs.
        """
        plan = Prune.of(filters or {})
        if not self._pruning.acquire(blocking=False):
            raise Conflict("a prune operation is already running")
        try:
            chosen = [
                e.id
                for e in self.list(all=True)
                if status_of(e.configuration, e.data) not in RUNNING and plan.selects(e)
            ]
            results = self.engine.fire_many(
                [(cid, "remove", {"force": False}) for cid in chosen], concurrency=_IN_PARALLEL
            )
        finally:
            self._pruning.release()
        removed = []
        for cid, result in zip(chosen, results, strict=True):
            if isinstance(result, ChartdError):
                log.warning("failed to prune container %s: %s", cid, result.message)
            else:
                removed.append(cid)
        return removed


def _pause(time_left: TimeLeft | None) -> None:
    """Between looks at a followed log: DeadlineExceeded once the caller has gone."""
    calls.check(time_left)
    time.sleep(_FOLLOW_POLL)
