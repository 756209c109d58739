"""``chartd chart export``: a chart in one of the formats of :mod:`engine.export`.

It works on chart files and installed charts, with no daemon, as the other
``chart`` verbs of :mod:`engine.cli` do.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from engine.cli_output import check_format, err
from engine.errors import ChartdError
from engine.export import FORMATS

if TYPE_CHECKING:
    import engine

__all__ = ["chart_export_verb"]


def chart_export_verb(load: Callable[[str], engine.Chart]) -> Callable[..., None]:
    """The ``chart export`` command, resolving its chart argument with ``load``."""

    def chart_export(
        chart: Annotated[
            str, typer.Argument(help="A chart file or the name of an installed chart.")
        ] = "container",
        fmt: Annotated[str, typer.Option("--format", help=", ".join(FORMATS))] = "json",
        output: Annotated[
            Path | None, typer.Option("-o", "--output", help="Write to this file.")
        ] = None,
    ) -> None:
        """Export a chart as JSON, DOT, SVG, Mermaid, PlantUML, SCXML or XState JSON."""
        check_format(fmt, tuple(FORMATS))
        try:
            text = FORMATS[fmt](load(chart))
        except ChartdError as exc:  # e.g. svg without Graphviz
            err.print(f"error: {exc.message}", markup=False)
            raise typer.Exit(1) from None
        if output is None:
            sys.stdout.write(text)
        else:
            output.write_text(text, encoding="utf-8")

    return chart_export
