"""Malformed charts are refused, each problem named by its path in the document."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import engine
from engine.errors import ChartError, InvalidParameter, NotFound


def base(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "chart": "c",
        "initial": "idle",
        "states": {
            "idle": {},
            "busy": {"initial": "work", "states": {"work": {}, "wait": {}}},
            "starting": {"transient": True},
        },
        "transitions": [
            {"event": "go", "from": "idle", "to": "busy", "via": "starting", "steps": ["s"]},
            {"event": "halt", "from": "busy", "to": "idle"},
        ],
    }
    doc.update(changes)
    return doc


def problems(doc: Any) -> list[tuple[str, str]]:
    with pytest.raises(ChartError) as info:
        engine.parse_chart(doc)
    assert isinstance(info.value, InvalidParameter)
    return list(info.value.problems)


def test_the_base_chart_is_sound() -> None:
    assert engine.parse_chart(base()).initial_snapshot().configuration == ("idle",)


def test_an_unknown_target_is_named_with_a_suggestion() -> None:
    doc = base()
    doc["transitions"].append({"event": "x", "from": "idle", "to": "busy.wiat"})
    doc["transitions"].append({"event": "y", "from": "idle", "to": "wait"})
    assert problems(doc) == [
        ("transitions[2].to", "unknown state 'busy.wiat' (did you mean 'busy.wait'?)"),
        ("transitions[3].to", "unknown state 'wait' (did you mean 'busy.wait'?)"),
    ]


def test_the_message_starts_with_the_path() -> None:
    doc = base()
    doc["transitions"][1]["from"] = "runing"
    with pytest.raises(
        ChartError, match=r"^invalid chart: transitions\[1\]\.from: unknown state 'runing'$"
    ):
        engine.parse_chart(doc)


def test_every_problem_is_reported_at_once() -> None:
    doc = base(initial="nowhere")
    doc["transitions"][0]["from"] = ["idle", "gone"]
    doc["transitions"][1]["to"] = "gone"
    found = problems(doc)
    assert [p for p, _ in found] == ["initial", "transitions[0].from[1]", "transitions[1].to"]


def test_a_compound_state_without_initial() -> None:
    doc = base()
    del doc["states"]["busy"]["initial"]
    assert problems(doc) == [("states.busy.initial", "a compound state needs an initial child")]


def test_an_initial_that_is_not_a_child() -> None:
    doc = base()
    doc["states"]["busy"]["initial"] = "idle"
    assert problems(doc) == [("states.busy.initial", "'idle' is not a child of 'busy'")]


def test_duplicate_state_names_in_yaml_are_refused_with_their_line() -> None:
    text = """
chart: c
initial: a
states:
  a: {}
  b: {}
  a: {final: true}
