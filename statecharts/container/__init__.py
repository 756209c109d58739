"""The container chart: Docker/moby's container lifecycle, declared in ``chart.yaml``.

The states, events, guards, saga steps and every refusal (with moby's exact
messages) are data; ``docs/container-chart.md`` describes them. Step and
guard code is bound by the runtime, not here.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import engine

__all__ = ["CHART_ENV", "CHART_PATH", "load_chart"]

CHART_PATH: Path = Path(__file__).resolve().with_name("chart.yaml")
"""Where the container chart's document lives."""

CHART_ENV = "CHARTD_CONTAINER_CHART"
"""For tests and operators: a container chart document to use instead of the packaged one.

A daemon given a newer version this way migrates its containers to it at
startup, as it would after an upgrade of chartd (docs/engine.md).
"""


@functools.cache
def load_chart() -> engine.Chart:
    """The container chart, validated and compiled (loaded once, then shared).

    A :class:`engine.Chart` is immutable and may be shared between threads.
    ``CHARTD_CONTAINER_CHART`` names another document to load (:data:`CHART_ENV`).
    """
    override = os.environ.get(CHART_ENV)
    chart = engine.load_chart(Path(override) if override else CHART_PATH)
    if chart.name != "container":
        raise engine.errors.InvalidParameter(
            f"{CHART_ENV}={override}: the chart is {chart.name!r}, not 'container'"
        )
    return chart
