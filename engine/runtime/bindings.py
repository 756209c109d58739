"""Bindings: the code behind a chart's guard, step and condition names.

A chart names its guards and saga steps; :class:`Bindings` gives each name
its code when the chart is registered with an engine. A :class:`Step` has a
``do`` and, usually, an ``undo`` (its compensation).

The undo contract
-----------------
The engine journals every step of a transition *before* the first one runs,
and records each step's end without waiting for the disk. After a crash it
cannot tell whether the step that was running, or one whose end was not yet
on disk, took effect. So recovery undoes every step that is not known to be
undone already, newest first, passing the journaled payload or ``None``.
Therefore:

* ``undo(ctx, payload)`` must be safe on a step that never took effect, or
  took effect only in part, and must accept ``payload=None``;
* a step names what it creates from ``ctx.identity()`` (the entity and the
  transition), so that an undo finds it without a payload, and a repeated
  ``do`` is idempotent.

A step whose ``do`` raises is not undone (as a saga compensates only what
completed, and as moby's start registers a cleanup only after each call
succeeds): a ``do`` that fails half-way cleans up after itself before it
raises. Only a crash, which gives it no chance to, makes recovery undo it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.core import ConditionFn, Snapshot
from engine.errors import InvalidParameter

__all__ = ["Bindings", "Context", "Guard", "Step", "writes_ahead"]


class Context:
    """What a guard or step sees and may ask for; one per fire.

    ``data`` is a copy of the entity's data that steps may change; the
    changes are committed with the transition, and dropped if it fails.
    ``schedule``, ``cancel_timers`` and ``emit`` take effect only when the
    transition commits.
    """

    # The public engine.Context constructor, called by keyword: one field per thing a step sees.
    def __init__(
        self,
        *,
        entity_id: str,
        entity_name: str,
        chart: str,
        event: str,
        params: Mapping[str, Any],
        transition_id: str,
        source: Snapshot,
        target: Snapshot,
        now: float,
    ) -> None:
        self.entity_id = entity_id
        self.entity_name = entity_name
        self.chart = chart
        self.event = event
        self.params = params
        self.transition_id = transition_id
        self.source = source
        self.target = target
        self.now = now
        self.data: dict[str, Any] = dict(target.data)
        self.step: str | None = None
        self.step_index: int | None = None
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.timers: list[tuple[str, str, float, dict[str, Any]]] = []
        self.cancelled: set[str] | None = None
        self.cancel_all = False
        self.new_name: str | None = None

    def identity(self, suffix: str = "") -> str:
        """A name for what this step creates, the same on every run and on undo."""
        base = f"{self.entity_id[:12]}-{self.transition_id[:12]}-{self.step or 'guard'}"
        return f"{base}-{suffix}" if suffix else base

    def schedule(self, event: str, delay: float, params: Mapping[str, Any] | None = None) -> str:
        """Fire ``event`` on this entity ``delay`` seconds after the transition commits."""
        if delay < 0:
            raise InvalidParameter(f"timer delay must not be negative, got {delay}")
        timer_id = secrets.token_hex(16)
        self.timers.append((timer_id, event, self.now + delay, dict(params or {})))
        return timer_id

    def cancel_timers(self, *events: str) -> None:
        """Cancel this entity's pending timers for ``events`` (all of them if none is named)."""
        if not events:
            self.cancel_all = True
        else:
            self.cancelled = (self.cancelled or set()) | set(events)

    def rename(self, name: str) -> None:
        """Give the entity a new name when the transition commits (Conflict if it is taken)."""
        self.new_name = name

    def emit(self, type: str, **attributes: Any) -> None:
        """Append an event to the outbox when the transition commits (e.g. moby's ``die``)."""
        self.events.append((type, attributes))


Guard = Callable[[Context], None]
"""A guard: returns to allow the transition, raises a typed error to refuse it."""


@dataclass(frozen=True, slots=True)
class Step:
    """One saga step: ``do`` returns a JSON-able payload, ``undo`` compensates it.

    ``external`` says the step acts outside the database (a file, a process,
    an address); a transition whose steps are all internal commits once and
    journals nothing before it runs. ``undo=None`` means the step needs no
    compensation (chart check reports it).

    ``write_ahead=False`` says an external step needs no record before it
    runs: it has nothing to undo, repeating it is harmless (a fire whose
    commit finds the entity moved decides and runs again), and what a crash
    before the commit loses is made up for by what follows (a signal's
    process exits and its exit is seen; an exit is reported again). A
    transition whose external steps all say so, without a transient state,
    commits once as an internal one does (:func:`writes_ahead`).
    """

    do: Callable[[Context], Any]
    undo: Callable[[Context, Any], None] | None = None
    external: bool = True
    write_ahead: bool = True


def writes_ahead(steps: Iterable[Step], via: object) -> bool:
    """Whether a transition through ``via`` (its transient state, or None) running ``steps``
    is journaled ``running`` before its steps run (a saga), or commits once."""
    return via is not None or any(s.external and s.write_ahead for s in steps)


@dataclass(frozen=True, slots=True)
class Bindings:
    """The code for a chart's names: guards, steps and ``when`` conditions."""

    guards: Mapping[str, Guard] = field(default_factory=dict)
    steps: Mapping[str, Step] = field(default_factory=dict)
    conditions: Mapping[str, ConditionFn] = field(default_factory=dict)
