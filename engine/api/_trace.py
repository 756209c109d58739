"""A caller's trace context, from the call's metadata, made current while the call runs.

A client sends W3C ``traceparent`` (and ``tracestate``) as gRPC metadata;
OpenTelemetry's W3C trace-context propagator reads them, and the spans the
call starts (a fire's) are children of the caller's span. A malformed value
is ignored, as the propagator ignores it: tracing never refuses a call. The
propagator is that one, not the global one ``OTEL_PROPAGATORS`` configures:
the CLI sends W3C trace context, and a misspelt variable must not stop the
daemon from starting.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import grpc
from opentelemetry import context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = ["caller_trace"]

_KEYS = frozenset(("traceparent", "tracestate"))
_W3C = TraceContextTextMapPropagator()


@contextmanager
def caller_trace(call: grpc.ServicerContext) -> Iterator[None]:
    """The caller's trace context current for the body, if the call's metadata holds one."""
    carrier = {k: v for k, v in call.invocation_metadata() or () if k in _KEYS}
    if "traceparent" not in carrier:
        yield  # the common case costs a scan of a few metadata keys
        return
    token = context.attach(_W3C.extract(carrier))
    try:
        yield
    finally:
        context.detach(token)
