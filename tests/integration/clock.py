"""A clock for engines under test: it moves only when the test moves it."""

from __future__ import annotations


class FakeClock:
    """An :class:`engine.ports.Clock` that moves only when told to."""

    def __init__(self, start: float) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds
