"""Every operation in every state of the container chart, on real processes (issue 4).

Each case makes a fresh container in one state, for real: ``created``,
``running`` (a ``sleep``), ``paused`` (frozen), ``restarting`` (a process
that exited under ``--restart always``; the engine's clock is held so the
retry timer does not fall due while the test looks), ``exited`` (stopped:
143), ``dead`` (a removal that failed: its directory was made a symlink,
which ``rm`` refuses to delete, moby's "unable to remove filesystem") and
``removed``. Then it runs one operation and asserts what moby's daemon
answers: the error's category and exact message, or the state the
container settles in; the events emitted (with ``signal``, ``exitCode``
and ``oldName``); and the inspect fields. A refused operation changes
nothing: inspect is the same and no event is emitted.

``removing`` is transient: a second engine on the same database sees it
while the first runs a removal (``test_a_removal_in_progress_...``).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from container_daemon import WAIT, Daemon, Waiter, alive, eventually

import engine
from engine.errors import (
    ChartdError,
    Conflict,
    InvalidParameter,
    NotFound,
    NotModified,
    System,
    Unavailable,
)
from statecharts.container.bindings import container_dir
from statecharts.container.faults import FakeRuntime
from statecharts.container.service import Containers

STATES = ("created", "running", "paused", "restarting", "exited", "dead", "removed")
RUNNING = ("running", "paused", "restarting")  # moby's Running flag
_names = itertools.count(1)


@dataclass(frozen=True)
class Made:
    """A container a case made: its name (as typed, no slash) and ID."""

    name: str
    id: str
    pid: int = 0


class Lab:
    """Makes containers in each state on the module's daemon; removes them afterwards."""

    def __init__(self, daemon: Daemon, tmp_path: Path) -> None:
        self.daemon = daemon
        self.svc = daemon.containers
        self.tmp_path = tmp_path
        self.made: list[Made] = []

    def make(self, state: str) -> Made:
        svc, daemon = self.svc, self.daemon
        name = f"{state}-{next(_names)}"
        if state == "restarting":
            # Exits 3 the first time, then runs: a restart leaves it running.
            marker = self.tmp_path / f"{name}.ran"
            script = f'[ -e "{marker}" ] && exec sleep 1000; touch "{marker}"; exit 3'
            daemon.clock.hold()  # the retry timer will not fall due
            cid = svc.create(["sh", "-c", script], name=name, restart="always").id
            self.made.append(Made(name, cid))
            svc.start(name)
            daemon.settled(cid, "restarting")
            return self.made[-1]
        cid = svc.create(["sleep", "1000"], name=name).id
        self.made.append(Made(name, cid))
        if state in ("created", "removed"):
            if state == "removed":
                svc.remove(name)
            return self.made[-1]
        pid = svc.start(name).data["pid"]
        self.made[-1] = Made(name, cid, pid)
        if state == "paused":
            svc.pause(name)
        elif state in ("exited", "dead"):
            svc.stop(name)
        if state == "dead":
            break_filesystem(daemon, cid)
            with pytest.raises(System):
                svc.remove(name)
        return self.made[-1]

    def clean(self) -> None:
        """Force-remove what the case made; its processes, directories and leases are gone."""
        for made in self.made:
            mend_filesystem(self.daemon, made.id)
            with contextlib.suppress(NotFound):
                self.svc.remove(made.id, force=True)
        self.daemon.clock.release()
        self.daemon.runtime.clear()
        for made in self.made:
            assert self.daemon.process.task(made.id) is None
            assert self.daemon.leftovers(made.id) == []
            assert not container_dir(self.daemon.root, made.id).exists()
            assert not made.pid or not alive(made.pid)


def break_filesystem(daemon: Daemon, cid: str) -> None:
    """Make the container's directory a symlink: rm cannot delete it (a real failure)."""
    folder = container_dir(daemon.root, cid)
    moved = folder.with_name(cid + ".moved")
    folder.rename(moved)
    folder.symlink_to(moved)


