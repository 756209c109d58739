"""One feed of the engine's events for every open page: live counts, entity views, rows.

A single thread follows the outbox (:attr:`Source.events`). For each event
it keeps the live entity counts by configuration (counted once when it
starts, then moved by each ``transition`` event's ``from`` and ``to``), and
hands each subscribed page what changed: an entity page gets the entity's
facts and its new or changed transitions (at most twice a second while
it changes, rendered and encoded once for all its viewers); a chart
page gets the moved rows and, at most every quarter second, its chart's
counts. So a hundred open pages cost the engine one reader of the outbox
and one rendering per change, not a hundred.

An event that does not say where its entity went (a failed saga may move
it to a failure state; an entity created and moved before the feed read
it) marks the counts dirty: they are counted again, once, a second later.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from engine.errors import ChartdError
from engine.ports import innermost
from engine.runtime.records import Event
from engine.web.source import Source
from engine.web.timeline import LIVE, entity_change

__all__ = ["Feed", "Subscription", "frame"]

log = logging.getLogger("chartd.inspector")

Topic = tuple[str, str]
"""``("charts", "")``, ``("chart", NAME)`` or ``("entity", ID)``."""

_IDLE = 0.2  # seconds without events before the feed flushes what it holds
_FLUSH = 0.25  # counts go to chart pages at most this often
# A busy entity's page gets its change at most this often: rendering is Python work that
# holds the GIL, and a fire waiting for it is a slower fire.
_VIEW = 0.5
_RECOUNT = 1.0  # dirty counts are counted again at most this often
_CREATES_READ = 200  # creates the feed reads one by one between two counts
_QUEUE = 256  # messages a slow page may be behind before it is told to reload


def frame(message: Mapping[str, Any]) -> str:
    """``message`` as one Server-Sent Event."""
    return f"data: {json.dumps(message)}\n\n"


class Subscription:
    """What one open page receives: framed messages (:func:`frame`) on its loop's queue."""

    def __init__(self, topic: Topic, loop: asyncio.AbstractEventLoop) -> None:
        self.topic = topic
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(_QUEUE)
        self._loop = loop

    def put(self, message: str | None) -> None:
        """Hand a :func:`frame` (None: the feed ends) to the page, from any thread."""
        with contextlib.suppress(RuntimeError):  # the page's loop is gone: it left
            self._loop.call_soon_threadsafe(self._put, message)

    def _put(self, message: str | None) -> None:
        if self.queue.full():
            # Too far behind to catch up message by message: start over from a reload.
            while not self.queue.empty():
                self.queue.get_nowait()
            message = frame({"type": "reload"})
        self.queue.put_nowait(message)


