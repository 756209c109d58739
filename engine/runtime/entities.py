"""Entities: created in their chart's initial state, read, listed, and their journals read."""

from __future__ import annotations

import gc
import os
import secrets
import threading
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from typing import Any

from engine.errors import ChartdError, Conflict, InvalidParameter
from engine.ports import EntityRow, EventRow, Write
from engine.runtime.journal import as_error, json_value
from engine.runtime.records import Entity, Page, TransitionRecord
from engine.runtime.registry import Registered
from engine.runtime.shared import NAME, Shared

__all__ = ["Entities", "chunks"]

# Entities has a method named `list`; this keeps annotations in its body unambiguous.
_Records = list[TransitionRecord]

_PENDING = InvalidParameter("not committed")  # a placeholder every committed unit replaces

# Units of a create_many per commit: one transaction each, its memory bounded. At a
# million entities every insert lands on a random page of each index on id and name:
# the more units a commit holds, the more of them share the pages it writes.
_CREATED_AT_ONCE = 20_000


class _CollectorPause:
    """Automatic cyclic garbage collection off while bulk calls run, back on after the last.

    A chunk of new entities is some 200,000 live container objects (rows,
    writes, results) until it commits. Each time that many survive, CPython
    runs a full collection, which walks every object of the process: 17 of
    them to create 100,000 entities, a third of the CPU a unit costs. The
    call's own garbage is acyclic (freed by reference counting); what other
    threads leave in cycles meanwhile waits for the first collection after
    the call. A collector the application turned off stays off. Calls of
    fewer than ``_PAUSE_FROM`` items do not pause it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls = 0  # bulk calls in progress that paused the collector

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            pause = self._calls > 0 or gc.isenabled()
            if pause:
                self._calls += 1
                gc.disable()
        try:
            yield
        finally:
            if pause:
                with self._lock:
                    self._calls -= 1
                    if self._calls == 0:
                        gc.enable()


_collector_paused = _CollectorPause()
# Only a call this large pauses the collector: the API's CreateMany (at most 1,000
# units a call), however many clients send it at once, never keeps it off.
_PAUSE_FROM = 2_000


def chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """``items`` in lists of ``size`` (the last one shorter), read as they are needed."""
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class Entities:
    """Creates and reads one engine's entities."""

    def __init__(self, shared: Shared) -> None:
        self._s = shared
        # One create at a time in this engine: the name check and the commit go together.
        self._create_lock = threading.Lock()

    def create(self, chart: str, name: str, data: Mapping[str, Any] | None) -> Entity:
        """See :meth:`engine.Engine.create`."""
        s = self._s
        s.check_open()
        reg = s.registry[chart]
        now = s.clock.now()
        row = self._new_row(reg, name, data, now)
        event = EventRow(row.id, name, chart, "create", {}, None, now)
        with self._create_lock:
            taken = s.store.entity(name, chart, by_id=False)
            if taken is not None and taken.name == name and taken.live:
                raise Conflict(
                    f"the name {name!r} is already in use by {chart} {taken.id[:12]}: "
                    "remove or rename it to reuse the name"
                )
            try:
                s.commit.commit(Write(entity=row, events=[event]))
            except Conflict as exc:  # the name was taken by another process meanwhile
                raise Conflict(f"the name {name!r} is already in use in chart {chart!r}") from exc
        s.created(row)
        return Entity.from_row(row)

    def create_many(
        self, chart: str, items: Iterable[tuple[str, Mapping[str, Any] | None]]
    ) -> list[Entity | ChartdError]:
        """See :meth:`engine.Engine.create_many`.

        Chunks of the items are pipelined: while one chunk commits (the
        database's work, with the GIL let go), the next one's rows are built.
        """
        s = self._s
        s.check_open()
        reg = s.registry[chart]
        out: list[Entity | ChartdError] = []
        seen: set[str] = set()  # names of this call so far: a name given twice is refused
        with ExitStack() as paused, ThreadPoolExecutor(1, "chartd-create-many") as committer:
            committing: Future[list[Entity | ChartdError]] | None = None
            for chunk in chunks(items, _CREATED_AT_ONCE):
                if len(chunk) >= _PAUSE_FROM and committing is None:
                    paused.enter_context(_collector_paused())
                built = self._build(reg, chunk, seen)
                if committing is not None:
                    out.extend(committing.result())
                committing = committer.submit(self._commit_built, reg, built)
            if committing is not None:
                out.extend(committing.result())
        return out

    def _build(
        self,
        reg: Registered,
        items: list[tuple[str, Mapping[str, Any] | None]],
        seen: set[str],
    ) -> list[EntityRow | ChartdError]:
        """Each item's new row, or the error that refuses it before the database is asked."""
        now = self._s.clock.now()
        ids = os.urandom(32 * len(items)).hex()
        built: list[EntityRow | ChartdError] = []
        for i, item in enumerate(items):
            try:
                name, data = item
                row = self._new_row(reg, name, data, now, ids[64 * i : 64 * i + 64])
                if name in seen:
                    raise Conflict(f"the name {name!r} is given twice in this batch")
            except ChartdError as exc:
                built.append(exc)
                continue
            except (TypeError, ValueError):
                built.append(InvalidParameter(f"not a (name, data) pair: {item!r}"))
                continue
            seen.add(name)
            built.append(row)
        return built

    def _commit_built(
        self, reg: Registered, built: list[EntityRow | ChartdError]
    ) -> list[Entity | ChartdError]:
        """Commit the rows of ``built`` in one transaction; each its entity or its error."""
        s, chart = self._s, reg.chart.name
        # Refused units keep their error; each row's place is filled once committed.
        out: list[Entity | ChartdError] = [
            r if isinstance(r, ChartdError) else _PENDING for r in built
        ]
        rows = {i: r for i, r in enumerate(built) if isinstance(r, EntityRow)}
        with self._create_lock:
            taken = s.store.live_names(chart, [r.name for r in rows.values()])
            for i, row in list(rows.items()):
                if row.name in taken:
                    out[i] = Conflict(f"the name {row.name!r} is already in use in chart {chart!r}")
                    del rows[i]
            now = s.clock.now()
            failures = s.commit.commit_many(
                [
                    Write(entity=r, events=[EventRow(r.id, r.name, chart, "create", {}, None, now)])
                    for r in rows.values()
                ]
            )
        names = s.names
        for (i, row), failure in zip(rows.items(), failures, strict=True):
            if failure is None:
                names.pop(row.name, None)  # see Shared.created (a million rows: not cached)
                out[i] = Entity.from_row(row)
            elif isinstance(failure, Conflict):  # taken by another process meanwhile
                out[i] = Conflict(f"the name {row.name!r} is already in use in chart {chart!r}")
            else:
                out[i] = as_error(failure, f"create of {row.name}")
        return out

    def _new_row(
        self,
        reg: Registered,
        name: str,
        data: Mapping[str, Any] | None,
        now: float,
        entity_id: str | None = None,
    ) -> EntityRow:
        """A new entity's row, in the chart's initial state; InvalidParameter if it cannot be."""
        if not isinstance(name, str) or not NAME.match(name):
            raise InvalidParameter(
                f"invalid name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed, "
                "at most 253 characters"
            )
        data = json_value(dict(data or {}), "entity data")
        entity_id = entity_id or secrets.token_hex(32)
        data = reg.chart.model.schema.check_data(data, entity=name, id=entity_id)
        snapshot = reg.chart.initial_snapshot(data, conditions=reg.bindings.conditions)
        return EntityRow(
            id=entity_id,
            chart=reg.chart.name,
            name=name,
            configuration=snapshot.configuration,
            data=dict(snapshot.data),
            history=dict(snapshot.history),
            version=0,
            created_at=now,
            updated_at=now,
            chart_version=reg.chart.version,
            node=self._s.node if reg.chart.model.affinity == "node" else None,
        )

    def list(
        self, chart: str | None, status: str | None, after: int, limit: int, live: bool
    ) -> Page[Entity]:
        """See :meth:`engine.Engine.list`."""
        self._s.check_open()
        if not 1 <= limit <= 1000:
            raise InvalidParameter(f"limit must be between 1 and 1000, got {limit}")
        rows = self._s.store.entities(
            chart=chart, state=status, after=after, limit=limit + 1, live=live
        )
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(
            tuple(Entity.from_row(r) for r in rows), rows[-1].seq if more and rows else None
        )

    def history(self, entity: str | Entity) -> _Records:
        """See :meth:`engine.Engine.history`."""
        s = self._s
        s.check_open()
        row = s.row(entity)
        return [TransitionRecord.from_row(t) for t in s.store.transitions(row.id)]
