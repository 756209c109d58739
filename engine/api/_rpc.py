"""Putting servicers on a server: where every call's errors are mapped.

Each method is registered from the service's descriptor with two wrappers,
so no servicer method handles errors or admission itself:

* the request deserializer turns bytes that are not a valid message (bad
  wire format, a string that is not UTF-8) into INVALID_ARGUMENT, where gRPC
  alone would answer INTERNAL;
* the behaviour runs in the caller's trace context, when the call's
  metadata carries a W3C ``traceparent`` (:mod:`engine.api._trace`);
* the behaviour is run only if :class:`~engine.api.admission.Admission`
  admits the call (its client is still there, its kind has room); it turns
  a :class:`~engine.errors.ChartdError` into its status through
  :func:`engine.api.status.to_status`, and anything else into INTERNAL
  (category ``system``), logged with its traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import grpc
from google.protobuf import message, message_factory
from google.protobuf.descriptor import ServiceDescriptor

from engine.api._trace import caller_trace
from engine.api.admission import Admission
from engine.api.status import to_status
from engine.errors import ChartdError, InvalidParameter, System

__all__ = ["add_service"]

log = logging.getLogger("chartd.api")

_Behaviour = Callable[[Any, grpc.ServicerContext], Any]


class _Malformed:
    """What the deserializer hands on for bytes that are no valid request."""

    __slots__ = ("why",)

    def __init__(self, why: str) -> None:
        self.why = why


def _parser(cls: type[message.Message]) -> Callable[[bytes], Any]:
    def parse(data: bytes) -> Any:
        try:
            return cls.FromString(data)
        except message.DecodeError as exc:
            return _Malformed(str(exc) or "cannot decode the message")

    return parse


def _abort(context: grpc.ServicerContext, name: str, exc: BaseException) -> NoReturn:
    if isinstance(exc, ChartdError):
        log.debug("%s: %s: %s", name, exc.category.value, exc.message)
        context.abort_with_status(to_status(exc))
    log.error("%s failed unexpectedly", name, exc_info=exc)
    context.abort_with_status(to_status(System(f"{name}: {type(exc).__name__}: {exc}")))


def _check(name: str, request: Any) -> None:
    if isinstance(request, _Malformed):
        raise InvalidParameter(f"malformed {name} request: {request.why}")


def _unary(name: str, fn: _Behaviour, admission: Admission) -> _Behaviour:
    def handle(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            with admission.admit(name, context), caller_trace(context):
                _check(name, request)
                return fn(request, context)
        except Exception as exc:  # every error leaves through one mapping
            _abort(context, name, exc)

    return handle


def _streaming(
    name: str, fn: _Behaviour, admission: Admission
) -> Callable[[Any, grpc.ServicerContext], Iterator[Any]]:
    def handle(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        try:
            with admission.admit(name, context), caller_trace(context):
                _check(name, request)
                yield from fn(request, context)
        except Exception as exc:  # every error leaves through one mapping
            _abort(context, name, exc)

    return handle


def add_service(
    server: grpc.Server, descriptor: ServiceDescriptor, servicer: object, admission: Admission
) -> None:
    """Serve every method of ``descriptor`` by the servicer's method of the same name.

    Only unary and server-streaming methods exist in chartd's API.
    """
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for method in descriptor.methods:
        request = message_factory.GetMessageClass(method.input_type)
        response = message_factory.GetMessageClass(method.output_type)
        fn = getattr(servicer, method.name)
        name = f"{descriptor.name}.{method.name}"
        if method.client_streaming:
            raise TypeError(f"{name}: client streaming is not supported")
        if method.server_streaming:
            handlers[method.name] = grpc.unary_stream_rpc_method_handler(
                _streaming(name, fn, admission),
                request_deserializer=_parser(request),
                response_serializer=response.SerializeToString,
            )
        else:
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                _unary(name, fn, admission),
                request_deserializer=_parser(request),
                response_serializer=response.SerializeToString,
            )
    # Registered methods are found by the C core without a Python lookup per call;
    # the generic handler serves clients that do not send the registered-method flag.
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(descriptor.full_name, handlers),)
    )
    server.add_registered_method_handlers(descriptor.full_name, handlers)