def mend_filesystem(daemon: Daemon, cid: str) -> None:
    folder = container_dir(daemon.root, cid)
    moved = folder.with_name(cid + ".moved")
    if folder.is_symlink():
        folder.unlink()
        moved.rename(folder)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, process_runtime: None) -> Iterator[Daemon]:
    """One daemon for the module (each case makes its own containers)."""
    daemon = Daemon(tmp_path_factory.mktemp("daemon"))
    yield daemon
    try:
        assert daemon.process.tasks() == []
        assert daemon.pool.leases() == {}
    finally:
        daemon.close()


@pytest.fixture
def lab(shared: Daemon, tmp_path: Path) -> Iterator[Lab]:
    made = Lab(shared, tmp_path)
    try:
        yield made
    finally:
        made.clean()


# -- the expectations ---------------------------------------------------------------------


@dataclass(frozen=True)
class Refused:
    """The operation fails with ``error`` and ``message`` ({name}, {id} filled in)."""

    error: type[ChartdError]
    message: str


@dataclass(frozen=True)
class Done:
    """The operation succeeds; the container settles in ``status`` after ``events``."""

    status: str
    events: tuple[str, ...] = ()
    exit_code: int = 0
    error: str = ""


DEAD_ERROR = "unable to remove filesystem for {id}: Cannot call rmtree on a symbolic link"
NOT_RUNNING = Refused(Conflict, "container {id} is not running")
NOT_PAUSED = Refused(Conflict, "Container {id} is not paused")
# moby's API router names the container as typed (here its name without the slash).
KILL_NOT_RUNNING = Refused(Conflict, "cannot kill container: {name}: container {id} is not running")
ALREADY_STOPPED = Refused(NotModified, "container is already stopped")
ALREADY_RUNNING = Refused(NotModified, "container is already running")
# moby checks the signal before it looks at the container: the same in every state.
BAD_SIGNAL = Refused(InvalidParameter, "cannot kill container: {name}: invalid signal: SIGNOPE")
RENAMED = ("rename:/{name}",)


def stopped(**kills: Refused) -> dict[str, Refused]:
    """The refusals shared by the states without a process (created, exited, dead)."""
    return {
        "stop": ALREADY_STOPPED,
        "kill": KILL_NOT_RUNNING,
        "kill SIGTERM": KILL_NOT_RUNNING,
        "kill WINCH": KILL_NOT_RUNNING,
        "kill bad": BAD_SIGNAL,
        "pause": NOT_RUNNING,
        "unpause": NOT_PAUSED,
        **kills,
    }


OPERATIONS: dict[str, Callable[[Containers, str], Any]] = {
    "start": lambda svc, ref: svc.start(ref),
    "stop": lambda svc, ref: svc.stop(ref),
    "kill": lambda svc, ref: svc.kill(ref),
    "kill SIGTERM": lambda svc, ref: svc.kill(ref, signal="SIGTERM"),
    "kill WINCH": lambda svc, ref: svc.kill(ref, signal="WINCH"),
    "kill bad": lambda svc, ref: svc.kill(ref, signal="SIGNOPE"),
    "pause": lambda svc, ref: svc.pause(ref),
    "unpause": lambda svc, ref: svc.unpause(ref),
    "restart": lambda svc, ref: svc.restart(ref),
    "rm": lambda svc, ref: svc.remove(ref),
    "rm -f": lambda svc, ref: svc.remove(ref, force=True),
    "rename": lambda svc, ref: svc.rename(ref, ref + "-new"),
}

