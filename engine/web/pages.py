"""The inspector's pages as HTML: the charts, a chart, an entity.

Pages are rendered on the server by :func:`engine.web.markup.html` (every
value escaped) with the data the page script needs in one inline JSON
block (:func:`engine.web.markup.json_script`). The script
(``static/inspector.js``) draws the live counts on the diagram, highlights
the active states, and applies what the event stream sends. A page served
links its stylesheet and script; the static export (``standalone``) holds
them inline, so the one file opens offline.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import quote, urlencode

from engine.core import Chart
from engine.runtime.records import Entity, TransitionRecord
from engine.web.markup import Html, html, join, json_script
from engine.web.timeline import HISTORY, data_block, entity_view, moment, timeline

__all__ = ["Page", "chart_page", "charts_page", "diagram_page", "entity_page", "static_text"]


def static_text(name: str) -> str:
    """One of the package's assets (``inspector.css``, ``inspector.js``)."""
    return resources.files("engine.web").joinpath("static", name).read_text(encoding="utf-8")


@dataclass(frozen=True, slots=True)
class Page:
    """How a page is wrapped: its live stream, its fire token, whether it stands alone."""

    stream: str | None = None  # the URL of its event stream (None: nothing live)
    csrf: str | None = None  # the token a fire from the page must carry (None: read-only)
    standalone: bool = False  # assets inline, for a file that opens offline
    crumbs: Sequence[tuple[str, str]] = field(default_factory=tuple)

    def wrap(self, title: str, body: Html, data: Mapping[str, Any]) -> Html:
        """The whole document: ``body`` with the page's data and assets."""
        page_data = {**data, "stream": self.stream}
        script, style = static_text("inspector.js"), static_text("inspector.css")
        if self.standalone:
            head = html(
                '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
                "script-src '{}'; style-src '{}'; img-src data:\"><style>{}</style>",
                _hash(script),
                _hash(style),
                Html(style),
            )
            tail = Html(f"<script>{script}</script>")
        else:
            head = html('<link rel="stylesheet" href="/static/inspector.css">')
            tail = html('<script src="/static/inspector.js"></script>')
        if self.csrf is not None:
            head = html('{}<meta name="chartd-csrf" content="{}">', head, self.csrf)
        crumbs = join(html(' / <a href="{}">{}</a>', href, text) for href, text in self.crumbs)
        return html(
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            "<title>{} · chartd inspector</title>{}</head><body>"
            '<header><a href="{}">chartd inspector</a>{}</header><main>{}</main>{}{}</body></html>',
            title,
            head,
            "#" if self.standalone else "/",
            crumbs,
            body,
            json_script("chartd-page", page_data),
            tail,
        )


