"""Every request message of both services, valid and malformed, against a real daemon.

Hypothesis draws each request from its message descriptor: every field
empty, huge, in other scripts, negative or out of range, unknown enum
values, bad IDs and names, path tricks, and, often, the names of
containers that exist. Whatever is asked, the daemon answers with a status
that says what was wrong, never INTERNAL or UNKNOWN, and its health service
answers within 100 ms after each call.

Commands are drawn from harmless programs only: a fuzzer that starts what
it creates must not run ``rm`` by chance.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from api_daemon import Daemon
from google.protobuf import descriptor as pb
from google.protobuf import message_factory, struct_pb2
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.api import Client
from engine.api.chartd.v1 import containers_pb2, engine_pb2

SERVICES = [
    containers_pb2.DESCRIPTOR.services_by_name["Containers"],
    engine_pb2.DESCRIPTOR.services_by_name["Engine"],
]
METHODS = [m for s in SERVICES for m in s.methods]
# Names the fixture gives containers, and names creates draw, so that calls meet them.
NAMES = ["fz-live", "fz-made", "/fz-live", "fz-a", "fz-b", "/fz-c"]
HEALTH_WITHIN = 0.1
CALL_DEADLINE = 1.0
# A quarter of the profile's examples for each of the 24 methods: under `ci`, 75 each.
EXAMPLES = max(10, settings.default.max_examples // 4)

TRICKS = [
    "", " ", "/", "//", ".", "..", "../../etc/passwd", "/etc/shadow", "a/../../b", "~root",
    "\x00", "a\x00b", "\n", "\t", "\u202e", "\ufeff", "٩", "²", "\uff19", "é" * 3,
    "%s%n", "{}", "[]", "null", "true", "-1", "0", "9", "2147483648", "18446744073709551616",
    "nan", "inf", "1e309", "SIGKILL", "KILL", "SIGNOPE", "sigterm", "no", "always",
    "unless-stopped", "on-failure", "on-failure:3", "on-failure:2147483648", "on-failure:-1",
    ":3", "not-running", "next-exit", "removed", "json", "dot", "mermaid", "svg", "running",
    "exited", "created", "status", "label", "id", "name", "event", "type", "start", "stop",
    "remove", "exit", "transition", "a" * 64, "0" * 64, "f" * 12,
]  # fmt: skip
# What a field of this name means, so that draws often say something the daemon knows.
MEANT = {
    "container": NAMES,
    "entity": NAMES,
    "name": NAMES,
    "new_name": NAMES,
    "signal": ["²", "٩", "\uff19", "9", "15", "KILL", "SIGTERM", "SIGWINCH", "0", "65", "-9"],
    "restart_policy": ["always", "on-failure:2147483648", "on-failure:٣", "on-failure:+3", "x:1"],
    "condition": ["not-running", "next-exit", "removed", "whenever"],
    "chart": ["container", "nochart"],
    "format": ["json", "dot", "mermaid", "svg", "xstate", "scxml", "plantuml"],
    "event": ["start", "stop", "kill", "remove", "restart", "exit", "pause", "rename"],
    "key": ["status", "id", "name", "label", "container", "event", "type"],
    "status": ["running", "running.active", "exited", "created", "removed"],
    "page_token": ["1", "0", "999999999999999999999", "1.5/abc", "nan/x"],
}
MEANT["stop_signal"] = MEANT["signal"]
SAFE_COMMANDS = [["true"], ["false"], ["sleep", "5"], ["/nonexistent/program"], ["echo", "hi"]]

_texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
STRINGS = st.one_of(
    st.sampled_from(TRICKS + NAMES),
    _texts,
    st.builds(lambda s, n: (s or "x") * n, _texts, st.integers(100, 3000)),
    st.just("x" * 200_000),
)
JSON = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers(-(2**60), 2**60) | STRINGS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_texts, inner, max_size=4),
    max_leaves=12,
)

_RANGES = {
    pb.FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    pb.FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    pb.FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    pb.FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    pb.FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
}


def _integers(low: int, high: int) -> st.SearchStrategy[int]:
    edges = [
        v for v in (low, high, -1, 0, 1, 2, 10, 2**31 - 1, 2**31, 2**63 - 1) if low <= v <= high
    ]
    return st.sampled_from(edges) | st.integers(low, high)


def _structs() -> st.SearchStrategy[struct_pb2.Struct]:
    def build(data: dict[str, Any]) -> struct_pb2.Struct:
        s = struct_pb2.Struct()
        s.update(data)
        return s

    return st.dictionaries(st.sampled_from(TRICKS) | _texts, JSON, max_size=5).map(build)


def _scalar(field: pb.FieldDescriptor) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == pb.FieldDescriptor.TYPE_STRING:
        meant = MEANT.get(field.name)
        if meant is None:
            return STRINGS
        return st.one_of(*[st.sampled_from(meant)] * 4, STRINGS)  # 4 in 5
    if kind == pb.FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind == pb.FieldDescriptor.TYPE_ENUM:
        return _integers(-5, 50)  # proto3 enums are open: unknown values travel
    if kind == pb.FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64)
    if kind in (pb.FieldDescriptor.TYPE_DOUBLE, pb.FieldDescriptor.TYPE_FLOAT):
        return st.floats(allow_nan=False, width=32)
    if kind in _RANGES:
        return _integers(*_RANGES[kind])
    raise AssertionError(f"no strategy for {field.full_name} (type {kind})")


def _field(field: pb.FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.full_name == "chartd.v1.CreateContainerRequest.cmd":
        return st.sampled_from(SAFE_COMMANDS) | st.lists(STRINGS, max_size=3).map(
            lambda args: ["/nonexistent/program", *args] if args else []
        )
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        key, value = (
            field.message_type.fields_by_name["key"],
            field.message_type.fields_by_name["value"],
        )
        return st.dictionaries(_scalar(key), _scalar(value), max_size=6)
    single = (
        messages(field.message_type, depth + 1)
        if field.message_type is not None
        else _scalar(field)
    )
    if field.is_repeated:
        return st.lists(single, max_size=4)
    return single


def messages(descriptor: pb.Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    """Messages of ``descriptor``: any subset of its fields set, each to anything its type holds."""
    if descriptor.full_name == "google.protobuf.Struct":
        return _structs()
    cls = message_factory.GetMessageClass(descriptor)
    if depth > 3:
        return st.just(cls())
    # The container or entity a call is about is always named; any other field may be left out.
    fields = {f.name: _field(f, depth) for f in descriptor.fields}
    required = {k: fields.pop(k) for k in ("container", "entity") if k in fields}
    return st.fixed_dictionaries(required, optional=fields).map(lambda kw: cls(**kw))


def _live(client: Client) -> None:
    """``fz-live`` running again (a call before may have stopped or removed it)."""
    cs = containers_pb2
    try:
        shown = client.containers.Inspect(cs.InspectContainerRequest(container="fz-live"))
    except grpc.RpcError:
        client.containers.Create(cs.CreateContainerRequest(cmd=["sleep", "600"], name="fz-live"))
    else:
        if shown.state.running:
            return
    try:
        client.containers.Start(cs.StartContainerRequest(container="fz-live"), timeout=5)
    except grpc.RpcError as exc:  # paused, or restarting: as good for the next call
        assert exc.code() == grpc.StatusCode.FAILED_PRECONDITION, exc.details()


@pytest.fixture(scope="module")
def fuzzed(daemon: Daemon) -> Iterator[Client]:
    with daemon.client() as client:
        cs = containers_pb2
        _live(client)
        client.containers.Create(cs.CreateContainerRequest(cmd=["true"], name="fz-made"))
        yield client
        for left in client.list_containers(cs.ListContainersRequest(all=True)):
            client.containers.Remove(cs.RemoveContainerRequest(container=left.id, force=True))
    assert "failed unexpectedly" not in daemon.logs()


def _call(client: Client, method: pb.MethodDescriptor, request: Message) -> None:
    stub = client.containers if method.containing_service.name == "Containers" else client.engine
    call = getattr(stub, method.name)
    if method.server_streaming:
        stream = call(request, timeout=CALL_DEADLINE)
        try:
            for _, _ in zip(range(20), stream, strict=False):
                pass
        finally:
            stream.cancel()
    else:
        call(request, timeout=CALL_DEADLINE)


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.full_name.removeprefix("chartd.v1."))
def test_any_request_gets_a_meaningful_status_and_health_keeps_answering(
    fuzzed: Client, method: pb.MethodDescriptor
) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(request=messages(method.input_type))
    def check(request: Message) -> None:
        _live(fuzzed)
        try:
            _call(fuzzed, method, request)
        except grpc.RpcError as exc:
            assert isinstance(exc, grpc.Call)
            code = exc.code()
            assert code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), exc.details()
        started = time.monotonic()
        answer = fuzzed.health_check(health_pb2.HealthCheckRequest(), timeout=HEALTH_WITHIN)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
        assert time.monotonic() - started < HEALTH_WITHIN

    check()
