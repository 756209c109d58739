"""A chart's diagram for a page: the SVG export, each state's shape marked with its path.

The picture is :func:`engine.export.to_svg` (Graphviz's ``dot``), drawn once
per chart and version. It is parsed and written out again before it goes in
a page: what reaches the page is elements and text as XML serialises them
(every ``<`` of a label escaped), with no prolog, doctype, comment or script.
Each state's shape (a node, or a compound state's cluster) gets a
``data-state`` attribute naming its path: the page's script draws the live
counts and highlights the active states by it.
"""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET

from engine.core import Chart
from engine.errors import ChartdError
from engine.export import to_svg
from engine.export._shared import diagram_names, xml_text
from engine.web.markup import Html, html

__all__ = ["Diagrams"]

_SVG = "http://www.w3.org/2000/svg"
_ALLOWED = frozenset(
    f"{{{_SVG}}}{tag}" for tag in ("svg", "g", "title", "path", "polygon", "ellipse", "text")
)
_PREFIXES = {_SVG: "", "http://www.w3.org/1999/xlink": "xlink"}


class Diagrams:
    """Diagrams of charts, drawn on first use and kept by (name, version)."""

    def __init__(self) -> None:
        self._drawn: dict[tuple[str, int], Html] = {}
        self._lock = threading.Lock()

    def of(self, chart: Chart) -> Html:
        """The chart's diagram as inline SVG, or a note saying why there is none."""
        key = (chart.name, chart.version)
        found = self._drawn.get(key)
        if found is None:
            try:
                found = marked(to_svg(chart), chart)
            except ChartdError as exc:  # no Graphviz on this machine
                found = html('<p class="note">No diagram: {}</p>', exc.message)
            with self._lock:
                self._drawn[key] = found
        return found


def marked(svg: str, chart: Chart) -> Html:
    """``svg`` (Graphviz's drawing of ``chart``) as clean SVG with ``data-state`` marks."""
    paths = {name: path for path, name in diagram_names(chart.model).items()}
    paths |= {f"cluster_{name}": path for name, path in list(paths.items())}
    root = ET.fromstring(svg)
    _prune(root)
    for group in root.iter(f"{{{_SVG}}}g"):
        title = group.find(f"{{{_SVG}}}title")
        kind = group.get("class")
        if title is not None and kind in ("node", "cluster") and title.text in paths:
            group.set("data-state", paths[title.text])
    root.set("class", "diagram")
    return Html(xml_text(root, _PREFIXES))


def _prune(element: ET.Element) -> None:
    """Drop every element that is not a plain shape or text (links, scripts, foreign objects)."""
    for child in list(element):
        if child.tag not in _ALLOWED:
            element.remove(child)
        else:
            for attr in [a for a in child.attrib if a.lower().startswith("on") or "href" in a]:
                del child.attrib[attr]
            _prune(child)
