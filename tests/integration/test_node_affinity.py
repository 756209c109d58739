"""Node affinity on one SQLite file shared by two engines of different nodes.

The replicas' tests (tests/integration/replicas/test_affinity.py) show the
same promises across processes on PostgreSQL, with a node killed mid-saga.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest

import engine
from engine import Bindings, Context, Step
from engine.daemon import DaemonConfig, node_name
from engine.errors import ChartError, Conflict, InvalidParameter
from statecharts.container import load_chart as load_container_chart

LIFECYCLE = {
    "initial": "idle",
    "states": {"idle": {}, "rung": {}},
    "transitions": [
        {"event": "arm", "from": "idle", "to": "idle", "steps": ["arm"]},
        {"event": "ring", "from": "idle", "to": "rung"},
    ],
}
PINNED = engine.parse_chart({"chart": "pinned", "affinity": "node", **LIFECYCLE})
LOOSE = engine.parse_chart({"chart": "loose", **LIFECYCLE})


def _arm(ctx: Context) -> None:
    ctx.schedule("ring", 0.0)


BINDINGS = Bindings(steps={"arm": Step(_arm, external=False)})


@pytest.fixture
def two_nodes(
    tmp_path: Path, open_engine: Callable[..., engine.Engine]
) -> tuple[engine.Engine, engine.Engine]:
    url = f"sqlite:///{tmp_path / 'chartd.db'}"
    engines = (
        open_engine(url, timers=False, node="alpha"),
        open_engine(url, timers=False, node="beta"),
    )
    for eng in engines:
        for chart in (PINNED, LOOSE):
            eng.register(chart, BINDINGS)
    return engines


def test_the_chart_declares_affinity_and_a_bad_one_is_refused() -> None:
    assert PINNED.model.affinity == "node" and LOOSE.model.affinity is None
    assert load_container_chart().model.affinity == "node"  # its processes live on one host
    with pytest.raises(ChartError) as bad:
        engine.parse_chart({"chart": "c", "affinity": "host", **LIFECYCLE})
    assert str(bad.value) == "invalid chart: affinity: Input should be 'node'"


def test_an_entity_belongs_to_the_node_that_created_it(
    two_nodes: tuple[engine.Engine, engine.Engine],
) -> None:
    alpha, beta = two_nodes
    alpha.create("pinned", "web")
    alpha.create("loose", "db")
    assert beta.get("web").node == "alpha" and beta.get("db").node is None

    with pytest.raises(Conflict) as refused:
        beta.fire("web", "arm")
    assert refused.value.message == (
        "web belongs to node 'alpha', not this node ('beta'): fire 'arm' on node 'alpha'"
    )
    (unit,) = beta.fire_many([("web", "arm")])
    assert isinstance(unit, Conflict) and "node 'alpha'" in unit.message
    assert alpha.history("web") == []  # the refusals wrote nothing
    assert beta.fire("db", "arm").event == "arm"  # no affinity: any node
    assert alpha.fire("web", "arm").event == "arm"


def test_due_timers_of_a_node_s_entities_are_fired_by_that_node_only(
    two_nodes: tuple[engine.Engine, engine.Engine],
) -> None:
    alpha, beta = two_nodes
    for name, chart in (("web", "pinned"), ("db", "loose")):
        alpha.create(chart, name)
        alpha.fire(name, "arm")
    assert beta.run_due_timers() == 1  # db's
    assert beta.get("web").state == "idle" and beta.get("db").state == "rung"
    assert alpha.run_due_timers() == 1
    assert alpha.get("web").state == "rung"


def test_an_engine_s_node_is_the_host_name_unless_given(
    tmp_path: Path, open_engine: Callable[..., engine.Engine]
) -> None:
    assert open_engine("sqlite://").node == socket.gethostname()
    for bad in ("", "no spaces", "-dash", "a/b", "x" * 254):
        with pytest.raises(InvalidParameter, match="invalid node name"):
            engine.Engine.open("sqlite://", node=bad)


def test_the_daemon_keeps_its_node_name_in_its_state_directory(tmp_path: Path) -> None:
    assert node_name(tmp_path, None) == socket.gethostname()
    assert node_name(tmp_path, "rack-7") == "rack-7"
    assert node_name(tmp_path, None) == "rack-7"  # kept: the host may be renamed
    assert (tmp_path / "node").read_text() == "rack-7\n"
    (tmp_path / "node").write_text("not a name\n")
    with pytest.raises(InvalidParameter, match="cannot read the node name"):
        node_name(tmp_path, None)
    with pytest.raises(InvalidParameter, match="invalid node name"):
        DaemonConfig.resolve(tmp_path, node="a b")
