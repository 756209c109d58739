"""``chartd chart export``: a chart in one of the formats of :mod:`engine.export`.

It works on chart files and installed charts, with no daemon, as the other
``chart`` verbs do; what it does is :func:`engine.cli_chart.export`, imported
when it runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.cli_verbs import Verb, arg

__all__ = ["FORMAT_NAMES", "VERB"]

FORMAT_NAMES = ("json", "dot", "mermaid", "svg", "plantuml", "scxml", "xstate")
"""The names of :data:`engine.export.FORMATS`, for the help, without importing the exporters."""


def _export(args: argparse.Namespace) -> None:
    from engine import cli_chart  # noqa: PLC0415 - the exporters load the model

    cli_chart.export(args.chart, args.fmt, args.output)


VERB = Verb(
    "export",
    "Export a chart as JSON, DOT, SVG, Mermaid, PlantUML, SCXML or XState JSON.",
    _export,
    (
        arg(
            "chart",
            nargs="?",
            default="container",
            help="A chart file or the name of an installed chart (default: container).",
        ),
        arg("--format", dest="fmt", default="json", help=", ".join(FORMAT_NAMES) + "."),
        arg("-o", "--output", type=Path, help="Write to this file."),
    ),
)
"""``chart export``."""