def _hash(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def chart_href(chart: str) -> str:
    """The URL of a chart's page."""
    return "/charts/" + quote(chart, safe="")


def entity_href(entity_id: str) -> str:
    """The URL of an entity's page."""
    return "/entities/" + quote(entity_id, safe="")


def _counts_list(counts: Mapping[str, int]) -> Html:
    if not counts:
        return html('<span class="note">none live</span>')
    return join(
        html('<span class="count" data-state="{}">{}: <b>{}</b></span>', state, state, n)
        for state, n in sorted(counts.items())
    )


def charts_page(
    charts: Mapping[str, Chart | None], counts: Mapping[str, Mapping[str, int]], page: Page
) -> Html:
    """Every chart known (defined or with entities), its version, its live entities by state."""
    rows = []
    for name in sorted(charts):
        chart = charts[name]
        live = counts.get(name, {})
        total = sum(n for s, n in live.items() if "." not in s)
        rows.append(
            html(
                '<tr data-chart="{}"><td><a href="{}">{}</a></td><td>{}</td>'
                '<td class="total">{}</td><td class="states">{}</td></tr>',
                name,
                chart_href(name),
                name,
                chart.version if chart is not None else "-",
                total,
                _counts_list(live),
            )
        )
    body = html(
        "<h1>Charts</h1><table><thead><tr><th>chart</th><th>version</th><th>live</th>"
        "<th>live entities by state</th></tr></thead><tbody>{}</tbody></table>",
        join(rows) if rows else html('<tr><td colspan="4" class="note">No charts.</td></tr>'),
    )
    return page.wrap("Charts", body, {"kind": "charts", "counts": dict(counts)})


@dataclass(frozen=True, slots=True)
class Listing:
    """A page of a chart's entities, as the filter asked for it."""

    rows: Sequence[tuple[int, Entity]]
    state: str
    name: str
    after: int
    next_after: int | None


def chart_page(
    name: str,
    chart: Chart | None,
    diagram: Html,
    counts: Mapping[str, int],
    listing: Listing,
    page: Page,
) -> Html:
    """A chart: its diagram with live counts, the counts, and a filtered page of entities."""
    states = list(chart.model.states) if chart is not None else sorted(counts)
    description = (chart.model.description or "").strip() if chart is not None else ""
    count_rows = join(
        html('<tr><td>{}</td><td data-count-state="{}">{}</td></tr>', s, s, counts.get(s, 0))
        for s in states
    )
    body = html(
        '<h1>{} <span class="version">{}</span></h1>{}'
        '<section class="picture">{}</section>'
        '<section class="side"><h2>Live entities by state</h2><table class="counts">{}</table>'
        "</section><h2>Entities</h2>{}{}",
        name,
        f"v{chart.version}" if chart is not None else "no definition",
        html('<p class="description">{}</p>', description) if description else "",
        diagram,
        count_rows,
        _filter_form(name, states, listing),
        _entity_table(name, listing),
    )
    return page.wrap(name, body, {"kind": "chart", "chart": name, "counts": dict(counts)})


def _filter_form(chart: str, states: Sequence[str], listing: Listing) -> Html:
    options = join(
        html(
            '<option value="{}"{}>{}</option>',
            s,
            Html(" selected") if s == listing.state else "",
            s or "any state",
        )
        for s in ("", *states)
    )
    return html(
        '<form class="filter" method="get" action="{}">'
        '<label>state <select name="state">{}</select></label> '
        '<label>name starts with <input name="name" value="{}"></label> '
        '<button type="submit">filter</button></form>',
        chart_href(chart),
        options,
        listing.name,
    )


def _entity_table(chart: str, listing: Listing) -> Html:
    rows = join(
        html(
            '<tr data-entity="{}"><td><a href="{}">{}</a></td><td class="state">{}</td>'
            "<td>{}</td><td>{}</td></tr>",
            e.id,
            entity_href(e.id),
            e.name,
            e.state,
            e.version,
            moment(e.updated_at),
        )
        for _, e in listing.rows
    )
    if not listing.rows:
        rows = html('<tr><td colspan="4" class="note">No entities here.</td></tr>')
    query = {k: v for k, v in (("state", listing.state), ("name", listing.name)) if v}
    links = []
    if listing.after:
        links.append(html('<a href="{}?{}">first page</a>', chart_href(chart), urlencode(query)))
    if listing.next_after is not None:
        more = urlencode({**query, "after": listing.next_after})
        links.append(html('<a rel="next" href="{}?{}">next page</a>', chart_href(chart), more))
    return html(
        '<table class="entities"><thead><tr><th>name</th><th>state</th><th>version</th>'
        '<th>updated (UTC)</th></tr></thead><tbody>{}</tbody></table><nav class="paging">{}</nav>',
        rows,
        join(links, " "),
    )


def entity_page(
    entity: Entity,
    chart: Chart | None,
    diagram: Html,
    history: Sequence[TransitionRecord],
    page: Page,
) -> Html:
    """An entity: the diagram with its configuration lit, its data, its timeline."""
    view = entity_view(entity, history)
    fire = ""
    if page.csrf is not None and chart is not None:
        events = sorted({t.event for t in chart.model.transitions if t.event})
        fire = html(
            '<form id="fire" class="fire" method="post" action="{}/fire">'
            '<label>event <select name="event">{}</select></label> '
            '<label>params (JSON) <input name="params" value="{{}}"></label> '
            '<button type="submit">fire</button> <output id="fire-result"></output></form>',
            entity_href(entity.id),
            join(html('<option value="{}">{}</option>', e, e) for e in events),
        )
    body = html(
        '<h1>{} <span class="version">{}</span></h1>'
        '<dl class="facts"><dt>id</dt><dd>{}</dd><dt>state</dt><dd id="entity-state">{}</dd>'
        '<dt>version</dt><dd id="entity-version">{}</dd>'
        '<dt>updated (UTC)</dt><dd id="entity-updated">{}</dd></dl>{}'
        '<section class="picture">{}</section>'
        '<section class="side"><h2>Data</h2><div id="entity-data">{}</div></section>'
        '<h2>History</h2><div id="timeline">{}</div>',
        entity.name,
        entity.chart,
        entity.id,
        entity.state,
        entity.version,
        moment(entity.updated_at),
        fire,
        diagram,
        data_block(entity.data),
        timeline(history),
    )
    data = {
        "kind": "entity",
        "chart": entity.chart,
        "entity": entity.id,
        "history": HISTORY,
        **view,
    }
    # The fragments are in the body already; the page data needs only what the script reads.
    del data["data"], data["timeline"]
    return page.wrap(entity.name, body, data)


def diagram_page(chart: Chart, diagram: Html, page: Page) -> Html:
    """A chart's diagram alone (the static export without an entity)."""
    description = (chart.model.description or "").strip()
    body = html(
        '<h1>{} <span class="version">v{}</span></h1>{}<section class="picture">{}</section>',
        chart.name,
        chart.version,
        html('<p class="description">{}</p>', description) if description else "",
        diagram,
    )
    return page.wrap(chart.name, body, {"kind": "chart", "chart": chart.name, "counts": {}})
