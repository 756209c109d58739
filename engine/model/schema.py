"""Schemas of an entity's data and of each event's params: a small JSON-Schema-like language.

A chart may declare what its entities' data holds and what the params of
each of its events hold::

    schema:
      data:                       # checked when an entity is created
        required: [name]
        properties:
          name: {type: string, const: "/{entity}"}
          cmd: {type: array, minItems: 1, items: {type: string}}
      params:                     # checked on every fire of the event
        remove:
          additionalProperties: false
          properties:
            force: {type: boolean}

The keywords are JSON Schema's, a few of them: ``type`` (one name or a
list), ``enum``, ``const``, ``minimum``/``maximum``, ``minLength``/
``maxLength``, ``minItems``/``maxItems``, ``items``, ``properties``,
``required``, ``additionalProperties`` (a bool or a schema), ``default``
and ``description``. A property missing from an object gets its
``default`` before the value is checked. In a string ``const`` or
``default``, ``{entity}`` and ``{id}`` stand for the entity's name and ID,
so that a chart can say that a field of its data is the entity's name.

:class:`SchemaSection` is the document's shape (pydantic), :func:`problems`
what it means (each defect with its path), :class:`ChartSchema` the
compiled checks the engine runs on every path that writes data or fires an
event. A value is refused with InvalidParameter naming the field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from engine.errors import InvalidParameter, Problem

__all__ = [
    "EMPTY",
    "ChartSchema",
    "SchemaDocument",
    "SchemaSection",
    "compile_schema",
    "problems",
]

TypeName = Literal["null", "boolean", "integer", "number", "string", "array", "object"]


def _as_list(value: Any) -> Any:
    """Let one type name stand for a list of one (``type: string``)."""
    return [value] if isinstance(value, str) else value


# How a value's kind reads in a message: "expected an integer, got a string".
_ARTICLE = {
    "null": "null",
    "boolean": "a boolean",
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "array": "an array",
    "object": "an object",
}
# Which type each keyword applies to (a keyword beside another type is a mistake).
_APPLIES = {
    "minimum": ("integer", "number"),
    "maximum": ("integer", "number"),
    "min_length": ("string",),
    "max_length": ("string",),
    "min_items": ("array",),
    "max_items": ("array",),
    "items": ("array",),
    "properties": ("object",),
    "required": ("object",),
}
_SHOWN = 40  # characters of a refused value a message repeats


class SchemaDocument(BaseModel):
    """One schema as written; keys are JSON Schema's (``minLength``, ``additionalProperties``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    type: Annotated[list[TypeName] | None, BeforeValidator(_as_list)] = None
    description: str | None = None
    enum: list[Any] | None = Field(default=None, min_length=1)
    const: Any = None
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    min_length: int | None = Field(default=None, alias="minLength", ge=0)
    max_length: int | None = Field(default=None, alias="maxLength", ge=0)
    min_items: int | None = Field(default=None, alias="minItems", ge=0)
    max_items: int | None = Field(default=None, alias="maxItems", ge=0)
    items: SchemaDocument | None = None
    properties: dict[str, SchemaDocument] = Field(default_factory=dict)
    required: list[str] = Field(default_factory=list)
    additional_properties: bool | SchemaDocument = Field(default=True, alias="additionalProperties")

    def types(self) -> tuple[str, ...]:
        """The declared type names (none: any type)."""
        return tuple(self.type or ())


