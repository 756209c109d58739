"""The charts an engine runs, each version with the code its names stand for.

An entity runs on the version of its chart it was created under (or last
migrated to): each registered version is kept here beside the newest one,
the version new entities get. A version registered by another engine (or
before a restart) is built from its stored document when an entity needs it,
with the bindings of the newest version: by default, bindings are shared.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine import core
from engine.errors import InvalidParameter, NotFound
from engine.runtime.bindings import Bindings

__all__ = ["Registered", "Registry", "missing_code"]


@dataclass(frozen=True, slots=True)
class Registered:
    """A chart and its bindings, as registered."""

    chart: core.Chart
    bindings: Bindings


def missing_code(chart: core.Chart, bindings: Bindings) -> list[str]:
    """Every guard and step ``chart`` names that ``bindings`` lacks, sorted."""
    missing = []
    for t in chart.transitions:
        missing += [f"guard {g!r}" for g in t.guards if g not in bindings.guards]
        missing += [f"step {s!r}" for s in t.steps if s not in bindings.steps]
    return sorted(set(missing))


class Registry:
    """Registered charts by name: the newest version of each, and every version by number."""

    def __init__(self) -> None:
        self._charts: dict[str, Registered] = {}
        self._versions: dict[tuple[str, int], Registered] = {}

    def add(self, chart: core.Chart, bindings: Bindings, *, newest: bool = True) -> None:
        """Register ``chart``; InvalidParameter naming every name ``bindings`` lacks.

        The newest version registered of a chart is the one new entities get;
        an older one only runs the entities on it, with its own code. Without
        ``newest`` the version is kept for its entities only, whatever its number.
        """
        missing = missing_code(chart, bindings)
        if missing:
            raise InvalidParameter(
                f"chart {chart.name!r} version {chart.version} needs code for: {', '.join(missing)}"
            )
        reg = Registered(chart, bindings)
        self._versions[chart.name, chart.version] = reg
        current = self._charts.get(chart.name)
        if newest and (current is None or current.chart.version <= chart.version):
            self._charts[chart.name] = reg

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

    def version(self, chart: str, version: int) -> Registered | None:
        """Version ``version`` of ``chart`` if this engine has it, else None."""
        return self._versions.get((chart, version))

    def names(self) -> list[str]:
        """The registered charts' names, sorted."""
        return sorted(self._charts)

    def charts(self) -> dict[str, core.Chart]:
        """The registered charts by name (the newest version of each)."""
        return {name: reg.chart for name, reg in self._charts.items()}
