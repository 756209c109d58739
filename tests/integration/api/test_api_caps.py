"""Caps on what a request may store, and listings in pages that always fit in a response.

Before: 28 labels of 128 KiB each were accepted, and then ``ps -a`` failed
for every client with "Received message larger than max"; a retry count
past int32 was stored and broke every inspect of its container; ``kill -s``
took ``'٩'`` for SIGKILL.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from api_daemon import Daemon, failure
from google.protobuf import struct_pb2

from engine.api import Client
from engine.api.chartd.v1 import containers_pb2 as c
from engine.api.chartd.v1 import engine_pb2 as e

_names = (f"cap{n}" for n in itertools.count())
NOT_AN_INTEGER = "invalid restart policy format: maximum retry count must be an integer"
KIB = 1024
# One container near the caps: a command and environment of almost 1 MiB, 64 KiB of labels.
BIG_CMD = ["sleep", "1000", *("a" * (100 * KIB) for _ in range(9))]
BIG_ENV = {"PAYLOAD": "e" * (90 * KIB)}
BIG_LABELS = {f"label{i}": "l" * (8 * KIB - 16) for i in range(8)}


def refused(call: Callable[[Any], Any], request: Any) -> tuple[str, str]:
    with pytest.raises(grpc.RpcError) as info:
        call(request)
    code, _, message = failure(info.value)
    return code.name, message


def names(client: Client) -> set[str]:
    listed = client.list_containers(c.ListContainersRequest(all=True))
    return {s.name for s in listed}


@pytest.mark.parametrize(
    ("create", "says"),
    [
        ({"labels": {f"k{i}": "v" * (128 * KIB) for i in range(28)}}, "the labels are too large"),
        ({"labels": {f"k{i}": "v" for i in range(257)}}, "too many labels: 257, at most 256"),
        ({"labels": {"k": "v" * (64 * KIB + 1)}}, "the labels are too large"),
        ({"env": {f"E{i}": "v" * (120 * KIB) for i in range(9)}}, "command and environment"),
        ({"cmd": ["true", *("a" * (128 * KIB) for _ in range(8))]}, "command and environment"),
        ({"name": "n" * 254}, "at most 253 characters"),
        ({"restart_policy": "on-failure:2147483648"}, NOT_AN_INTEGER),
        ({"restart_policy": "on-failure:٣"}, NOT_AN_INTEGER),
    ],
    ids=["28x128KiB", "257", "one-big", "env", "cmd", "name", "int32", "arabic"],
)
def test_create_refuses_what_exceeds_the_caps(
    client: Client, create: dict[str, Any], says: str
) -> None:
    before = names(client)
    request = c.CreateContainerRequest(**{"cmd": ["true"], **create})
    code, message = refused(client.containers.Create, request)
    assert code == "INVALID_ARGUMENT" and says in message, message
    assert len(message) < 400
    assert names(client) == before


def test_a_retry_count_past_int32_is_refused_at_create_by_the_cli(
    client: Client, daemon: Daemon
) -> None:
    before = names(client)
    said = f"Error response from daemon: {NOT_AN_INTEGER}\n"
    framed = f"chartd: {said}\nRun 'chartd run --help' for more information\n"  # run's own
    for verb, stderr in ((["create"], said), (["run", "-d"], framed)):
        refused = daemon.cli(*verb, "--restart", "on-failure:2147483648", "sleep", "1")
        assert refused.returncode != 0
        assert refused.stderr == stderr
    assert names(client) == before


def test_the_largest_container_the_caps_allow_is_accepted(client: Client) -> None:
    name = next(_names)
    client.containers.Create(
        c.CreateContainerRequest(cmd=BIG_CMD, env=BIG_ENV, labels=BIG_LABELS, name=name)
    )
    shown = client.containers.Inspect(c.InspectContainerRequest(container=name))
    assert shown.config.labels == BIG_LABELS
    client.containers.Remove(c.RemoveContainerRequest(container=name))


def test_engine_data_and_params_are_capped(client: Client) -> None:
    big = struct_pb2.Struct()
    big.update({"blob": "x" * (1024 * KIB)})
    code, message = refused(
        client.engine.CreateEntity, e.CreateEntityRequest(chart="container", name="x", data=big)
    )
    assert code == "INVALID_ARGUMENT" and "data is too large" in message
    code, message = refused(
        client.engine.Fire, e.FireRequest(entity="nosuch", event="start", params=big)
    )
    assert code == "INVALID_ARGUMENT" and "params is too large" in message


def test_signals_in_other_scripts_are_refused_and_send_nothing(
    client: Client, daemon: Daemon
) -> None:
    name = next(_names)
    client.containers.Create(c.CreateContainerRequest(cmd=["sleep", "1000"], name=name))
    pid = client.containers.Start(c.StartContainerRequest(container=name)).pid
    for signal in ("٩", "²", "\uff19"):
        code, message = refused(
            client.containers.Kill, c.KillContainerRequest(container=name, signal=signal)
        )
        refusal = f"cannot kill container: {name}: invalid signal: {signal}"
        assert (code, message) == ("INVALID_ARGUMENT", refusal)
        cli = daemon.cli("kill", "-s", signal, name)
        assert cli.returncode == 1
        assert cli.stderr == f"Error response from daemon: {refusal}\n"
    state = client.containers.Inspect(c.InspectContainerRequest(container=name)).state
    assert (state.running, state.pid) == (True, pid)
    client.containers.Remove(c.RemoveContainerRequest(container=name, force=True))


def test_listings_of_many_big_containers_come_in_pages(client: Client, daemon: Daemon) -> None:
    big = [next(_names) for _ in range(6)]  # about 7 MiB in all: beyond one response
    for name in big:
        client.containers.Create(
            c.CreateContainerRequest(cmd=BIG_CMD, env=BIG_ENV, labels=BIG_LABELS, name=name)
        )
    first = client.containers.List(c.ListContainersRequest(all=True))
    assert first.next_page_token and 0 < len(first.containers) < len(big)
    assert first.ByteSize() < 4 * 1024 * KIB

    everything = client.list_containers(c.ListContainersRequest(all=True))
    listed = [s.name.lstrip("/") for s in everything]
    assert len(listed) == len(set(listed)) and set(big) <= set(listed)
    assert listed[: len(big)] == big[::-1]  # newest first

    by_two = client.list_containers(c.ListContainersRequest(all=True, page_size=2))
    assert [s.id for s in by_two] == [s.id for s in everything]

    ps = daemon.cli("ps", "-a", "--format", "json")
    assert ps.returncode == 0, ps.stderr
    # docker's `ps --format json`: a JSON object per line
    assert {json.loads(line)["Names"] for line in ps.stdout.splitlines()} >= set(big)
    assert daemon.cli("ps", "-a", "-q").stdout.split() == [s.id[:12] for s in everything]

    entities: list[e.Entity] = []
    token = ""
    while True:
        page = client.engine.ListEntities(
            e.ListEntitiesRequest(chart="container", page_token=token)
        )
        assert page.ByteSize() < 4 * 1024 * KIB
        entities.extend(page.entities)
        token = page.next_page_token
        if not token:
            break
    ids = [x.id for x in entities]
    assert len(ids) == len(set(ids)) and {s.id for s in everything} <= set(ids)

    for name in big:
        client.containers.Remove(c.RemoveContainerRequest(container=name))


def test_a_journal_comes_in_pages(client: Client, daemon: Daemon) -> None:
    name = next(_names)
    client.containers.Create(c.CreateContainerRequest(cmd=["sleep", "1000"], name=name))
    for _ in range(3):
        client.containers.Start(c.StartContainerRequest(container=name))
        client.containers.Kill(c.KillContainerRequest(container=name))
    whole = client.engine.GetHistory(e.GetHistoryRequest(entity=name, chart="container"))
    assert not whole.next_page_token
    paged = client.history(e.GetHistoryRequest(entity=name, chart="container", page_size=1))
    assert [t.id for t in paged] == [t.id for t in whole.transitions]
    first = client.engine.GetHistory(e.GetHistoryRequest(entity=name, page_size=2))
    assert len(first.transitions) == 2 and first.next_page_token
    code, message = refused(
        client.engine.GetHistory, e.GetHistoryRequest(entity=name, page_token="x")
    )
    assert code == "INVALID_ARGUMENT" and "invalid page token" in message
    history = daemon.cli("history", name)
    assert history.returncode == 0 and history.stdout.count("\n") > len(whole.transitions)
    client.containers.Remove(c.RemoveContainerRequest(container=name, force=True))


@pytest.mark.parametrize("token", ["x", "nan/abc", "inf/abc", "1.5/", "/abc", "1.5"])
def test_bad_container_page_tokens_are_refused(client: Client, token: str) -> None:
    code, message = refused(client.containers.List, c.ListContainersRequest(page_token=token))
    assert code == "INVALID_ARGUMENT" and "invalid page token" in message
