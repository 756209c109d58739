"""The inspector's HTML: values escaped by construction, a timeline with what the journal holds."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from engine.runtime.records import StepRecord, TransitionRecord
from engine.web.markup import Html, html, join, json_script
from engine.web.timeline import timeline

HOSTILE = "<img src=x onerror=alert(1)>"


def test_values_are_escaped_unless_they_are_markup_already() -> None:
    assert html('<a title="{}">{}</a>', '"><script>', HOSTILE) == (
        '<a title="&quot;&gt;&lt;script&gt;">&lt;img src=x onerror=alert(1)&gt;</a>'
    )
    assert html("<p>{}</p>", html("<b>{}</b>", "&")) == "<p><b>&amp;</b></p>"
    assert join(["<i>", Html("<br>")]) == "&lt;i&gt;<br>"


def test_inline_json_cannot_end_its_script_and_reads_back_the_same() -> None:
    value = {"a": "</script><script>alert(1)</script>", "b": "<!--", "c": "\u2028&"}
    block = json_script("d", value)
    body = re.fullmatch(r'<script type="application/json" id="d">(.*)</script>', block)
    assert body is not None and "<" not in body.group(1) and "&" not in body.group(1)
    assert json.loads(body.group(1)) == value


@dataclass(frozen=True, slots=True)
class Traced(TransitionRecord):
    """A journal entry as it reads once the journal records trace ids."""

    trace_id: str | None = None


def _step(index: int, name: str, undone_at: float | None, error: str | None = None) -> StepRecord:
    status = "compensated" if undone_at else ("failed" if error else "done")
    return StepRecord(index, name, status, None, error, 1.0, 1.5, undone_at, None)


def test_a_transition_shows_its_key_trace_error_steps_and_compensations_in_order() -> None:
    record = Traced(
        "t1", 7, "ship", {"to": HOSTILE}, "failed", ("paid",), ("shipped",), 1, 2,
        "system", f"label: {HOSTILE}", (), "key-1", 1.0, 2.5,
        (_step(0, "reserve", 3.0), _step(1, "pack", 2.0), _step(2, "label", None, HOSTILE)),
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
    )  # fmt: skip
    text = timeline([record])
    assert '<dd class="trace-id">4bf92f3577b34da6a3ce929d0e0e4736</dd>' in text
    assert '<dd class="idempotency-key">key-1</dd>' in text
    assert '<span class="duration">1.50 s</span>' in text
    undone = re.search(r'<ol class="compensations">(.*?)</ol>', text)
    assert undone is not None
    assert re.findall(r'class="name">(\w+)<', undone.group(1)) == ["pack", "reserve"]
    assert (
        "<img" not in text and text.count("&lt;img src=x onerror=alert(1)&gt;") == 3
    )  # error, step, params
    assert "&quot;to&quot;: &quot;&lt;img" in text  # params, as JSON, as text


def test_an_entry_without_a_trace_id_shows_none() -> None:
    plain = TransitionRecord(
        "t2", 8, "pay", {}, "committed", ("new",), ("paid",), 0, 1, None, None, (), None,
        1.0, 1.001, (),
    )  # fmt: skip
    text = timeline([plain])
    assert "trace-id" not in text and "idempotency-key" not in text
    assert '<span class="duration">1.0 ms</span>' in text


def test_every_state_of_a_compound_chart_is_marked_on_its_diagram(graphviz: str) -> None:
    import engine  # noqa: PLC0415
    from engine.web.diagram import Diagrams  # noqa: PLC0415

    chart = engine.load_chart("container")
    svg = Diagrams().of(chart)
    marked = set(re.findall(r'data-state="([^"]+)"', svg))
    drawn = {p for p, s in chart.model.states.items() if s.kind != "history"}
    assert drawn <= marked <= set(chart.model.states)
    assert any("." in p for p in marked)  # nested states, and their clusters
    assert "<script" not in svg and "<!DOCTYPE" not in svg and "<?xml" not in svg


def test_the_diagram_stays_inline_svg_after_an_scxml_export(graphviz: str) -> None:
    """ElementTree's prefixes are one registry per process: an SCXML export (whose
    default namespace is SCXML's) once turned every later diagram into ``<ns0:svg>``,
    which no browser draws inline; and the SCXML export must not take SVG's either."""
    import engine  # noqa: PLC0415
    from engine.export import to_scxml  # noqa: PLC0415
    from engine.web.diagram import Diagrams  # noqa: PLC0415

    chart = engine.load_chart("container")
    before = to_scxml(chart)
    svg = Diagrams().of(chart)
    after = to_scxml(chart)
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg"'), svg[:80]
    assert "ns0:" not in svg and "ns1:" not in svg
    assert after == before
    assert '<scxml xmlns="http://www.w3.org/2005/07/scxml"' in after
