"""What the inspector reads: an engine's store, the charts it can draw, the outbox.

Two ways in. :meth:`Source.of_engine` inspects a running engine (``chartd
serve --http``): its charts as registered, its outbox through
:meth:`engine.Engine.watch` (woken by its own commits), and, when the page
may fire events, :meth:`engine.Engine.fire`. :meth:`Source.open` reads any
engine database with no engine at all (``chartd ui``): the store is opened
without a migration and never written; the outbox is read after each
notification (PostgreSQL) or every half second (SQLite), once for every
client of the page.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import engine
from engine.core import Chart
from engine.errors import InvalidParameter
from engine.runtime.records import Entity, Event, Result, TransitionRecord
from engine.store.inspect import entity_page, live_counts, open_reader, recent_transitions
from engine.store.sql import SqlStore
from engine.web.timeline import HISTORY

__all__ = ["Source"]

Events = Callable[[int, float], Iterator[Event]]
"""``events(since, idle)``: outbox events after ``since``, ending after ``idle`` quiet seconds."""
Fire = Callable[[str, str, Mapping[str, Any]], Result]

_POLL = 0.5  # how often a store that hears no other process reads the outbox again


class Source:
    """The inspector's reads (and its one write, a fire, when one is given)."""

    def __init__(
        self,
        store: SqlStore,
        charts: Callable[[], Mapping[str, Chart]],
        events: Events,
        *,
        fire: Fire | None = None,
        owned: bool = False,
    ) -> None:
        self.store = store
        self._charts = charts
        self.events = events
        self.fire = fire
        self._owned = owned  # whether close() closes the store

    @classmethod
    def of_engine(cls, eng: engine.Engine, *, fire: bool = False) -> Source:
        """The running engine ``eng``; ``fire`` lets the page fire events through it."""
        store = eng.store
        if not isinstance(store, SqlStore):
            raise InvalidParameter("the inspector reads an engine on a SQL store")

        def events(since: int, idle: float) -> Iterator[Event]:
            return eng.watch(since, timeout=idle)

        def fire_one(entity: str, event: str, params: Mapping[str, Any]) -> Result:
            return eng.fire(entity, event, params)

        return cls(store, eng.charts, events, fire=fire_one if fire else None)

    @classmethod
    def open(cls, url: str, charts: Mapping[str, Chart]) -> Source:
        """The engine database at ``url``, read only; ``charts`` are the definitions to draw."""
        store = open_reader(url)
        woken = threading.Condition()
        heard = store.subscribe(lambda: _notify(woken))
        known = dict(charts)

        def events(since: int, idle: float) -> Iterator[Event]:
            last, deadline = since, time.monotonic() + idle
            while True:
                rows = store.events(after=last, limit=500)
                for r in rows:
                    last = r.seq
                    yield Event.from_row(r)
                if rows:
                    deadline = time.monotonic() + idle
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                with woken:
                    woken.wait(remaining if heard else min(remaining, _POLL))

        return cls(store, lambda: known, events, owned=True)

    def charts(self) -> Mapping[str, Chart]:
        """The chart definitions known by name (an engine's registered ones)."""
        return self._charts()

    def entity(self, key: str) -> Entity | None:
        """The entity with this id (or name), as last committed; None if there is none."""
        if "\x00" in key:  # none has one, and PostgreSQL refuses to look for one
            return None
        row = self.store.entity(key)
        return None if row is None else Entity.from_row(row)

    def history(self, entity_id: str, limit: int = HISTORY) -> list[TransitionRecord]:
        """The newest ``limit`` entries of the entity's journal, oldest first."""
        rows = recent_transitions(self.store, entity_id, limit)
        return [TransitionRecord.from_row(r) for r in rows]

    def page(
        self, chart: str, *, state: str | None, name: str | None, after: int, limit: int
    ) -> tuple[list[tuple[int, Entity]], int | None]:
        """Entities of ``chart`` after seq ``after`` with their seqs, and the next ``after``."""
        rows = entity_page(self.store, chart, state=state, name=name, after=after, limit=limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        found = [(r.seq, Entity.from_row(r)) for r in rows]
        return found, (rows[-1].seq if more and rows else None)

    def counts(self) -> tuple[int, dict[tuple[str, tuple[str, ...]], int]]:
        """Live entities by (chart, configuration), and the outbox seq they are as of.

        Read until the outbox stood still across the count, so that the
        events after that seq are exactly the ones the count does not know.
        """
        for _ in range(5):
            before = self.store.last_event()
            counts = live_counts(self.store)
            if self.store.last_event() == before:
                return before, counts
        # Busy: the events replayed on top of this count may count a few twice
        # until the next recount, which the caller schedules when it sees -1.
        return -1, counts

    def close(self) -> None:
        """Release the store, if this source opened it."""
        if self._owned:
            self.store.close()


def _notify(condition: threading.Condition) -> None:
    with condition:
        condition.notify_all()
