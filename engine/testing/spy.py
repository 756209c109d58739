"""The user's bindings as the harness wraps them: every call seen, and made to fail on plan.

:class:`Spy` wraps each guard, step ``do`` and ``undo`` so that the harness
knows what the engine called, in which order, with what outcome and data,
and so that a fire's :class:`~engine.testing.faults.Fault` plan can make a
call fail (an injected error) or the process die (a simulated crash) just
before or after it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from engine.core import Snapshot
from engine.errors import Category, error_for
from engine.runtime import Bindings, Context, Step
from engine.testing.crashable import CrashableStore
from engine.testing.faults import Fault, InjectedFault, SimulatedCrash

__all__ = ["Call", "GuardOracle", "Spy"]

GuardOracle = Callable[[Snapshot, Mapping[str, Any]], "Category | str | None"]
"""What a guard must answer for (source snapshot, params): the category it refuses with, or None."""


@dataclass(slots=True)
class Call:
    """One guard, do or undo the engine called, as the wrapper saw it."""

    kind: Literal["guard", "do", "undo"]
    tid: str
    entity_id: str
    index: int
    name: str
    generation: int
    ok: bool = True
    error: BaseException | None = None
    injected: bool = False
    data: dict[str, Any] | None = None  # ctx.data after a do that returned
    expected: Category | None = None  # a guard oracle's answer


class Spy:
    """Wraps bindings; records their calls; acts out the current fire's fault plan.

    ``faults`` lets fault plans make calls fail, ``crashes`` lets their
    crashes act; ``guard_oracles`` are asked what each guard must answer.
    Only the fire the harness made acts out its plan, not its follow-ups.
    """

    def __init__(
        self, *, faults: bool, crashes: bool, guard_oracles: Mapping[str, GuardOracle]
    ) -> None:
        self.faults = faults
        self.crashes = crashes
        self.guard_oracles = dict(guard_oracles)
        self.calls: list[Call] = []
        # What the dos that returned emitted, per transition: its committed outbox events.
        self.emitted: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        # What external steps made and nobody undid: (entity, transition, step index).
        self.made: dict[tuple[str, str, int], None] = {}
        self.fault: Fault | None = None
        self.main_tid: str | None = None
        self.generation = 0  # one per engine the harness opened: recovery's calls are later
        self.store: CrashableStore | None = None

    def watch(self, store: CrashableStore, generation: int) -> None:
        """From now on the engine is the ``generation``-th, on ``store`` (its crash flag)."""
        self.store, self.generation = store, generation

    def begin(self, fault: Fault | None) -> None:
        """A new fire: forget the last one's calls; act out ``fault`` until :meth:`end`."""
        self.calls = []
        self.main_tid = None
        self.fault = fault

    def end(self) -> None:
        """The fire returned (or the process died): no more faults."""
        self.fault = None

    def ran(self) -> str:
        """What the current fire called, for a message."""
        return ", ".join(f"{c.kind} {c.name}" for c in self.calls) or "nothing"

    def wrap(self, bindings: Bindings) -> Bindings:
        """``bindings`` with every guard, do and undo going through this spy."""
        guards = {name: self._guard(name, fn) for name, fn in bindings.guards.items()}
        steps = {
            name: Step(
                self._do(name, s),
                self._undo(name, s) if s.undo is not None else None,
                external=s.external,
                write_ahead=s.write_ahead,
            )
            for name, s in bindings.steps.items()
        }
        return Bindings(guards=guards, steps=steps, conditions=bindings.conditions)

    # -- the plan -------------------------------------------------------------------------

    @property
    def _store(self) -> CrashableStore:
        assert self.store is not None, "the spy watches no engine yet"
        return self.store

    def _injected(self, what: str) -> BaseException:
        fault = self.fault
        if fault is not None and fault.category is not None:
            return error_for(fault.category, f"injected failure of {what}")
        return InjectedFault(f"injected failure of {what}")

    def _crash_at(self, point: str, index: int) -> bool:
        fault = self.fault
        crash = fault.crash if fault is not None else None
        return crash is not None and self.crashes and crash.at == point and crash.index == index

    def _is_main(self, ctx: Context) -> bool:
        """Whether ``ctx`` belongs to the fire the harness made (not a follow-up)."""
        if self.main_tid is None:
            self.main_tid = ctx.transition_id
        return self.main_tid == ctx.transition_id and self.fault is not None

    def _start(self, call: Call, ctx: Context, point: str, dying: str) -> bool:
        """Record ``call``; die at ``point`` if planned; whether the call is the main fire's."""
        self.calls.append(call)
        main = self._is_main(ctx)
        if main and self._crash_at(point, call.index):
            self._store.crashed = True
            raise SimulatedCrash(dying)
        return main

    def _fail(self, call: Call, what: str) -> BaseException:
        """The injected error ``call`` raises."""
        call.ok, call.injected = False, True
        call.error = self._injected(what)
        return call.error

    def _call(self, kind: Literal["guard", "do", "undo"], ctx: Context, name: str) -> Call:
        if self._store.crashed:
            raise SimulatedCrash("after the crash")
        if kind == "guard":
            index = sum(1 for c in self.calls if c.kind == "guard" and c.tid == ctx.transition_id)
        else:
            assert ctx.step_index is not None
            index = ctx.step_index
        return Call(kind, ctx.transition_id, ctx.entity_id, index, name, self.generation)

    # -- the wrappers ---------------------------------------------------------------------

    def _guard(self, name: str, fn: Callable[[Context], None]) -> Callable[[Context], None]:
        def guard(ctx: Context) -> None:
            call = self._call("guard", ctx, name)
            oracle = self.guard_oracles.get(name)
            if oracle is not None:
                answer = oracle(ctx.source, ctx.params)
                call.expected = Category(answer) if answer is not None else None
            main = self._start(call, ctx, "guard", f"in guard {name}")
            if main and self.faults and self.fault and self.fault.guard == call.index:
                raise self._fail(call, f"guard {name}")
            try:
                fn(ctx)
            except Exception as exc:
                call.ok, call.error = False, exc
                raise

        return guard

    def _do(self, name: str, step: Step) -> Callable[[Context], Any]:
        def do(ctx: Context) -> Any:
            call = self._call("do", ctx, name)
            index = call.index
            main = self._start(call, ctx, "do", f"before step {name}")
            if main and self.faults and self.fault and self.fault.step == index:
                raise self._fail(call, f"step {name}")
            emitted = len(ctx.events)
            try:
                payload = step.do(ctx)
            except Exception as exc:
                call.ok, call.error = False, exc
                raise
            call.data = copy.deepcopy(ctx.data)
            self.emitted.setdefault(ctx.transition_id, []).extend(
                copy.deepcopy(ctx.events[emitted:])
            )
            if step.external and step.undo is not None:
                self.made[(ctx.entity_id, ctx.transition_id, index)] = None
            if main and self._crash_at("done", index):
                self._store.crashed = True
                raise SimulatedCrash(f"after step {name}")
            return payload

        return do

    def _undo(self, name: str, step: Step) -> Callable[[Context, Any], None]:
        assert step.undo is not None
        undo_fn = step.undo

        def undo(ctx: Context, payload: Any) -> None:
            call = self._call("undo", ctx, name)
            index = call.index
            main = self._start(call, ctx, "undo", f"before the undo of {name}")
            if main and self.faults and self.fault and index in self.fault.undo:
                raise self._fail(call, f"the undo of {name}")
            try:
                undo_fn(ctx, payload)
            except Exception as exc:
                call.ok, call.error = False, exc
                raise
            self.made.pop((ctx.entity_id, ctx.transition_id, index), None)
            if main and self._crash_at("undone", index):
                self._store.crashed = True
                raise SimulatedCrash(f"after the undo of {name}")

        return undo
