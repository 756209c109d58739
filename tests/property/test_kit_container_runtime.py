"""The test kit against the container chart's real code, on the in-memory fake runtime.

statecharts.container.bindings is the code the daemon runs (directories
under a state root, address leases, runtime containers and tasks); here it
drives statecharts.container.faults.FakeRuntime, which keeps the process
runtime's contract without processes. The kit makes its steps and undos
fail and crashes the engine anywhere in a saga (the fake runtime, like a
real one, outlives a daemon that dies); on top of the kit's own checks,
an invariant of moby's: a container has a task only while it is running.
It found two bugs in the chart's failure targets (the regression tests below).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

import engine
from engine.testing import Create, Fault, Fire, Harness, Invariant, state_machine
from statecharts.container import load_chart, moby
from statecharts.container.bindings import container_bindings
from statecharts.container.faults import FakeRuntime
from statecharts.container.network import AddressPool

ROOTS = Path(tempfile.mkdtemp(prefix="chartd-kit-container-"))
atexit.register(shutil.rmtree, ROOTS, ignore_errors=True)


def container_code() -> tuple[engine.Bindings, list[Invariant]]:
    """A fresh fake runtime, state root and address pool for each run, and moby's invariant."""
    root = Path(tempfile.mkdtemp(dir=ROOTS))
    runtime = FakeRuntime()
    pool = AddressPool("10.88.0.0/24", root / "network")

    def only_running_containers_have_tasks(eng: engine.Engine) -> None:
        for task in runtime.tasks():
            entity = eng.get(task.container_id)
            assert entity.in_state("running"), (
                f"{entity.name} is {entity.state} but has a task: {task}"
            )

    code = container_bindings(runtime, pool, root, clock=time.time)
    return code, [only_running_containers_have_tasks]


# The data Containers.create gives a container (statecharts/container/service.py), but
# the name: the chart's schema fills in the entity's own.
DATA = st.fixed_dictionaries(
    {
        "cmd": st.just(["sleep", "100"]),
        "env": st.just({}),
        "working_dir": st.sampled_from([None, "/srv"]),
        "labels": st.just({}),
        "stop_signal": st.just(15),
        "stop_signal_set": st.just(False),
        "stop_timeout": st.none() | st.integers(0, 10),
        "restart_policy": st.sampled_from(
            [moby.parse_restart_policy(p).as_data() for p in ("no", "always", "on-failure:2")]
        ),
        "auto_remove": st.booleans(),
        "restart_count": st.just(0),
        "exit_code": st.just(0),
        "error": st.just(""),
        "pid": st.just(0),
    }
)
PARAMS = {
    "signal": st.sampled_from(["SIGTERM", "SIGKILL", "SIGHUP", "SIGBOGUS"]),
    "force": st.booleans(),
}
EVENTS = sorted(e for e in load_chart().events if not e.startswith("done."))

ContainerCodeMachine = state_machine(
    load_chart(), container_code, data=DATA, params=PARAMS, events=EVENTS
)

CI = settings.default.max_examples >= 200
TestContainerCodeOnTheFakeRuntime = ContainerCodeMachine.TestCase
TestContainerCodeOnTheFakeRuntime.settings = settings(
    max_examples=100 if CI else 10,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


# -- bugs the kit found in the container chart ----------------------------------------------

CREATED = {
    "cmd": ["sleep", "100"],
    "env": {},
    "working_dir": None,
    "labels": {},
    "stop_signal": 15,
    "stop_signal_set": False,
    "stop_timeout": None,
    "restart_policy": {"name": "no", "maximum_retry_count": 0},
    "auto_remove": False,
    "restart_count": 0,
    "exit_code": 0,
    "error": "",
    "pid": 0,
}


def after(*fires: Fire) -> engine.Entity:
    """Start a container, then fire ``fires``, checking each with the kit; the container after."""
    code, invariants = container_code()
    with Harness(load_chart(), code, invariants=invariants) as harness:
        harness.apply(Create(CREATED))
        harness.apply(Fire(0, "start"))
        harness.check()
        for fire in fires:
            harness.apply(fire)
            harness.check()
        [container] = harness.entities
        return harness.engine.get(container)


# Regressions: the kit found that a failed restart (task_stop failing) recorded the
# container exited, and a failed rm -f (task_kill or task_delete failing) dead, while
# the task ran on. The chart now applies those failure targets only after task_delete.


@pytest.mark.parametrize("failing", [0, 1])
def test_a_restart_that_cannot_stop_the_task_leaves_the_container_running(failing: int) -> None:
    # moby's ContainerRestart returns the stop error; the container stays running.
    container = after(Fire(0, "restart", fault=Fault(step=failing)))
    assert container.in_state("running.active")


@pytest.mark.parametrize("failing", [2, 3, 11])
def test_a_restart_that_fails_once_the_task_is_gone_leaves_it_exited(failing: int) -> None:
    container = after(Fire(0, "restart", fault=Fault(step=failing)))
    assert container.state == "exited"
    assert "injected" in container.data["error"]


@pytest.mark.parametrize("failing", [0, 1])
def test_a_forced_remove_that_cannot_kill_leaves_the_container_as_it_was(failing: int) -> None:
    # moby: "Could not kill running container ..., cannot remove"; nothing changes.
    container = after(Fire(0, "remove", params={"force": True}, fault=Fault(step=failing)))
    assert container.in_state("running.active")
    assert container.data["error"] == ""


def test_a_forced_remove_that_fails_once_the_task_is_gone_leaves_it_dead() -> None:
    container = after(Fire(0, "remove", params={"force": True}, fault=Fault(step=3)))
    assert container.state == "dead"
