"""A caller's trace context, from the call's metadata, made current while the call runs.

A client sends W3C ``traceparent`` (and ``tracestate``) as gRPC metadata;
OpenTelemetry's propagator (the global one: W3C trace context and baggage
unless ``OTEL_PROPAGATORS`` says otherwise) reads them, and the spans the
call starts (a fire's) are children of the caller's span. A malformed value
is ignored, as the propagator ignores it: tracing never refuses a call.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import grpc
from opentelemetry import context, propagate

__all__ = ["caller_trace"]

_KEYS = frozenset(("traceparent", "tracestate", "baggage"))


@contextmanager
def caller_trace(call: grpc.ServicerContext) -> Iterator[None]:
    """The caller's trace context current for the body, if the call's metadata holds one."""
    carrier = {k: v for k, v in call.invocation_metadata() or () if k in _KEYS}
    if "traceparent" not in carrier:
        yield  # the common case costs a scan of a few metadata keys
        return
    token = context.attach(propagate.extract(carrier))
    try:
        yield
    finally:
        context.detach(token)
