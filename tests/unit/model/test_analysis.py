"""Static analysis of sound charts."""

from __future__ import annotations

import engine
from engine.model.analysis import analyse, reachable_states, unhandled_pairs


def test_reachability_follows_targets_vias_failure_targets_and_defaults() -> None:
    c = engine.parse_chart(
        {
            "chart": "r",
            "initial": "a",
            "states": {
                "a": {},
                "hold": {"transient": True},
                "b": {"initial": "b1", "states": {"b1": {}, "b2": {}}},
                "broken": {},
                "island": {},
            },
            "transitions": [
                {
                    "event": "go",
                    "from": "a",
                    "to": "b",
                    "via": "hold",
                    "steps": ["s"],
                    "on_failure": {"to": "broken"},
                },
                {"event": "go", "from": "island", "to": "a"},
            ],
        }
    )
    assert reachable_states(c.model) == {"a", "hold", "b", "b.b1", "broken"}
    kinds = {(f.kind, f.where) for f in analyse(c.model)}
    assert ("unreachable", "island") in kinds
    assert ("unreachable", "b.b2") in kinds


def test_unhandled_pairs_respect_ancestors_and_wildcard_rejections() -> None:
    c = engine.parse_chart(
        {
            "chart": "u",
            "initial": "on",
            "states": {
                "on": {"initial": "x", "states": {"x": {}, "y": {}}},
                "off": {"final": True},
            },
            "transitions": [
                {"event": "flip", "from": "on.x", "to": "on.y"},
                {"event": "quit", "from": "on", "to": "off"},
            ],
            "rejections": [{"event": "*", "in": "off", "error": "not_found", "message": "gone"}],
        }
    )
    assert unhandled_pairs(c.model) == [("on.y", "flip")]
