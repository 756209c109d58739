"""Hypothesis strategies: valid random charts, event params, event sequences, and actions.

:func:`chart_documents` and :func:`charts` draw valid random charts (see
:mod:`engine.testing.generated_charts`); :func:`params` and :func:`events`
draw what is fired at a chart; :func:`faults`, :func:`fires`,
:func:`actions` and :func:`mixed` draw what a :class:`~engine.testing.Harness`
is made to do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hypothesis import strategies as st

import engine
from engine.model.analysis import condition_names
from engine.testing.faults import CRASH_POINTS, Crash, Create, Fault, Fire, Restart, Retry
from engine.testing.generated_charts import REFUSAL_CATEGORIES, chart_documents, charts

__all__ = [
    "UNKNOWN_EVENT",
    "actions",
    "chart_documents",
    "charts",
    "events",
    "faults",
    "fires",
    "mixed",
    "params",
]

UNKNOWN_EVENT = "no-such-event"
"""An event no generated chart knows: every chart must refuse it with InvalidParameter."""


def params(
    chart: engine.Chart, extra: Mapping[str, st.SearchStrategy[Any]] | None = None
) -> st.SearchStrategy[dict[str, Any]]:
    """Event params: a random truth value for some of the chart's conditions, and ``extra``.

    A condition left out is found nowhere and counts as false, so leaving a
    key out is a case of its own. ``extra`` maps further param names to
    strategies for their values (e.g. ``{"signal": st.sampled_from(...)}``);
    they are always there (draw ``st.none()`` among the values for "unset").
    """
    optional: dict[str, st.SearchStrategy[Any]] = {
        name: st.booleans() for name in condition_names(chart.model) if name not in (extra or {})
    }
    return st.fixed_dictionaries(dict(extra or {}), optional=optional)


def events(
    chart: engine.Chart,
    *,
    max_size: int = 30,
    unknown: bool = True,
    done_events: bool = False,
    extra_params: Mapping[str, st.SearchStrategy[Any]] | None = None,
) -> st.SearchStrategy[list[tuple[str, dict[str, Any]]]]:
    """Sequences of (event, params) for ``chart``: its events, and an unknown one if ``unknown``.

    ``done.state.*`` events are raised by the core itself; firing them from
    outside is allowed but left out unless ``done_events``.
    """
    names = sorted(e for e in chart.events if done_events or not e.startswith("done.state."))
    if unknown:
        names.append(UNKNOWN_EVENT)
    if not names:
        return st.just([])
    return st.lists(
        st.tuples(st.sampled_from(names), params(chart, extra_params)), max_size=max_size
    )


# -- actions on an engine -------------------------------------------------------------------


def _widest(chart: engine.Chart) -> tuple[int, int]:
    """How many guards and steps a plan can have at most (a step may take several transitions)."""
    guards = sum(len(t.guards) for t in chart.transitions) or 1
    steps = sum(len(t.steps) for t in chart.transitions) or 1
    widest = max((len(t.steps) for t in chart.transitions), default=1)
    # Positions past the widest transition are rare; keep them possible, not likely.
    return min(guards, 4), min(steps, max(widest + 1, 2))


def faults(chart: engine.Chart, *, crashes: bool = True) -> st.SearchStrategy[Fault | None]:
    """Fault plans for fires on ``chart``: none, or failing guards, steps, undos, and crashes."""
    guards, steps = _widest(chart)
    categories = st.none() | st.sampled_from(REFUSAL_CATEGORIES)
    # Most plans are short: small positions are drawn more often, so that faults land.
    position = st.integers(0, min(2, steps - 1)) | st.integers(0, steps - 1)
    crash = st.builds(
        Crash,
        at=st.sampled_from(CRASH_POINTS),
        index=position,
        keep=st.integers(0, 3),
    )
    fault = st.builds(
        Fault,
        guard=st.none() | st.integers(0, guards - 1),
        step=st.none() | position,
        undo=st.frozensets(position, max_size=2),
        category=categories,
        crash=(st.none() | crash) if crashes else st.none(),
    )
    return st.none() | fault


# Eight parameters: the public options of a public strategy, also passed on by actions() and
# mixed() as keywords; grouping them would change its API.
def fires(
    chart: engine.Chart,
    *,
    max_entities: int = 3,
    extra_params: Mapping[str, st.SearchStrategy[Any]] | None = None,
    keys: Sequence[str] = ("k1", "k2"),
    with_faults: bool | st.SearchStrategy[Fault | None] = True,
    crashes: bool = True,
    enabled: bool | None = None,
    events: Sequence[str] | None = None,
) -> st.SearchStrategy[Fire]:
    """Fires with params, keys and faults: of a named event, or of one the chart accepts.

    A fire of a named event draws from ``events`` (default: every event the
    chart knows, and an unknown one), so most are refused. An ``enabled``
    fire names no event: the harness picks one the chart accepts in the
    entity's state (``Fire.pick``). ``enabled=None`` draws both, half each.
    ``with_faults`` may be a strategy of its own for the fault plans.
    """
    if events is not None:
        names = list(events)
    else:
        names = sorted(e for e in chart.events if not e.startswith("done.state."))
        names.append(UNKNOWN_EVENT)
    named: st.SearchStrategy[str | None] = st.sampled_from(names)
    event = {True: st.none(), False: named, None: named | st.none()}[enabled]
    detailed = st.builds(
        Fire,
        entity=st.integers(0, max_entities - 1),
        event=event,
        params=params(chart, extra_params),
        key=st.none() | st.sampled_from(tuple(keys)),
        fault=(
            with_faults
            if isinstance(with_faults, st.SearchStrategy)
            else faults(chart, crashes=crashes)
            if with_faults
            else st.none()
        ),
        pick=st.just(0) if enabled is False else st.integers(0, 7),
    )
    # A plain fire (entity 0, no params, key or fault) is one or two choices, so that the
    # shrinker, which deletes at most five choices at a time, can delete a step made of it.
    plain_events: list[str | None] = [None] if enabled else list(names)
    if enabled is None:
        plain_events.append(None)
    plain = st.sampled_from(plain_events).map(_plain_fire)
    return st.one_of(plain, detailed)


def _plain_fire(event: str | None) -> Fire:
    return Fire(0, event)


def actions(
    chart: engine.Chart,
    *,
    min_size: int = 5,
    max_size: int = 20,
    data: st.SearchStrategy[dict[str, Any]] | None = None,
    **options: Any,
) -> st.SearchStrategy[list[Create | Fire | Retry | Restart]]:
    """Lists of actions for :class:`~engine.testing.Harness`: a create first, then anything.

    ``data`` draws the data of created entities; other options go to :func:`fires`.
    """
    create = st.builds(Create, data=data if data is not None else st.just({}))
    steps = st.lists(mixed(chart, create, **options), min_size=min_size, max_size=max_size)
    return st.tuples(create, steps).map(lambda x: [x[0], *x[1]])


def mixed(
    chart: engine.Chart,
    create: st.SearchStrategy[Create] | None = None,
    **options: Any,
) -> st.SearchStrategy[Create | Fire | Retry | Restart]:
    """One action: a fire (of a named or an enabled event) twelve times in fourteen or so.

    A restart costs a database open and a retry repeats what was done, so
    each comes one time in fourteen; so does ``create`` (if given). Options
    go to :func:`fires`.
    """
    rare: list[st.SearchStrategy[Create | Fire | Retry | Restart]] = [
        st.builds(Retry, request=st.integers(0, 3)),
        st.just(Restart()),
    ]
    if create is not None:
        rare.append(create)
    return _weighted(fires(chart, **options), tuple(rare))


@st.composite
def _weighted(
    draw: st.DrawFn,
    fire: st.SearchStrategy[Fire],
    rare: tuple[st.SearchStrategy[Create | Fire | Retry | Restart], ...],
) -> Create | Fire | Retry | Restart:
    """A fire twelve times in 12 + len(rare), else one of ``rare``.

    One number picks the kind and only that kind is drawn: a step stays a
    few choices (the shrinker deletes at most five at a time), and the
    number shrinks to 0, a fire. (one_of would not weigh: it merges equal
    branches.)
    """
    kind = draw(st.integers(0, 11 + len(rare)))
    return draw(fire) if kind < 12 else draw(rare[kind - 12])
