"""Housekeeping: due timers fired, heartbeats sent, dead engines' work recovered.

One thread per engine. It sleeps until the next timer is due or the next
beat, whichever comes first, and is woken early only by a new timer due
before it would look again. Due timers are claimed before they are fired, so
that of several engines on one database one fires each; a timer left
pending (the engine closing, the entity in recovery, a lost race) is tried
again once its claim lapses, ``Limits.timer_claim`` later. It looks for
dead engines' unfinished sagas every few beats, and for this engine's
stranded ones (their end could not be recorded) every beat. With a
retention (``Limits.retain_finished``) it also deletes finished entities
that finished longer ago than that, a bounded batch a beat.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace

from engine.errors import ChartdError, Unavailable
from engine.ports import Clock, Write
from engine.runtime.firing import Firing
from engine.runtime.journal import Cause
from engine.runtime.outcomes import Contended
from engine.runtime.recovery import Recovery
from engine.runtime.shared import Shared

__all__ = ["Housekeeping"]

log = logging.getLogger("chartd.engine")


class Alarm:
    """When the housekeeping thread next looks at the timers, and the way to wake it early."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._wake = threading.Event()
        self._sleeps_until = 0.0  # clock time the thread next looks at timers

    def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, or until woken."""
        self._sleeps_until = self._clock.now() + seconds
        self._wake.wait(seconds)
        self._wake.clear()

    def ring(self) -> None:
        """Wake the sleeper now."""
        self._wake.set()

    def timer_added(self, due: float) -> None:
        """Wake the sleeper if a new timer is due before it looks again.

        A timer due later is found when it next looks, at most a beat from
        now: waking it for each one (a stop timer per stop) costs two queries a
        fire. A clock at or past the planned look (a test's clock moved on, a
        slow turn) wakes it too.
        """
        planned = self._sleeps_until
        if due < planned or self._clock.now() >= planned:
            self._wake.set()


class Housekeeping:
    """Fires due timers and keeps the engine's heartbeat and recovery sweep going."""

    def __init__(self, shared: Shared, firing: Firing, recovery: Recovery, alarm: Alarm) -> None:
        self._s = shared
        self._firing = firing
        self._recovery = recovery
        self._alarm = alarm
        self._timers = True
        self._thread = threading.Thread(target=self._loop, name="chartd-housekeeping", daemon=True)

    def start(self, *, timers: bool) -> None:
        """Beat once, then start the thread; ``timers`` False leaves timers to run_due_timers.

        Heartbeats keep other engines from recovering this one's sagas, so the
        thread runs even without timers.
        """
        self._timers = timers
        self._recovery.beat()
        self._thread.start()

    def stop(self) -> None:
        """Wake the thread and wait for it to end (the engine is closed already)."""
        self._alarm.ring()
        self._thread.join()

    def run_due_timers(self) -> int:
        """See :meth:`engine.Engine.run_due_timers`."""
        s = self._s
        count = 0
        now = s.clock.now()
        # Timers of another node's entities wait for it, even while it is down.
        claimed = s.store.claim_timers(
            s.id, now, now + s.limits.timer_claim, charts=s.registry.names(), node=s.node
        )
        left: list[str] = []  # still pending: given back, to be fired on the next turn
        for timer in claimed:
            if s.closed:
                left.append(timer.id)
                continue
            fired: str | None = None
            error: str | None = None
            try:
                cause = Cause(timer.created_by) if timer.created_by else None
                result = self._firing.fire(
                    timer.entity_id, timer.event, timer.params, f"timer:{timer.id}", cause
                )
                fired = result.transition_id
            except (Unavailable, Contended):
                left.append(timer.id)
                continue
            except ChartdError as exc:
                error = f"{exc.category.value}: {exc.message}"
            s.commit.commit(
                Write(timers=[replace(timer, status="fired", fired_transition=fired, error=error)])
            )
            count += 1
        if left:
            try:
                s.store.release_timers(s.id, left)
            except Exception:  # the claims lapse on their own; this only hastens them
                log.exception("releasing timer claims")
        return count

    def purge(self) -> int:
        """Delete one batch of entities that finished before the retention; how many."""
        s = self._s
        retain = s.limits.retain_finished
        if retain is None:
            return 0
        return s.store.purge_finished(s.clock.now() - retain, s.limits.purge_batch)

    def _loop(self) -> None:
        """Beat, recover what dead engines left, (if enabled) fire due timers, purge."""
        s, beat = self._s, self._s.limits.beat
        last_beat = last_sweep = time.monotonic()
        away = False  # the database did not answer last turn (said once, not every turn)
        while not s.closed:
            due = None
            try:
                if self._timers:
                    self.run_due_timers()
                mono = time.monotonic()
                if mono - last_beat >= beat:
                    self._recovery.beat()
                    # A batch a beat, each its own short transaction: a backlog (a
                    # retention newly set) never holds the database from the fires.
                    self.purge()
                    last_beat = mono
                # A saga of this engine left unrecorded is looked for every beat: it
                # holds its entity until the database answers again.
                since = mono - last_sweep
                if since >= 5 * beat or (s.stranded and since >= beat):
                    self._recovery.recover()
                    last_sweep = mono
                if self._timers:
                    due = s.store.next_timer(
                        charts=s.registry.names(), now=s.clock.now(), node=s.node
                    )
                away = False
            except Unavailable as exc:  # the database is away (a full disk): the next turn retries
                log.log(logging.DEBUG if away else logging.WARNING, "housekeeping: %s", exc.message)
                away = True
            except Exception:  # keep the loop alive; the next turn retries
                log.exception("housekeeping")
            wait = beat if due is None else min(beat, max(0.0, due - s.clock.now()))
            self._alarm.sleep(wait)
