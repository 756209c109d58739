"""Benchmark chartd's pure ``engine.step`` against two Python statechart libraries.

What is measured
----------------
The cost of one event on a small hierarchical chart, through each library's
public API: fire the event and obtain the resulting state. The chart is the
same in all three libraries::

    created            top-level atomic state, never entered (it makes the chart
                       hierarchical: ``running`` is a compound among siblings)
    running            compound state, the chart's initial state
        active         initial child of ``running``
        paused
    pause      running.active -> running.paused
    unpause    running.paused -> running.active

Every machine starts in ``running.active`` and receives ``pause``, ``unpause``,
``pause``, ... One event costs, per library:

* chartd: ``snapshot = engine.step(chart, snapshot, event).snapshot``. The step
  is pure (it computes a plan and runs nothing); the snapshot it returns is the
  resulting state.
* pytransitions (``transitions.extensions.HierarchicalMachine``): calling the
  trigger method the machine put on the model (``model.pause()``), then reading
  ``model.state``. The machine is built with ``auto_transitions=False`` so that
  it declares exactly the chart's transitions.
* python-statemachine 3.x: calling the bound event (``sm.pause()``), then
  reading ``sm.configuration_values``. The machine subclasses ``StateMachine``,
  the stricter of the two 3.x base classes, which is also a few per cent faster
  per event than ``StateChart`` with its SCXML defaults; its definition-time
  reachability checks are switched off because ``created`` is deliberately
  unreachable (they cost nothing per event).

Trigger methods and bound events are looked up once per batch, outside the
timed loop; the cheapest idiomatic call is what is timed, so no peer is
handicapped by the harness.

Why
---
chartd's engine is split into a pure core (``engine.step``) and a durable shell
that runs the plan. The core is on the path of every event, so it must be much
cheaper than a general-purpose statechart library that runs callbacks in-line:
the targets are at least 10x the events per second of pytransitions and at least
20x those of python-statemachine on this chart.

How
---
Before anything is timed, each library must toggle correctly: after ``n``
events its configuration must be ``running.paused`` for odd ``n`` and
``running.active`` for even ``n`` (checked for 0, 1, 2, 3 and the batch size),
and the final configuration of every timed batch is checked the same way. The
libraries are then timed side by side in rounds: in every round each library,
in an order that rotates from round to round, handles one batch of ``--events``
events on a fresh machine, timed with ``time.perf_counter`` with the garbage
collector disabled during the batch (for every library alike). The figures
reported are the medians over the rounds, and the ratios are computed from the
median events per second.

Run ``python tools/bench_core.py`` for a table, or add ``--json`` for one JSON
object with every figure. The exit status is 0 unless a library fails the
correctness check.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from typing import Any

from statemachine import State, StateMachine
from transitions.extensions import HierarchicalMachine
from transitions.extensions.nesting import NestedState

import engine

Configuration = tuple[str, ...]
"""A configuration as sorted dotted paths, e.g. ``('running', 'running.paused')``."""

Batch = Callable[[], object]
"""A prepared, one-shot batch: fires its events and returns the last state read."""

EVENTS = ("pause", "unpause")
ACTIVE: Configuration = ("running", "running.active")
PAUSED: Configuration = ("running", "running.paused")

CHARTD = "chartd"
CHARTD_UNMEMOISED = "chartd-unmemoised"
PYTRANSITIONS = "pytransitions"
PYTHON_STATEMACHINE = "python-statemachine"

TARGETS: dict[str, float] = {PYTRANSITIONS: 10.0, PYTHON_STATEMACHINE: 20.0}
"""Minimum ratio of chartd's median events/s to each peer's."""

DEFAULT_ROUNDS = 7
DEFAULT_EVENTS = 10_000

CHART_DOCUMENT: dict[str, Any] = {
    "chart": "toggle",
    "initial": "running",
    "states": {
        "created": {},
        "running": {"initial": "active", "states": {"active": {}, "paused": {}}},
    },
    "transitions": [
        {"event": "pause", "from": "running.active", "to": "running.paused"},
        {"event": "unpause", "from": "running.paused", "to": "running.active"},
    ],
}

TRANSITIONS_STATES: list[Any] = [
    "created",
    {"name": "running", "initial": "active", "children": ["active", "paused"]},
]
TRANSITIONS_TRANSITIONS: list[dict[str, str]] = [
    {"trigger": "pause", "source": "running_active", "dest": "running_paused"},
    {"trigger": "unpause", "source": "running_paused", "dest": "running_active"},
]


class StatemachineToggle(StateMachine):
    """The toggle chart for python-statemachine."""

    validate_disconnected_states = False
    validate_trap_states = False

    created = State()

    class running(State.Compound, initial=True):
        active = State(initial=True)
        paused = State()

        pause = active.to(paused)
        unpause = paused.to(active)


class TransitionsModel:
    """The model object that pytransitions' machine drives."""

    state: str


