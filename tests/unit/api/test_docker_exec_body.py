"""An exec's JSON body is read as Go's encoding/json fills moby's ExecOptions.

Before, a string ``Cmd`` or ``Env`` was taken (moby refuses: they are
``[]string``), a lower-case ``cmd`` was ignored (Go matches field names
without regard to case), and a ``ConsoleSize`` of one number refused (Go
fills the rest with zeros).
"""

from __future__ import annotations

from typing import Any

import pytest

from engine.dockerapi.shapes import EXEC_FIELDS, START_FIELDS, go_fields
from engine.errors import InvalidParameter


def _exec(body: dict[str, Any]) -> dict[str, Any]:
    return go_fields(body, "ExecOptions", EXEC_FIELDS)


def test_field_names_in_any_case_the_last_one_winning() -> None:
    assert _exec({"cmd": ["a"], "CMD": ["b"], "tty": True, "Bogus": 1}) == {
        "Cmd": ["b"],
        "Tty": True,
    }
    assert _exec({"Cmd": ["a"], "cmd": None, "Tty": True, "tty": None}) == {"Tty": True}


def test_missing_and_null_parts_are_go_zeros() -> None:
    assert _exec({"ConsoleSize": [24]}) == {"ConsoleSize": [24, 0]}
    assert _exec({"ConsoleSize": [24, 80, "past the end"]}) == {"ConsoleSize": [24, 80]}
    assert _exec({"Cmd": ["echo", None]}) == {"Cmd": ["echo", ""]}


@pytest.mark.parametrize(
    ("body", "kind", "field", "go_type"),
    [
        ({"Cmd": "echo hi"}, "string", "Cmd", "[]string"),
        ({"Cmd": ["echo", 1]}, "number", "Cmd", "string"),
        ({"Env": {"A": "1"}}, "object", "Env", "[]string"),
        ({"Tty": "yes"}, "string", "Tty", "bool"),
        ({"WorkingDir": 5}, "number", "WorkingDir", "string"),
        ({"ConsoleSize": [-1, 2]}, "number -1", "ConsoleSize", "uint"),
        ({"ConsoleSize": [1.5, 2]}, "number 1.5", "ConsoleSize", "uint"),
        ({"User": True, "Cmd": 1}, "bool", "User", "string"),  # the first one
    ],
)
def test_the_first_value_of_a_wrong_type_is_gos_error(
    body: dict[str, Any], kind: str, field: str, go_type: str
) -> None:
    with pytest.raises(InvalidParameter) as refused:
        _exec(body)
    assert refused.value.message == (
        f"invalid JSON: json: cannot unmarshal {kind} into Go struct field "
        f"ExecOptions.{field} of type {go_type}"
    )


def test_a_start_body() -> None:
    assert go_fields({"detach": True, "Cmd": 1}, "ExecStartOptions", START_FIELDS) == {
        "Detach": True
    }
    with pytest.raises(InvalidParameter) as refused:
        go_fields({"Tty": 1}, "ExecStartOptions", START_FIELDS)
    assert refused.value.message == (
        "invalid JSON: json: cannot unmarshal number into Go struct field "
        "ExecStartOptions.Tty of type bool"
    )
