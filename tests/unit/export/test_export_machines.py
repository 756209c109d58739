"""SVG, PlantUML, SCXML and XState exports, read back with a parser of their format."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

import pytest

import engine
from engine.errors import ChartdError, Conflict, NotImplemented
from engine.export import export, to_plantuml, to_scxml, to_svg, to_xstate
from engine.export._shared import ncname, unique
from engine.export.scxml import NAMESPACE, SCXML_NAMESPACE
from engine.export.svg import render_svg
from engine.export.xstate import REJECT_ACTION
from statecharts.container import load_chart

S = f"{{{SCXML_NAMESPACE}}}"
C = f"{{{NAMESPACE}}}"
SVG = "{http://www.w3.org/2000/svg}"

SMALL = engine.parse_chart(
    {
        "chart": "player",
        "initial": "idle",
        "states": {
            "idle": {},
            "busy": {"transient": True},
            "on": {
                "parallel": True,
                "states": {
                    "audio": {
                        "initial": "playing",
                        "states": {"playing": {}, "muted": {}, "h": {"history": "deep"}},
                    },
                    "video": {"initial": "shown", "states": {"shown": {}, "done": {"final": True}}},
                },
            },
            "off": {"final": True},
        },
        "transitions": [
            {"event": "power", "from": "idle", "to": "on", "via": "busy", "steps": ["boot"],
             "guards": ["has_power"], "set": {"booted": True},
             "on_failure": {"to": "off", "record": ["error"], "then": {"event": "stop"}}},
            {"event": "mute", "from": "on.audio.playing", "to": "on.audio.muted", "when": "!quiet"},
            {"event": "back", "from": "on", "to": "on.audio.h"},
            {"event": "ping", "from": "on.video.shown", "steps": ["pong"]},
            {"from": "on.video.shown", "to": "on.video.done", "when": "ended"},
            {"event": "done.state.on.video", "from": "on", "to": "off", "then": {"event": "stop"}},
            {"event": "stop", "from": "on", "to": "off"},
        ],
        "rejections": [
            {"event": "mute", "in": "on.audio.muted", "error": "not_modified",
             "message": "already muted"},
            {"event": "*", "in": "idle", "when": "locked", "error": "conflict",
             "message": "locked"},
        ],
    }
)  # fmt: skip


# -- SVG ------------------------------------------------------------------------------------


needs_dot = pytest.mark.usefixtures("graphviz")  # skipped without it, failed under CI


@needs_dot
def test_svg_is_rendered_by_graphviz_and_names_every_state() -> None:
    chart = load_chart()
    root = ET.fromstring(to_svg(chart))
    assert root.tag == f"{SVG}svg"
    texts = {t.text for t in root.iter(f"{SVG}text")}
    for state in chart.model.states.values():
        # A history state is drawn as H (shallow) or H* (deep), as SMALL's below.
        assert (state.name if state.kind != "history" else "H") in texts, state.path
    assert "pause" in texts and "start" in texts
    # Version 2's health region, beside the process.
    assert {"health", "starting", "healthy", "unhealthy", "probe_passed"} <= texts
    small = ET.fromstring(export(SMALL, "svg"))
    assert {"H*", "audio", "video"} <= {t.text for t in small.iter(f"{SVG}text")}


def test_svg_without_graphviz_names_the_missing_program() -> None:
    with pytest.raises(NotImplemented, match="needs Graphviz's 'no-such-dot' program"):
        render_svg("digraph { a -> b }", program="no-such-dot")


@needs_dot
def test_svg_carries_graphviz_errors() -> None:
    with pytest.raises(ChartdError, match="dot -Tsvg failed"):
        render_svg("digraph { a -> ")


# -- PlantUML -------------------------------------------------------------------------------


def test_plantuml_draws_composites_regions_history_and_labels() -> None:
    lines = to_plantuml(SMALL).splitlines()
    assert lines[0] == "@startuml" and lines[-1] == "@enduml"
    assert 'state "on" as on {' in lines
    assert '  state "audio" as on__audio {' in lines
    assert "    [*] --> on__audio__playing" in lines
    assert "  --" in lines  # between the regions of `on`
    assert 'state "busy" as busy <<transient>>' in lines
    assert "off --> [*]" in lines and "    on__video__done --> [*]" in lines
    assert "[*] --> idle" in lines
    assert "idle --> on : power / boot via busy" in lines
    assert "on__audio__playing --> on__audio__muted : mute [!quiet]" in lines
    assert "on --> on__audio[H*] : back" in lines
    assert "on__video__shown --> on__video__shown : ping (internal) / pong" in lines
    assert "on__video__shown --> on__video__done : (eventless) [ended]" in lines


def test_plantuml_of_the_container_chart() -> None:
    chart = load_chart()
    text = to_plantuml(chart)
    lines = text.splitlines()
    assert 'state "running" as running {' in lines and "  [*] --> running__active" in lines
    assert "removed --> [*]" in lines
    arrows = [line for line in lines if " : " in line and " --> " in line]
    assert len(arrows) == len(chart.model.transitions)
    assert "running__active --> running__paused : pause / task_pause, health_stop" in lines
    # Unpause and a stop that thaws go back to the health status kept by the history.
    assert (
        "running__paused --> running__active__health[H] : unpause / task_resume, health_resume"
        in lines
    )
    assert (
        "running__paused --> running__active__health[H] : stop [stop_ends] / stop_signal" in lines
    )
    assert (
        "running__active__health__none --> running__active__health__starting :"
        " (eventless) [probes] / health_reset"
    ) in lines


# -- SCXML ----------------------------------------------------------------------------------


def _states(root: ET.Element) -> dict[str, ET.Element]:
    kinds = {f"{S}state", f"{S}parallel", f"{S}final", f"{S}history"}
    return {el.get("id", ""): el for el in root.iter() if el.tag in kinds}


def test_scxml_maps_the_structure() -> None:
    root = ET.fromstring(to_scxml(SMALL))
    assert root.tag == f"{S}scxml"
    assert root.get("version") == "1.0" and root.get("initial") == "idle"
    assert root.get("datamodel") == "ecmascript" and root.get(f"{C}version") == "1"
    states = _states(root)
    assert list(states) == list(SMALL.model.states)
    assert states["on"].tag == f"{S}parallel" and states["off"].tag == f"{S}final"
    assert states["on.audio"].get("initial") == "on.audio.playing"
    history = states["on.audio.h"]
    assert history.tag == f"{S}history" and history.get("type") == "deep"
    [default] = history.findall(f"{S}transition")
    assert default.get("target") == "on.audio.playing"
    assert states["busy"].get(f"{C}transient") == "true"
    data = [d.get("id") for d in root.iter(f"{S}data")]
    assert data == ["booted", "ended", "locked", "quiet"]


def test_scxml_transitions_carry_everything() -> None:
    states = _states(ET.fromstring(to_scxml(SMALL)))
    [power] = states["idle"].findall(f"{S}transition")
    assert power.attrib == {
        "event": "power",
        "target": "on",
        "type": "external",
        f"{C}guards": "has_power",
        f"{C}steps": "boot",
        f"{C}via": "busy",
        f"{C}on-failure-to": "off",
        f"{C}on-failure-record": "error",
        f"{C}on-failure-then": "stop",
    }
    # A transition's children are executable content: SCXML's own only.
    [assign] = list(power)
    assert assign.tag == f"{S}assign"
    assert assign.attrib == {"location": "booted", "expr": "true"}
    [mute] = states["on.audio.playing"].findall(f"{S}transition")
    assert mute.get("cond") == "quiet != true"
    ping, eventless = states["on.video.shown"].findall(f"{S}transition")
    assert "target" not in ping.attrib and "type" not in ping.attrib
    assert "event" not in eventless.attrib and eventless.get("cond") == "ended"
    done = states["on"].findall(f"{S}transition")[1]
    assert done.get("event") == "done.state.on.video"
    assert [r.attrib for r in states["idle"].findall(f"{C}reject")] == [
        {"event": "*", "error": "conflict", "when": "locked", "message": "locked"}
    ]
    [muted] = states["on.audio.muted"].findall(f"{C}reject")
    assert muted.get("event") == "mute" and muted.get("error") == "not_modified"


def test_scxml_of_the_container_chart() -> None:
    chart = load_chart()
    text = to_scxml(chart)
    assert text == to_scxml(load_chart())  # deterministic
    root = ET.fromstring(text)
    assert list(_states(root)) == list(chart.model.states)
    # The history's default is a transition of its own in SCXML.
    defaults = [t for h in root.iter(f"{S}history") for t in h.iter(f"{S}transition")]
    assert len(defaults) == 1
    transitions = [t for t in root.iter(f"{S}transition") if t not in defaults]
    assert len(transitions) == len(chart.model.transitions)
    rejects = list(root.iter(f"{C}reject"))
    assert len(rejects) == len(chart.model.rejections)
    start = transitions[0]
    assert start.get(f"{C}steps", "").split()[0] == "mount_rootfs"


def test_scxml_ids_are_ncnames_and_unique() -> None:
    assert ncname("running.paused") == "running.paused"
    assert ncname("9lives") == "_9lives" and ncname("a b") == "a_b"
    assert unique(["a b", "a_b", "a-b"], ncname) == {"a b": "a_b", "a_b": "a_b_2", "a-b": "a-b"}


# -- XState ---------------------------------------------------------------------------------


def test_xstate_maps_the_structure() -> None:
    config: dict[str, Any] = json.loads(to_xstate(SMALL))
    assert config["id"] == "player" and config["initial"] == "idle"
    assert config["meta"] == {"chartd": {"version": 1}}
    on = config["states"]["on"]
    assert on["type"] == "parallel" and set(on["states"]) == {"audio", "video"}
    audio = on["states"]["audio"]
    assert audio["initial"] == "playing"
    assert audio["states"]["h"] == {"type": "history", "history": "deep"}
    assert config["states"]["off"] == {"type": "final"}
    assert config["states"]["busy"] == {"meta": {"chartd": {"transient": True}}}
    power = config["states"]["idle"]["on"]["power"][0]
    assert power == {
        "target": "#player.on",
        "reenter": True,
        "actions": ["boot"],
        "meta": {
            "chartd": {
                "guards": ["has_power"],
                "via": "busy",
                "set": {"booted": True},
                "on_failure": {"to": "off", "record": ["error"], "then": {"event": "stop"}},
            }
        },
    }
    shown = on["states"]["video"]["states"]["shown"]
    assert shown["on"]["ping"] == [{"actions": ["pong"]}]
    assert shown["always"] == [
        {"target": "#player.on.video.done", "reenter": True, "guard": "ended"}
    ]
    assert on["on"]["back"][0]["target"] == "#player.on.audio.h"
    assert on["on"]["xstate.done.state.player.on.video"][0]["target"] == "#player.off"
    mute = audio["states"]["muted"]["on"]["mute"]
    assert mute == [
        {"actions": [{"type": REJECT_ACTION, "params": {"error": "not_modified",
                                                        "message": "already muted"}}]}
    ]  # fmt: skip
    idle = config["states"]["idle"]["on"]
    assert set(idle) == {"power", "mute", "back", "ping", "stop"}  # "*": every event
    assert idle["mute"][0]["guard"] == "locked"
    assert idle["power"][-1]["actions"][0]["type"] == REJECT_ACTION  # after the transition


def test_xstate_of_the_container_chart() -> None:
    chart = load_chart()
    config = json.loads(to_xstate(chart))
    seen: list[str] = []

    def walk(node: dict[str, Any], path: str) -> None:
        for name, child in node.get("states", {}).items():
            seen.append(f"{path}{name}")
            walk(child, f"{path}{name}.")

    walk(config, "")
    assert seen == list(chart.model.states)
    running = config["states"]["running"]
    assert running["initial"] == "active"
    [pause] = running["states"]["active"]["on"]["pause"]
    assert pause == {
        "target": "#container.running.paused", "reenter": True,
        "actions": ["task_pause", "health_stop"],
    }  # fmt: skip
    paused = running["states"]["paused"]["on"]
    assert [t.get("guard") for t in paused["stop"]] == ["stop_ends", None]
    assert paused["start"][0]["actions"][0]["params"]["error"] == "conflict"
    assert running["on"]["start"][0]["actions"][0]["params"]["error"] == "not_modified"
    removed = config["states"]["removed"]
    assert removed["type"] == "final"
    assert len(removed["on"]) == len([e for e in chart.events if not e.startswith("done.")])


def test_xstate_names_a_deeper_initial_in_meta() -> None:
    chart = engine.parse_chart(
        {
            "chart": "c",
            "initial": "p.b",
            "states": {"p": {"initial": "a", "states": {"a": {}, "b": {}}}},
        }
    )
    config = json.loads(to_xstate(chart))
    assert config["initial"] == "p" and config["meta"]["chartd"]["initial"] == "p.b"


def test_every_format_is_deterministic() -> None:
    for fmt in ("plantuml", "scxml", "xstate", "dot", "mermaid", "json"):
        assert export(SMALL, fmt) == export(engine.parse_chart(SMALL.model.document.model_dump(
            by_alias=True, exclude_none=True)), fmt), fmt  # fmt: skip


def test_a_refused_event_is_still_refused() -> None:
    # The SMALL chart's rejections are what the exports carry: check they are real.
    with pytest.raises(Conflict, match="locked"):
        engine.step(SMALL, SMALL.initial_snapshot({"locked": True}), "stop")