class CorrectnessError(Exception):
    """A library did not end in the configuration that the event count predicts."""

    def __init__(self, library: str, detail: str) -> None:
        super().__init__(f"{library}: {detail}")
        self.library = library
        self.detail = detail


@dataclass(frozen=True)
class Library:
    """One contestant: how to prepare a batch and how to read its result."""

    name: str
    distribution: str
    per_event: str
    prepare: Callable[[Sequence[str]], Batch]
    configuration: Callable[[object], Configuration]


# -- chartd -------------------------------------------------------------------


@cache
def _chartd_chart() -> Any:
    return engine.parse_chart(CHART_DOCUMENT)


def _prepare_chartd(schedule: Sequence[str]) -> Batch:
    chart = _chartd_chart()
    step = engine.step
    start = chart.initial_snapshot()

    def run() -> object:
        snapshot = start
        for event in schedule:
            snapshot = step(chart, snapshot, event).snapshot
        return snapshot

    return run


def _prepare_chartd_unmemoised(schedule: Sequence[str]) -> Batch:
    # The same chart compiled without the memo: every step runs the whole
    # selection, exit/entry and settle algorithm, as a first visit does.
    chart = engine.Chart(_chartd_chart().model, memo=False)
    step = engine.step
    start = chart.initial_snapshot()

    def run() -> object:
        snapshot = start
        for event in schedule:
            snapshot = step(chart, snapshot, event).snapshot
        return snapshot

    return run


def _chartd_configuration(snapshot: object) -> Configuration:
    return tuple(sorted(snapshot.configuration))  # type: ignore[attr-defined]


# -- pytransitions ------------------------------------------------------------


def _prepare_pytransitions(schedule: Sequence[str]) -> Batch:
    model = TransitionsModel()
    # The machine stays alive through the trigger methods it binds to the model.
    HierarchicalMachine(
        model=model,
        states=TRANSITIONS_STATES,
        transitions=TRANSITIONS_TRANSITIONS,
        initial="running",
        auto_transitions=False,
    )
    triggers = {event: getattr(model, event) for event in EVENTS}
    calls = [triggers[event] for event in schedule]

    def run() -> object:
        state = model.state
        for trigger in calls:
            trigger()
            state = model.state
        return state

    return run


def _pytransitions_configuration(state: object) -> Configuration:
    names = str(state).split(NestedState.separator)
    return tuple(sorted(".".join(names[: depth + 1]) for depth in range(len(names))))


# -- python-statemachine ------------------------------------------------------


def _prepare_statemachine(schedule: Sequence[str]) -> Batch:
    sm = StatemachineToggle()
    bound = {event: getattr(sm, event) for event in EVENTS}
    calls = [bound[event] for event in schedule]

    def run() -> object:
        values = sm.configuration_values
        for send in calls:
            send()
            values = sm.configuration_values
        return values

    return run


def _statemachine_configuration(values: object) -> Configuration:
    paths = []
    for value in values:  # type: ignore[attr-defined]
        state: State | None = StatemachineToggle.states_map[value]
        names = []
        while state is not None:
            names.append(state.id)
            state = state.parent
        paths.append(".".join(reversed(names)))
    return tuple(sorted(paths))