EXPECTED: dict[str, dict[str, Refused | Done]] = {
    "created": {
        **stopped(),
        "start": Done("running", ("start",)),
        "restart": Done("running", ("start", "restart")),
        "rm": Done("removed", ("destroy",)),
        "rm -f": Done("removed", ("destroy",)),
        "rename": Done("created", RENAMED),
    },
    "running": {
        "start": ALREADY_RUNNING,
        "stop": Done("exited", ("kill:15", "die:143", "stop"), 143),
        "kill": Done("exited", ("kill:9", "die:137"), 137),
        "kill SIGTERM": Done("exited", ("kill:15", "die:143"), 143),
        "kill WINCH": Done("running", ("kill:28",)),  # harmless: the process runs on
        "kill bad": BAD_SIGNAL,
        "pause": Done("paused", ("pause",)),
        "unpause": NOT_PAUSED,
        "restart": Done("running", ("kill:15", "die:143", "stop", "start", "restart")),
        "rm": Refused(
            Conflict,
            'cannot remove container "{name}": container is running: stop the container'
            " before removing or force remove",
        ),
        "rm -f": Done("removed", ("kill:9", "die:137", "destroy"), 137),
        "rename": Done("running", RENAMED),
    },
    "paused": {
        "start": Refused(Conflict, "cannot start a paused container, try unpause instead"),
        # An ending signal thaws the container after it is sent (moby's killWithSignal).
        "stop": Done("exited", ("kill:15", "unpause", "die:143", "stop"), 143),
        "kill": Done("exited", ("kill:9", "unpause", "die:137"), 137),
        "kill SIGTERM": Done("exited", ("kill:15", "unpause", "die:143"), 143),
        # With no stop signal configured every signal counts as ending: thawed, it runs on.
        "kill WINCH": Done("running", ("kill:28", "unpause")),
        "kill bad": BAD_SIGNAL,
        "pause": Refused(Conflict, "Container {id} is already paused"),
        "unpause": Done("running", ("unpause",)),
        "restart": Done("running", ("kill:15", "unpause", "die:143", "stop", "start", "restart")),
        "rm": Refused(
            Conflict,
            'cannot remove container "{name}": container is paused and must be unpaused first',
        ),
        "rm -f": Done("removed", ("kill:9", "die:137", "destroy"), 137),
        "rename": Done("paused", RENAMED),
    },
    "restarting": {
        "start": ALREADY_RUNNING,
        "stop": Done("exited", ("stop",), 3),
        # No process to signal: an ending signal cancels the restart, no event (kill.go).
        "kill": Done("exited", (), 3),
        "kill SIGTERM": Done("exited", (), 3),
        "kill WINCH": Done("exited", (), 3),  # no stop signal configured: every signal ends
        "kill bad": BAD_SIGNAL,
        "pause": Refused(
            Conflict, "Container {id} is restarting, wait until the container is running"
        ),
        "unpause": NOT_PAUSED,
        "restart": Done("running", ("stop", "start", "restart")),
        "rm": Refused(
            Conflict,
            'cannot remove container "{name}": container is restarting: stop the container'
            " before removing or force remove",
        ),
        "rm -f": Done("removed", ("destroy",), 3),
        "rename": Done("restarting", RENAMED, 3),
    },
    "exited": {
        **stopped(),
        "start": Done("running", ("start",)),
        "restart": Done("running", ("start", "restart")),
        "rm": Done("removed", ("destroy",), 143),
        "rm -f": Done("removed", ("destroy",), 143),
        "rename": Done("exited", RENAMED, 143),
    },
    "dead": {
        **stopped(),
        "start": Refused(Conflict, "container is marked for removal and cannot be started"),
        "restart": Refused(
            Conflict,
            "Cannot restart container {name}: container is marked for removal and cannot be"
            " started",
        ),
        # The cause is still there: the container stays dead (delete.go's SetRemovalError).
        "rm": Refused(System, 'cannot remove container "{name}": ' + DEAD_ERROR),
        "rm -f": Refused(System, 'cannot remove container "{name}": ' + DEAD_ERROR),
        "rename": Done("dead", RENAMED, 143, DEAD_ERROR),
    },
    "removed": {
        op: Refused(NotFound, "No such container: {name}")
        for op in OPERATIONS
        if not op.startswith("kill")
    }
    # moby's router wraps every kill error; the signal is checked before the look-up.
    | {
        op: Refused(NotFound, "cannot kill container: {name}: No such container: {name}")
        for op in ("kill", "kill SIGTERM", "kill WINCH")
    }
    | {"kill bad": BAD_SIGNAL},
}


