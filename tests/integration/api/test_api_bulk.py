"""The Engine service's bulk calls on a real daemon: one result per unit, in order."""

from __future__ import annotations

import itertools

import grpc
import pytest

from engine.api import Client
from engine.api.chartd.v1 import containers_pb2 as c
from engine.api.chartd.v1 import engine_pb2 as e

_names = itertools.count()


def _running(client: Client) -> str:
    made = client.containers.Create(
        c.CreateContainerRequest(cmd=["sleep", "60"], name=f"bulk{next(_names)}")
    )
    client.containers.Start(c.StartContainerRequest(container=made.id))
    return made.id


def test_fire_many_gives_each_request_its_result(client: Client) -> None:
    first, second = _running(client), _running(client)
    try:
        response = client.engine.FireMany(
            e.FireManyRequest(
                requests=[
                    e.FireRequest(entity=first, event="pause"),
                    e.FireRequest(entity="no-such-container", event="pause"),
                    e.FireRequest(entity=second, event="pause"),
                    e.FireRequest(entity=first, event="pause"),  # already paused by then
                    e.FireRequest(entity=second, event=""),
                ],
                concurrency=1,
            )
        )
        outcomes = [r.WhichOneof("outcome") for r in response.results]
        assert outcomes == ["response", "error", "response", "error", "error"]
        assert response.results[0].response.entity.state == "running.paused"
        assert response.results[1].error.reason == "NOT_FOUND"
        assert response.results[1].error.code == grpc.StatusCode.NOT_FOUND.value[0]
        assert response.results[3].error.reason in ("CONFLICT", "NOT_MODIFIED")
        assert response.results[4].error.reason == "INVALID_PARAMETER"
        got = client.engine.GetEntity(e.GetEntityRequest(entity=second))
        assert got.state == "running.paused"
    finally:
        for ref in (first, second):
            client.containers.Remove(c.RemoveContainerRequest(container=ref, force=True))


def test_create_many_refuses_units_on_their_own_and_bounds_the_call(client: Client) -> None:
    response = client.engine.CreateMany(
        e.CreateManyRequest(chart="container", items=[e.NewEntity(name="bad name!")])
    )
    assert [r.error.reason for r in response.results] == ["INVALID_PARAMETER"]
    with pytest.raises(grpc.RpcError) as caught:
        client.engine.CreateMany(
            e.CreateManyRequest(chart="container", items=[e.NewEntity(name="x")] * 1001)
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "at most 1000 items" in (caught.value.details() or "")
    with pytest.raises(grpc.RpcError) as unknown:
        client.engine.CreateMany(e.CreateManyRequest(chart="nosuch", items=[e.NewEntity(name="y")]))
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
