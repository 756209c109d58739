"""Gauges of what the store holds: live entities by chart and state, pending timers."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from engine.errors import ChartdError
from engine.ports import Census, Store, innermost

__all__ = ["StoreGauges"]

log = logging.getLogger("chartd.telemetry")

SCOPE = "chartd"
_FRESH = 1.0  # seconds a census read for one gauge may still serve the other


class StoreGauges:
    """``chartd.entities`` (by ``chartd.chart`` and ``chartd.state``) and ``chartd.timers.pending``.

    Observable gauges: the store is read once when a reader collects (a
    scrape, an export), for both gauges. An
    entity in a top-level final state (a removed container) is not counted.
    A store that does not answer gives no value that time rather than a wrong one.
    """

    def __init__(self, store: Store, meter_provider: metrics.MeterProvider | None = None) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._left: tuple[str, float, Census] | None = None  # (gauge that read it, when, it)
        meter = metrics.get_meter(SCOPE, meter_provider=meter_provider)
        meter.create_observable_gauge(
            "chartd.entities",
            callbacks=[self._entities],
            unit="{entity}",
            description="Live entities, by chart and innermost active state(s).",
        )
        meter.create_observable_gauge(
            "chartd.timers.pending",
            callbacks=[self._timers],
            unit="{timer}",
            description="Durable timers set and not yet fired or cancelled.",
        )

    def _census(self, gauge: str) -> Census | None:
        """A census read now, or the one the other gauge read just before (same collection).

        Each reading serves each gauge once, so a collection reads the store
        once and the next one sees what changed since.
        """
        with self._lock:
            now = time.monotonic()
            left = self._left
            self._left = None
            if left is not None and left[0] != gauge and now - left[1] < _FRESH:
                return left[2]
            try:
                census = self._store.census()
            except ChartdError as exc:
                log.debug("no census for the gauges: %s", exc.message)
                return None
            self._left = (gauge, now, census)
            return census

    def _entities(self, options: CallbackOptions) -> Iterable[Observation]:
        census = self._census("entities")
        if census is None:
            return []
        by_state: dict[tuple[str, str], int] = {}
        for (chart, configuration), n in census.entities.items():
            key = (chart, innermost(configuration))
            by_state[key] = by_state.get(key, 0) + n
        return [
            Observation(n, {"chartd.chart": chart, "chartd.state": state})
            for (chart, state), n in sorted(by_state.items())
        ]

    def _timers(self, options: CallbackOptions) -> Iterable[Observation]:
        census = self._census("timers")
        return [] if census is None else [Observation(census.pending_timers)]
