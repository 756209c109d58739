"""The Containers service: thin forwarding to a container service.

The servicer sees the container chart's service only through
:class:`~engine.api.container_port.ContainerService` (the API room never
imports ``statecharts``); the daemon's composition root hands it
``statecharts.container.service.Containers``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import grpc
from google.protobuf import timestamp_pb2

import engine
from engine.api import _fields, paging
from engine.api._convert import timestamp
from engine.api._event_times import EventClock, Window, earlier_events
from engine.api.admission import time_left
from engine.api.chartd.v1 import containers_pb2, containers_pb2_grpc
from engine.api.container_port import (
    ContainerService,
    LogLine,
    OutputTap,
    ProcessTable,
    StatusOf,
    TimeLeft,
)
from engine.api.hostinfo import host_cpu, mem_total
from engine.api.times import unix_seconds
from engine.errors import InvalidParameter

__all__ = [
    "CONDITIONS",
    "STATUSES",
    "ContainerService",
    "ContainersServicer",
    "LogLine",
    "OutputTap",
    "ProcessTable",
    "StatusOf",
    "TimeLeft",
]

STATUSES = ("created", "running", "paused", "restarting", "removing", "exited", "dead")
"""moby's container statuses, as ``ps --filter status=`` accepts them."""

CONDITIONS = ("not-running", "next-exit", "removed")
"""What Wait can wait for, as moby's wait conditions."""

# The engine's own events (one per committed transition) are not docker's container
# events: Events sends them only when a filter asks for them by name.
_ENGINE_EVENTS = frozenset({"transition"})
_EVENT_FILTERS = ("container", "event", "type")
_SLICE = 1.0  # seconds a stream waits for events before it checks its client is there
_Ids = list[str]


