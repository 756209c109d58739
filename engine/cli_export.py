"""``chartd chart export``: a chart in one of the formats of :mod:`engine.export`.

It works on chart files and installed charts, with no daemon, as the other
``chart`` verbs do; what it does is :func:`engine.cli_chart.export`, imported
when it runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["FORMAT_NAMES", "chart_export"]

FORMAT_NAMES = ("json", "dot", "mermaid", "svg", "plantuml", "scxml", "xstate")
"""The names of :data:`engine.export.FORMATS`, for the help, without importing the exporters."""


def chart_export(
    chart: Annotated[
        str, typer.Argument(help="A chart file or the name of an installed chart.")
    ] = "container",
    fmt: Annotated[str, typer.Option("--format", help=", ".join(FORMAT_NAMES))] = "json",
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write to this file.")] = None,
) -> None:
    """Export a chart as JSON, DOT, SVG, Mermaid, PlantUML, SCXML or XState JSON."""
    from engine import cli_chart  # noqa: PLC0415 - the exporters load the model

    cli_chart.export(chart, fmt, output)