def test_the_table_covers_every_operation_in_every_state() -> None:
    assert set(EXPECTED) == set(STATES)
    for state in STATES:
        assert set(EXPECTED[state]) == set(OPERATIONS), state


# -- every operation in every state ---------------------------------------------------------


def check_inspect(
    daemon: Daemon, made: Made, ref: str, status: str, exit_code: int, error: str, restarts: int
) -> None:
    """The inspect fields moby shows for a container in ``status``; the process agrees."""
    svc = daemon.containers
    if status == "removed":
        with pytest.raises(NotFound, match=f"^No such container: {ref}$"):
            svc.inspect(ref)
        assert daemon.leftovers(made.id) == []
        assert not container_dir(daemon.root, made.id).exists()
        return
    found = svc.inspect(ref)
    state = found["State"]
    assert {k: state[k] for k in ("Status", "Running", "Paused", "Restarting", "Dead")} == {
        "Status": status,
        "Running": status in RUNNING,
        "Paused": status == "paused",
        "Restarting": status == "restarting",
        "Dead": status == "dead",
    }
    assert (state["ExitCode"], state["Error"], found["RestartCount"]) == (
        exit_code,
        error,
        restarts,
    )
    task = daemon.process.task(made.id)
    if status in ("running", "paused"):
        assert task is not None and task.status == status
        assert state["Pid"] == task.pid and alive(task.pid)
        assert found["NetworkSettings"]["IPAddress"] == daemon.pool.lookup(made.id)
    else:
        assert (state["Pid"], task, daemon.leftovers(made.id)) == (0, None, [])


CASES = [(state, op) for state in STATES for op in OPERATIONS]


@pytest.mark.parametrize(("state", "op"), CASES, ids=[f"{s}-{o}" for s, o in CASES])
def test_operation_in_state(lab: Lab, state: str, op: str) -> None:
    daemon, svc = lab.daemon, lab.svc
    made = lab.make(state)
    expected = EXPECTED[state][op]
    before = None if state == "removed" else svc.inspect(made.name)
    since = daemon.engine.sequence()

    def fill(text: str) -> str:
        return text.format(name=made.name, id=made.id)

    if isinstance(expected, Refused):
        with pytest.raises(ChartdError) as refused:
            OPERATIONS[op](svc, made.name)
        error = refused.value
        assert (error.category, error.message) == (expected.error.category, fill(expected.message))
        if before is not None:
            assert svc.inspect(made.name) == before  # nothing changed
        assert daemon.events(since, made.id) == []
        return

    OPERATIONS[op](svc, made.name)
    daemon.settled(made.id, expected.status)
    assert daemon.events(since, made.id) == [fill(e) for e in expected.events]
    ref = made.name + "-new" if op == "rename" else made.name
    restarts = 1 if state == "restarting" and expected.status != "running" else 0
    check_inspect(
        daemon, made, ref, expected.status, expected.exit_code, fill(expected.error), restarts
    )
    if made.pid and (op in ("restart", "rm -f") or expected.status in ("exited", "removed")):
        assert not alive(made.pid)  # the old process is gone, its whole group with it
    if op == "rename":
        with pytest.raises(NotFound, match=f"^No such container: {made.name}$"):
            svc.inspect(made.name)
        assert svc.inspect(ref)["Name"] == f"/{ref}"


# -- wait ------------------------------------------------------------------------------------


def start_and_kill(lab: Lab, made: Made) -> None:
    lab.svc.start(made.name)
    lab.svc.kill(made.name)


