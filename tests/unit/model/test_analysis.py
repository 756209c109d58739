"""Static analysis of sound charts."""

from __future__ import annotations

from collections.abc import Mapping

import engine
from engine import errors
from engine.model.analysis import (
    Exploration,
    analyse,
    binding_findings,
    condition_names,
    dead_ends,
    exploration_findings,
    explore,
    nondeterministic_pairs,
    reachable_states,
    unhandled_pairs,
)
from statecharts.container import load_chart as load_container_chart


def test_reachability_follows_targets_vias_failure_targets_and_defaults() -> None:
    c = engine.parse_chart(
        {
            "chart": "r",
            "initial": "a",
            "states": {
                "a": {},
                "hold": {"transient": True},
                "b": {"initial": "b1", "states": {"b1": {}, "b2": {}}},
                "broken": {},
                "island": {},
            },
            "transitions": [
                {
                    "event": "go",
                    "from": "a",
                    "to": "b",
                    "via": "hold",
                    "steps": ["s"],
                    "on_failure": {"to": "broken"},
                },
                {"event": "go", "from": "island", "to": "a"},
            ],
        }
    )
    assert reachable_states(c.model) == {"a", "hold", "b", "b.b1", "broken"}
    kinds = {(f.kind, f.where) for f in analyse(c.model)}
    assert ("unreachable", "island") in kinds
    assert ("unreachable", "b.b2") in kinds


def test_unhandled_pairs_respect_ancestors_and_wildcard_rejections() -> None:
    c = engine.parse_chart(
        {
            "chart": "u",
            "initial": "on",
            "states": {
                "on": {"initial": "x", "states": {"x": {}, "y": {}}},
                "off": {"final": True},
            },
            "transitions": [
                {"event": "flip", "from": "on.x", "to": "on.y"},
                {"event": "quit", "from": "on", "to": "off"},
            ],
            "rejections": [{"event": "*", "in": "off", "error": "not_found", "message": "gone"}],
        }
    )
    assert unhandled_pairs(c.model) == [("on.y", "flip")]


# -- dead ends, nondeterminism, bindings ----------------------------------------------------


def test_dead_ends_are_resting_states_no_transition_ever_leaves() -> None:
    c = engine.parse_chart(
        {
            "chart": "d",
            "initial": "a",
            "states": {
                "a": {},
                "trap": {},
                "loop": {},
                "nest": {"initial": "x", "states": {"x": {}, "y": {}}},
                "end": {"final": True},
            },
            "transitions": [
                {"event": "go", "from": "a", "to": "trap"},
                {"event": "go2", "from": "a", "to": "loop"},
                {"event": "spin", "from": "loop", "to": "loop"},  # back to itself: no way out
                {"event": "in", "from": "a", "to": "nest"},
                {"event": "out", "from": "nest", "to": "end"},  # from the parent: x and y leave
                {"event": "quit", "from": "a", "to": "end"},
            ],
        }
    )
    assert dead_ends(c.model) == ["trap", "loop"]
    assert ("dead-end", "trap") in {(f.kind, f.where) for f in analyse(c.model)}


def test_a_failure_target_is_a_way_out() -> None:
    c = engine.parse_chart(
        {
            "chart": "f",
            "initial": "a",
            "states": {"a": {}, "broken": {}, "hold": {"transient": True}},
            "transitions": [
                {
                    "event": "go",
                    "from": "a",
                    "to": "a",
                    "via": "hold",
                    "steps": ["s"],
                    "on_failure": {"to": "broken"},
                },
                {"event": "fix", "from": "broken", "to": "a"},
            ],
        }
    )
    assert dead_ends(c.model) == []


def test_nondeterministic_pairs_are_transitions_their_conditions_do_not_tell_apart() -> None:
    c = engine.parse_chart(
        {
            "chart": "n",
            "initial": "a",
            "states": {"a": {}, "b": {}, "c": {}},
            "transitions": [
                {"event": "same", "from": "a", "to": "b"},
                {"event": "same", "from": "a", "to": "c"},
                {"event": "either", "from": "a", "to": "b", "when": "x"},
                {"event": "either", "from": "a", "to": "c", "when": "y"},
                {"event": "exclusive", "from": "a", "to": "b", "when": "x"},
                {"event": "exclusive", "from": "a", "to": "c", "when": "!x"},
                {"event": "else", "from": "a", "to": "b", "when": "x"},
                {"event": "else", "from": "a", "to": "c"},
                {"event": "dead", "from": "a", "to": "b", "when": "x"},
                {"event": "dead", "from": "a", "to": "c", "when": "!x"},
                {"event": "dead", "from": "a", "to": "a"},
                {"event": "twice", "from": "a", "to": "b", "when": "x"},
                {"event": "twice", "from": "a", "to": "c", "when": "x"},
            ],
        }
    )
    found = {
        (later.event, later.index, why.split(":")[0])
        for _, later, why in nondeterministic_pairs(c.model)
    }
    assert found == {
        ("same", 1, "both are unconditional"),
        ("either", 3, "both are enabled when x and y hold"),
        ("dead", 10, "the transitions before it cover both x and !x"),
        ("twice", 12, "both are taken when x"),
    }


