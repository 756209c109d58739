"""The static export: one chart's or one entity's page as a single file that opens offline.

The same renderer as the served pages (:mod:`engine.web.pages`), with the
stylesheet and the script inline and nothing live: a snapshot of the
entity (its configuration lit on the diagram, its data, its timeline) to
attach to a ticket or keep with a post-mortem. Its Content-Security-Policy
allows no network at all, and only the inline script and style it holds.
"""

from __future__ import annotations

from engine.core import Chart
from engine.errors import NotFound
from engine.web.diagram import Diagrams
from engine.web.pages import Page, diagram_page, entity_page
from engine.web.source import Source

__all__ = ["standalone"]


def standalone(chart: Chart, *, db: str | None = None, entity: str | None = None) -> str:
    """The page of ``entity`` (an id or name of ``chart``, read from ``db``), or of the chart."""
    diagram = Diagrams().of(chart)
    page = Page(standalone=True)
    if entity is None or db is None:
        return diagram_page(chart, diagram, page)
    source = Source.open(db, {chart.name: chart})
    try:
        row = source.store.entity(entity, chart.name)
        if row is None:
            raise NotFound(f"no entity {entity!r} of chart {chart.name!r} in the database")
        found = source.entity(row.id)
        assert found is not None
        return entity_page(found, chart, diagram, source.history(found.id), page)
    finally:
        source.close()