LIBRARIES: tuple[Library, ...] = (
    Library(
        name=CHARTD,
        distribution="chartd",
        per_event="snapshot = engine.step(chart, snapshot, event).snapshot",
        prepare=_prepare_chartd,
        configuration=_chartd_configuration,
    ),
    Library(
        name=CHARTD_UNMEMOISED,
        distribution="chartd",
        per_event="as chartd, on engine.Chart(model, memo=False): every step computed afresh",
        prepare=_prepare_chartd_unmemoised,
        configuration=_chartd_configuration,
    ),
    Library(
        name=PYTRANSITIONS,
        distribution="transitions",
        per_event="model.<event>(); model.state  (HierarchicalMachine)",
        prepare=_prepare_pytransitions,
        configuration=_pytransitions_configuration,
    ),
    Library(
        name=PYTHON_STATEMACHINE,
        distribution="python-statemachine",
        per_event="sm.<event>(); sm.configuration_values  (StateMachine)",
        prepare=_prepare_statemachine,
        configuration=_statemachine_configuration,
    ),
)


# -- measuring ----------------------------------------------------------------


def schedule_of(count: int) -> tuple[str, ...]:
    """``count`` events alternating ``pause``, ``unpause``, ... from running.active."""
    return tuple(EVENTS[i % 2] for i in range(count))


def expected_after(count: int) -> Configuration:
    """The configuration that ``count`` toggles from running.active lead to."""
    return PAUSED if count % 2 else ACTIVE


def _events(count: int) -> str:
    return f"{count} event" if count == 1 else f"{count} events"


def check(library: Library, batch_events: int) -> str | None:
    """Check that ``library`` toggles; return what is wrong, or None if nothing is."""
    for count in sorted({0, 1, 2, 3, batch_events}):
        try:
            got = library.configuration(library.prepare(schedule_of(count))())
        except Exception as exc:
            return f"after {_events(count)} it raised {type(exc).__name__}: {exc}"
        want = expected_after(count)
        if got != want:
            return f"after {_events(count)} its configuration is {got}, expected {want}"
    return None


def time_batch(library: Library, schedule: Sequence[str]) -> float:
    """Seconds that ``library`` takes for ``schedule`` on a fresh machine."""
    run = library.prepare(schedule)
    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        started = time.perf_counter()
        final = run()
        elapsed = time.perf_counter() - started
    finally:
        if gc_was_enabled:
            gc.enable()
    got = library.configuration(final)
    want = expected_after(len(schedule))
    if got != want:
        raise CorrectnessError(
            library.name,
            f"a timed batch of {_events(len(schedule))} ended in {got}, expected {want}",
        )
    return elapsed


def run_rounds(libraries: Sequence[Library], rounds: int, events: int) -> dict[str, list[float]]:
    """Events per second of every library in every round, interleaved."""
    schedule = schedule_of(events)
    rates: dict[str, list[float]] = {library.name: [] for library in libraries}
    for round_index in range(rounds):
        shift = round_index % len(libraries)
        for library in (*libraries[shift:], *libraries[:shift]):
            rates[library.name].append(events / time_batch(library, schedule))
    return rates


# -- reporting ----------------------------------------------------------------


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


def _environment() -> dict[str, Any]:
    return {
        "versions": {
            "python": platform.python_version(),
            **{library.distribution: _version(library.distribution) for library in LIBRARIES},
        },
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
        },
        "platform": platform.platform(),
    }


def _checks_report(failures: dict[str, str | None]) -> dict[str, dict[str, Any]]:
    return {
        name: {
            "passed": failure is None,
            "detail": failure
            or "toggles between running.active and running.paused as the event count predicts",
        }
        for name, failure in failures.items()
    }


