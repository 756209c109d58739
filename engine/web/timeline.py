"""An entity's parts of a page: its data, and its journal as a timeline.

Each transition shows its event, outcome, the states it moved between, its
duration, idempotency key and trace id, its error, its steps (each with its
duration and error) and, when it failed, its compensations in the order
they ran (newest step first, as the saga undoes them). Everything here goes
through :func:`engine.web.markup.html`, so every value shows as text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from engine.ports import innermost
from engine.runtime.records import Entity, StepRecord, TransitionRecord
from engine.web.markup import Html, html, join

__all__ = [
    "HISTORY",
    "LIVE",
    "data_block",
    "entity_change",
    "entity_facts",
    "entity_view",
    "moment",
    "timeline",
]

HISTORY = 200
"""How many of an entity's newest transitions its page shows (an entity fired a million
times must not make its page read, render and send a million)."""

LIVE = 20
"""How many new transitions one live change of an entity page carries at most."""


def moment(seconds: float | None) -> str:
    """A time of the journal in UTC, to the millisecond (``-`` for none)."""
    if seconds is None:
        return "-"
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")


def lasted(start: float | None, end: float | None) -> str:
    """How long from ``start`` to ``end``: ``12.3 ms``, ``4.56 s`` (empty if either is missing)."""
    if start is None or end is None:
        return ""
    seconds = max(end - start, 0.0)
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def data_block(data: Mapping[str, Any]) -> Html:
    """The entity's data as indented JSON."""
    return html("<pre>{}</pre>", json.dumps(data, indent=2, sort_keys=True, default=str))


def timeline(history: Sequence[TransitionRecord]) -> Html:
    """The journal, oldest first; a note when it is empty or holds only the newest entries."""
    if not history:
        return html('<p class="note">No transitions yet.</p>')
    cut = ""
    if len(history) >= HISTORY:
        cut = html(
            '<p class="note">The newest {} transitions; older ones are not shown.</p>', HISTORY
        )
    return html('{}<ol class="timeline">{}</ol>', cut, join(_transition(t) for t in history))


def _transition(t: TransitionRecord) -> Html:
    target = innermost(t.target) if t.target is not None else ""
    facts = [("started", moment(t.started_at)), ("finished", moment(t.finished_at))]
    if t.idempotency_key:
        facts.append(("idempotency key", t.idempotency_key))
    # The journal keeps a trace id once traces are recorded; older entries have none.
    trace = t.trace_id
    if trace:
        facts.append(("trace id", trace))
    if t.params:
        facts.append(("params", json.dumps(t.params, sort_keys=True, default=str)))
    parts = [
        html(
            '<div class="head"><span class="event">{}</span> <span class="status">{}</span> '
            '<span class="moved">{} → {}</span> <span class="duration">{}</span></div>',
            t.event,
            t.status,
            innermost(t.source),
            target or "-",
            lasted(t.started_at, t.finished_at),
        ),
        html(
            '<dl class="facts">{}</dl>',
            join(
                html('<dt>{}</dt><dd class="{}">{}</dd>', k, k.replace(" ", "-"), v)
                for k, v in facts
            ),
        ),
    ]
    if t.error_message is not None:
        parts.append(
            html('<p class="error"><b>{}</b> {}</p>', t.error_category or "error", t.error_message)
        )
    if t.steps:
        parts.append(html('<ol class="steps">{}</ol>', join(_step(s) for s in t.steps)))
    undone = sorted((s for s in t.steps if s.compensated_at is not None), key=_undone_at)
    if undone:
        parts.append(
            html(
                '<p class="label">compensations</p><ol class="compensations">{}</ol>',
                join(_compensation(s) for s in undone),
            )
        )
    for message in t.compensation_errors:
        parts.append(html('<p class="error compensation-error">{}</p>', message))
    return html(
        '<li class="transition status-{}" data-transition="{}">{}</li>',
        t.status,
        t.id,
        join(parts),
    )


def _undone_at(s: StepRecord) -> tuple[float, int]:
    # Ties (a clock too coarse) fall back to the saga's order: newest step first.
    return (s.compensated_at or 0.0, -s.index)


def _step(s: StepRecord) -> Html:
    error = html(' <span class="error">{}</span>', s.error) if s.error else ""
    return html(
        '<li class="step status-{}"><span class="name">{}</span> <span class="status">{}</span> '
        '<span class="duration">{}</span>{}</li>',
        s.status,
        s.name,
        s.status,
        lasted(s.started_at, s.finished_at),
        error,
    )


def _compensation(s: StepRecord) -> Html:
    outcome = (
        html('<span class="error">{}</span>', s.compensation_error)
        if s.compensation_error
        else html('<span class="status">undone</span>')
    )
    return html(
        '<li class="compensation"><span class="name">{}</span> {} '
        '<span class="when">{}</span></li>',
        s.name,
        outcome,
        moment(s.compensated_at),
    )


def entity_facts(entity: Entity) -> dict[str, Any]:
    """What an entity page shows of the entity itself, for the page's script."""
    return {
        "id": entity.id,
        "configuration": list(entity.configuration),
        "state": entity.state,
        "version": entity.version,
        "updated": moment(entity.updated_at),
        "data": str(data_block(entity.data)),
    }


def entity_view(entity: Entity, history: Sequence[TransitionRecord]) -> dict[str, Any]:
    """The whole of an entity page that changes: its facts and its timeline (to replace)."""
    return {**entity_facts(entity), "timeline": str(timeline(history))}


def entity_change(entity: Entity, changed: Sequence[TransitionRecord], gap: bool) -> dict[str, Any]:
    """A change of an entity page: its facts, and the transitions new or changed since the last.

    The page puts each in its timeline (replacing one of the same id), and
    marks a ``gap`` where more transitions came than one change carries.
    """
    return {
        **entity_facts(entity),
        "transitions": str(join(_transition(t) for t in changed)),
        "gap": gap,
    }
