"""The pytransitions bridge: definitions out and in, the reference interpreter, the mismatches.

The mismatch tests run pytransitions itself (0.9.x), so each difference that
docs/testing.md lists is shown, not just asserted: if pytransitions changes,
these tests say which entry of the list to revisit.
"""

from __future__ import annotations

from typing import Any

import pytest
from transitions.core import MachineError
from transitions.extensions import HierarchicalMachine
from transitions.extensions.nesting import NestedState

import engine
from engine.errors import ChartError, Conflict, InvalidParameter
from engine.interop.pytransitions import (
    Reference,
    differences,
    from_pytransitions,
    to_pytransitions,
)

DOOR = engine.parse_chart(
    """
chart: door
initial: closed
states:
  closed: {}
  open:
    initial: ajar
    states: {ajar: {}, wide: {}}
  locked: {final: true}
transitions:
  - {event: open, from: closed, to: open}
  - {event: push, from: open.ajar, to: open.wide, when: strong}
  - {event: push, from: open, to: closed, when: "!strong"}
  - {event: close, from: [open.ajar, open.wide], to: closed}
  - {event: knock, from: closed}
  - {event: lock, from: closed, to: locked, guards: [has_key], steps: [turn]}
"""
)


class Model:
    """A plain pytransitions model."""

    state: Any
    strong = False


def machine(definition: dict[str, Any]) -> tuple[Model, HierarchicalMachine]:
    model = Model()
    return model, HierarchicalMachine(model=model, **definition)


def test_the_export_is_a_hierarchical_machine_that_moves_as_the_chart_does() -> None:
    definition = to_pytransitions(DOOR)
    assert definition["initial"] == "closed"
    assert definition["states"][1] == {
        "name": "open",
        "children": ["ajar", "wide"],
        "initial": "ajar",
    }
    assert {"trigger": "close", "source": ["open_ajar", "open_wide"], "dest": "closed"} in (
        definition["transitions"]
    )
    assert {"trigger": "push", "source": "open", "dest": "closed", "unless": ["strong"]} in (
        definition["transitions"]
    )
    model, _ = machine(definition)
    model.trigger("open")
    assert model.state == "open_ajar"
    model.strong = True
    model.trigger("push")
    assert model.state == "open_wide"
    model.strong = False
    model.trigger("push")  # the child's transition does not apply: the parent's does
    assert model.state == "closed"
    assert model.trigger("knock") and model.state == "closed"  # internal: no state change
    with pytest.raises(MachineError):
        model.trigger("push")


def test_a_round_trip_keeps_states_transitions_and_conditions() -> None:
    back = from_pytransitions(to_pytransitions(DOOR), name="door")
    assert back.states == DOOR.states
    assert back.model.initial == DOOR.model.initial
    pairs = [(t.source, t.event, t.target, str(t.when)) for t in DOOR.transitions]
    assert [(t.source, t.event, t.target, str(t.when)) for t in back.transitions] == pairs
    assert back.state("locked").kind == "final"


def test_strict_export_names_what_pytransitions_would_run_differently() -> None:
    chart = engine.parse_chart(
        {
            "chart": "c",
            "initial": "a",
            "states": {
                "a": {"initial": "x", "states": {"x": {}, "h": {"history": "deep"}}},
                "b": {},
            },
            "transitions": [
                {"from": "b", "to": "a.h"},
                {"event": "go", "from": "a", "to": "b"},
            ],
            "rejections": [{"event": "go", "in": "b", "error": "conflict", "message": "no"}],
        }
    )
    with pytest.raises(InvalidParameter) as refused:
        to_pytransitions(chart)
    for what in ("history state", "declared rejections", "transitions[0] is eventless"):
        assert what in refused.value.message
    lossy = to_pytransitions(chart, strict=False)
    assert lossy["transitions"] == [{"trigger": "go", "source": "a", "dest": "b"}]
    assert lossy["states"][0] == {"name": "a", "children": ["x"], "initial": "x"}


