"""A chart's schema of its entities' data and its events' params: the language and its checks."""

from __future__ import annotations

from typing import Any

import pytest

import engine
from engine.errors import ChartError, InvalidParameter


def chart(schema: Any) -> engine.Chart:
    return engine.parse_chart(
        {
            "chart": "job",
            "initial": "idle",
            "states": {"idle": {}, "done": {}},
            "transitions": [
                {"event": "run", "from": "idle", "to": "done"},
                {"event": "note", "from": ["idle", "done"]},
            ],
            "schema": schema,
        }
    )


def problems(schema: Any) -> list[tuple[str, str]]:
    with pytest.raises(ChartError) as info:
        chart(schema)
    return list(info.value.problems)


JOB = {
    "data": {
        "required": ["cmd"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "const": "/{entity}", "default": "/{entity}"},
            "cmd": {"type": "array", "minItems": 1, "items": {"type": "string"}},
            "tries": {"type": "integer", "minimum": 0, "maximum": 10},
            "ratio": {"type": "number"},
            "tier": {"enum": ["gold", "silver"]},
            "env": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 8}},
            "owner": {"type": ["string", "null"], "minLength": 2},
        },
    },
    "params": {
        "run": {"additionalProperties": False, "properties": {"force": {"type": "boolean"}}}
    },
}


def data_error(data: dict[str, Any], name: str = "web") -> str:
    with pytest.raises(InvalidParameter) as info:
        chart(JOB).model.schema.check_data(data, entity=name, id="4f1c")
    return info.value.message


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "cmd: required, but missing"),
        ({"cmd": "sleep 5"}, "cmd: expected an array, got a string ('sleep 5')"),
        ({"cmd": []}, "cmd: must have at least 1 item, got 0"),
        ({"cmd": ["sleep", 5]}, "cmd[1]: expected a string, got an integer (5)"),
        ({"cmd": ["a"], "tries": [1]}, "tries: expected an integer, got an array ([1])"),
        ({"cmd": ["a"], "tries": True}, "tries: expected an integer, got a boolean (True)"),
        ({"cmd": ["a"], "tries": 1.5}, "tries: expected an integer, got a number (1.5)"),
        ({"cmd": ["a"], "tries": 11}, "tries: must be at most 10, got 11"),
        ({"cmd": ["a"], "tries": -1}, "tries: must be at least 0, got -1"),
        ({"cmd": ["a"], "tier": "bronze"}, "tier: expected one of 'gold', 'silver', got 'bronze'"),
        ({"cmd": ["a"], "env": {"A": 1}}, "env.A: expected a string, got an integer (1)"),
        ({"cmd": ["a"], "env": {"A": "x" * 9}}, "env.A: must have at most 8 characters, got 9"),
        ({"cmd": ["a"], "owner": "x"}, "owner: must have at least 2 characters, got 1"),
        ({"cmd": ["a"], "name": "/db"}, "name: expected '/web', got '/db'"),
        (
            {"cmd": ["a"], "x": 1},
            "unknown key 'x' (known: cmd, env, name, owner, ratio, tier, tries)",
        ),
    ],
)
def test_data_the_schema_refuses_is_named_by_its_field(data: dict[str, Any], message: str) -> None:
    assert data_error(data) == f"invalid entity data: {message}"


def test_data_the_schema_takes_gets_its_defaults() -> None:
    schema = chart(JOB).model.schema
    given = {"cmd": ["a"], "tries": 3.0, "ratio": 2, "owner": None, "env": {}}
    assert schema.check_data(given, entity="web", id="4f1c") == {**given, "name": "/web"}
    assert schema.check_data({"cmd": ["a"], "name": "/db"}, entity="db", id="4f1c")["name"] == "/db"


def test_params_are_checked_per_event() -> None:
    schema = chart(JOB).model.schema
    with pytest.raises(InvalidParameter, match=r"^invalid params of 'run': force: expected a bool"):
        schema.check_params("run", {"force": "no"}, entity="web", id="4f1c")
    with pytest.raises(InvalidParameter, match=r"unknown key 'forse' \(known: force\)"):
        schema.check_params("run", {"forse": True}, entity="web", id="4f1c")
    assert schema.check_params("run", {"force": True}, entity="web", id="4f1c") == {"force": True}
    # An event without a schema takes any params.
    assert schema.check_params("note", {"any": [1]}, entity="web", id="4f1c") == {"any": [1]}
    assert schema.keys_of("run") == frozenset({"force"}) and schema.keys_of("note") is None


def test_a_chart_without_a_schema_checks_nothing() -> None:
    schema = chart(None).model.schema
    assert schema.check_data({"cmd": 1}, entity="web", id="4f1c") == {"cmd": 1}
    assert schema.check_params("run", {"force": "no"}, entity="web", id="4f1c") == {"force": "no"}


def test_a_bad_schema_is_refused_with_the_path_of_each_problem() -> None:
    assert problems(
        {
            "data": {
                "type": "array",
                "required": ["x"],
                "additionalProperties": False,
                "properties": {
                    "n": {"type": "string", "minimum": 1},
                    "m": {"type": "integer", "minimum": 5, "maximum": 1},
                },
            },
            "params": {"rnu": {}, "run": {"properties": {"f": {"type": ["string", "string"]}}}},
        }
    ) == [
        ("schema.data.type", "data and params are objects: the type must be object"),
        ("schema.data.properties", "applies to object values only"),
        ("schema.data.required", "applies to object values only"),
        ("schema.data.required", "'x' is required but not among the properties"),
        ("schema.data.properties.n.minimum", "applies to integer and number values only"),
        ("schema.data.properties.m.minimum", "is greater than its maximum (5 > 1)"),
        ("schema.params.rnu", "unknown event 'rnu': the chart has no such event"),
        ("schema.params.run.properties.f.type", "a type is named twice"),
    ]


def test_the_shape_of_a_schema_is_checked_like_the_rest_of_the_document() -> None:
    found = problems({"data": {"properties": {"n": {"type": "text", "minLenght": 1}}}})
    assert found == [
        (
            "schema.data.properties.n.type[0]",
            "Input should be 'null', 'boolean', 'integer', 'number', 'string', 'array' or 'object'",
        ),
        ("schema.data.properties.n.minLenght", "unknown key"),
    ]
