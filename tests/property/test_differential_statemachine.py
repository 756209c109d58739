"""Differential testing: chartd's core and python-statemachine run the exported SCXML alike.

Each drawn chart is exported with :func:`engine.export.to_scxml`, read by
python-statemachine's SCXML reader (``SCXMLProcessor``, the main one in
Python) and driven with the same event sequences and condition values as
:func:`engine.step`: after the start and after every event, both are in the
same configuration. The exported document carries everything chartd has
beyond SCXML (steps, guards, failure policies, rejections); the reader must
skip it all and load the machine.

The shared subset is the XState test's (tests/property/test_differential_xstate.py,
whose module docstring says what is left out and why), without parallel
states: their regions become plain compound states. python-statemachine
decides differently when one event has transitions in two regions whose
exits overlap (``s0`` parallel, ``e`` from ``s0.s1`` to ``s0`` and from
``s0.s11`` to ``s0.s1.s4``: chartd, as SCXML's document order says, takes
the first and re-enters ``s0``; python-statemachine ends in ``s0.s1.s4``).
A refusal by chartd counts as "nothing changed", as SCXML ignores an event
nothing takes; conditions are the machine's model attributes, set before
each event.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from statemachine.io.scxml.processor import SCXMLProcessor
from test_differential_xstate import SHARED, _sound, eventless_conditions, ours

import engine
from engine.export import to_scxml
from engine.model.analysis import condition_names
from engine.testing import events

SEQUENCES = 4


def _without_regions(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with each parallel state made compound, entered at its first region."""

    def flatten(states: dict[str, Any]) -> None:
        for doc in states.values():
            if doc.pop("parallel", False):
                doc["initial"] = next(iter(doc["states"]))
            flatten(doc.get("states", {}))

    flatten(document["states"])
    return _sound(document)


SUBSET = SHARED.map(_without_regions)

CONTAINER_RUN = ["start", "pause", "unpause", "stop", "exit", "start", "kill", "exit", "remove"]


class Model:
    """The machine's model: condition values, which its ``<data>`` declarations leave alone.

    Each ``<data id="name"/>`` sets its attribute to None when the machine
    starts; the values a run holds must be there before that, since
    eventless transitions are taken at the start.
    """

    def __init__(self, values: dict[str, bool]) -> None:
        self.__dict__.update(values, _conditions=frozenset(values))

    def __setattr__(self, name: str, value: Any) -> None:
        if value is None and name in self._conditions:
            return  # a declaration, not a value; the machine's own attributes go through
        super().__setattr__(name, value)


def machine_class(chart: engine.Chart) -> type[Any]:
    """The chart's SCXML export, read by python-statemachine into a machine class."""
    processor = SCXMLProcessor()
    processor.parse_scxml(chart.name, to_scxml(chart))
    found: type[Any] = next(iter(processor.scs.values()))
    return found


def theirs(
    machine: type[Any],
    chart: engine.Chart,
    held: dict[str, bool],
    sequence: list[tuple[str, dict[str, bool]]],
) -> list[list[str]]:
    """python-statemachine's configurations after the start and after each event."""
    names = condition_names(chart.model)
    model = Model({name: held.get(name, False) for name in names})
    running = machine(model=model)
    trace = [sorted(str(s) for s in running.configuration_values)]
    for event, params in sequence:
        for name in names:
            setattr(model, name, params.get(name, held.get(name, False)))
        running.send(event)
        trace.append(sorted(str(s) for s in running.configuration_values))
    return trace


# Reading a document builds a machine class: fewer examples than the profile's.
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=SUBSET, data=st.data())
def test_chartd_and_python_statemachine_agree_on_every_step(
    document: dict[str, Any], data: st.DataObject
) -> None:
    chart = engine.parse_chart(document)
    machine = machine_class(chart)
    held_names = eventless_conditions(chart)
    for i in range(SEQUENCES):
        held = {name: data.draw(st.booleans(), label=name) for name in held_names}
        drawn = data.draw(events(chart, max_size=12), label=f"events {i}")
        sequence = [(e, {k: v for k, v in p.items() if k not in held}) for e, p in drawn]
        expected = ours(chart, held, sequence)
        got = theirs(machine, chart, held, sequence)
        for j, (mine, other) in enumerate(zip(expected, got, strict=True)):
            assert mine == other, (
                f"after {sequence[:j]} (held: {held}): chartd {mine}, python-statemachine "
                f"{other}\n" + to_scxml(chart)
            )


def test_the_container_chart_loads_and_runs_in_python_statemachine() -> None:
    """The flagship's export, all of chartd's extras in it, reads and runs (issue 16, bug 8)."""
    chart = engine.load_chart("container")
    sequence = [(event, {}) for event in CONTAINER_RUN]
    assert theirs(machine_class(chart), chart, {}, sequence) == ours(chart, {}, sequence)
