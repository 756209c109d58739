"""The chart document: the shape of a chart as written in YAML, JSON or Python.

These pydantic models check *shape* only (keys, types, enums). What the
document *means* (that targets exist, that compound states have an initial
child, ...) is checked by :mod:`engine.model.validate`, which turns a
document into a :class:`~engine.model.chart.ChartModel`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from engine.errors import Category
from engine.model.schema import SchemaSection

__all__ = [
    "ChartDocument",
    "FailureDocument",
    "FollowUpDocument",
    "MigrationDocument",
    "RejectionDocument",
    "StateDocument",
    "TransitionDocument",
]


def _as_list(value: Any) -> Any:
    """Let a single name stand for a one-element list (``from: created``)."""
    return [value] if isinstance(value, str) else value


NameList = Annotated[list[str], BeforeValidator(_as_list)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class StateDocument(_Strict):
    """One state; its kind follows from which keys are set."""

    description: str | None = None
    initial: str | None = None
    states: dict[str, StateDocument] = Field(default_factory=dict)
    parallel: bool = False
    final: bool = False
    transient: bool = False
    history: Literal["shallow", "deep"] | None = None
    default: str | None = None


class FollowUpDocument(_Strict):
    """An event fired after a failed saga, e.g. ``{event: remove, when: auto_remove}``."""

    event: str
    when: str | None = None


class FailureDocument(_Strict):
    """What a failed saga leaves behind."""

    to: str | None = None
    record: list[str] = Field(default_factory=list)
    then: FollowUpDocument | None = None
    after: str | None = None


class TransitionDocument(_Strict):
    """One transition; ``from`` is spelled ``source`` in Python."""

    description: str | None = None
    event: str | None = None
    source: NameList = Field(alias="from", min_length=1)
    to: str | None = None
    via: str | None = None
    when: str | None = None
    guards: list[str] = Field(default_factory=list)
    steps: list[str] = Field(default_factory=list)
    set: dict[str, Any] = Field(default_factory=dict)
    then: FollowUpDocument | None = None
    on_failure: FailureDocument | None = None


class RejectionDocument(_Strict):
    """A declared refusal; ``in`` is spelled ``states`` in Python."""

    event: NameList = Field(min_length=1)
    states: NameList = Field(alias="in", min_length=1)
    when: str | None = None
    error: Category
    message: str = Field(min_length=1)


class DataMigrationDocument(_Strict):
    """What becomes of the entities' data: fields renamed, then dropped, then set."""

    set: dict[str, Any] = Field(default_factory=dict)
    rename: dict[str, str] = Field(default_factory=dict)
    drop: list[str] = Field(default_factory=list)


class MigrationDocument(_Strict):
    """How entities of one older version become entities of this one (docs/chart-language.md).

    ``states`` maps an old state path (and what is under it) to a new one,
    or to null to drop it; ``history`` an old history state to a new one (null:
    forgotten); ``timers`` an old event of pending timers to a new one (null:
    cancelled). Whatever has no line keeps its path or name.
    """

    states: dict[str, str | None] = Field(default_factory=dict)
    data: DataMigrationDocument | None = None
    history: dict[str, str | None] = Field(default_factory=dict)
    timers: dict[str, str | None] = Field(default_factory=dict)


class ChartDocument(_Strict):
    """A whole chart document."""

    chart: str
    version: int = Field(default=1, ge=1)
    description: str | None = None
    # The fields every entity's data holds (what the code that creates entities
    # promises): rejection messages may name them without a warning.
    data: list[str] = Field(default_factory=list)
    initial: str
    states: dict[str, StateDocument] = Field(min_length=1)
    transitions: list[TransitionDocument] = Field(default_factory=list)
    rejections: list[RejectionDocument] = Field(default_factory=list)
    # `schema` is a name BaseModel keeps for itself: the attribute is spelled schema_.
    schema_: SchemaSection | None = Field(default=None, alias="schema")
    # Keyed by the version the entities come from (engine.model.migration).
    migrations: dict[int, MigrationDocument] = Field(default_factory=dict)
    # `node`: the steps act on the machine that runs them (processes, files), so an
    # entity belongs to the node that created it and is fired nowhere else.
    affinity: Literal["node"] | None = None
