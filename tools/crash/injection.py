"""Crash points: where a child SIGKILLs itself, and the store and observer that reach them.

A crash point is a name such as ``start:do:spawn:inside``. A child arms one
(``CRASH.point``) and dies when it gets there; the step code calls
:func:`crash_point` itself, :class:`CrashingStore` adds the points around the
commits of the fire's transition, and :class:`CrashingObserver` the points
after each step's do or undo returned.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from typing import Any

from engine.ports import SpanRef, Store, Write
from tools.crash.crashbox import STEP_EVENT, TERMINAL


class _Crash:
    """The crash point this process dies at, and whether it is armed (only while it fires)."""

    point: str | None = None
    armed = False


CRASH = _Crash()


def crash_point(name: str) -> None:
    """SIGKILL this process if ``name`` is the armed crash point (only ever in a child)."""
    if CRASH.armed and CRASH.point == name:
        os.kill(os.getpid(), signal.SIGKILL)


class CrashingStore:
    """A store that SIGKILLs the process around the commits of one fire's transition.

    It recognises the write-ahead (a new ``running`` transition), the final
    commit (an update to ``committed``) and the commit of a failure (an
    update to ``failed``) by the fire's idempotency key.
    """

    def __init__(self, inner: Store, key: str | None) -> None:
        self._inner = inner
        self._key = key

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def apply(self, batch: Sequence[Write]) -> list[Exception | None]:
        point: str | None = None
        final: Write | None = None
        for unit in batch:
            for tr in unit.transitions:
                if tr.idempotency_key == self._key and tr.status == "running":
                    point = f"{tr.event}:writeahead"
            for tr in unit.transition_updates:
                if tr.idempotency_key == self._key and tr.status in TERMINAL:
                    kind = "commit" if tr.status == "committed" else "failcommit"
                    point, final = f"{tr.event}:{kind}", unit
        if point is None:
            return self._inner.apply(batch)
        crash_point(f"{point}:before")
        if final is not None and CRASH.armed and CRASH.point == f"{point}:flushed":
            # The step ends queued without waiting reach the disk first, as the
            # engine's background flusher may make them do; then the process dies.
            rest = [u for u in batch if u is not final]
            if rest:
                self._inner.apply(rest)
            crash_point(CRASH.point)
        results = self._inner.apply(batch)
        crash_point(f"{point}:after")
        return results


class CrashingObserver:
    """Crash points right after a step's do or undo returned, before its end is journaled."""

    def transition_started(
        self, chart: str, entity_id: str, event: str, name: str, cause: SpanRef | None
    ) -> SpanRef | None:
        return None

    def transition(
        self,
        chart: str,
        entity_id: str,
        event: str,
        outcome: str,
        seconds: float,
        error: BaseException | None,
    ) -> None:
        pass

    def step_started(self, chart: str, entity_id: str, name: str, phase: str, index: int) -> None:
        pass

    # The parameters are those of engine.ports.Observer.step, which the engine calls.
    def step(
        self,
        chart: str,
        entity_id: str,
        name: str,
        phase: str,
        outcome: str,
        seconds: float,
        error: BaseException | None,
    ) -> None:
        if outcome == "ok":
            crash_point(f"{STEP_EVENT.get(name, '?')}:{phase}:{name}:after")
