"""A fault at every step of moby's start saga, on real processes (issue 4).

The saga is moby's ``containerStart``: mount_rootfs, network_sandbox,
container_dirs, mounts, spec, (reset_restart_manager), runtime_container,
task_create, task_start. Each case fails one step, by a real cause where
there is one (a file where a directory must go, an exhausted /30 address
pool, a missing working directory, a command that is missing, not
executable or a directory) and by the FaultRuntime for the runtime's own
calls. Each runs twice: as the first start of a created container, and as a
restart of one that ran and exited (0).

Afterwards: the error has its category and moby's message; no process,
directory (rootfs, mounts, run dir), address lease or runtime record is
left; the container is ``created`` (first start: moby leaves StartedAt
alone) or ``exited``, with the error recorded and moby's exit code (127
missing, 126 not executable, 128 otherwise); no event but the engine's
``transition.failed``; the journal shows the completed steps compensated
newest first (the daemon's clock never reads the same twice, so the
compensation times order them) and the failed step ``failed``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from container_daemon import Daemon, alive

from engine.errors import ChartdError, InvalidParameter, NotFound, System, Unavailable
from statecharts.container.bindings import container_dir
from statecharts.container.runtime import DEFAULT_PATH

START = (
    "mount_rootfs",
    "network_sandbox",
    "container_dirs",
    "mounts",
    "spec",
    "reset_restart_manager",
    "runtime_container",
    "task_create",
    "task_start",
)
CIDR = "10.99.0.0/30"  # one address to lease: .0 network, .1 gateway, .3 broadcast


@dataclass
class Box:
    """A container of a case, and the paths its faults play with."""

    daemon: Daemon
    id: str
    bin: Path  # on the container's PATH
    script: Path  # bin/entry: exits 0
    workdir: Path

    @property
    def own(self) -> Path:
        return container_dir(self.daemon.root, self.id)

    @property
    def run(self) -> Path:
        return self.daemon.root / "run" / self.id


def make_box(daemon: Daemon, tmp_path: Path, *, by_name: bool, **kw: object) -> Box:
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    script = bin_ / "entry"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)
    workdir = tmp_path / "wd"
    workdir.mkdir()
    cid = daemon.containers.create(
        ["entry"] if by_name else [str(script)],
        name="box",
        env={"PATH": f"{bin_}:{DEFAULT_PATH}"},
        working_dir=str(workdir),
        **kw,  # type: ignore[arg-type]
    ).id
    return Box(daemon, cid, bin_, script, workdir)


# -- the faults ---------------------------------------------------------------------------------


def plant_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("in the way\n")


@dataclass(frozen=True)
class Fault:
    step: str
    arrange: Callable[[Box], None]
    error: type[ChartdError]
    message: str  # {id}, {own}, {run}, {script}, {workdir} filled in
    exit_code: int
    by_name: bool = False


def squat(box: Box) -> None:
    box.daemon.pool.allocate("squatter")


def inject(method: str) -> Callable[[Box], None]:
    def arrange(box: Box) -> None:
        box.daemon.runtime.fail(method, container=box.id)

    return arrange


def make_dir(path: Callable[[Box], Path]) -> Callable[[Box], None]:
    def arrange(box: Box) -> None:
        target = path(box)
        if target.exists():
            target.unlink()
        target.mkdir(parents=True)

    return arrange


EXISTS = "FileExistsError: [Errno 17] File exists: '{}'"

FAULTS = {
    "rootfs is a file": Fault(
        "mount_rootfs",
        lambda box: plant_file(box.own / "rootfs"),
        System,
        EXISTS.format("{own}/rootfs"),
        128,
    ),
    "address pool exhausted": Fault(
        "network_sandbox",
        squat,
        Unavailable,
        f"failed to set up container networking: no available addresses on this pool: {CIDR}",
        128,
    ),
    "run dir is a file": Fault(
        "container_dirs", lambda box: plant_file(box.run), System, EXISTS.format("{run}"), 128
    ),
    "mounts is a file": Fault(
        "mounts",
        lambda box: plant_file(box.own / "mounts"),
        System,
        EXISTS.format("{own}/mounts"),
        128,
    ),
    "config.json is a directory": Fault(
        "spec",
        make_dir(lambda box: box.run / "config.json"),
        System,
        "cannot write the container spec: [Errno 21] Is a directory: '{run}/config.json'",
        128,
    ),
    "runtime records dir is a file": Fault(
        "runtime_container",
        lambda box: plant_file(box.run / "runtime"),
        System,
        "cannot record container {id}: [Errno 17] File exists: '{run}/runtime'",
        128,
    ),
    "runtime create fails": Fault(
        "runtime_container", inject("create"), System, "injected fault: create ({id})", 128
    ),
    "working dir missing": Fault(
        "task_create",
        lambda box: box.workdir.rmdir(),
        InvalidParameter,
        'chdir to cwd ("{workdir}") set in the container spec failed: no such file or directory',
        127,
    ),
    "task create fails": Fault(
        "task_create", inject("create_task"), System, "injected fault: create_task ({id})", 128
    ),
    "command not in PATH": Fault(
        "task_start",
        lambda box: box.script.unlink(),
        InvalidParameter,
        'exec: "entry": executable file not found in $PATH',
        127,
        by_name=True,
    ),
    "command path missing": Fault(
        "task_start",
        lambda box: box.script.unlink(),
        InvalidParameter,
        'exec: "{script}": stat {script}: no such file or directory',
        127,
    ),
    "command not executable": Fault(
        "task_start",
        lambda box: box.script.chmod(0o644),
        InvalidParameter,
        'exec: "{script}": permission denied',
        126,
    ),
    "command is a directory": Fault(
        "task_start",
        make_dir(lambda box: box.script),
        InvalidParameter,
        'exec: "{script}": is a directory',
        126,
    ),
    "task start fails": Fault(
        "task_start", inject("start_task"), System, "injected fault: start_task ({id})", 128
    ),
}


def test_every_step_of_the_saga_has_a_fault() -> None:
    assert {f.step for f in FAULTS.values()} == set(START) - {"reset_restart_manager"}


def clear_obstacles(box: Box) -> None:
    """Take away what a case put in chartd's way (it is the test's, not a leftover)."""
    for path in (box.own / "rootfs", box.own / "mounts", box.run):
        if path.is_file():
            path.unlink()
        elif path.is_dir():
            shutil.rmtree(path)
    box.daemon.pool.release("squatter")


@pytest.mark.parametrize("variant", ["first start", "restart after an exit"])
@pytest.mark.parametrize("case", list(FAULTS))
def test_a_fault_at_a_step_leaves_nothing_and_the_state_moby_leaves(
    open_daemon: Callable[..., Daemon], tmp_path: Path, case: str, variant: str
) -> None:
    fault = FAULTS[case]
    daemon = open_daemon(cidr=CIDR)
    svc = daemon.containers
    box = make_box(daemon, tmp_path, by_name=fault.by_name)
    if variant == "first start":
        operation, status = svc.start, "created"
    else:
        svc.start("box")
        daemon.settled(box.id, "exited")  # entry exits 0
        operation, status = svc.restart, "exited"
    before = svc.inspect("box")["State"]
    fault.arrange(box)
    since = daemon.engine.sequence()

    with pytest.raises(ChartdError) as failed:
        operation("box")

    message = fault.message.format(
        id=box.id, own=box.own, run=box.run, script=box.script, workdir=box.workdir
    )
    error = failed.value
    assert (error.category, error.message) == (fault.error.category, message)
    state = svc.inspect("box")["State"]
    assert {k: state[k] for k in ("Status", "Running", "Pid", "ExitCode", "Error")} == {
        "Status": status,
        "Running": False,
        "Pid": 0,
        "ExitCode": fault.exit_code,
        "Error": message,
    }
    assert (state["StartedAt"], state["FinishedAt"]) == (before["StartedAt"], before["FinishedAt"])
    assert daemon.events(since, box.id) == []  # no start, no die

    journal = daemon.engine.history(box.id)[-1]
    assert (journal.event, journal.status, journal.error_message) == (
        "start" if variant == "first start" else "restart",
        "failed",
        message,
    )
    steps = {s.name: s for s in journal.steps}
    failed_at = START.index(fault.step)
    assert steps[fault.step].status == "failed"
    completed = [s for s in START[:failed_at] if s != "reset_restart_manager"]
    assert [steps[s].status for s in completed] == ["compensated"] * len(completed)
    undone = sorted(completed, key=lambda s: steps[s].compensated_at or 0)
    assert undone == completed[::-1]  # newest first
    assert all(steps[s].status == "pending" for s in START[failed_at + 1 :])

    clear_obstacles(box)
    assert daemon.leftovers(box.id) == []
    assert daemon.process.tasks() == []
    created = steps["task_create"].payload
    if created:  # the task was made: its process is gone
        assert not alive(created["pid"])
    # What the fault broke mended, the same container starts.
    daemon.runtime.clear()
    restore_command(box)
    svc.start("box")
    daemon.settled(box.id, "exited")


def restore_command(box: Box) -> None:
    if box.script.is_dir():
        box.script.rmdir()
    box.script.write_text("#!/bin/sh\nexit 0\n")
    box.script.chmod(0o755)
    box.workdir.mkdir(exist_ok=True)


def test_a_start_that_fails_keeps_an_exit_code_that_is_not_zero(
    open_daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    """moby sets 128 only "if no one else has set it": a container that exited 5 keeps 5."""
    daemon = open_daemon(cidr=CIDR)
    box = make_box(daemon, tmp_path, by_name=False)
    box.script.write_text("#!/bin/sh\nexit 5\n")
    daemon.containers.start("box")
    daemon.settled(box.id, "exited")
    squat(box)

    with pytest.raises(Unavailable):
        daemon.containers.start("box")

    state = daemon.containers.inspect("box")["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 5)
    box.script.unlink()  # a command that cannot run sets its own code, though
    daemon.pool.release("squatter")
    with pytest.raises(InvalidParameter):
        daemon.containers.start("box")
    assert daemon.containers.inspect("box")["State"]["ExitCode"] == 127


# -- failing compensations ---------------------------------------------------------------------


def test_a_failing_compensation_is_journaled_and_a_later_one_still_cleans_up(
    open_daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    daemon = open_daemon(cidr=CIDR)
    box = make_box(daemon, tmp_path, by_name=False)
    box.script.unlink()
    # task_create's compensation (ForceDelete) fails; runtime_container's, which
    # deletes the task before the container, kills the process anyway.
    daemon.runtime.fail("delete_task", container=box.id)

    with pytest.raises(InvalidParameter) as failed:
        daemon.containers.start("box")

    cause = f'exec: "{box.script}": stat {box.script}: no such file or directory'
    injected = f"undo of step task_create: injected fault: delete_task ({box.id})"
    assert failed.value.message == cause  # the cause, never the compensation's error
    assert failed.value.compensation_errors == (injected,)  # type: ignore[attr-defined]
    journal = daemon.engine.history(box.id)[-1]
    assert (journal.status, journal.compensation_errors) == ("compensation_failed", (injected,))
    steps = {s.name: s for s in journal.steps}
    assert (steps["task_create"].status, steps["task_create"].compensation_error) == (
        "compensation_failed",
        injected,
    )
    assert steps["runtime_container"].status == "compensated"
    assert daemon.leftovers(box.id) == []
    assert not alive(steps["task_create"].payload["pid"])
    state = daemon.containers.inspect("box")["State"]
    assert (state["Status"], state["ExitCode"], state["Error"]) == ("created", 127, cause)


def test_a_runtime_record_left_by_a_failing_compensation_goes_with_rm(
    open_daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    daemon = open_daemon(cidr=CIDR)
    box = make_box(daemon, tmp_path, by_name=False)
    box.script.unlink()
    daemon.runtime.fail("delete", container=box.id)

    with pytest.raises(InvalidParameter):
        daemon.containers.start("box")

    assert daemon.engine.history(box.id)[-1].status == "compensation_failed"
    assert daemon.leftovers(box.id) == ["runtime container"]  # journaled, kept until rm
    daemon.containers.remove("box")
    assert daemon.leftovers(box.id) == []


# -- the outer failure handling ------------------------------------------------------------------


def test_auto_remove_removes_a_container_whose_start_failed(
    open_daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    daemon = open_daemon(cidr=CIDR)
    box = make_box(daemon, tmp_path, by_name=False, auto_remove=True)
    box.script.unlink()
    since = daemon.engine.sequence()

    with pytest.raises(InvalidParameter):
        daemon.containers.start("box")

    daemon.settled(box.id, "removed")
    with pytest.raises(NotFound, match=r"^No such container: box$"):
        daemon.containers.inspect("box")
    assert daemon.events(since, box.id) == ["destroy"]
    assert [(t.event, t.status) for t in daemon.engine.history(box.id)][-2:] == [
        ("start", "failed"),
        ("remove", "committed"),
    ]
    assert daemon.leftovers(box.id) == [] and not box.own.exists()


def test_a_restart_of_a_running_container_that_fails_to_start_leaves_it_exited(
    open_daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    daemon = open_daemon(cidr=CIDR)
    box = make_box(daemon, tmp_path, by_name=False)
    box.script.write_text("#!/bin/sh\nexec sleep 1000\n")
    pid = daemon.containers.start("box").data["pid"]
    box.script.chmod(0o644)
    assert daemon.entity(box.id).in_state("running.active")

    with pytest.raises(InvalidParameter, match="permission denied"):
        daemon.containers.restart("box", timeout=5)

    state = daemon.containers.inspect("box")["State"]
    assert (state["Status"], state["ExitCode"], state["Pid"]) == ("exited", 126, 0)
    assert not alive(pid)  # stopped by the restart's first steps
    assert [t.event for t in daemon.engine.history(box.id)] == ["start", "restart"]
    steps = {s.name: s.status for s in daemon.engine.history(box.id)[-1].steps}
    assert (steps["task_stop"], steps["task_start"]) == ("compensated", "failed")
    assert daemon.leftovers(box.id) == []
