"""A Store that can die: what reaches the disk before a simulated crash, and nothing after.

The engine journals a step's end lazily (``GroupCommit.later``): such a
write is committed with the next waited commit or by a background flusher
within a few milliseconds. Which of them are on disk when a process dies is
a matter of timing. To make a crash deterministic (Hypothesis replays and
shrinks examples), this store holds every batch made only of such lazy
writes (step rows) until the next batch that is waited for, and applies
them first, in order: exactly what a flusher that had not run yet would
leave. At a crash, :meth:`CrashableStore.cut` keeps a chosen number of the
held writes (the ones a flusher did commit) and drops the rest, and from
then on the store writes nothing: the dead engine's last flush goes nowhere.

A crash may also be armed at a commit of one transition (its write-ahead or
its final commit), before, during or after it reaches the database.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from engine.ports import Census, EntityRow, EventRow, Store, TimerRow, TransitionRow, Write
from engine.testing.faults import CrashPoint, SimulatedCrash

__all__ = ["CrashableStore"]

_FINAL = ("committed", "failed", "compensation_failed")


def _lazy(unit: Write) -> bool:
    """A unit the engine does not wait for (a step's or an undo's end)."""
    return unit.lazy


class CrashableStore:
    """Delegates to ``store``; holds lazy writes; can be armed to crash and cut."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.held: list[Write] = []
        self.dead = False
        self.crashed = False
        self._armed: CrashPoint | None = None
        self._main: str | None = None
        self._owner = threading.get_ident()
        self._mutex = threading.RLock()

    # -- arming ------------------------------------------------------------------------

    def arm(self, at: CrashPoint | None) -> None:
        """Crash at this commit point of the next transition written (None: disarm)."""
        with self._mutex:
            self._armed = at if at in _COMMIT_POINTS else None
            self._main = None

    def cut(self, keep: int) -> None:
        """The process died: ``keep`` held writes made it to disk, nothing else ever will."""
        with self._mutex:
            kept, self.held = self.held[: max(0, keep)], []
            if kept:
                self.store.apply(kept)
            self.dead = True

    def settle(self) -> None:
        """Apply the held writes now, as the flusher would have by now."""
        with self._mutex:
            if self.held and not self.dead and not self.crashed:
                held, self.held = self.held, []
                self.store.apply(held)

    # -- the Store port ------------------------------------------------------------------

    def apply(self, batch: Sequence[Write]) -> list[Exception | None]:
        """Hold lazy batches; apply the others after what is held; crash where armed."""
        with self._mutex:
            if self.dead or self.crashed:
                # Past the crash point nothing reaches the disk (held writes wait for cut()).
                return [None] * len(batch)
            if all(_lazy(u) for u in batch):
                self.held.extend(batch)
                return [None] * len(batch)
            point = self._point(batch)
            if point is None:
                return self._apply_all(batch)
            # The crash, as armed: before the batch, after its step rows, or after all of it.
            results: list[Exception | None] = [None] * len(batch)
            if point == "commit-flushed":
                self.held.extend(u for u in batch if _lazy(u))
                self._apply_held()
            elif point in ("write-ahead-done", "commit-done"):
                results = self._apply_all(batch)
            self.crashed = True
            self._armed = None
            if threading.get_ident() == self._owner:
                raise SimulatedCrash(point)
            # On another thread (the flusher carried the unit), a raise would kill that
            # thread and hang the caller; the test's next step sees `crashed` instead.
            return results

    def _apply_held(self) -> None:
        held, self.held = self.held, []
        if held:
            self.store.apply(held)

    def _apply_all(self, batch: Sequence[Write]) -> list[Exception | None]:
        self._apply_held()
        return self.store.apply(batch)

    def _point(self, batch: Sequence[Write]) -> CrashPoint | None:
        """The armed point, if this batch is the watched transition's commit it names."""
        if self._armed is None:
            return None
        for unit in batch:
            for tr in unit.transitions:
                if self._main is None:
                    self._main = tr.id  # the first transition written is the fire's own
                if tr.id == self._main:
                    kind = "write-ahead" if tr.status == "running" else "commit"
                    if self._armed.startswith(kind):
                        return self._armed
            for tr in unit.transition_updates:
                if tr.id == self._main and tr.status in _FINAL and self._armed.startswith("commit"):
                    return self._armed
        return None

    def entity(
        self, id_or_name: str, chart: str | None = None, *, by_id: bool = True
    ) -> EntityRow | None:
        """Delegated."""
        return self.store.entity(id_or_name, chart, by_id=by_id)

    def entities(
        self,
        *,
        chart: str | None = None,
        state: str | None = None,
        after: int = 0,
        limit: int = 100,
        live: bool = False,
    ) -> list[EntityRow]:
        """Delegated."""
        return self.store.entities(chart=chart, state=state, after=after, limit=limit, live=live)

    def transition(self, entity_id: str, idempotency_key: str) -> TransitionRow | None:
        """Delegated."""
        return self.store.transition(entity_id, idempotency_key)

    def transitions(self, entity_id: str) -> list[TransitionRow]:
        """Delegated."""
        return self.store.transitions(entity_id)

    def census(self) -> Census:
        """Delegated."""
        return self.store.census()

    def transition_by_id(self, transition_id: str) -> TransitionRow | None:
        """Delegated."""
        return self.store.transition_by_id(transition_id)

    def unfinished(self) -> list[TransitionRow]:
        """Delegated."""
        return self.store.unfinished()

    def events(self, *, after: int = 0, limit: int = 1000) -> list[EventRow]:
        """Delegated."""
        return self.store.events(after=after, limit=limit)

    def last_event(self) -> int:
        """Delegated."""
        return self.store.last_event()

    def due_timers(
        self, now: float, limit: int = 100, *, charts: Sequence[str] | None = None
    ) -> list[TimerRow]:
        """Delegated."""
        return self.store.due_timers(now, limit, charts=charts)

    def timers(self, entity_id: str) -> list[TimerRow]:
        """Delegated."""
        return self.store.timers(entity_id)

    def claim_timers(
        self,
        owner: str,
        now: float,
        until: float,
        limit: int = 100,
        *,
        charts: Sequence[str] | None = None,
        node: str | None = None,
    ) -> list[TimerRow]:
        """Delegated."""
        return self.store.claim_timers(owner, now, until, limit, charts=charts, node=node)

    def subscribe(self, wake: Callable[[], None]) -> bool:
        """Delegated."""
        return self.store.subscribe(wake)

    def release_timers(self, owner: str, ids: Sequence[str]) -> None:
        """Delegated."""
        self.store.release_timers(owner, ids)

    def next_timer(
        self,
        *,
        charts: Sequence[str] | None = None,
        now: float | None = None,
        node: str | None = None,
    ) -> float | None:
        """Delegated."""
        return self.store.next_timer(charts=charts, now=now, node=node)

    def purge_finished(self, before: float, limit: int) -> int:
        """Delegated, unless the process is dead: it writes no more."""
        if self.dead or self.crashed:
            return 0
        return self.store.purge_finished(before, limit)

    def heartbeat(self, owner: str, pid: int, host: str, now: float) -> None:
        """Delegated, unless the process is dead: a dead engine beats no more."""
        if not self.dead:
            self.store.heartbeat(owner, pid, host, now)

    def owners(self) -> dict[str, tuple[int, str, float]]:
        """Delegated."""
        return self.store.owners()

    def close(self) -> None:
        """Apply what is held (unless the process died), then close the real store."""
        self.settle()
        self.store.close()

    def __getattr__(self, name: str) -> Any:
        # Store methods added to the port later still reach the real store.
        return getattr(self.store, name)


_COMMIT_POINTS = frozenset(
    {"write-ahead", "write-ahead-done", "commit", "commit-flushed", "commit-done"}
)
