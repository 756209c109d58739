"""Reading chart files: the one place where loading a chart touches the disk."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.core import Chart
from engine.errors import ChartError, NotFound
from engine.model import ChartDocument, build, parse_text

__all__ = ["load_chart", "parse_chart"]


def load_chart(path: str | Path) -> Chart:
    """The chart in the YAML or JSON file at ``path``, validated and compiled.

    Raises NotFound if the file does not exist and ChartError (an
    InvalidParameter) naming the path in the document of every problem.
    """
    file = Path(path)
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
