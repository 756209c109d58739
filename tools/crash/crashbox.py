"""The ``crashbox`` chart the harness crashes, and the vocabulary of its steps and journal."""

from __future__ import annotations

import engine

START_STEPS = ("make_dir", "write_file", "spawn", "register")
STOP_STEPS = ("unregister", "halt", "remove_file", "remove_dir")
# The start step whose resource each stop step removes (and its undo puts back).
REMOVES = dict(zip(STOP_STEPS, reversed(START_STEPS), strict=True))
STEP_EVENT = {**dict.fromkeys(START_STEPS, "start"), **dict.fromkeys(STOP_STEPS, "stop")}
SUFFIX = {"make_dir": ".d", "write_file": ".file", "spawn": ".pid", "register": ".marker"}
TERMINAL = ("committed", "failed", "compensation_failed")
INTERRUPTED = "was interrupted"
INJECTED = "injected failure"

CHART = """
chart: {name}
version: 1
initial: idle
states:
  idle: {{}}
  starting: {{transient: true}}
  running: {{}}
  stopping: {{transient: true}}
transitions:
  - {{event: start, from: idle, to: running, via: starting,
     steps: [make_dir, write_file, spawn, register]}}
  - {{event: stop, from: running, to: idle, via: stopping,
     steps: [unregister, halt, remove_file, remove_dir]}}
"""


def chart_for(name: str) -> engine.Chart:
    """The crashbox chart under ``name``."""
    return engine.parse_chart(CHART.format(name=name))