class Feed:
    """The shared follower of the outbox; :meth:`start` it, :meth:`close` it."""

    def __init__(self, source: Source) -> None:
        self._source = source
        self._lock = threading.Lock()
        self._subs: dict[Topic, set[Subscription]] = {}
        self._counts: dict[tuple[str, tuple[str, ...]], int] = {}
        self._counted_through = 0
        self._changed: set[str] = set()  # charts whose counts pages have not been sent
        self._dirty = False
        self._creates = 0  # entities read for their first place since the last count
        self._rendered: dict[str, float] = {}  # when each watched entity's view was last sent
        self._pending: set[str] = set()  # entities whose last change no view has shown yet
        # Per watched entity, the newest transition seq sent and those sent unfinished.
        self._sent: dict[str, tuple[int, frozenset[str]]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.seq = 0  # the last event the feed has handled

    # -- pages ---------------------------------------------------------------------------

    def subscribe(self, topic: Topic, loop: asyncio.AbstractEventLoop) -> Subscription:
        """A new subscription of a page to ``topic``."""
        sub = Subscription(topic, loop)
        with self._lock:
            self._subs.setdefault(topic, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """The page left."""
        with self._lock:
            subs = self._subs.get(sub.topic)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[sub.topic]

    def clients(self) -> int:
        """How many pages follow the feed now."""
        with self._lock:
            return sum(len(s) for s in self._subs.values())

    def counts(self, chart: str) -> dict[str, int]:
        """Live entities of ``chart`` in each state (ancestors count their descendants')."""
        with self._lock:
            return _by_state(self._counts, chart)

    def charts(self) -> dict[str, dict[str, int]]:
        """:meth:`counts` of every chart that has live entities."""
        with self._lock:
            names = {c for c, _ in self._counts}
            return {c: _by_state(self._counts, c) for c in sorted(names)}

    # -- the thread ----------------------------------------------------------------------

    def start(self) -> None:
        """Count the live entities, then follow the outbox on a thread of its own."""
        self._recount()
        self.seq = self._counted_through
        thread = threading.Thread(target=self._run, name="chartd-inspector-feed", daemon=True)
        self._thread = thread
        thread.start()

    def close(self) -> None:
        """Stop following and end every page's stream."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        with self._lock:
            subs = [s for group in self._subs.values() for s in group]
        for sub in subs:
            sub.put(None)

    def _run(self) -> None:
        last_flush = last_count = time.monotonic()
        while not self._stop.is_set():
            try:
                for ev in self._source.events(self.seq, _IDLE):
                    self.seq = ev.seq
                    self._handle(ev)
                    if time.monotonic() - last_flush > _FLUSH:
                        self._flush()
                        last_flush = time.monotonic()
                    if self._stop.is_set():
                        return
            except ChartdError as exc:  # the engine closed, the database went away
                if self._stop.wait(1.0):
                    return
                log.warning("the inspector's feed lost the outbox: %s", exc.message)
            except Exception:  # an event the feed cannot handle must not end every page's feed
                log.exception("the inspector's feed failed after event %d; it goes on", self.seq)
                self._dirty = True
                if self._stop.wait(1.0):
                    return
            self._flush()
            last_flush = time.monotonic()
            if self._dirty and time.monotonic() - last_count > _RECOUNT:
                self._recount()
                last_count = time.monotonic()

    def _recount(self) -> None:
        try:
            seq, counts = self._source.counts()
        except ChartdError as exc:
            log.warning("the inspector could not count the entities: %s", exc.message)
            return
        with self._lock:
            self._changed.update(c for c, _ in self._counts)
            self._changed.update(c for c, _ in counts)
            self._counts = counts
            self._counted_through = max(seq, 0)
            self._dirty = seq < 0
            self._creates = 0

    def _handle(self, ev: Event) -> None:
        if ev.seq > self._counted_through:
            self._count(ev)
        with self._lock:
            viewers = list(self._subs.get(("entity", ev.entity_id), ()))
            rows = list(self._subs.get(("chart", ev.chart), ()))
        if viewers:
            # At most one view per entity per _VIEW: an entity fired a thousand times a
            # second is shown as it stands twice a second, not a thousand times.
            if time.monotonic() - self._rendered.get(ev.entity_id, 0.0) >= _VIEW:
                self._send_view(ev.entity_id)
            else:
                self._pending.add(ev.entity_id)
        if rows and ev.type == "transition":
            state = innermost(ev.attributes.get("to", ()))
            row = frame({"type": "row", "id": ev.entity_id, "state": state})
            for sub in rows:
                sub.put(row)

    def _send_view(self, entity_id: str) -> None:
        """The entity's change since the last one sent, to every page that shows it."""
        self._rendered[entity_id] = time.monotonic()
        self._pending.discard(entity_id)
        entity = self._source.entity(entity_id)
        if entity is None:
            return
        recent = self._source.history(entity.id, LIVE)
        last, unfinished = self._sent.get(entity_id, (0, frozenset()))
        changed = [t for t in recent if t.seq > last or t.id in unfinished]
        # More new transitions than one change carries: the page shows where they were left out.
        gap = bool(last) and len(changed) == LIVE and recent[0].seq > last
        self._sent[entity_id] = (
            max((t.seq for t in recent), default=last),
            frozenset(t.id for t in recent if t.status in ("running", "compensating")),
        )
        message = frame({"type": "entity", **entity_change(entity, changed, gap)})
        with self._lock:
            viewers = list(self._subs.get(("entity", entity_id), ()))
        for sub in viewers:
            sub.put(message)

    def _count(self, ev: Event) -> None:
        """Move the counts as ``ev`` says, or mark them dirty where it does not say."""
        chart = self._source.charts().get(ev.chart)
        if ev.type == "create":
            if self._creates > _CREATES_READ:
                self._dirty = True  # a bulk create: one count costs less than a read each
                return
            self._creates += 1
            row = self._source.store.entity(ev.entity_id)
            if row is None or row.version != 0:
                self._dirty = True  # gone, or moved already: its first place is unknown
                return
            moves: list[tuple[tuple[str, ...], int]] = [(row.configuration, 1)] if row.live else []
        elif ev.type == "transition":
            source, target = (
                tuple(ev.attributes.get("from", ())),
                tuple(ev.attributes.get("to", ())),
            )
            moves = [(source, -1)]
            if chart is None:
                self._dirty = True  # cannot tell whether the target finishes it
            elif not chart.finished(target):
                moves.append((target, 1))
        elif ev.type == "transition.failed":
            self._dirty = True
            return
        else:
            return
        with self._lock:
            for conf, delta in moves:
                key = (ev.chart, conf)
                n = self._counts.get(key, 0) + delta
                if n < 0:
                    self._dirty = True
                if n > 0:
                    self._counts[key] = n
                else:
                    self._counts.pop(key, None)
            self._changed.add(ev.chart)

    def _flush(self) -> None:
        """Send the views held back (when due), and the counts of the charts that changed."""
        now = time.monotonic()
        for entity_id in list(self._pending):
            if now - self._rendered.get(entity_id, 0.0) >= _VIEW:
                self._send_view(entity_id)
        with self._lock:
            watched = {key for kind, key in self._subs if kind == "entity"}
        self._rendered = {k: v for k, v in self._rendered.items() if k in watched}
        self._sent = {k: v for k, v in self._sent.items() if k in watched}
        with self._lock:
            changed, self._changed = self._changed, set()
            if not changed:
                return
            sends: list[tuple[Subscription, str]] = []
            overview = list(self._subs.get(("charts", ""), ()))
            for chart in sorted(changed):
                counts = _by_state(self._counts, chart)
                message = frame({"type": "counts", "chart": chart, "counts": counts})
                sends.extend((s, message) for s in self._subs.get(("chart", chart), ()))
                sends.extend((s, message) for s in overview)
        for sub, message in sends:
            sub.put(message)


def _by_state(counts: Mapping[tuple[str, tuple[str, ...]], int], chart: str) -> dict[str, int]:
    found: dict[str, int] = {}
    for (c, conf), n in counts.items():
        if c == chart:
            for state in conf:
                found[state] = found.get(state, 0) + n
    return found