class ContainersServicer(containers_pb2_grpc.ContainersServicer):
    """Serves ``chartd.v1.Containers``.

    ``status_of`` gives moby's status string of a container; events come
    from ``eng``'s outbox, entities of ``chart`` only.
    """

    def __init__(
        self,
        containers: ContainerService,
        eng: engine.Engine,
        *,
        status_of: StatusOf,
        chart: str = "container",
    ) -> None:
        self.containers = containers
        self.engine = eng
        self.status_of = status_of
        self.chart = chart

    # -- lifecycle ---------------------------------------------------------------------

    def Create(
        self, request: containers_pb2.CreateContainerRequest, context: grpc.ServicerContext
    ) -> containers_pb2.CreateContainerResponse:
        # Their shape here; what a container may store in all is the service's cap.
        _fields.check_args(request.cmd, "cmd")
        _fields.check_map(request.env, "env", forbid_eq=True)
        _fields.check_map(request.labels, "label")
        created = self.containers.create(
            list(request.cmd),
            name=_fields.optional_text(request.name, "container name"),
            env=dict(request.env),
            working_dir=_fields.optional_text(
                request.working_dir, "working directory", limit=_fields.MAX_PATH
            ),
            labels=dict(request.labels),
            stop_signal=_fields.optional_text(request.stop_signal, "stop signal", limit=32),
            stop_timeout=request.stop_timeout if request.HasField("stop_timeout") else None,
            restart=_fields.optional_text(request.restart_policy, "restart policy", limit=64),
            auto_remove=request.auto_remove,
            healthcheck=_healthcheck_of(request),
        )
        return containers_pb2.CreateContainerResponse(
            id=created.id, name=str(created.data.get("name", ""))
        )

    def Start(
        self, request: containers_pb2.StartContainerRequest, context: grpc.ServicerContext
    ) -> containers_pb2.ContainerSummary:
        ref = _ref(request.container)
        return self._summary(self.containers.start(ref, time_left=_caller(context)))

    def Stop(
        self, request: containers_pb2.StopContainerRequest, context: grpc.ServicerContext
    ) -> containers_pb2.ContainerSummary:
        ref = _ref(request.container)
        timeout = request.timeout if request.HasField("timeout") else None
        signal = _fields.optional_text(request.signal, "signal", limit=32)
        return self._summary(
            self.containers.stop(ref, timeout=timeout, signal=signal, time_left=_caller(context))
        )

    def Kill(
        self, request: containers_pb2.KillContainerRequest, context: grpc.ServicerContext
    ) -> containers_pb2.ContainerSummary:
        ref = _ref(request.container)
        signal = _fields.optional_text(request.signal, "signal", limit=32)
        return self._summary(self.containers.kill(ref, signal=signal, time_left=_caller(context)))

    def Pause(
        self, request: containers_pb2.PauseContainerRequest, context: grpc.ServicerContext
    ) -> containers_pb2.ContainerSummary:
        ref = _ref(request.container)
        return self._summary(self.containers.pause(ref, time_left=_caller(context)))

    def Unpause(
        self, request: containers_pb2.UnpauseContainerRequest, context: grpc.ServicerContext
    ) -> containers_pb2.ContainerSummary:
        ref = _ref(request.container)
        return self._summary(self.containers.unpause(ref, time_left=_caller(context)))

    def Restart(
        self, request: containers_pb2.RestartContainerRequest, context: grpc.ServicerContext
    ) -> containers_pb2.ContainerSummary:
        timeout = request.timeout if request.HasField("timeout") else None
        ref = _ref(request.container)
        signal = _fields.optional_text(request.signal, "signal", limit=32)
        return self._summary(
            self.containers.restart(ref, timeout=timeout, signal=signal, time_left=_caller(context))
        )

    def Remove(
        self, request: containers_pb2.RemoveContainerRequest, context: grpc.ServicerContext
    ) -> containers_pb2.ContainerSummary:
        ref = _ref(request.container)
        return self._summary(
            self.containers.remove(ref, force=request.force, time_left=_caller(context))
        )

    def Rename(
        self, request: containers_pb2.RenameContainerRequest, context: grpc.ServicerContext
    ) -> containers_pb2.ContainerSummary:
        ref = _ref(request.container)
        new_name = _fields.check_text(request.new_name, "new name")
        return self._summary(self.containers.rename(ref, new_name, time_left=_caller(context)))

    # -- looking -----------------------------------------------------------------------

    def Inspect(
        self, request: containers_pb2.InspectContainerRequest, context: grpc.ServicerContext
    ) -> containers_pb2.ContainerInspect:
        d = self.containers.inspect(_ref(request.container))
        state, config, host = d["State"], d["Config"], d["HostConfig"]
        policy = host["RestartPolicy"]
        return containers_pb2.ContainerInspect(
            id=d["Id"],
            name=d["Name"] or "",
            created=d.get("Created", ""),
            state=containers_pb2.ContainerState(
                status=state["Status"],
                running=state["Running"],
                paused=state["Paused"],
                restarting=state["Restarting"],
                oom_killed=state["OOMKilled"],
                dead=state["Dead"],
                pid=state["Pid"],
                exit_code=state["ExitCode"],
                error=state["Error"],
                started_at=state["StartedAt"],
                finished_at=state["FinishedAt"],
                health=_health(state.get("Health")),
            ),
            restart_count=d["RestartCount"],
            config=containers_pb2.ContainerConfig(
                cmd=config["Cmd"],
                env=config["Env"],
                working_dir=config["WorkingDir"],
                labels=config["Labels"],
                stop_signal=config["StopSignal"],
                stop_timeout=config["StopTimeout"],
                healthcheck=_healthcheck(config.get("Healthcheck")),
            ),
            host_config=containers_pb2.HostConfig(
                restart_policy=containers_pb2.RestartPolicy(
                    name=policy["Name"], maximum_retry_count=policy["MaximumRetryCount"]
                ),
                auto_remove=host["AutoRemove"],
            ),
            log_path=d.get("LogPath", ""),
            ip_address=(d.get("NetworkSettings") or {}).get("IPAddress", ""),
            exec_ids=d.get("ExecIDs") or (),
        )

    def List(
        self, request: containers_pb2.ListContainersRequest, context: grpc.ServicerContext
    ) -> containers_pb2.ListContainersResponse:
        filters = _filters(request.filters)
        limit = paging.page_size(request.page_size)
        after = _position(request.page_token)
        found = sorted(self.containers.list(all=request.all, filters=filters), key=_order)
        listed = (
            (e, self._summary(e)) for e in reversed(found) if after is None or _order(e) < after
        )
        page, more = paging.fill(listed, lambda pair: pair[1].ByteSize(), limit)
        return containers_pb2.ListContainersResponse(
            containers=[summary for _, summary in page],
            next_page_token=_token(page[-1][0]) if more else "",
        )

    def Wait(
        self, request: containers_pb2.WaitContainerRequest, context: grpc.ServicerContext
    ) -> containers_pb2.WaitContainerResponse:
        condition = _fields.check_text(request.condition or "not-running", "condition", limit=32)
        if condition not in CONDITIONS:  # before the lookup: a bad request is bad for any name
            raise InvalidParameter(
                f'invalid condition: "{condition}" (use {", ".join(CONDITIONS)})'
            )
        # By ID from here on: a rename must not lose the waiter. One call, that ends
        # when its client goes: at its deadline, or when it cancels.
        container = self.containers.get(_ref(request.container)).id
        code, error = self.containers.wait(container, condition, time_left=_caller(context))
        return containers_pb2.WaitContainerResponse(status_code=code, error=error)

    def Logs(
        self, request: containers_pb2.LogsRequest, context: grpc.ServicerContext
    ) -> Iterator[containers_pb2.LogChunk]:
        entries = self.containers.read_logs(
            _ref(request.container),
            follow=request.follow,
            since_ns=_fields.timestamp_ns(request, "since_time", "since") or 0,
            until_ns=_fields.timestamp_ns(request, "until_time", "until") or 0,
            tail=request.tail if request.HasField("tail") else -1,
            time_left=_caller(context),
        )
        for entry in entries:
            if not context.is_active():
                return
            yield containers_pb2.LogChunk(
                data=entry.data,
                stream=entry.stream,
                time=timestamp_pb2.Timestamp(
                    seconds=entry.time_ns // 10**9, nanos=entry.time_ns % 10**9
                ),
            )

    def Update(
        self, request: containers_pb2.UpdateContainerRequest, context: grpc.ServicerContext
    ) -> containers_pb2.ContainerSummary:
        ref = _ref(request.container)
        policy = _fields.optional_text(request.restart_policy, "restart policy", limit=64)
        return self._summary(
            self.containers.update(ref, restart=policy, time_left=_caller(context))
        )

    def Top(
        self, request: containers_pb2.TopRequest, context: grpc.ServicerContext
    ) -> containers_pb2.TopResponse:
        ps_args = _fields.optional_text(request.ps_args, "ps options", limit=4096) or ""
        table = self.containers.top(_ref(request.container), ps_args)
        return containers_pb2.TopResponse(
            titles=table.titles,
            processes=[containers_pb2.TopProcess(cells=row) for row in table.processes],
        )

    def Stats(
        self, request: containers_pb2.StatsRequest, context: grpc.ServicerContext
    ) -> containers_pb2.StatsResponse:
        found, usage = self.containers.stats(_ref(request.container))
        host = host_cpu()
        answer = containers_pb2.StatsResponse(
            id=found.id,
            name=found.name,
            running=usage is not None,
            system_cpu_ns=host.usage_ns,
            online_cpus=host.online,
            memory_limit=mem_total(),
        )
        if usage is not None:
            answer.read_time.FromNanoseconds(usage.read_ns)
            answer.cpu_user_ns, answer.cpu_kernel_ns = usage.user_ns, usage.kernel_ns
            answer.memory_usage, answer.pids = usage.memory_usage, usage.threads
            answer.block_read, answer.block_write = usage.read_bytes, usage.write_bytes
        return answer

    def Prune(
        self, request: containers_pb2.PruneContainersRequest, context: grpc.ServicerContext
    ) -> containers_pb2.PruneContainersResponse:
        filters = _filters(request.filters)
        if "until" in filters:
            # docker's time forms, read against the daemon's clock as moby reads them
            filters["until"] = [unix_seconds(v) for v in filters["until"]]
        deleted = self.containers.prune(filters)
        return containers_pb2.PruneContainersResponse(deleted=deleted, space_reclaimed=0)

    def Events(
        self, request: containers_pb2.EventsRequest, context: grpc.ServicerContext
    ) -> Iterator[containers_pb2.ContainerEvent]:
        last = _fields.sequence(request.since, "since")
        until = _fields.sequence(request.until, "until") or None
        window = Window(
            _fields.timestamp_ns(request, "since_time", "since"),
            _fields.timestamp_ns(request, "until_time", "until"),
        )
        wanted = _event_filter(request.filters, self.chart)
        if window.after(time.time_ns()):
            # The window has closed: what is stored, then the end (docker's past events).
            newest = self.engine.sequence()
            until = min(until, newest) if until else newest
        clock = EventClock(earlier_events(self.engine))
        while context.is_active() and (until is None or last < until):
            for ev in self.engine.watch(last, timeout=_slice(window)):
                last = ev.seq
                if until is not None and ev.seq > until:
                    return
                at = clock.time_ns(ev)
                if window.after(at):
                    return
                if wanted(ev) and not window.before(at):
                    yield containers_pb2.ContainerEvent(
                        seq=ev.seq,
                        action=ev.type,
                        id=ev.entity_id,
                        name=ev.entity_name,
                        attributes={str(k): str(v) for k, v in ev.attributes.items()},
                        time=timestamp_pb2.Timestamp(seconds=at // 10**9, nanos=at % 10**9),
                    )
                if (until is not None and last >= until) or not context.is_active():
                    return
            if window.after(time.time_ns()):
                return

    # -- helpers -----------------------------------------------------------------------

    def _summary(self, e: engine.Entity) -> containers_pb2.ContainerSummary:
        d = e.data
        state = self.status_of(e.configuration, e.data)
        # As inspect: the pid of a process that runs (a restart's old one, until it stops).
        running = state in ("running", "paused")
        return containers_pb2.ContainerSummary(
            id=e.id,
            name=str(d.get("name", "")),
            cmd=[str(a) for a in d.get("cmd") or ()],
            created=timestamp(e.created_at),
            state=state,
            labels={str(k): str(v) for k, v in (d.get("labels") or {}).items()},
            exit_code=int(d.get("exit_code") or 0),
            started_at=timestamp(d.get("started_at")),
            finished_at=timestamp(d.get("finished_at")),
            restart_count=int(d.get("restart_count") or 0),
            pid=int(d.get("pid") or 0) if running else 0,
            health=self.containers.health_of(e) or "",
        )


_DURATIONS = ("interval", "timeout", "start_period", "start_interval")


def _healthcheck_of(request: containers_pb2.CreateContainerRequest) -> dict[str, Any] | None:
    """The create's HealthConfig, its shape checked (what it means is the service's to check)."""
    if not request.HasField("healthcheck"):
        return None
    hc = request.healthcheck
    _fields.check_args(hc.test, "healthcheck test")
    out: dict[str, Any] = {"test": list(hc.test), "retries": hc.retries}
    for key in _DURATIONS:
        value = getattr(hc, key)
        if not math.isfinite(value):
            raise InvalidParameter(f"healthcheck {key} must be a finite number of seconds")
        out[key] = value
    return out


def _health(health: Mapping[str, Any] | None) -> containers_pb2.Health | None:
    if not health:
        return None
    return containers_pb2.Health(
        status=health["Status"],
        failing_streak=health["FailingStreak"],
        log=[
            containers_pb2.HealthLog(
                start=e["Start"], end=e["End"], exit_code=e["ExitCode"], output=e["Output"]
            )
            for e in health["Log"]
        ],
    )


def _healthcheck(config: Mapping[str, Any] | None) -> containers_pb2.Healthcheck | None:
    """Config.Healthcheck (nanoseconds, as moby's JSON) back into seconds."""
    if not config:
        return None
    return containers_pb2.Healthcheck(
        test=config["Test"],
        interval=config.get("Interval", 0) / 1e9,
        timeout=config.get("Timeout", 0) / 1e9,
        start_period=config.get("StartPeriod", 0) / 1e9,
        start_interval=config.get("StartInterval", 0) / 1e9,
        retries=config.get("Retries", 0),
    )


def _caller(context: grpc.ServicerContext) -> TimeLeft:
    """How long the call's client still waits, asked afresh each time."""
    return lambda: time_left(context)


def _ref(value: str) -> str:
    return _fields.check_text(value, "container name or ID")


def _filters(
    given: Sequence[containers_pb2.Filter], known: Sequence[str] | None = None
) -> dict[str, _Ids]:
    """Filter values by key; a key not in ``known`` is refused (None: the service checks)."""
    out: dict[str, _Ids] = {}
    for f in given:
        key = _fields.check_text(f.key, "filter key", limit=32)
        if known is not None and key not in known:
            raise InvalidParameter(f"invalid filter '{key}' (use {', '.join(known)})")
        out.setdefault(key, []).append(_fields.check_text(f.value, f"filter {key}", limit=512))
    return out


def _order(e: engine.Entity) -> tuple[float, str]:
    """Where a container stands in a listing (newest first: the highest goes first)."""
    return (float(e.created_at), e.id)


def _token(e: engine.Entity) -> str:
    """The page token of a listing that ended with ``e``: exact, as repr keeps a float."""
    created, cid = _order(e)
    return f"{created!r}/{cid}"


def _position(token: str) -> tuple[float, str] | None:
    """The position a page token stands for (None: the start)."""
    if not token:
        return None
    created, _, cid = _fields.check_text(token, "page token", limit=200).partition("/")
    try:
        position = (float(created), cid)
    except ValueError:
        position = (math.nan, "")
    if not math.isfinite(position[0]) or not cid:
        raise InvalidParameter(f"invalid page token {token[:40]!r}: pass next_page_token back")
    return position


def _event_filter(
    filters: Sequence[containers_pb2.Filter], chart: str
) -> Callable[[engine.Event], bool]:
    """Whether an event of the outbox is one the Events ``filters`` ask for."""
    given = _filters(filters, _EVENT_FILTERS)
    for kind in given.get("type", ()):
        if kind != "container":
            raise InvalidParameter(f"invalid filter 'type={kind}': only 'container' events")
    wanted = {v.lstrip("/") for v in given.get("container", ())}
    actions = set(given.get("event", ()))

    def keep(ev: engine.Event) -> bool:
        return (
            ev.chart == chart
            and (ev.type in actions if actions else ev.type not in _ENGINE_EVENTS)
            and (
                not wanted
                or ev.entity_name in wanted
                or any(ev.entity_id.startswith(w) for w in wanted)
            )
        )

    return keep


def _slice(window: Window) -> float:
    """How long a stream waits for events before it looks again: less, near the window's end."""
    if window.until_ns is None:
        return _SLICE
    return min(_SLICE, max(0.01, (window.until_ns - time.time_ns()) / 1e9))
