"""The one map from error categories to gRPC status, over a real channel.

A servicer raising each category, on an in-process server: the client sees
the code of the table and the category as the ErrorInfo reason, and
``to_error`` gives back the class that was raised.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest

import engine
from engine.api import ApiServer, Client, describe, parse_address, to_error
from engine.api.chartd.v1 import containers_pb2 as c
from engine.api.status import CODES, MAX_MESSAGE, reason
from engine.errors import Category, ChartdError, error_for

EXPECTED = {
    "not_found": "NOT_FOUND",
    "invalid_parameter": "INVALID_ARGUMENT",
    "conflict": "FAILED_PRECONDITION",
    "not_modified": "FAILED_PRECONDITION",
    "forbidden": "PERMISSION_DENIED",
    "unavailable": "UNAVAILABLE",
    "not_implemented": "UNIMPLEMENTED",
    "cancelled": "CANCELLED",
    "deadline_exceeded": "DEADLINE_EXCEEDED",
    "system": "INTERNAL",
}


class Raising:
    """A container service whose start raises the category its ref names."""

    def start(self, ref: str, **options: Any) -> engine.Entity:
        if ref == "crash":
            raise RuntimeError("a bug")
        if ref == "long":
            raise error_for("conflict", "x" * 100_000)
        raise error_for(ref, f"{ref} happened")

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"unexpected call {name}")


def status_of(configuration: Sequence[str], data: Mapping[str, Any]) -> str:
    return "created"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    socket = tmp_path_factory.mktemp("status") / "s.sock"
    with engine.Engine.open() as eng:
        server = ApiServer(eng, version="test", containers=Raising(), status_of=status_of)  # type: ignore[arg-type]
        server.bind(parse_address(f"unix://{socket}"))
        server.start()
        try:
            with Client(f"unix://{socket}") as c:
                yield c
        finally:
            server.stop(0)


def test_the_table_covers_every_category() -> None:
    assert {k.value: v.name for k, v in CODES.items()} == EXPECTED
    assert reason(Category.NOT_MODIFIED) == "NOT_MODIFIED"


@pytest.mark.parametrize("category", sorted(EXPECTED))
def test_each_category_over_the_wire(client: Client, category: str) -> None:
    with pytest.raises(grpc.RpcError) as info:
        client.containers.Start(c.StartContainerRequest(container=category))
    error = info.value
    assert isinstance(error, grpc.Call)
    assert error.code().name == EXPECTED[category]
    assert error.details() == f"{category} happened"
    failure = describe(error)
    assert failure.detailed and failure.category.value == category
    back = to_error(error)
    assert type(back) is type(error_for(category, "")) and back.message == f"{category} happened"


def test_an_unexpected_exception_is_internal_with_the_system_reason(client: Client) -> None:
    with pytest.raises(grpc.RpcError) as info:
        client.containers.Start(c.StartContainerRequest(container="crash"))
    failure = describe(info.value)
    assert (failure.code, failure.category) == (grpc.StatusCode.INTERNAL, Category.SYSTEM)
    assert "RuntimeError: a bug" in failure.message


def test_a_long_message_is_cut_to_fit_in_trailers(client: Client) -> None:
    with pytest.raises(grpc.RpcError) as info:
        client.containers.Start(c.StartContainerRequest(container="long"))
    failure = describe(info.value)
    assert failure.category == Category.CONFLICT and len(failure.message) == MAX_MESSAGE


def test_a_status_without_detail_falls_back_to_its_code(tmp_path: Path) -> None:
    with Client(f"unix://{tmp_path}/nobody.sock") as nobody, pytest.raises(grpc.RpcError) as info:
        nobody.containers.Start(c.StartContainerRequest(container="x"), timeout=5)
    failure = describe(info.value)
    assert not failure.detailed
    assert (failure.code, failure.category) == (grpc.StatusCode.UNAVAILABLE, Category.UNAVAILABLE)
    assert isinstance(to_error(info.value), ChartdError)
