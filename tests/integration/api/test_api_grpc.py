"""The gRPC API of a real daemon: lifecycle, error statuses, Watch resumption, bad input."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from api_daemon import Daemon, failure
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from engine.api import Client
from engine.api.chartd.v1 import containers_pb2 as c
from engine.api.chartd.v1 import engine_pb2 as e

_names = (f"g{n}" for n in itertools.count())


def name() -> str:
    return next(_names) + "x"


def run(client: Client, *cmd: str, **create: Any) -> c.CreateContainerResponse:
    created = client.containers.Create(
        c.CreateContainerRequest(cmd=list(cmd) or ["sleep", "60"], name=name(), **create)
    )
    client.containers.Start(c.StartContainerRequest(container=created.id))
    return created


def fails(call: Callable[..., Any], request: Any) -> tuple[grpc.StatusCode, str, str]:
    with pytest.raises(grpc.RpcError) as info:
        result = call(request)
        if hasattr(result, "__iter__"):
            list(result)  # a stream fails at its first message
    return failure(info.value)


def test_lifecycle_over_grpc(client: Client) -> None:
    cs = client.containers
    created = cs.Create(c.CreateContainerRequest(cmd=["sleep", "60"], name="grpc-web"))
    assert created.name == "/grpc-web"
    ref = created.id[:8]
    started = cs.Start(c.StartContainerRequest(container=ref))
    assert (started.state, started.id) == ("running", created.id) and started.pid > 0
    assert started.HasField("started_at") and not started.HasField("finished_at")
    assert cs.Pause(c.PauseContainerRequest(container=ref)).state == "paused"
    assert cs.Unpause(c.UnpauseContainerRequest(container=ref)).state == "running"
    # A signal the process ignores: it keeps running.
    assert cs.Kill(c.KillContainerRequest(container=ref, signal="SIGWINCH")).state == "running"
    restarted = cs.Restart(c.RestartContainerRequest(container=ref, timeout=5))
    assert restarted.state == "running" and restarted.pid not in (0, started.pid)
    stopped = cs.Stop(c.StopContainerRequest(container=ref, timeout=5, signal="SIGKILL"))
    assert (stopped.state, stopped.exit_code, stopped.pid) == ("exited", 137, 0)
    waited = cs.Wait(c.WaitContainerRequest(container="grpc-web"))
    assert (waited.status_code, waited.error) == (137, "")
    renamed = cs.Rename(c.RenameContainerRequest(container=ref, new_name="grpc-web2"))
    assert renamed.name == "/grpc-web2"
    listed = cs.List(
        c.ListContainersRequest(all=True, filters=[c.Filter(key="name", value="grpc-web2")])
    )
    assert [x.id for x in listed.containers] == [created.id]
    assert cs.Remove(c.RemoveContainerRequest(container=ref)).state == "removed"
    code, _, message = fails(cs.Inspect, c.InspectContainerRequest(container=created.id))
    assert code == grpc.StatusCode.NOT_FOUND and created.id in message  # gone, as in moby


def test_wait_for_a_removal(client: Client) -> None:
    cs = client.containers
    created = run(client, "sleep", "60", auto_remove=True)
    removed = cs.Wait.future(c.WaitContainerRequest(container=created.id, condition="removed"))
    time.sleep(0.5)  # let the wait begin: a wait for a container already gone is NOT_FOUND
    cs.Kill(c.KillContainerRequest(container=created.id))
    assert removed.result(timeout=30).status_code == 137


def test_the_engine_service(client: Client) -> None:
    first, second = run(client), run(client)
    charts = client.engine.ListCharts(e.ListChartsRequest()).charts
    assert [ch.name for ch in charts] == ["container"]
    exported = client.engine.GetChart(e.GetChartRequest(name="container", format="mermaid"))
    assert exported.export.startswith("stateDiagram-v2") and "running" in exported.chart.states
    got = client.engine.GetEntity(e.GetEntityRequest(entity=first.id))
    assert got.state == "running.active.health.none" and got.data.fields["pid"].number_value > 0
    page = client.engine.ListEntities(
        e.ListEntitiesRequest(chart="container", status="running", page_size=1)
    )
    assert len(page.entities) == 1 and page.next_page_token
    rest = client.engine.ListEntities(
        e.ListEntitiesRequest(chart="container", status="running", page_token=page.next_page_token)
    )
    assert {x.id for x in rest.entities} >= {first.id, second.id} - {page.entities[0].id}
    # A fire with an idempotency key, repeated: replayed, nothing runs again.
    params = struct_pb2.Struct()
    params.update({"signal": "SIGKILL"})
    fire = e.FireRequest(entity=second.id, event="kill", params=params, idempotency_key="k-1")
    once = client.engine.Fire(fire)
    again = client.engine.Fire(fire)
    assert (once.replayed, again.replayed) == (False, True)
    assert once.transition_id == again.transition_id
    history = client.engine.GetHistory(e.GetHistoryRequest(entity=second.id)).transitions
    assert [t.event for t in history][:2] == ["start", "kill"]
    assert history[0].steps[-1].name == "task_start" and history[0].status == "committed"
    for ref in (first.id, second.id):
        client.containers.Remove(c.RemoveContainerRequest(container=ref, force=True))


def test_every_category_the_daemon_raises_has_its_code_and_reason(client: Client) -> None:
    cs = client.containers
    paused = run(client)
    cs.Pause(c.PauseContainerRequest(container=paused.id))
    running = run(client)
    cases = [
        (cs.Start, c.StartContainerRequest(container="nosuch"), "NOT_FOUND", "NOT_FOUND"),
        (
            cs.Create,
            c.CreateContainerRequest(cmd=["true"], restart_policy="sometimes"),
            "INVALID_ARGUMENT",
            "INVALID_PARAMETER",
        ),
        (cs.Start, c.StartContainerRequest(container=paused.id), "FAILED_PRECONDITION", "CONFLICT"),
        (
            cs.Start,
            c.StartContainerRequest(container=running.id),
            "FAILED_PRECONDITION",
            "NOT_MODIFIED",
        ),
    ]
    checkpoint = struct_pb2.Struct()
    checkpoint.update({"checkpoint_dir": "/tmp/cp"})
    cases.append(
        (
            client.engine.Fire,
            e.FireRequest(entity=running.id, event="start", params=checkpoint),
            # The chart refuses a start of a running container before any guard runs.
            "FAILED_PRECONDITION",
            "NOT_MODIFIED",
        )
    )
    stopped = client.containers.Create(c.CreateContainerRequest(cmd=["true"], name=name()))
    cases.append(
        (
            client.engine.Fire,
            e.FireRequest(entity=stopped.id, event="start", params=checkpoint),
            "PERMISSION_DENIED",
            "FORBIDDEN",
        )
    )
    for call, request, code, reason in cases:
        got_code, got_reason, message = fails(call, request)
        assert (got_code.name, got_reason) == (code, reason), (request, message)
        assert message
    for ref in (paused.id, running.id, stopped.id):
        cs.Remove(c.RemoveContainerRequest(container=ref, force=True))


def test_watch_resumes_from_a_sequence_after_a_reconnect(daemon: Daemon) -> None:
    with daemon.client() as first:
        since = first.engine.GetSequence(e.GetSequenceRequest()).sequence
        created = run(first)
        stream = first.engine.Watch(e.WatchRequest(since=since, entity=created.id))
        seen = [next(stream), next(stream)]  # create, then the start's events
        stream.cancel()
    assert [ev.seq for ev in seen] == sorted(ev.seq for ev in seen)
    assert seen[0].type == "create" and seen[0].entity_id == created.id
    last = seen[-1].seq

    with daemon.client() as second:  # meanwhile: a pause, then a reconnect
        second.containers.Pause(c.PauseContainerRequest(container=created.id))
        until = second.engine.GetSequence(e.GetSequenceRequest()).sequence
        resumed = []
        for ev in second.engine.Watch(e.WatchRequest(since=last, entity=created.id)):
            resumed.append(ev)
            if ev.seq >= until or ev.type == "pause":
                break
        everything = list(
            second.containers.Events(
                c.EventsRequest(
                    since=since, until=until, filters=[c.Filter(key="container", value=created.id)]
                )
            )
        )
        second.containers.Remove(c.RemoveContainerRequest(container=created.id, force=True))
    # Nothing repeated, nothing lost: the first event after `last` is the next one of
    # the entity, and the pause committed while no one watched arrives.
    assert all(ev.seq > last for ev in resumed)
    assert "pause" in [ev.type for ev in resumed]
    actions = [ev.action for ev in everything]
    assert actions == ["create", "start", "pause"]
    assert [ev.seq for ev in everything] == sorted({ev.seq for ev in everything})


def test_a_stream_ends_when_its_client_goes(daemon: Daemon) -> None:
    with daemon.client() as c1:
        stream = c1.containers.Events(c.EventsRequest())
        got: list[Any] = []

        def read() -> None:
            try:
                got.extend(stream)
            except grpc.RpcError as exc:
                got.append(exc.code())

        reader = threading.Thread(target=read)
        reader.start()
        stream.cancel()
        reader.join(10)
        assert not reader.is_alive()
        assert got[-1] == grpc.StatusCode.CANCELLED


BIG = "x" * 1_000_000


@pytest.mark.parametrize(
    ("method", "request_", "code", "says"),
    [
        ("Start", c.StartContainerRequest(container="nosuch"), "NOT_FOUND", "No such container"),
        ("Start", c.StartContainerRequest(container=""), "INVALID_ARGUMENT", "is required"),
        ("Stop", c.StopContainerRequest(container=BIG), "INVALID_ARGUMENT", "too long"),
        ("Start", c.StartContainerRequest(container="a\x00b"), "INVALID_ARGUMENT", "NUL"),
        ("Create", c.CreateContainerRequest(), "INVALID_ARGUMENT", "No command specified"),
        ("Create", c.CreateContainerRequest(cmd=[BIG]), "INVALID_ARGUMENT", "too long"),
        ("Create", c.CreateContainerRequest(cmd=["a\x00"]), "INVALID_ARGUMENT", "NUL"),
        (
            "Create",
            c.CreateContainerRequest(cmd=["true"], name="bad name!"),
            "INVALID_ARGUMENT",
            "Invalid container name",
        ),
        (
            "Create",
            c.CreateContainerRequest(cmd=["true"], env={"A=B": "1"}),
            "INVALID_ARGUMENT",
            "may not contain '='",
        ),
        (
            "Create",
            c.CreateContainerRequest(cmd=["true"], labels={"": "x"}),
            "INVALID_ARGUMENT",
            "label key is required",
        ),
        (
            "Create",
            c.CreateContainerRequest(cmd=["true"], restart_policy="on-failure:x"),
            "INVALID_ARGUMENT",
            "maximum retry count must be an integer",
        ),
        (
            "Create",
            c.CreateContainerRequest(cmd=["true"], restart_policy="always:3"),
            "INVALID_ARGUMENT",
            "only be used with 'on-failure'",
        ),
        (
            "Create",
            c.CreateContainerRequest(cmd=["true"], stop_signal="SIGNOPE"),
            "INVALID_ARGUMENT",
            "invalid signal",
        ),
        (
            "Create",
            c.CreateContainerRequest(cmd=["true"], working_dir="relative"),
            "INVALID_ARGUMENT",
            "absolute path",
        ),
        ("Kill", c.KillContainerRequest(container="nosuch", signal="9"), "NOT_FOUND", "No such"),
        (
            "List",
            c.ListContainersRequest(filters=[c.Filter(key="color", value="red")]),
            "INVALID_ARGUMENT",
            "invalid filter 'color'",
        ),
        (
            "List",
            c.ListContainersRequest(filters=[c.Filter(key="status", value="sleepy")]),
            "INVALID_ARGUMENT",
            "invalid filter 'status=sleepy'",
        ),
        (
            "Wait",
            c.WaitContainerRequest(container="nosuch", condition="whenever"),
            "INVALID_ARGUMENT",
            "invalid condition",
        ),
        ("Events", c.EventsRequest(since=2**64 - 1), "INVALID_ARGUMENT", "out of range"),
        ("Logs", c.LogsRequest(container="nosuch"), "NOT_FOUND", "No such container"),
    ],
)
def test_bad_container_requests_are_refused_clearly(
    client: Client, method: str, request_: Any, code: str, says: str
) -> None:
    got_code, reason, message = fails(getattr(client.containers, method), request_)
    assert got_code.name == code and reason, message
    assert says in message
    assert len(message) < 400  # a huge field is never echoed back whole


def test_bad_signals_on_a_live_container(client: Client) -> None:
    live = run(client)
    for call, request in [
        (client.containers.Kill, c.KillContainerRequest(container=live.id, signal="SIGFOO")),
        (client.containers.Kill, c.KillContainerRequest(container=live.id, signal="99999")),
        (client.containers.Stop, c.StopContainerRequest(container=live.id, signal="-1")),
        (client.containers.Restart, c.RestartContainerRequest(container=live.id, signal="X")),
    ]:
        got_code, reason, message = fails(call, request)
        assert (got_code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PARAMETER")
        assert "invalid signal" in message or "does not support signal 99999" in message
    assert client.containers.Inspect(c.InspectContainerRequest(container=live.id)).state.running
    client.containers.Remove(c.RemoveContainerRequest(container=live.id, force=True))


def test_bad_engine_requests_are_refused_clearly(client: Client) -> None:
    live = run(client)
    cases = [
        (e.FireRequest(entity=live.id, event="strat"), "INVALID_ARGUMENT", "unknown event 'strat'"),
        (e.FireRequest(entity="nosuch", event="start"), "NOT_FOUND", "nosuch"),
        (e.FireRequest(entity=live.id, event=""), "INVALID_ARGUMENT", "event is required"),
        (
            e.FireRequest(entity=live.id, event="stop", idempotency_key=BIG),
            "INVALID_ARGUMENT",
            "too long",
        ),
    ]
    for request, code, says in cases:
        got_code, _, message = fails(client.engine.Fire, request)
        assert (got_code.name, says in message) == (code, True), message
    for request_, code, says in [
        (e.GetChartRequest(name="nochart"), "NOT_FOUND", "no chart 'nochart'"),
        (e.GetChartRequest(name="container", format="svgz"), "INVALID_ARGUMENT", "export format"),
    ]:
        got_code, _, message = fails(client.engine.GetChart, request_)
        assert (got_code.name, says in message) == (code, True), message
    got_code, _, message = fails(
        client.engine.ListEntities, e.ListEntitiesRequest(page_token="not-a-token")
    )
    assert got_code.name == "INVALID_ARGUMENT" and "invalid page token" in message
    got_code, _, message = fails(client.engine.ListEntities, e.ListEntitiesRequest(page_size=5000))
    assert got_code.name == "INVALID_ARGUMENT" and "1000" in message
    client.containers.Remove(c.RemoveContainerRequest(container=live.id, force=True))


def test_malformed_bytes_are_invalid_arguments_and_the_daemon_keeps_serving(
    client: Client,
) -> None:
    def raw(method: str, payload: bytes) -> tuple[grpc.StatusCode, str, str]:
        call = client.channel.unary_unary(
            method, request_serializer=lambda b: b, response_deserializer=lambda b: b
        )
        return fails(call, payload)

    garbage = raw("/chartd.v1.Containers/Start", b"\xff\xff\xff\xff")
    not_utf8 = raw("/chartd.v1.Containers/Start", b"\x0a\x02\xff\xfe")  # field 1, bad UTF-8
    for code, reason, message in (garbage, not_utf8):
        assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PARAMETER")
        assert message.startswith("malformed Containers.Start request")
    unknown = raw("/chartd.v1.Containers/Explode", b"")
    assert unknown[0] == grpc.StatusCode.UNIMPLEMENTED
    # After all of it, the daemon answers as before.
    assert client.engine.Version(e.VersionRequest()).api_version == "chartd.v1"
    health = client.health_check(health_pb2.HealthCheckRequest(service="chartd.v1.Containers"))
    assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_health_and_reflection(client: Client) -> None:
    for service in ("", "chartd.v1.Engine", "chartd.v1.Containers"):
        answer = client.health_check(health_pb2.HealthCheckRequest(service=service))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    stub = reflection_pb2_grpc.ServerReflectionStub(client.channel)
    answers = list(
        stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    )
    names = {s.name for s in answers[0].list_services_response.service}
    assert {"chartd.v1.Engine", "chartd.v1.Containers", "grpc.health.v1.Health"} <= names
