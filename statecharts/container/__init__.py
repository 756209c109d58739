"""The container chart: Docker/moby's container lifecycle, declared in ``chart.yaml``.

The states, events, guards, saga steps and every refusal (with moby's exact
messages) are data; ``docs/container-chart.md`` describes them. Step and
guard code is bound by the runtime, not here.
"""

from __future__ import annotations

import functools
from pathlib import Path

import engine

__all__ = ["CHART_PATH", "load_chart"]

CHART_PATH: Path = Path(__file__).resolve().with_name("chart.yaml")
"""Where the container chart's document lives."""


@functools.cache
def load_chart() -> engine.Chart:
    """The container chart, validated and compiled (loaded once, then shared).

    A :class:`engine.Chart` is immutable and may be shared between threads.
    """
    return engine.load_chart(CHART_PATH)