def test_the_container_chart_is_clean_of_static_findings() -> None:
    assert analyse(load_container_chart().model) == []


def test_binding_findings_name_missing_code_and_missing_compensation() -> None:
    c = engine.parse_chart(
        {
            "chart": "b",
            "initial": "a",
            "states": {"a": {}, "b": {}},
            "transitions": [
                {
                    "event": "go",
                    "from": "a",
                    "to": "b",
                    "guards": ["quota"],
                    "steps": ["dir", "run"],
                },
                {"event": "back", "from": "b", "to": "a", "steps": ["run"]},
            ],
        }
    )
    found = binding_findings(c.model, guards=set(), steps={"dir", "run"}, without_undo={"run"})
    assert [(f.severity, f.kind, f.where) for f in found] == [
        ("error", "unbound", "guard quota"),
        ("note", "uncompensated", "step run"),
    ]
    assert found[1].message.endswith("(transitions[0], transitions[1])")


# -- bounded exploration ----------------------------------------------------------------------


def _explore(c: engine.Chart, limit: int = 100) -> Exploration[engine.Snapshot]:
    """The exploration as the CLI binds it: engine.step with every condition value."""
    names = condition_names(c.model)

    def step(
        snapshot: engine.Snapshot, event: str, values: Mapping[str, bool]
    ) -> tuple[list[engine.Snapshot], list[str], str | None]:
        asked: list[str] = []

        def ask(name: str) -> engine.ConditionFn:
            return lambda s, p: bool(asked.append(name) or values.get(name, False))

        try:
            plan = engine.step(c, snapshot, event, conditions={n: ask(n) for n in names})
        except errors.System as exc:
            return [], asked, exc.message
        except errors.ChartdError:
            return [], asked, None
        return [plan.snapshot], asked, None

    return explore(
        c.initial_snapshot(conditions={n: (lambda s, p: False) for n in names}),
        sorted(e for e in c.events if not e.startswith("done.")),
        step,
        key=lambda s: (s.configuration, tuple(sorted(s.history.items()))),
        states=lambda s: s.configuration,
        limit=limit,
    )


def test_exploration_takes_every_condition_value_and_stops_at_its_limit() -> None:
    c = engine.parse_chart(
        {
            "chart": "e",
            "initial": "a",
            "states": {"a": {}, "b": {}, "c": {}, "d": {}},
            "transitions": [
                {"event": "go", "from": "a", "to": "b", "when": "x"},
                {"event": "go", "from": "a", "to": "c", "when": "y"},
                {"event": "go", "from": "a", "to": "d"},
                {"event": "back", "from": ["b", "c", "d"], "to": "a"},
            ],
        }
    )
    found = _explore(c)
    assert found.complete and len(found.configurations) == 4
    assert found.states == {"a", "b", "c", "d"}
    assert exploration_findings(c.model, found, str, limit=100)[-1].kind == "explored"
    bounded = _explore(c, limit=2)
    assert not bounded.complete and len(bounded.configurations) == 2
    [note] = exploration_findings(c.model, bounded, str, limit=2)
    assert "stopped at the limit (2)" in note.message


def test_exploration_reports_a_chart_that_never_settles() -> None:
    c = engine.parse_chart(
        {
            "chart": "s",
            "initial": "a",
            "states": {"a": {}, "p": {"initial": "f", "states": {"f": {"final": True}}}},
            "transitions": [
                {"event": "go", "from": "a", "to": "p", "when": "x"},
                {"event": "done.state.p", "from": "p", "to": "p"},
            ],
        }
    )
    found = _explore(c)
    assert [(event, "does not settle" in message) for _, event, message in found.failures] == [
        ("go", True)
    ]
    [fault, unreachable_p, unreachable_f, note] = exploration_findings(
        c.model, found, lambda k: "here", limit=100
    )
    assert (fault.severity, fault.kind, fault.where) == ("error", "fault", "here + go")
    assert [(f.kind, f.where) for f in (unreachable_p, unreachable_f)] == [
        ("unreachable", "p"),
        ("unreachable", "p.f"),
    ]
    assert note.severity == "note"