def force_remove(lab: Lab, made: Made) -> None:
    mend_filesystem(lab.daemon, made.id)  # a dead one can be removed once the cause is gone
    lab.svc.remove(made.name, force=True)


# (state, condition) -> what ends the wait (None: it returns at once), and what it returns.
WAITS: dict[tuple[str, str], tuple[Callable[[Lab, Made], None] | None, tuple[int, str]]] = {
    ("created", "not-running"): (None, (0, "")),
    ("running", "not-running"): (lambda lab, made: lab.svc.stop(made.name), (143, "")),
    ("paused", "not-running"): (lambda lab, made: lab.svc.stop(made.name), (143, "")),
    ("restarting", "not-running"): (lambda lab, made: lab.svc.stop(made.name), (3, "")),
    ("exited", "not-running"): (None, (143, "")),
    ("dead", "not-running"): (None, (143, DEAD_ERROR)),
    ("created", "next-exit"): (start_and_kill, (137, "")),
    ("running", "next-exit"): (lambda lab, made: lab.svc.kill(made.name), (137, "")),
    ("paused", "next-exit"): (lambda lab, made: lab.svc.kill(made.name), (137, "")),
    ("restarting", "next-exit"): (lambda lab, made: lab.svc.stop(made.name), (3, "")),
    ("exited", "next-exit"): (start_and_kill, (137, "")),
    ("created", "removed"): (force_remove, (0, "")),
    ("running", "removed"): (force_remove, (137, "")),
    ("paused", "removed"): (force_remove, (137, "")),
    ("restarting", "removed"): (force_remove, (3, "")),
    ("exited", "removed"): (force_remove, (143, "")),
    ("dead", "removed"): (force_remove, (143, DEAD_ERROR)),
}


@pytest.mark.parametrize(("state", "condition"), list(WAITS), ids=[f"{s}-{c}" for s, c in WAITS])
def test_wait(lab: Lab, monkeypatch: pytest.MonkeyPatch, state: str, condition: str) -> None:
    made = lab.make(state)
    end, expected = WAITS[state, condition]
    if end is None:
        result = lab.svc.wait(made.name, condition, timeout=WAIT)
    else:
        waiter = Waiter(lab.daemon, monkeypatch, made.name, condition)
        end(lab, made)
        result = waiter.join()
    assert result == (expected[0], expected[1].format(id=made.id))


def test_wait_for_the_next_exit_of_a_dead_container_times_out(lab: Lab) -> None:
    made = lab.make("dead")
    with pytest.raises(Unavailable, match=f"^timed out waiting for container {made.id[:12]}$"):
        lab.svc.wait(made.name, "next-exit", timeout=0.2)


@pytest.mark.parametrize("state", STATES)
def test_wait_refuses_a_bad_condition_in_every_state(lab: Lab, state: str) -> None:
    made = lab.make(state)
    with pytest.raises(InvalidParameter, match=r'^invalid condition: "bogus"$'):
        lab.svc.wait(made.name, "bogus")


@pytest.mark.parametrize("condition", ["not-running", "next-exit", "removed"])
def test_wait_on_a_removed_container_is_not_found(lab: Lab, condition: str) -> None:
    made = lab.make("removed")
    with pytest.raises(NotFound, match=f"^No such container: {made.name}$"):
        lab.svc.wait(made.name, condition)


# -- create --------------------------------------------------------------------------------

NAME_CHARS = "only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"


