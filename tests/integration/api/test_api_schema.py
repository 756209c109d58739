"""The generic Engine API gets the container chart's checks too: its schema is the engine's.

Through ``CreateEntity`` and ``Fire`` a caller reaches the container chart
without the Containers service: data of the wrong shape, a command that is
a string, params that are not what the chart takes are refused with
INVALID_ARGUMENT naming the field, and nothing is acted on. A name given in
the data is the entity's own, so no listing shows two containers with one.
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from api_daemon import failure
from google.protobuf import struct_pb2

from engine.api import Client
from engine.api.chartd.v1 import containers_pb2 as c
from engine.api.chartd.v1 import engine_pb2 as e


def struct(values: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(values)
    return message


def refused(call: Any, request: Any) -> str:
    """The message of a call refused with INVALID_ARGUMENT."""
    with pytest.raises(grpc.RpcError) as info:
        call(request)
    code, reason, message = failure(info.value)
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PARAMETER"), message
    return message


def create(client: Client, name: str, **data: Any) -> e.Entity:
    request = e.CreateEntityRequest(chart="container", name=name, data=struct(data))
    return client.engine.CreateEntity(request)


def test_create_entity_refuses_data_the_container_chart_does_not_take(client: Client) -> None:
    request = e.CreateEntityRequest(
        chart="container", name="bad-code", data=struct({"cmd": ["true"], "exit_code": [1]})
    )
    assert "exit_code: expected an integer" in refused(client.engine.CreateEntity, request)
    request = e.CreateEntityRequest(
        chart="container", name="bad-cmd", data=struct({"cmd": "sleep 5"})
    )
    assert "cmd: expected an array, got a string" in refused(client.engine.CreateEntity, request)
    # Nothing was created, and every listing and inspect still answers.
    listed = client.containers.List(c.ListContainersRequest(all=True)).containers
    assert not {x.name for x in listed} & {"/bad-code", "/bad-cmd"}
    for x in listed:
        client.containers.Inspect(c.InspectContainerRequest(container=x.id))


def test_fire_refuses_params_the_container_chart_does_not_take(client: Client) -> None:
    made = create(client, "schema-running", cmd=["sleep", "60"])
    client.containers.Start(c.StartContainerRequest(container=made.id))
    for event, params, field in [
        ("remove", {"force": "no"}, "force: expected a boolean"),
        ("stop", {"timeout": "soon"}, "timeout: expected an integer"),
        ("kill", {"signal": ["KILL"]}, "signal: expected a string or an integer"),
        ("exit", {"exit_code": "x", "pid": 1}, "exit_code: expected an integer"),
        ("exit", {"exit_code": 300}, "exit_code: must be at most 255"),
        ("pause", {"force": True}, "unknown key 'force'"),
    ]:
        request = e.FireRequest(entity=made.id, event=event, params=struct(params))
        assert field in refused(client.engine.Fire, request), event
    # None of them was acted on: the container runs, and its journal has its start only.
    inspected = client.containers.Inspect(c.InspectContainerRequest(container=made.id))
    assert inspected.state.status == "running" and inspected.state.pid > 0
    history = client.engine.GetHistory(e.GetHistoryRequest(entity=made.id)).transitions
    assert [t.event for t in history] == ["start"]
    client.containers.Remove(c.RemoveContainerRequest(container=made.id, force=True))


def test_a_name_in_the_data_is_the_entity_name(client: Client) -> None:
    client.containers.Create(c.CreateContainerRequest(cmd=["true"], name="schema-web"))
    request = e.CreateEntityRequest(
        chart="container",
        name="schema-other",
        data=struct({"cmd": ["true"], "name": "/schema-web"}),
    )
    assert "name: expected '/schema-other'" in refused(client.engine.CreateEntity, request)
    # Without a name in the data, the entity's own is filled in.
    made = create(client, "schema-db", cmd=["true"])
    assert made.data.fields["name"].string_value == "/schema-db"
    listed = client.containers.List(c.ListContainersRequest(all=True)).containers
    names = [x.name for x in listed]
    assert names.count("/schema-web") == 1 and names.count("/schema-db") == 1
