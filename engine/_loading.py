"""Reading chart files: the one place where loading a chart touches the disk.

A chart is named by its file, or by the name an installed package registers
it under in the ``chartd.charts`` entry-point group
(``container = "statecharts.container:CHART_PATH"``), as ``chartd chart``
names them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from engine.core import Chart
from engine.errors import ChartError, NotFound
from engine.model import ChartDocument, build, parse_text

__all__ = ["CHART_SUFFIXES", "installed_charts", "load_chart", "parse_chart"]

CHART_SUFFIXES = (".yaml", ".yml", ".json")
"""What a chart file's name ends with."""


def installed_charts() -> dict[str, Path]:
    """The charts installed packages register, by name: ``name = "module:PATH_ATTRIBUTE"``."""
    return {ep.name: Path(ep.load()) for ep in entry_points(group="chartd.charts")}


def _file_of(chart: str | Path) -> Path:
    """The file ``chart`` names: itself, unless it is a bare name no file has."""
    file = Path(chart)
    bare = isinstance(chart, str) and os.sep not in chart and file.suffix not in CHART_SUFFIXES
    if not bare or file.is_file():
        return file
    installed = installed_charts()
    if chart in installed:
        return installed[chart]
    names = ", ".join(sorted(installed)) or "none"
    raise NotFound(f"no chart file or installed chart named {chart!r} (installed: {names})")


def load_chart(path: str | Path) -> Chart:
    """The chart in the YAML or JSON file at ``path``, validated and compiled.

    ``path`` may also be the name of an installed chart (``"container"``):
    a string with no directory and no chart suffix that names no file.
    Raises NotFound if there is no such file or chart, and ChartError (an
    InvalidParameter) naming the path in the document of every problem.
    """
    file = _file_of(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFound(f"no chart file at {str(file)!r}") from None
    except (IsADirectoryError, UnicodeDecodeError) as exc:
        raise ChartError([("", f"cannot read the chart: {exc}")], source=str(file)) from None
    return parse_chart(text, source=str(file))


def parse_chart(
    document: str | Mapping[str, Any] | ChartDocument, *, source: str | None = None
) -> Chart:
    """A chart from YAML or JSON text, a mapping, or a ChartDocument; validated and compiled."""
    parsed = parse_text(document, source=source) if isinstance(document, str) else document
    if parsed is None:
        raise ChartError([("", "the chart is empty")], source=source)
    return Chart(build(parsed, source=source))