@pytest.mark.parametrize(
    ("kw", "error", "message"),
    [
        ({"cmd": []}, InvalidParameter, "No command specified"),
        (
            {"name": "bad name"},
            InvalidParameter,
            f"Invalid container name (bad name), {NAME_CHARS}",
        ),
        ({"name": "x"}, InvalidParameter, f"Invalid container name (x), {NAME_CHARS}"),
        (
            {"restart": "sometimes"},
            InvalidParameter,
            "invalid restart policy: unknown policy 'sometimes'; use one of 'no', 'always',"
            " 'on-failure', or 'unless-stopped'",
        ),
        (
            {"restart": "always:3"},
            InvalidParameter,
            "invalid restart policy: maximum retry count can only be used with 'on-failure'",
        ),
        (
            {"restart": "on-failure:-1"},
            InvalidParameter,
            "invalid restart policy: maximum retry count cannot be negative",
        ),
        (
            {"restart": "on-failure:x"},
            InvalidParameter,
            "invalid restart policy format: maximum retry count must be an integer",
        ),
        (
            {"restart": ":3"},
            InvalidParameter,
            "invalid restart policy format: no policy provided before colon",
        ),
        (
            {"restart": "always", "auto_remove": True},
            InvalidParameter,
            "can't create 'AutoRemove' container with restart policy",
        ),
        ({"stop_signal": "SIGNOPE"}, InvalidParameter, "invalid signal: SIGNOPE"),
        (
            {"working_dir": "srv"},
            InvalidParameter,
            "the working directory 'srv' is invalid, it needs to be an absolute path",
        ),
    ],
    ids=lambda value: str(value)[:40] if isinstance(value, dict) else None,
)
def test_create_refuses_bad_settings_and_creates_nothing(
    lab: Lab, kw: dict[str, Any], error: type[ChartdError], message: str
) -> None:
    since = lab.daemon.engine.sequence()
    arguments = {"cmd": ["sleep", "1000"], **kw}
    with pytest.raises(error) as refused:
        lab.svc.create(arguments.pop("cmd"), **arguments)
    assert refused.value.message == message
    assert list(lab.daemon.engine.watch(since, timeout=0.05)) == []


def test_create_emits_create_and_keeps_names_unique_among_live_containers(lab: Lab) -> None:
    svc, daemon = lab.svc, lab.daemon
    since = daemon.engine.sequence()
    first = svc.create(["sleep", "1000"], name="/unique-web")
    lab.made.append(Made("unique-web", first.id))
    assert [(e.type, e.entity_id) for e in daemon.engine.watch(since, timeout=0.05)] == [
        ("create", first.id)
    ]
    assert svc.inspect("unique-web")["Name"] == "/unique-web"
    assert svc.inspect("unique-web")["State"]["Status"] == "created"
    assert svc.inspect(first.id[:12])["Id"] == first.id  # an ID prefix finds it too

    with pytest.raises(Conflict) as taken:
        svc.create(["sleep", "1000"], name="unique-web")
    assert taken.value.message == (
        f'Conflict. The container name "/unique-web" is already in use by container "{first.id}".'
        " You have to remove (or rename) that container to be able to reuse that name."
    )
    svc.remove("unique-web")
    second = svc.create(["sleep", "1000"], name="unique-web")  # the name is free again
    lab.made.append(Made("unique-web", second.id))
    assert second.id != first.id
    generated = svc.create(["sleep", "1000"])
    lab.made.append(Made(generated.data["name"].lstrip("/"), generated.id))
    assert generated.data["name"].startswith("/")


# -- rename ----------------------------------------------------------------------------------


def test_rename_refusals(lab: Lab) -> None:
    made, other = lab.make("created"), lab.make("running")
    svc = lab.svc
    cases: list[tuple[str, type[ChartdError], str]] = [
        ("", InvalidParameter, "Neither old nor new names may be empty"),
        (
            made.name,
            InvalidParameter,
            "Renaming a container with the same name as its current name",
        ),
        (
            "bad name",
            InvalidParameter,
            f"Error when allocating new name: Invalid container name (/bad name), {NAME_CHARS}",
        ),
        (
            other.name,
            Conflict,
            f'Error when allocating new name: Conflict. The container name "/{other.name}" is'
            f' already in use by container "{other.id}". You have to remove (or rename) that'
            " container to be able to reuse that name.",
        ),
    ]
    since = lab.daemon.engine.sequence()
    for new_name, error, message in cases:
        with pytest.raises(error) as refused:
            svc.rename(made.name, new_name)
        assert refused.value.message == message
    assert lab.daemon.events(since, made.id) == []
    assert svc.inspect(made.name)["Name"] == f"/{made.name}"


