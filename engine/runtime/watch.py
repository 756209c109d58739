"""Watching: the outbox followed in order, and waits for an entity to reach a condition.

Every commit tells this room what it wrote (:meth:`Watch.committed`): a
commit with events wakes the watchers, and one of an awaited entity hands its
new row to :meth:`Watch.until` with no query. Commits of other engines on the
same database wake them through the store (:meth:`engine.ports.Store.subscribe`:
PostgreSQL's LISTEN/NOTIFY), subscribed to when something first waits; a
store that cannot hear them (SQLite) leaves them to be seen by reading, every
``poll`` seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence

from engine.errors import InvalidParameter
from engine.ports import EntityRow, Write
from engine.runtime.records import Entity, Event
from engine.runtime.shared import Shared

__all__ = ["Watch", "event_filter"]


class Watch:
    """The outbox and the entities of one engine, watched."""

    def __init__(self, shared: Shared) -> None:
        self._s = shared
        self._events = threading.Condition()
        self._watchers = 0  # watch() iterators waiting for events: wake them on commits
        # Commits of this engine that wrote events: a watcher that read the outbox
        # before one of them must not sleep on it.
        self._published = 0
        # The entities until() waits on (-> how many waiters), and the newest row
        # this engine committed of each of them: a commit wakes them with no query.
        self._newest: dict[str, EntityRow] = {}
        self._awaited: dict[str, int] = {}
        self._heard: bool | None = None  # whether the store wakes us for others' commits

    def _hears_others(self) -> bool:
        """Subscribe to the store's news of every process's commits, once; whether it has any."""
        if self._heard is None:
            with self._events:
                if self._heard is None:
                    self._heard = self._s.store.subscribe(self._notified)
        return self._heard

    def _notified(self) -> None:
        """Some process committed events: every waiter reads again."""
        with self._events:
            self._published += 1
            self._events.notify_all()

    def _wait(self, poll: float, remaining: float | None) -> None:
        """Sleep on the condition (held) until woken; ``poll`` bounds it only without news.

        Closing wakes every waiter under the condition: one that checks here
        first cannot sleep past it.
        """
        if self._s.closed:
            return
        if self._hears_others():
            self._events.wait(remaining)
        else:
            self._events.wait(poll if remaining is None else min(poll, remaining))

    def closed(self) -> None:
        """Wake every waiter: the engine has closed."""
        with self._events:
            self._events.notify_all()

    def committed(self, writes: Sequence[Write]) -> None:
        """Told by the group commit of every batch it committed."""
        published = awaited = False
        for w in writes:
            published = published or bool(w.events)
            if w.entity is not None and w.entity.id in self._awaited:
                # Kept only while someone waits (until()): a map of every entity ever
                # committed would grow without end.
                self._newest[w.entity.id] = w.entity
                awaited = True
        if published or awaited:
            with self._events:
                self._published += published
                if awaited or self._watchers:
                    self._events.notify_all()

    def until(
        self,
        entity: str | Entity,
        holds: Callable[[Entity], bool],
        timeout: float | None,
        poll: float,
    ) -> Entity | None:
        """See :meth:`engine.Engine.until`."""
        s = self._s
        s.check_open()
        deadline = None if timeout is None else time.monotonic() + timeout
        if isinstance(entity, Entity):
            entity_id = entity.id
        else:
            entity_id = entity if entity in s.cache else s.row(entity).id
        with self._events:
            self._awaited[entity_id] = self._awaited.get(entity_id, 0) + 1
        try:
            # Registered first: whatever commits from here on is in _newest.
            row = self._newest.get(entity_id) or s.row(entity_id)
            while True:
                with self._events:
                    newest = self._newest.get(entity_id)
                    if newest is not None and newest.version > row.version:
                        row = newest
                    current = Entity.from_row(row)
                    if holds(current):
                        return current
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return None
                    s.check_open()
                    self._wait(poll, remaining)
                    s.check_open()
                    newest = self._newest.get(entity_id)
                    if newest is not None and newest.version > row.version:
                        continue  # this engine committed it: no need to read
                fresh = s.row(entity_id)  # another engine may have moved it
                if fresh.version > row.version:
                    row = fresh
        finally:
            with self._events:
                self._awaited[entity_id] -= 1
                if not self._awaited[entity_id]:
                    del self._awaited[entity_id]
                    self._newest.pop(entity_id, None)

    def watching(self) -> int:
        """How many entities until() waits on now (each row kept only while it waits)."""
        return len(self._newest)

    def events_after(
        self,
        since: int,
        keep: Callable[[Event], bool],
        timeout: float | None,
        poll: float,
    ) -> Iterator[Event]:
        """The generator behind :meth:`engine.Engine.watch`."""
        s = self._s
        last = since
        deadline = None if timeout is None else time.monotonic() + timeout
        while not s.closed:
            published = self._published
            rows = s.store.events(after=last, limit=500)
            for r in rows:
                last = r.seq
                ev = Event.from_row(r)
                if keep(ev):
                    yield ev
                    if timeout is not None:
                        deadline = time.monotonic() + timeout
            if rows:
                continue
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return
            with self._events:
                if self._published != published:
                    continue  # a commit came between the read and now: read again
                self._watchers += 1
                try:
                    self._wait(poll, remaining)
                finally:
                    self._watchers -= 1


def event_filter(
    spec: Mapping[str, str] | Callable[[Event], bool] | None,
) -> Callable[[Event], bool]:
    """The predicate of a watch ``filter``; InvalidParameter naming unknown keys."""
    if spec is None:
        return lambda ev: True
    if callable(spec):
        return spec
    unknown = set(spec) - {"type", "chart", "entity"}
    if unknown:
        raise InvalidParameter(
            f"unknown event filter keys: {sorted(unknown)} (use type, chart, entity)"
        )

    def keep(ev: Event) -> bool:
        return (
            spec.get("type", ev.type) == ev.type
            and spec.get("chart", ev.chart) == ev.chart
            and spec.get("entity", ev.entity_id) in (ev.entity_id, ev.entity_name)
        )

    return keep
