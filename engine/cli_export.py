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

FORMAT_NAMES = ("json", "dot", "mermaid", "svg", "plantuml", "scxml", "xstate", "html")
"""The names of :data:`engine.export.FORMATS` and ``html`` (the inspector's page), for the help."""


def _export(args: argparse.Namespace) -> None:
    from engine import cli_chart  # noqa: PLC0415 - the exporters load the model

    if args.entity is not None and args.fmt != "html":
        from engine.cli_output import fail  # noqa: PLC0415

        fail("--entity goes with --format html", 2)
    cli_chart.export(args.chart, args.fmt, args.output, entity=args.entity, db=args.db)


VERB = Verb(
    "export",
    "Export a chart as JSON, DOT, SVG, Mermaid, PlantUML, SCXML, XState JSON or HTML.",
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
        arg(
            "--entity",
            help="With --format html: this entity's page (its state, data and history), "
            "read from --db.",
        ),
        arg(
            "--db",
            help="The engine database --entity is read from "
            "(default sqlite:///STATE_DIR/chartd.db, the daemon's).",
        ),
    ),
)
"""``chart export``."""
