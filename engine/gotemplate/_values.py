"""Values as Go's templates print, compare and test them; the errors and limits."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


class TemplateError(Exception):
    """A template that does not parse, or an execution that failed; the message is Go's.

    ``output`` is what a failed execution wrote before it failed.
    """

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message)
        self.output = output


class Fields:
    """An object whose fields a template reads (``{{.ID}}``) and whose methods it calls.

    A subclass lists them in ``template_fields``; ``type_name`` is how
    errors name its type (docker's ``*formatter.ContainerContext``).
    """

    template_fields: tuple[str, ...] = ()
    type_name = "struct"

    def template_field(self, name: str) -> Callable[..., Any] | None:
        """The method behind field ``name``, None if there is none."""
        if name not in self.template_fields:
            return None
        method: Callable[..., Any] = getattr(self, name)
        return method

    def plain(self) -> dict[str, Any]:
        """The values of the fields that take no argument, by name (what ``json`` shows)."""
        names = [name for name in self.template_fields if arity(self, name) == 0]
        return {name: getattr(self, name)() for name in names}


MAX_WIDTH = 10_000
"""The widest a ``printf`` verb or a ``pad`` may make a value."""


class StringMap(dict[str, str]):
    """A Go ``map[string]string`` (docker's labels): a missing key is ``<no value>``
    through a field (even under ``missingkey=error``, as docker's typed execution
    reads it) and ``""`` through ``index``."""


@dataclass(frozen=True, slots=True)
class Limits:
    """What one template may cost: nesting depth, execution steps, output characters."""

    depth: int = 100
    steps: int = 1_000_000
    output: int = 16 * 1024 * 1024


# -- values as Go prints and compares them --------------------------------------------


def go_type(value: Any) -> str:
    """The Go type name of a value, as errors name it."""
    if isinstance(value, Fields):
        return value.type_name
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "map[string]interface {}"
    if isinstance(value, (list, tuple)):
        return (
            "[]interface {}"
            if not all(isinstance(v, str) for v in value) or not value
            else "[]string"
        )
    return "<nil>" if value is None else type(value).__name__


def _float(value: float) -> str:
    """Go's %v of a float64 (strconv 'g' with the shortest representation)."""
    if math.isnan(value):
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    text = repr(value)
    mantissa, _, exponent = text.partition("e")
    if not exponent:
        exp = len(str(abs(int(value)))) - 1 if abs(value) >= 1 else None
        if exp is not None and exp >= 21:
            return _float(float(f"{value:e}"))  # pragma: no cover - repr switches first
        return text[:-2] if text.endswith(".0") else text
    sign = "-" if exponent.startswith("-") else "+"
    return f"{mantissa.removesuffix('.0')}e{sign}{exponent.lstrip('+-').zfill(2)}"


def go_string(value: Any) -> str:
    """``value`` as Go's ``fmt.Sprint`` prints it (``<nil>``, ``true``, ``[a b]``, ``map[k:v]``)."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, (int, str)):
        return str(value)
    if isinstance(value, Mapping):
        return (
            "map[" + " ".join(f"{go_string(k)}:{go_string(value[k])}" for k in sorted(value)) + "]"
        )
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(go_string(v) for v in value) + "]"
    if isinstance(value, Fields):
        return "{" + " ".join(go_string(v) for v in value.plain().values()) + "}"
    return str(value)


def arity(obj: Fields, name: str) -> int:
    method = obj.template_field(name)
    code = getattr(method, "__code__", None)
    return 0 if code is None else code.co_argcount - 1


def truth(value: Any) -> bool:
    """Go's template truth: false, 0, nil and empty things are false; anything else true."""
    if value is None:
        return False
    if isinstance(value, (bool, int, float, str, list, tuple, Mapping)):
        return bool(value)
    return True