def build_report(
    args: argparse.Namespace,
    failures: dict[str, str | None],
    rates: dict[str, list[float]],
) -> dict[str, Any]:
    """Every figure of a completed run, as one JSON-ready object."""
    checks = _checks_report(failures)
    libraries: dict[str, dict[str, Any]] = {}
    medians: dict[str, float] = {}
    for library in LIBRARIES:
        samples = rates[library.name]
        medians[library.name] = statistics.median(samples)
        us_per_event = [1e6 / rate for rate in samples]
        libraries[library.name] = {
            "distribution": library.distribution,
            "version": _version(library.distribution),
            "per_event": library.per_event,
            "check": checks[library.name],
            "median_events_per_s": medians[library.name],
            "median_us_per_event": statistics.median(us_per_event),
            "samples_events_per_s": samples,
            "samples_us_per_event": us_per_event,
        }
    ratios = {
        f"{ours}/{peer}": medians[ours] / medians[peer]
        for ours in (CHARTD, CHARTD_UNMEMOISED)
        for peer in TARGETS
    }
    targets = {
        f"{CHARTD}/{peer}": {
            "at_least": minimum,
            "ratio": ratios[f"{CHARTD}/{peer}"],
            "met": ratios[f"{CHARTD}/{peer}"] >= minimum,
        }
        for peer, minimum in TARGETS.items()
    }
    return {
        "benchmark": "bench_core",
        "ok": True,
        "chart": "toggle: running.active <-> running.paused (pause/unpause), sibling 'created'",
        "settings": {
            "rounds": args.rounds,
            "events_per_batch": args.events,
            "clock": "time.perf_counter",
            "gc_disabled_during_batches": True,
            "round_order": "rotating",
        },
        "libraries": libraries,
        "ratios": ratios,
        "targets": targets,
        "all_targets_met": all(target["met"] for target in targets.values()),
        **_environment(),
    }


def format_table(report: dict[str, Any]) -> str:
    """A small human-readable summary of ``report``."""
    lines = [
        f"{'library':<21} {'version':<9} {'median ev/s':>12} {'µs/event':>9} {'min..max ev/s':>21}"
    ]
    for name, entry in report["libraries"].items():
        samples = entry["samples_events_per_s"]
        spread = f"{min(samples):,.0f}..{max(samples):,.0f}"
        lines.append(
            f"{name:<21} {entry['version']:<9} {entry['median_events_per_s']:>12,.0f} "
            f"{entry['median_us_per_event']:>9.2f} {spread:>21}"
        )
    lines.append("")
    for label, target in report["targets"].items():
        verdict = "met" if target["met"] else "NOT met"
        lines.append(
            f"{label:<31} {target['ratio']:>7.1f}x   "
            f"(target >= {target['at_least']:.0f}x: {verdict})"
        )
    for label, ratio in report["ratios"].items():
        if label not in report["targets"]:
            lines.append(f"{label:<31} {ratio:>7.1f}x   (first visits, no target)")
    settings = report["settings"]
    lines.append("")
    lines.append(
        f"{settings['rounds']} rounds x {settings['events_per_batch']:,} events per batch, "
        f"Python {report['python']['version']}, medians over rounds"
    )
    return "\n".join(lines)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text}")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench_core",
        description=(
            "Events per second of chartd's pure engine.step against pytransitions' "
            "HierarchicalMachine and python-statemachine on one hierarchical toggle chart."
        ),
    )
    parser.add_argument(
        "--rounds",
        type=_positive_int,
        default=DEFAULT_ROUNDS,
        help=f"interleaved rounds; every library runs one batch per round "
        f"(default {DEFAULT_ROUNDS})",
    )
    parser.add_argument(
        "--events",
        type=_positive_int,
        default=DEFAULT_EVENTS,
        help=f"events per batch (default {DEFAULT_EVENTS:,})",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object with every figure"
    )
    return parser.parse_args(argv)


def _fail(args: argparse.Namespace, failures: dict[str, str | None], message: str) -> int:
    print(f"bench_core: {message}", file=sys.stderr)
    if args.json:
        report = {
            "benchmark": "bench_core",
            "ok": False,
            "error": message,
            "checks": _checks_report(failures),
            **_environment(),
        }
        print(json.dumps(report, indent=2))
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; return the process exit status."""
    args = parse_args(argv)
    failures = {library.name: check(library, args.events) for library in LIBRARIES}
    broken = [
        f"{name} failed the correctness check: {failure}"
        for name, failure in failures.items()
        if failure is not None
    ]
    if broken:
        return _fail(args, failures, "; ".join(broken))
    try:
        rates = run_rounds(LIBRARIES, args.rounds, args.events)
    except CorrectnessError as exc:
        failures[exc.library] = exc.detail
        return _fail(args, failures, f"{exc.library} failed the correctness check: {exc.detail}")
    report = build_report(args, failures, rates)
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
