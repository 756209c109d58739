"""The crash cases: which fire, where its child dies, and what the journal may say after.

Every crash point of a ``start`` and a ``stop`` saga: around the write-ahead,
before, inside and after every step, around the final commit and after the
ack; in a saga that fails, around every undo and the commit of the failure;
and recovery itself killed inside each of its undos.
"""

from __future__ import annotations

from dataclasses import dataclass

from tools.crash.crashbox import START_STEPS, STOP_STEPS


@dataclass(frozen=True, slots=True)
class Case:
    """One crash case: the fire, where the child dies, and what the journal may say after."""

    label: str
    event: str
    crash: str | None
    fail_at: str | None = None
    expect: frozenset[str] = frozenset()
    recovery_crash: str | None = None  # a second child recovers and dies here
    random_seed: int | None = None  # a random kill of a start/stop loop


def cases(*, quick: bool) -> list[Case]:
    """Every deterministic crash case; ``quick`` fails sagas at the last step only."""
    out: list[Case] = []
    for event, steps in (("start", START_STEPS), ("stop", STOP_STEPS)):

        def add(point: str, expect: set[str], fail_at: str | None = None) -> None:
            label = point if fail_at is None else f"{point} [fail_at={fail_at}]"
            out.append(Case(label, event, point, fail_at, frozenset(expect)))  # noqa: B023

        add(f"{event}:writeahead:before", {"absent"})
        add(f"{event}:writeahead:after", {"interrupted"})
        for step in steps:
            add(f"{event}:do:{step}:before", {"interrupted"})
            if step == "spawn":
                add(f"{event}:do:{step}:spawned", {"interrupted"})
            add(f"{event}:do:{step}:inside", {"interrupted"})
            add(f"{event}:do:{step}:after", {"interrupted"})
        add(f"{event}:commit:before", {"interrupted", "completed"})
        add(f"{event}:commit:flushed", {"completed"})
        add(f"{event}:commit:after", {"committed"})
        add(f"{event}:ack:after", {"committed"})
        for k, failing in enumerate(steps):
            if quick and k != len(steps) - 1:
                continue
            # The failure is journaled (compensating, with its error) before any
            # undo: recovery finishes the undo and keeps that error ("resumed").
            for step in reversed(steps[:k]):  # compensations run newest first
                add(f"{event}:undo:{step}:before", {"resumed"}, failing)
                if step == "halt":
                    add(f"{event}:undo:{step}:spawned", {"resumed"}, failing)
                add(f"{event}:undo:{step}:inside", {"resumed"}, failing)
                add(f"{event}:undo:{step}:after", {"resumed"}, failing)
            add(f"{event}:failcommit:before", {"resumed"}, failing)
            add(f"{event}:failcommit:after", {"failed"}, failing)
            add(f"{event}:failack:after", {"failed"}, failing)
        # The child dies with every resource made; the engine recovering after it dies too.
        first = f"{event}:do:{steps[-1]}:inside"
        recovery = [f"{event}:undo:{s}:inside" for s in reversed(steps)]
        for then in [*recovery, f"{event}:failcommit:before"]:
            label = f"{first} -> recovery {then}"
            out.append(Case(label, event, first, None, frozenset({"interrupted"}), then))
    return out