"""
    with pytest.raises(ChartError, match=r"line 7: duplicate key 'a' \(first at line 5\)"):
        engine.parse_chart(text)


def test_duplicate_keys_in_json_are_refused() -> None:
    with pytest.raises(ChartError, match="duplicate key 'a'"):
        engine.parse_chart('{"chart": "c", "initial": "a", "states": {"a": {}, "a": {}}}')


def test_a_duplicate_rejection_is_refused() -> None:
    rule = {"event": "go", "in": "busy", "error": "conflict", "message": "no"}
    assert problems(base(rejections=[rule, rule])) == [
        ("rejections[1]", "duplicate rejection of 'go' in 'busy' (first declared in rejections[0])")
    ]


def test_a_transient_state_with_no_saga() -> None:
    doc = base()
    doc["transitions"][0]["steps"] = []
    assert problems(doc) == [
        ("transitions[0].via", "a transition held in a transient state needs steps"),
        ("states.starting", "a transient state must be the 'via' of a transition with steps"),
    ]


def test_a_transient_state_as_a_target_or_via_of_a_non_transient() -> None:
    doc = base()
    doc["transitions"].append({"event": "x", "from": "idle", "to": "starting"})
    doc["transitions"].append(
        {"event": "y", "from": "idle", "to": "busy", "via": "idle", "steps": ["s"]}
    )
    assert problems(doc) == [
        (
            "transitions[2].to",
            "'starting' is transient: name it in 'via', it is held only while steps run",
        ),
        ("transitions[3].via", "'idle' is not a transient state"),
    ]


def test_a_cycle_of_eventless_transitions() -> None:
    doc = base()
    doc["transitions"] += [
        {"from": "busy.work", "to": "busy.wait"},
        {"from": "busy.wait", "to": "busy.work", "when": "maybe"},
    ]
    [(path, text)] = problems(doc)
    assert path == "transitions[2]"
    assert text.startswith("eventless transitions form a cycle that never ends: ")
    assert "busy.work" in text and "busy.wait" in text


def test_an_eventless_transition_into_its_own_source_state_is_a_cycle() -> None:
    doc = base()
    doc["transitions"].append({"from": "busy", "to": "busy.wait"})
    [(path, text)] = problems(doc)
    assert path == "transitions[2]"
    assert "cycle" in text


def test_an_eventless_transition_needs_a_target() -> None:
    doc = base()
    doc["transitions"].append({"from": "idle", "steps": ["x"]})
    assert problems(doc) == [("transitions[2]", "an eventless transition needs a target ('to')")]


@pytest.mark.parametrize(
    ("state", "path", "text"),
    [
        (
            {"final": True, "states": {"x": {}}, "initial": "x"},
            "states.odd.states",
            "a final state has no children",
        ),
        (
            {"history": "deep", "states": {"x": {}}, "initial": "x"},
            "states.odd.states",
            "a history state has no children",
        ),
        ({"parallel": True}, "states.odd.states", "a parallel state needs at least one region"),
        (
            {"parallel": True, "final": True, "states": {"x": {}}},
            "states.odd",
            "a state cannot be both parallel and final",
        ),
        ({"default": "idle"}, "states.odd.default", "only a history state has a default"),
        (
            {"history": "shallow"},
            "states.odd.history",
            "a history state must be the child of a compound state",
        ),
    ],
)
def test_state_kinds_that_do_not_make_sense(state: dict[str, Any], path: str, text: str) -> None:
    doc = base()
    doc["states"]["odd"] = state
    assert (path, text) in problems(doc)


def test_shape_errors_come_from_the_document_with_paths() -> None:
    doc = base()
    doc["transitions"][0]["steps"] = "not-a-list"
    doc["transitions"][1]["form"] = doc["transitions"][1].pop("from")
    doc["rejections"] = [{"event": "go", "in": "idle", "error": "teapot", "message": "x"}]
    found = dict(problems(doc))
    assert found["transitions[0].steps"] == "Input should be a valid list"
    assert found["transitions[1].form"] == "unknown key"
    assert found["transitions[1].from"] == "required key is missing"
    assert "rejections[0].error" in found


def test_leaving_a_final_state_is_refused() -> None:
    doc = base()
    doc["states"]["end"] = {"final": True}
    doc["transitions"].append({"event": "again", "from": "end", "to": "idle"})
    assert problems(doc) == [
        ("transitions[2].from", "a transition cannot leave the final state 'end'")
    ]


def test_invalid_names() -> None:
    doc = base(chart="my chart")
    doc["states"]["a.b"] = {}
    doc["transitions"][1]["event"] = "halt now"
    doc["transitions"][1]["when"] = "a and b"
    found = dict(problems(doc))
    assert set(found) == {"chart", "states.a.b", "transitions[1].event", "transitions[1].when"}


def test_not_a_mapping() -> None:
    assert problems("- just\n- a list\n") == [("", "a chart is a mapping, not list")]
    assert problems("chart: [")[0][1].startswith("not valid YAML")
    with pytest.raises(ChartError, match="the chart is empty"):
        engine.parse_chart("")


def test_load_chart_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no chart file at"):
        engine.load_chart(tmp_path / "nope.yaml")


def test_load_chart_reads_yaml_and_names_the_file_in_errors(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("chart: g\ninitial: a\nstates: {a: {}}\n")
    assert engine.load_chart(good).name == "g"
    bad = tmp_path / "bad.yaml"
    bad.write_text("chart: g\ninitial: b\nstates: {a: {}}\n")
    with pytest.raises(ChartError, match=rf"invalid chart {bad}: initial: unknown state 'b'"):
        engine.load_chart(bad)


def test_a_failure_policy_after_a_step_the_transition_does_not_run() -> None:
    doc = base()
    doc["transitions"][0]["on_failure"] = {"after": "stop", "to": "idle"}
    assert problems(doc) == [
        (
            "transitions[0].on_failure.after",
            "'stop' is not one of this transition's steps (its steps: 's')",
        )
    ]
