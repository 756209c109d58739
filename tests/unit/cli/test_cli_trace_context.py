"""The trace context the CLI takes from its environment (OpenTelemetry's env carrier)."""

from __future__ import annotations

import pytest

from engine.cli_session import trace_metadata

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_traceparent_and_tracestate_become_metadata() -> None:
    assert trace_metadata({"TRACEPARENT": PARENT, "TRACESTATE": "a=1,b=2"}) == [
        ("traceparent", PARENT),
        ("tracestate", "a=1,b=2"),
    ]
    assert trace_metadata({"TRACEPARENT": f" {PARENT}\n"}) == [("traceparent", PARENT)]
    # A later version may append fields, as W3C trace context allows.
    assert trace_metadata({"TRACEPARENT": f"01-{PARENT[3:]}-extra"})[0][0] == "traceparent"


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"TRACESTATE": "a=1"},  # a state without a parent says nothing
        {"TRACEPARENT": ""},
        {"TRACEPARENT": PARENT.upper()},
        {"TRACEPARENT": PARENT[:-3]},
        {"TRACEPARENT": PARENT.replace("-", "_")},
        {"TRACEPARENT": f"{PARENT}-\x00"},
        {"traceparent": PARENT},  # the variable's name is upper case
    ],
)
def test_what_is_not_trace_context_is_left_out(environ: dict[str, str]) -> None:
    assert trace_metadata(environ) == []


def test_a_tracestate_that_is_no_metadata_value_is_left_out() -> None:
    for state in ("a=\x01", "é=1", "x" * 8193):
        assert trace_metadata({"TRACEPARENT": PARENT, "TRACESTATE": state}) == [
            ("traceparent", PARENT)
        ]
