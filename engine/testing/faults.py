"""What a test can make go wrong during one fire: failing guards, steps, undos, and crashes.

These are plain values, so a shrunk Hypothesis example reads as what
happened: ``Fire(0, 'start', fault=Fault(step=2))`` is "start entity 0, and
its third step fails".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "CRASH_POINTS",
    "Crash",
    "CrashPoint",
    "Create",
    "Fault",
    "Fire",
    "InjectedFault",
    "Restart",
    "Retry",
    "SimulatedCrash",
]

CrashPoint = Literal[
    "guard",
    "do",
    "done",
    "undo",
    "undone",
    "write-ahead",
    "write-ahead-done",
    "commit",
    "commit-flushed",
    "commit-done",
]
CRASH_POINTS: tuple[CrashPoint, ...] = (
    "guard",
    "do",
    "done",
    "undo",
    "undone",
    "write-ahead",
    "write-ahead-done",
    "commit",
    "commit-flushed",
    "commit-done",
)
"""Where a process can die during a fire.

``guard``: in guard ``index``, before it runs. ``do``: before step
``index`` acts; ``done``: after it acted, before the engine hears it
returned. ``undo``/``undone``: around the compensation of step ``index``.
``write-ahead``: before the commit that journals the transition as running
reaches the disk; ``write-ahead-done``: after. ``commit``: before the
transition's final commit (success or failure) reaches the disk;
``commit-flushed``: after the journal of its steps did, before the rest;
``commit-done``: after all of it did, before the caller heard.
"""


class SimulatedCrash(BaseException):
    """The process died here: raised through the engine, which must not catch it.

    A BaseException, as SystemExit and KeyboardInterrupt are, so that the
    engine's ``except Exception`` handlers (which compensate) never see it:
    nothing after the crash point runs, as in a killed process.
    """


class InjectedFault(Exception):
    """The failure the test kit injects into a guard, a step or an undo."""


@dataclass(frozen=True, slots=True)
class Crash:
    """The process dies at ``at`` (guard/step ``index``); ``keep`` unflushed journal writes survive.

    The engine journals a step's end without waiting for the disk: at a
    crash, the writes not yet committed may be lost, all or some. ``keep``
    says how many of them (oldest first) made it.
    """

    at: CrashPoint
    index: int = 0
    keep: int = 0

    def __repr__(self) -> str:
        return f"Crash({self.at!r}, {self.index}, keep={self.keep})"


@dataclass(frozen=True, slots=True)
class Fault:
    """What goes wrong during one fire (of the event itself; follow-ups run clean).

    ``guard``: the guard at that position in the plan raises. ``step``: the
    step at that position raises before it acts. ``undo``: the compensations
    of the steps at those positions raise before they act (what the step
    made stays, and the failure is recorded). ``category``: the error
    raised, a ChartdError category, or None for an :class:`InjectedFault`
    (System, by the engine's rules). ``crash``: the process dies there.
    A position the plan does not reach does nothing.
    """

    guard: int | None = None
    step: int | None = None
    undo: frozenset[int] = field(default_factory=frozenset)
    category: str | None = None
    crash: Crash | None = None

    def __repr__(self) -> str:
        parts = []
        if self.guard is not None:
            parts.append(f"guard={self.guard}")
        if self.step is not None:
            parts.append(f"step={self.step}")
        if self.undo:
            parts.append("undo={" + ", ".join(str(i) for i in sorted(self.undo)) + "}")
        if self.category is not None:
            parts.append(f"category={self.category!r}")
        if self.crash is not None:
            parts.append(f"crash={self.crash!r}")
        return f"Fault({', '.join(parts)})"


# -- actions: what a test does to the engine ---------------------------------------------


@dataclass(frozen=True, slots=True)
class Create:
    """Create an entity with this data."""

    data: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"Create({self.data!r})" if self.data else "Create()"


@dataclass(frozen=True, slots=True)
class Fire:
    """Fire ``event`` with ``params`` on the ``entity``-th entity created (modulo their number).

    ``event=None`` fires an event the chart accepts in the entity's state
    with these params: the ``pick``-th of them, in name order (modulo their
    number). Random events are mostly refused; this reaches deep states.
    """

    entity: int
    event: str | None
    params: dict[str, Any] = field(default_factory=dict)
    key: str | None = None
    fault: Fault | None = None
    pick: int = 0

    def __repr__(self) -> str:
        parts = [str(self.entity), repr(self.event) if self.event else f"pick={self.pick}"]
        if self.params:
            parts.append(f"params={self.params!r}")
        if self.key is not None:
            parts.append(f"key={self.key!r}")
        if self.fault is not None:
            parts.append(f"fault={self.fault!r}")
        return f"Fire({', '.join(parts)})"


@dataclass(frozen=True, slots=True)
class Retry:
    """Repeat the ``request``-th fire that had an idempotency key (modulo their number)."""

    request: int

    def __repr__(self) -> str:
        return f"Retry({self.request})"


@dataclass(frozen=True, slots=True)
class Restart:
    """Close the engine and open a new one on the same database."""

    def __repr__(self) -> str:
        return "Restart()"