def test_a_name_with_the_separator_needs_another_separator() -> None:
    chart = engine.parse_chart(
        {"chart": "c", "initial": "is_on", "states": {"is_on": {}, "off": {}}}
    )
    with pytest.raises(InvalidParameter, match="contain the separator '_'"):
        to_pytransitions(chart, strict=False)
    definition = to_pytransitions(chart, separator=".", strict=False)
    assert definition["states"] == ["is_on", "off"]


def test_import_reads_scoped_transitions_wildcards_reflexive_and_internal_ones() -> None:
    chart = from_pytransitions(
        {
            "states": [
                "idle",
                {
                    "name": "busy",
                    "children": ["low", "high"],
                    "initial": "low",
                    "transitions": [["up", "low", "high"]],
                },
                {"name": "gone", "final": True},
            ],
            "transitions": [
                ["start", "idle", "busy"],
                {"trigger": "reset", "source": "*", "dest": "idle"},
                {"trigger": "poke", "source": "busy", "dest": None},
                {"trigger": "again", "source": ["idle", "busy_high"], "dest": "="},
                {"trigger": "quit", "source": "idle", "dest": "gone", "unless": "busy_flag"},
            ],
            "initial": "idle",
        },
        name="worker",
    )
    summary = [
        (t.source, t.event, t.target, str(t.when) if t.when else None) for t in chart.transitions
    ]
    assert summary[0] == ("busy.low", "up", "busy.high", None)  # the state's own come first
    assert ("idle", "start", "busy", None) in summary
    # The wildcard is every state but the final one (a chart's final state has no way out).
    assert [s for s, e, _, _ in summary if e == "reset"] == [
        "idle",
        "busy",
        "busy.low",
        "busy.high",
    ]
    assert ("busy", "poke", None, None) in summary
    assert ("busy.high", "again", "busy.high", None) in summary
    assert ("idle", "quit", "gone", "!busy_flag") in summary


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ({"states": ["a"], "initial": ["a"]}, "a list of initial states"),
        ({"states": [{"name": "p", "children": ["a"]}], "initial": "p"}, "no initial one"),
        (
            {
                "states": ["a", "b"],
                "initial": "a",
                "transitions": [
                    {"trigger": "go", "source": "a", "dest": "b", "conditions": ["x", "y"]}
                ],
            },
            "has one 'when' condition, this one has 2",
        ),
        (
            {
                "states": ["a", "b"],
                "initial": "a",
                "transitions": [
                    {"trigger": "go", "source": "a", "dest": "b", "conditions": [print]}
                ],
            },
            "not callables",
        ),
        (
            {
                "states": ["a", "b"],
                "initial": "a",
                "transitions": [{"trigger": "go", "source": "a", "dest": "b", "after": "log"}],
            },
            "the callback 'after' has no chartd equivalent",
        ),
        (
            {"states": [{"name": "a", "on_enter": "hello"}], "initial": "a"},
            "the callback 'on_enter' has no chartd equivalent",
        ),
        ({"states": ["a", "a_b"], "initial": "a"}, "a parent declared by its child's name"),
    ],
)
def test_import_refuses_what_a_chart_cannot_say(definition: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        from_pytransitions(definition)


def test_import_drops_callbacks_unless_strict() -> None:
    chart = from_pytransitions(
        {
            "states": [{"name": "a", "on_enter": "hello"}, "b"],
            "transitions": [{"trigger": "go", "source": "a", "dest": "b", "before": "log"}],
            "initial": "a",
        },
        strict=False,
    )
    assert [(t.source, t.event, t.target) for t in chart.transitions] == [("a", "go", "b")]


def test_an_imported_machine_is_validated_as_any_chart() -> None:
    with pytest.raises(ChartError, match=r"transitions\[0\].to: unknown state 'nowhere'"):
        from_pytransitions(
            {"states": ["a"], "initial": "a", "transitions": [["go", "a", "nowhere"]]}
        )


def test_the_reference_answers_as_the_core_does() -> None:
    reference = Reference(DOOR)
    assert reference.configuration == DOOR.initial_snapshot().configuration
    assert reference.fire("open") == ("open", "open.ajar")
    assert reference.fire("push", {"strong": True}) == ("open", "open.wide")
    with pytest.raises(Conflict, match="Can't trigger event 'open'"):
        reference.fire("open")
    with pytest.raises(InvalidParameter, match="Do not know event named 'fly'"):
        reference.fire("fly")


# -- the mismatches, shown on pytransitions itself -----------------------------------------

PARALLEL = {
    "chart": "p",
    "initial": "off",
    "states": {
        "off": {},
        "on": {
            "parallel": True,
            "states": {
                "left": {"initial": "a", "states": {"a": {}, "b": {}}},
                "right": {"initial": "x", "states": {"x": {}, "y": {}}},
            },
        },
    },
}


class Dotted(NestedState):
    separator = "."


class DottedMachine(HierarchicalMachine):
    state_cls = Dotted


def run_on_pytransitions(chart: engine.Chart, *events: str) -> Any:
    model = Model()
    DottedMachine(model=model, **to_pytransitions(chart, separator=".", strict=False))
    for event in events:
        model.trigger(event)
    return model.state


def run_on_chartd(chart: engine.Chart, *events: str) -> tuple[str, ...]:
    snapshot = chart.initial_snapshot()
    for event in events:
        snapshot = engine.step(chart, snapshot, event).snapshot
    return snapshot.configuration


def test_entering_one_region_enters_only_that_one_in_pytransitions() -> None:
    chart = engine.parse_chart(
        {**PARALLEL, "transitions": [{"event": "go", "from": "off", "to": "on.left.b"}]}
    )
    assert [d.kind for d in differences(chart)] == ["region"]
    assert run_on_pytransitions(chart, "go") == "on.left.b"  # no right region at all
    assert run_on_chartd(chart, "go") == ("on", "on.left", "on.left.b", "on.right", "on.right.x")


def test_a_move_to_a_region_itself_resets_the_siblings_only_in_chartd() -> None:
    chart = engine.parse_chart(
        {
            **PARALLEL,
            "initial": "on",
            "transitions": [
                {"event": "turn", "from": "on.right.x", "to": "on.right.y"},
                {"event": "reset", "from": "on.left.a", "to": "on.left"},
            ],
        }
    )
    assert [d.kind for d in differences(chart)] == ["region"]
    # SCXML never takes a parallel state as a transition's domain: the move exits `on`.
    assert run_on_chartd(chart, "turn", "reset")[-1] == "on.right.x"
    assert run_on_pytransitions(chart, "turn", "reset") == ["on.left.a", "on.right.y"]


def test_two_regions_taking_one_event_are_combined_differently() -> None:
    chart = engine.parse_chart(
        {
            **PARALLEL,
            "initial": "on",
            "transitions": [
                {"event": "go", "from": "on.left.a", "to": "off"},
                {"event": "go", "from": "on.right.x", "to": "on.right.y"},
            ],
        }
    )
    assert [d.kind for d in differences(chart)] == ["regions-together"]
    # chartd: the exit of `on` preempts the other region's move (document order).
    assert run_on_chartd(chart, "go") == ("off",)
    # pytransitions runs both, the second on a stale state tree: a region goes missing.
    assert run_on_pytransitions(chart, "go") == "on.right.y"


def test_a_targetless_transition_in_a_region_blocks_the_parents_only_in_pytransitions() -> None:
    chart = engine.parse_chart(
        {
            **PARALLEL,
            "initial": "on",
            "transitions": [
                {"event": "go", "from": "on.left.a"},
                {"event": "go", "from": "on", "to": "off"},
            ],
        }
    )
    assert [d.kind for d in differences(chart)] == ["regions-together"]
    assert run_on_chartd(chart, "go") == ("off",)  # right falls through to `on`'s transition
    assert run_on_pytransitions(chart, "go") == ["on.left.a", "on.right.x"]


def test_an_initial_state_in_a_region_enters_only_that_region_in_pytransitions() -> None:
    chart = engine.parse_chart({**PARALLEL, "initial": "on.right.y"})
    assert [d.kind for d in differences(chart)] == ["initial-region"]
    assert run_on_pytransitions(chart) == "on.right.y"
    assert run_on_chartd(chart) == ("on", "on.left", "on.left.a", "on.right", "on.right.y")


def test_a_final_region_breaks_pytransitions() -> None:
    chart = engine.parse_chart(
        {
            "chart": "f",
            "initial": "on",
            "states": {
                "on": {
                    "parallel": True,
                    "states": {
                        "work": {"initial": "a", "states": {"a": {}, "b": {}}},
                        "done": {"final": True},
                    },
                }
            },
            "transitions": [{"event": "go", "from": "on.work.a", "to": "on.work.b"}],
        }
    )
    assert [d.kind for d in differences(chart)] == ["final-in-region"]
    assert run_on_chartd(chart, "go") == ("on", "on.work", "on.work.b", "on.done")
    with pytest.raises(AttributeError, match="scoped_enter"):
        run_on_pytransitions(chart, "go")


def test_a_parallel_state_in_a_region_breaks_pytransitions_on_an_invalid_event() -> None:
    chart = engine.parse_chart(
        {
            "chart": "n",
            "initial": "outer",
            "states": {
                "outer": {
                    "parallel": True,
                    "states": {
                        "inner": {"parallel": True, "states": {"a": {}, "b": {}}},
                        "c": {},
                    },
                }
            },
            "transitions": [{"event": "go", "from": "outer.c"}],
        }
    )
    assert [d.kind for d in differences(chart)] == ["nested-parallel"]
    with pytest.raises(ValueError, match="is not a registered state"):
        run_on_pytransitions(chart, "no-such-event")


def test_a_rejection_refuses_where_pytransitions_takes_the_parents_transition() -> None:
    chart = engine.parse_chart(
        {
            "chart": "r",
            "initial": "run",
            "states": {
                "run": {"initial": "paused", "states": {"paused": {}, "going": {}}},
                "off": {},
            },
            "transitions": [{"event": "stop", "from": "run", "to": "off"}],
            "rejections": [
                {
                    "event": "stop",
                    "in": "run.paused",
                    "error": "conflict",
                    "message": "unpause first",
                }
            ],
        }
    )
    assert [d.kind for d in differences(chart)] == ["rejections"]
    with pytest.raises(Conflict, match="unpause first"):
        run_on_chartd(chart, "stop")
    assert run_on_pytransitions(chart, "stop") == "off"


def test_pytransitions_compares_a_condition_with_true_chartd_takes_its_truth() -> None:
    chart = engine.parse_chart(
        {
            "chart": "t",
            "initial": "a",
            "states": {"a": {}, "b": {}},
            "transitions": [{"event": "go", "from": "a", "to": "b", "when": "ready"}],
        }
    )
    assert engine.step(chart, chart.initial_snapshot(), "go", {"ready": "yes"}).snapshot
    model = Model()
    HierarchicalMachine(model=model, **to_pytransitions(chart))
    model.ready = "yes"  # type: ignore[attr-defined]
    assert model.trigger("go") is False and model.state == "a"  # "yes" == True is false


def test_events_that_no_transition_takes_are_unknown_to_pytransitions() -> None:
    chart = engine.parse_chart(
        {
            "chart": "u",
            "initial": "a",
            "states": {"a": {}, "b": {}},
            "transitions": [{"event": "go", "from": "a", "to": "b", "then": {"event": "ping"}}],
        }
    )
    assert [d.kind for d in differences(chart)] == ["not-a-trigger"]
    with pytest.raises(Conflict):
        run_on_chartd(chart, "ping")  # known to the chart, handled nowhere
    with pytest.raises(AttributeError, match="Do not know event named 'ping'"):
        run_on_pytransitions(chart, "ping")