class SchemaSection(BaseModel):
    """A chart's ``schema:``: its entities' data, and the params of events by name."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    data: SchemaDocument | None = None
    params: dict[str, SchemaDocument] = Field(default_factory=dict)


# -- what a section means ----------------------------------------------------------------------


def problems(section: SchemaSection | None, events: frozenset[str]) -> list[Problem]:
    """Every defect of ``section`` (a chart with the events ``events``), each with its path."""
    if section is None:
        return []
    found: list[Problem] = []
    if section.data is not None:
        _object_at_top(section.data, "schema.data", found)
        _node_problems(section.data, "schema.data", found)
    for event, node in section.params.items():
        where = f"schema.params.{event}"
        if event not in events:
            found.append((where, f"unknown event {event!r}: the chart has no such event"))
        _object_at_top(node, where, found)
        _node_problems(node, where, found)
    return found


def _object_at_top(node: SchemaDocument, where: str, found: list[Problem]) -> None:
    if node.types() and "object" not in node.types():
        found.append((f"{where}.type", "data and params are objects: the type must be object"))


def _node_problems(node: SchemaDocument, where: str, found: list[Problem]) -> None:
    types = node.types()
    if len(set(types)) != len(types):
        found.append((f"{where}.type", "a type is named twice"))
    for key, applies in _APPLIES.items():
        given = key in node.model_fields_set and getattr(node, key) not in (None, [], {})
        if given and types and not set(applies) & set(types):
            alias = SchemaDocument.model_fields[key].alias or key
            found.append((f"{where}.{alias}", f"applies to {' and '.join(applies)} values only"))
    _bounds_problems(node, where, found)
    closed = node.additional_properties is False
    for name in node.required:
        if closed and name not in node.properties:
            found.append(
                (f"{where}.required", f"{name!r} is required but not among the properties")
            )
    if node.items is not None:
        _node_problems(node.items, f"{where}.items", found)
    for name, child in node.properties.items():
        _node_problems(child, f"{where}.properties.{name}", found)
    if isinstance(node.additional_properties, SchemaDocument):
        _node_problems(node.additional_properties, f"{where}.additionalProperties", found)


def _bounds_problems(node: SchemaDocument, where: str, found: list[Problem]) -> None:
    """A lower bound above its upper one."""
    for low, high, alias in (
        ("minimum", "maximum", "minimum"),
        ("min_length", "max_length", "minLength"),
        ("min_items", "max_items", "minItems"),
    ):
        lo, hi = getattr(node, low), getattr(node, high)
        if lo is not None and hi is not None and lo > hi:
            found.append(
                (f"{where}.{alias}", f"is greater than its maximum ({_number(lo)} > {_number(hi)})")
            )


# -- the compiled checks -----------------------------------------------------------------------


_UNSET: Any = object()


@dataclass(frozen=True, slots=True)
class _Node:
    """One schema, ready to check values against: only what it constrains is set."""

    types: tuple[str, ...] = ()
    enum: tuple[Any, ...] | None = None
    const: Any = _UNSET
    default: Any = _UNSET
    minimum: float | None = None
    maximum: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    min_items: int | None = None
    max_items: int | None = None
    items: _Node | None = None
    properties: Mapping[str, _Node] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    additional: bool | _Node = True
    fills: bool = False
    """Whether a property of this object, or of one below it, has a default."""


def _compile(doc: SchemaDocument) -> _Node:
    additional = doc.additional_properties
    properties = {k: _compile(v) for k, v in doc.properties.items()}
    return _Node(
        types=doc.types(),
        enum=None if doc.enum is None else tuple(doc.enum),
        const=doc.const if "const" in doc.model_fields_set else _UNSET,
        default=doc.default if "default" in doc.model_fields_set else _UNSET,
        minimum=doc.minimum,
        maximum=doc.maximum,
        min_length=doc.min_length,
        max_length=doc.max_length,
        min_items=doc.min_items,
        max_items=doc.max_items,
        items=None if doc.items is None else _compile(doc.items),
        properties=properties,
        required=tuple(doc.required),
        additional=additional if isinstance(additional, bool) else _compile(additional),
        fills=any(p.default is not _UNSET or p.fills for p in properties.values()),
    )


@dataclass(frozen=True, slots=True)
class ChartSchema:
    """The compiled schema of one chart; empty when the chart declares none."""

    data: _Node | None = None
    params: Mapping[str, _Node] = field(default_factory=dict)

    def check_data(self, data: Mapping[str, Any], *, entity: str, id: str) -> Mapping[str, Any]:
        """A new entity's ``data``, defaults filled in; InvalidParameter naming a bad field.

        ``entity`` and ``id`` are the new entity's name and ID.
        """
        if self.data is None:
            return data
        fields = {"entity": entity, "id": id}
        data = _fill(self.data, data, fields)
        problem = _check(self.data, data, "", fields)
        if problem is not None:
            raise InvalidParameter(f"invalid entity data: {problem}")
        return data

    def keys_of(self, event: str) -> frozenset[str] | None:
        """The param names ``event`` takes; None if it takes any (no closed schema)."""
        node = self.params.get(event)
        if node is None or node.additional is not False:
            return None
        return frozenset(node.properties)

    def check_params(
        self, event: str, params: Mapping[str, Any], *, entity: str, id: str
    ) -> Mapping[str, Any]:
        """The ``params`` of ``event``, defaults filled in; InvalidParameter naming a bad field."""
        node = self.params.get(event)
        if node is None:
            return params
        fields = {"entity": entity, "id": id}
        params = _fill(node, params, fields)
        problem = _check(node, params, "", fields)
        if problem is not None:
            raise InvalidParameter(f"invalid params of {event!r}: {problem}")
        return params


EMPTY = ChartSchema()
"""The schema of a chart that declares none: every value passes."""


def compile_schema(section: SchemaSection | None) -> ChartSchema:
    """The checks ``section`` declares (an empty schema checks nothing)."""
    if section is None:
        return EMPTY
    return ChartSchema(
        data=None if section.data is None else _compile(section.data),
        params={event: _compile(node) for event, node in section.params.items()},
    )


def _fill(node: _Node, value: Any, fields: Mapping[str, str]) -> Any:
    """``value`` with each missing property that has a default set to it (a copy if any is)."""
    if not node.fills or not isinstance(value, Mapping):
        return value
    out = dict(value)
    for key, child in node.properties.items():
        if key not in out:
            if child.default is not _UNSET:
                out[key] = _template(child.default, fields)
        elif child.fills:
            out[key] = _fill(child, out[key], fields)
    return out


# Python's types of plain values and their JSON names, in the order to ask (a bool is
# an int; a str is a Sequence).
_KINDS: tuple[tuple[Any, str], ...] = (
    (type(None), "null"),
    (bool, "boolean"),
    (int, "integer"),
    (float, "number"),
    (str, "string"),
    (Mapping, "object"),
    (Sequence, "array"),
)


def _kind(value: Any) -> str:
    """The JSON type of a plain value (``integer`` for a whole float, as JSON Schema says)."""
    for python, name in _KINDS:
        if isinstance(value, python):
            if name == "number" and math.isfinite(value) and value.is_integer():
                return "integer"
            return name
    return type(value).__name__


def _fits(kind: str, types: tuple[str, ...]) -> bool:
    return kind in types or (kind == "integer" and "number" in types)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def _at(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _prefix(path: str) -> str:
    """What a message about the value at ``path`` begins with (nothing for the whole)."""
    return f"{path}: " if path else ""


def _template(value: Any, fields: Mapping[str, str]) -> Any:
    """A string ``const`` with ``{entity}`` and ``{id}`` filled in; anything else as it is."""
    if not isinstance(value, str):
        return value
    return value.replace("{entity}", fields["entity"]).replace("{id}", fields["id"])


def _check(node: _Node, value: Any, path: str, fields: Mapping[str, str]) -> str | None:
    """The first way ``value`` (at ``path``) breaks ``node``, as a message; None if none."""
    where, kind = _prefix(path), _kind(value)
    problem = _check_shape(node, value, kind, where, fields)
    if problem is not None:
        return problem
    if kind in ("integer", "number"):
        problem = _check_number(node, value, where)
    elif kind == "string":
        problem = _check_length(node.min_length, node.max_length, len(value), where, "character")
    elif kind == "array":
        problem = _check_array(node, value, path, fields)
    elif kind == "object":
        problem = _check_object(node, value, path, fields)
    return problem


def _check_shape(
    node: _Node, value: Any, kind: str, where: str, fields: Mapping[str, str]
) -> str | None:
    """``value``'s type, against ``type``, ``const`` and ``enum``."""
    if node.types and not _fits(kind, node.types):
        expected = " or ".join(_ARTICLE[t] for t in node.types)
        return f"{where}expected {expected}, got {_ARTICLE.get(kind, kind)} ({_show(value)})"
    if node.const is not _UNSET:
        want = _template(node.const, fields)
        if value != want or _kind(value) != _kind(want):
            return f"{where}expected {_show(want)}, got {_show(value)}"
    if node.enum is not None and not any(
        value == v and _kind(value) == _kind(v) for v in node.enum
    ):
        allowed = ", ".join(_show(v) for v in node.enum)
        return f"{where}expected one of {allowed}, got {_show(value)}"
    return None


