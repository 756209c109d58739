"""Every RPC is classified on purpose: one that changes or waits is never taken for a read.

A read is admitted without a quota (the pool's other half is kept for them);
a call that runs a process, writes or waits must count against its kind's.
"""

from __future__ import annotations

from engine.api.admission import KINDS
from engine.api.chartd.v1 import containers_pb2, engine_pb2, exec_pb2

READS = {
    "Containers.Inspect",
    "Containers.List",
    # Reads /proc of the container's processes: no process run, nothing waited for.
    "Containers.Stats",
    "Engine.Version",
    "Engine.ListCharts",
    "Engine.GetChart",
    "Engine.GetEntity",
    "Engine.ListEntities",
    "Engine.GetHistory",
    "Engine.GetSequence",
    "Exec.InspectExec",
}


def _methods() -> set[str]:
    found = set()
    for module in (containers_pb2, engine_pb2, exec_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            found |= {f"{service.name}.{m.name}" for m in service.methods}
    return found


def test_every_method_is_a_read_or_has_a_kind() -> None:
    methods = _methods()
    assert set(KINDS) <= methods, sorted(set(KINDS) - methods)
    assert methods - set(KINDS) == READS


def test_what_writes_runs_or_waits_counts_against_a_quota() -> None:
    assert {KINDS[m] for m in ("Engine.CreateMany", "Engine.FireMany", "Exec.CreateExec")} == {
        "change"
    }
    assert KINDS["Exec.StartExec"] == "stream"
