"""The charts an engine runs, each with the code its names stand for."""

from __future__ import annotations

from dataclasses import dataclass

from engine import core
from engine.errors import InvalidParameter, NotFound
from engine.runtime.bindings import Bindings

__all__ = ["Registered", "Registry"]


@dataclass(frozen=True, slots=True)
class Registered:
    """A chart and its bindings, as registered."""

    chart: core.Chart
    bindings: Bindings


class Registry:
    """Registered charts by name."""

    def __init__(self) -> None:
        self._charts: dict[str, Registered] = {}

    def add(self, chart: core.Chart, bindings: Bindings) -> None:
        """Register ``chart``; InvalidParameter naming every name ``bindings`` lacks."""
        missing = []
        for t in chart.transitions:
            missing += [f"guard {g!r}" for g in t.guards if g not in bindings.guards]
            missing += [f"step {s!r}" for s in t.steps if s not in bindings.steps]
        missing = sorted(set(missing))
        if missing:
            raise InvalidParameter(f"chart {chart.name!r} needs code for: {', '.join(missing)}")
        self._charts[chart.name] = Registered(chart, bindings)

    def __getitem__(self, chart: str) -> Registered:
        """The registered chart; NotFound naming the ones there are."""
        try:
            return self._charts[chart]
        except KeyError:
            known = ", ".join(sorted(self._charts)) or "none"
            raise NotFound(f"no chart {chart!r} is registered (registered: {known})") from None

    def get(self, chart: str) -> Registered | None:
        """The registered chart, or None."""
        return self._charts.get(chart)

    def names(self) -> list[str]:
        """The registered charts' names, sorted."""
        return sorted(self._charts)

    def charts(self) -> dict[str, core.Chart]:
        """The registered charts by name."""
        return {name: reg.chart for name, reg in self._charts.items()}