def _known(properties: Mapping[str, _Node]) -> str:
    names = sorted(properties)
    if not names:
        return "it takes none"
    shown = ", ".join(names[:8])
    return f"known: {shown}{', …' if len(names) > 8 else ''}"


def _check_number(node: _Node, value: float, where: str) -> str | None:
    if node.minimum is not None and value < node.minimum:
        return f"{where}must be at least {_number(node.minimum)}, got {_show(value)}"
    if node.maximum is not None and value > node.maximum:
        return f"{where}must be at most {_number(node.maximum)}, got {_show(value)}"
    return None


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _check_length(
    low: int | None, high: int | None, size: int, where: str, unit: str
) -> str | None:
    if low is not None and size < low:
        return f"{where}must have at least {low} {unit}{'s' if low != 1 else ''}, got {size}"
    if high is not None and size > high:
        return f"{where}must have at most {high} {unit}{'s' if high != 1 else ''}, got {size}"
    return None


def _check_array(
    node: _Node, value: Sequence[Any], path: str, fields: Mapping[str, str]
) -> str | None:
    where = _prefix(path)
    problem = _check_length(node.min_items, node.max_items, len(value), where, "item")
    if problem is not None or node.items is None:
        return problem
    for i, item in enumerate(value):
        problem = _check(node.items, item, f"{path}[{i}]", fields)
        if problem is not None:
            return problem
    return None


def _check_object(
    node: _Node, value: Mapping[str, Any], path: str, fields: Mapping[str, str]
) -> str | None:
    for name in node.required:
        if name not in value:
            return f"{_at(path, name)}: required, but missing"
    for key, item in value.items():
        child = node.properties.get(key)
        if child is None:
            if node.additional is False:
                return f"{_prefix(path)}unknown key {_show(key)} ({_known(node.properties)})"
            if node.additional is True:
                continue
            child = node.additional
        problem = _check(child, item, _at(path, str(key)), fields)
        if problem is not None:
            return problem
    return None
