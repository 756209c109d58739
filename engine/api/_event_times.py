"""When container events happened, as the Events stream tells it, and its time window.

The engine commits the events of one transition together and stamps them
with the commit's time, so ``kill``, ``die`` and ``stop`` of one transition
would share a time to the nanosecond where docker shows three. Each event's
time here is the commit's time to the microsecond, plus its place among the
events of its transition in nanoseconds: distinct, and ordered as the
sequence numbers are. A stream that starts inside a transition (resumed
from a sequence number) looks back for the transition's earlier events, so
an event has the same time in every stream.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import engine
from engine.errors import InvalidParameter

__all__ = ["EventClock", "Window", "earlier_events"]

_LOOK_BACK = 64  # more events than one transition emits
_PLACES = 1000  # nanoseconds under one microsecond


class EventClock:
    """The time of each event of one stream, in nanoseconds since the epoch.

    ``earlier(seq)`` gives the events before ``seq`` (a few, oldest first), to
    find where the stream's first event stands in its transition.
    """

    def __init__(self, earlier: Callable[[int], Iterable[engine.Event]]) -> None:
        self._earlier = earlier
        self._last: engine.Event | None = None
        self._place = 0

    def time_ns(self, ev: engine.Event) -> int:
        """``ev``'s time: its commit's microsecond and its place in its transition."""
        last = self._last
        if last is not None and last.seq == ev.seq - 1:
            same = ev.transition_id is not None and ev.transition_id == last.transition_id
            self._place = self._place + 1 if same else 0
        else:
            self._place = self._place_of(ev)
        self._last = ev
        return round(ev.time * 1_000_000) * 1000 + min(self._place, _PLACES - 1)

    def _place_of(self, ev: engine.Event) -> int:
        if ev.transition_id is None:
            return 0
        before = [e for e in self._earlier(ev.seq) if e.seq < ev.seq]
        place = 0
        for e in reversed(before):
            if e.transition_id != ev.transition_id:
                break
            place += 1
        return place


def earlier_events(eng: engine.Engine) -> Callable[[int], Iterable[engine.Event]]:
    """The few events before a sequence number, from ``eng``'s outbox."""

    def earlier(seq: int) -> Iterable[engine.Event]:
        for e in eng.watch(max(0, seq - 1 - _LOOK_BACK), timeout=0):
            if e.seq >= seq:
                return
            yield e

    return earlier


@dataclass(frozen=True, slots=True)
class Window:
    """The times a stream sends: ``since_ns`` to ``until_ns`` (nanoseconds; None: open)."""

    since_ns: int | None = None
    until_ns: int | None = None

    def __post_init__(self) -> None:
        since, until = self.since_ns, self.until_ns
        if since is not None and until is not None and until < since:
            raise InvalidParameter("since time cannot be after until time")

    def before(self, time_ns: int) -> bool:
        """Whether an event at ``time_ns`` is before the window."""
        return self.since_ns is not None and time_ns < self.since_ns

    def after(self, time_ns: int) -> bool:
        """Whether ``time_ns`` (an event's, or now) is past the window's end."""
        return self.until_ns is not None and time_ns > self.until_ns
