"""The one translation between chartd's error categories and gRPC status.

Every error a servicer raises leaves the daemon through :func:`to_status`,
as containerd's errors leave through ``errgrpc.ToGRPC``; clients turn a
failed call back into the same :class:`~engine.errors.ChartdError` class with
:func:`to_error`. The status carries a ``google.rpc.ErrorInfo`` detail::

    ErrorInfo(reason="NOT_MODIFIED", domain="chartd",
              metadata={"category": "not_modified"})

so that no client parses messages. Conflict and NotModified share
FAILED_PRECONDITION (as containerd maps them); the reason tells them apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from engine.errors import Category, ChartdError, error_for

__all__ = [
    "CODES",
    "DOMAIN",
    "MAX_MESSAGE",
    "Failure",
    "describe",
    "reason",
    "to_error",
    "to_status",
]

DOMAIN = "chartd"
"""The ErrorInfo domain of every chartd error."""

MAX_MESSAGE = 2000
"""Longer messages are cut: status travels in trailers, which clients cap (8 KiB by default)."""

CODES: Mapping[Category, grpc.StatusCode] = MappingProxyType(
    {
        Category.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
        Category.INVALID_PARAMETER: grpc.StatusCode.INVALID_ARGUMENT,
        Category.CONFLICT: grpc.StatusCode.FAILED_PRECONDITION,
        Category.NOT_MODIFIED: grpc.StatusCode.FAILED_PRECONDITION,
        Category.FORBIDDEN: grpc.StatusCode.PERMISSION_DENIED,
        Category.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
        Category.NOT_IMPLEMENTED: grpc.StatusCode.UNIMPLEMENTED,
        Category.CANCELLED: grpc.StatusCode.CANCELLED,
        Category.DEADLINE_EXCEEDED: grpc.StatusCode.DEADLINE_EXCEEDED,
        Category.SYSTEM: grpc.StatusCode.INTERNAL,
    }
)
"""The gRPC status code of each category."""

# A status that came without chartd's detail (from gRPC itself, a proxy, another
# server): the category its code stands for. Codes chartd never sends map to System.
_BY_CODE: Mapping[grpc.StatusCode, Category] = MappingProxyType(
    {
        grpc.StatusCode.NOT_FOUND: Category.NOT_FOUND,
        grpc.StatusCode.INVALID_ARGUMENT: Category.INVALID_PARAMETER,
        grpc.StatusCode.OUT_OF_RANGE: Category.INVALID_PARAMETER,
        grpc.StatusCode.FAILED_PRECONDITION: Category.CONFLICT,
        grpc.StatusCode.ALREADY_EXISTS: Category.CONFLICT,
        grpc.StatusCode.ABORTED: Category.CONFLICT,
        grpc.StatusCode.PERMISSION_DENIED: Category.FORBIDDEN,
        grpc.StatusCode.UNAUTHENTICATED: Category.FORBIDDEN,
        grpc.StatusCode.UNAVAILABLE: Category.UNAVAILABLE,
        grpc.StatusCode.RESOURCE_EXHAUSTED: Category.UNAVAILABLE,
        grpc.StatusCode.UNIMPLEMENTED: Category.NOT_IMPLEMENTED,
        grpc.StatusCode.CANCELLED: Category.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED: Category.DEADLINE_EXCEEDED,
    }
)


def reason(category: Category) -> str:
    """The ErrorInfo reason of a category: ``not_modified`` -> ``NOT_MODIFIED``."""
    return category.value.upper()


def _cut(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"


def to_status(error: ChartdError) -> grpc.Status:
    """The status a servicer aborts with for ``error``: its code, message and ErrorInfo."""
    category = error.category
    info = error_details_pb2.ErrorInfo(
        reason=reason(category), domain=DOMAIN, metadata={"category": category.value}
    )
    detail = any_pb2.Any()
    detail.Pack(info)
    code = CODES[category].value[0]
    message = _cut(error.message)
    return rpc_status.to_status(status_pb2.Status(code=code, message=message, details=[detail]))


@dataclass(frozen=True, slots=True)
class Failure:
    """What a failed call says: its category, message and code; ``detailed`` if chartd sent it.

    ``detailed`` is false when the status carried no chartd ErrorInfo: it came
    from gRPC itself (the daemon cannot be reached, a message is too big) or
    from something between client and daemon; the category is then the one
    its code stands for.
    """

    category: Category
    message: str
    code: grpc.StatusCode
    detailed: bool


def describe(error: grpc.RpcError) -> Failure:
    """The category and message of a failed call: from its ErrorInfo, else from its code."""
    message = ""
    code = grpc.StatusCode.UNKNOWN
    if isinstance(error, grpc.Call):
        code = error.code()
        message = error.details() or ""
        status = _rich_status(error)
        for detail in status.details if status is not None else ():
            info = error_details_pb2.ErrorInfo()
            if detail.Is(info.DESCRIPTOR) and detail.Unpack(info) and info.domain == DOMAIN:
                try:
                    return Failure(Category(info.metadata.get("category", "")), message, code, True)
                except ValueError:
                    break  # a newer daemon's category: fall back to the code
    category = _BY_CODE.get(code, Category.SYSTEM)
    return Failure(category, message or code.name, code, False)


def _rich_status(call: grpc.Call) -> status_pb2.Status | None:
    try:
        return rpc_status.from_call(call)
    except ValueError:  # the detail disagrees with the status line: trust neither detail
        return None


def to_error(error: grpc.RpcError) -> ChartdError:
    """The ChartdError a failed call stands for (same class as the daemon raised)."""
    failure = describe(error)
    return error_for(failure.category, failure.message)


# The google.rpc code numbers are the gRPC ones; this pins that assumption.
assert grpc.StatusCode.FAILED_PRECONDITION.value[0] == code_pb2.FAILED_PRECONDITION