# -- removing: another engine sees the removal in progress ---------------------------------------


def test_a_removal_in_progress_is_seen_by_another_engine_as_removing(
    lab: Lab, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    daemon = lab.daemon
    made = lab.make("exited")
    inside, go_on = threading.Event(), threading.Event()
    delete = daemon.runtime.delete

    def held_delete(container_id: str) -> None:  # the removal's last runtime call
        if container_id == made.id:
            inside.set()
            go_on.wait(WAIT)
        delete(container_id)

    monkeypatch.setattr(daemon.runtime, "delete", held_delete)
    removal = threading.Thread(target=lab.svc.remove, args=(made.name,), daemon=True)
    removal.start()
    try:
        assert inside.wait(WAIT)
        with engine.Engine.open(daemon.url, timers=False) as other:
            replica = Containers(other, FakeRuntime(), tmp_path / "replica")
            assert replica.inspect(made.name)["State"]["Status"] == "removing"
            refusals = {
                "start": (Conflict, "container is marked for removal and cannot be started"),
                "restart": (
                    Conflict,
                    f"Cannot restart container {made.name}: container is marked for removal"
                    " and cannot be started",
                ),
                "stop": (NotModified, "container is already stopped"),
                "kill": (
                    Conflict,
                    f"cannot kill container: {made.name}: container {made.id} is not running",
                ),
                "pause": (Conflict, f"container {made.id} is not running"),
                "unpause": (Conflict, f"Container {made.id} is not paused"),
                "rm": (Conflict, f"removal of container {made.name} is already in progress"),
                "rm -f": (Conflict, f"removal of container {made.name} is already in progress"),
                # chartd: the engine's default refusal (docs/container-chart.md, difference 10)
                "rename": (Conflict, "event 'rename' is not allowed in state 'removing'"),
            }
            for op, (error, message) in refusals.items():
                with pytest.raises(error) as refused:
                    OPERATIONS[op](replica, made.name)
                assert refused.value.message == message, op
    finally:
        go_on.set()
        removal.join(WAIT)
    daemon.settled(made.id, "removed")
    assert not removal.is_alive()


# -- the file system left by a start ----------------------------------------------------------


def test_a_running_container_has_its_directories_address_and_log(lab: Lab) -> None:
    daemon, svc = lab.daemon, lab.svc
    cid = svc.create(["sh", "-c", "echo hello; echo oops >&2; exec sleep 1000"], name="logged").id
    lab.made.append(Made("logged", cid))
    svc.start("logged")
    own = container_dir(daemon.root, cid)
    assert (own / "rootfs").is_dir() and (own / "mounts" / "hosts").is_file()
    assert (daemon.root / "run" / cid / "config.json").is_file()
    address = svc.inspect("logged")["NetworkSettings"]["IPAddress"]
    assert address == daemon.pool.lookup(cid) and address.startswith("10.88.0.")
    log = svc.logs("logged")
    assert log == Path(svc.inspect("logged")["LogPath"])
    eventually(lambda: log.exists() and len(log.read_text().splitlines()) == 2, "both lines")
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert sorted((e["stream"], e["log"]) for e in entries) == [
        ("stderr", "oops\n"),
        ("stdout", "hello\n"),
    ]

    svc.stop("logged")
    assert daemon.leftovers(cid) == []  # exit's cleanup: rootfs, mounts, run dir, lease
    assert log.exists()  # kept until rm, as moby keeps the container's directory
    svc.remove("logged")
    assert not own.exists() and not os.path.lexists(daemon.root / "run" / cid)
