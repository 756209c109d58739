"""ProcessRuntime on real processes: blocked-before-exec, exit codes, groups, freezing, restore.

Every wait is bounded (``WAIT`` seconds) and nothing asserts on timing.
Each test's runtime is torn down by a finalizer that SIGKILLs and reaps every
task it still has, and every stray pid a test records is killed too.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import types
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.errors import Conflict, InvalidParameter, NotFound, NotImplemented, Unavailable
from statecharts.container.process import ProcessRuntime
from statecharts.container.runtime import (
    DEFAULT_PATH,
    EXIT_UNKNOWN,
    ContainerSpec,
    ExecFailed,
    ExitEvent,
    Runtime,
)

pytestmark = [
    pytest.mark.skipif(sys.platform != "linux", reason="Linux processes and /proc"),
    pytest.mark.usefixtures("process_runtime"),  # pidfds: skipped without, failed under CI
]

WAIT = 10.0


# -- helpers ---------------------------------------------------------------------------


def alive(pid: int) -> bool:
    """Running (or stopped), not a zombie: a zombie has ended, even if nobody reaped it."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return raw[raw.rindex(b")") + 2 :].split()[0] not in (b"Z", b"X")


def eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {WAIT}s: {what}")
        time.sleep(0.01)


def read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip() or "x")
    except (OSError, ValueError):
        return None


def kept(runtime: ProcessRuntime, key: str) -> list[str]:
    """Where ``runtime`` still holds ``key``: the types of the collections that contain it.

    Looks at every object reachable from the runtime (not through modules,
    classes or functions, which hold no per-container state) for a dict with
    ``key`` as a key, or a set, list or tuple with it as a member.
    """
    shared = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType)
    seen: set[int] = set()
    todo: list[object] = [runtime]
    found: list[str] = []
    while todo:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, shared):
            continue
        seen.add(id(obj))
        if isinstance(obj, (dict, set, frozenset, list, tuple)) and key in obj:
            found.append(type(obj).__name__)
        todo.extend(gc.get_referents(obj))
    return found


class Strays:
    """Pids a test leaves outside any runtime; all SIGKILLed at teardown."""

    def __init__(self) -> None:
        self.pids: list[int] = []

    def add(self, pid: int) -> int:
        self.pids.append(pid)
        return pid

    def kill(self) -> None:
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def teardown(runtime: ProcessRuntime) -> None:
    try:
        if not runtime._closed:
            for info in runtime.tasks():
                runtime.delete_task(info.container_id)
    finally:
        runtime.close()


@pytest.fixture
def strays() -> Iterator[Strays]:
    found = Strays()
    yield found
    found.kill()


def cgroup_freezer_possible() -> bool:
    """Whether this kernel has the cgroup v2 freezer (cgroup2, ``cgroup.freeze``: Linux 5.2)."""
    try:
        filesystems = Path("/proc/filesystems").read_text().split()
        major, minor = (int(n) for n in os.uname().release.split(".")[:2])
    except (OSError, ValueError):
        return False
    return "cgroup2" in filesystems and (major, minor) >= (5, 2)


@pytest.fixture
def open_runtime(tmp_path: Path, prerequisites: Any) -> Iterator[Callable[..., ProcessRuntime]]:
    """Opens ProcessRuntimes on ``tmp_path/state`` (one at a time); all torn down at the end."""
    opened: list[ProcessRuntime] = []

    def open_(freezer: str = "auto") -> ProcessRuntime:
        try:
            runtime = ProcessRuntime(tmp_path / "state", freezer=freezer)  # type: ignore[arg-type]
        except NotImplemented as exc:
            if freezer == "cgroup" and not cgroup_freezer_possible():
                pytest.skip(f"{exc}: this kernel has no cgroup v2 freezer")  # even under CI
            prerequisites.missing(
                f"{exc} (a cgroup2 mount, writable at this process's own cgroup)"
                if freezer == "cgroup"
                else str(exc)
            )
        opened.append(runtime)
        return runtime

    yield open_
    for runtime in reversed(opened):
        teardown(runtime)


@pytest.fixture
def runtime(open_runtime: Callable[..., ProcessRuntime]) -> ProcessRuntime:
    return open_runtime()


@pytest.fixture(params=["signal", "cgroup"])
def freezer(request: pytest.FixtureRequest) -> str:
    """Each way of freezing (cgroup: see open_runtime when there is no writable cgroup v2)."""
    value: str = request.param
    return value


def spec(tmp_path: Path, cid: str, cmd: list[str], **kw: object) -> ContainerSpec:
    return ContainerSpec(
        id=cid,
        name=f"/{cid}",
        cmd=cmd,
        log_path=tmp_path / "containers" / cid / f"{cid}-json.log",
        root=tmp_path / "containers" / cid,
        **kw,  # type: ignore[arg-type]
    )


def run(runtime: Runtime, tmp_path: Path, cid: str, cmd: list[str], **kw: object) -> int:
    """Create and start a container; its pid."""
    runtime.create(spec(tmp_path, cid, cmd, **kw))
    runtime.create_task(cid)
    return runtime.start_task(cid).pid


def sh(script: str) -> list[str]:
    return ["sh", "-c", script]


# -- blocked before exec ---------------------------------------------------------------


def test_a_created_task_has_not_run_its_command_until_it_is_started(
    runtime: ProcessRuntime, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    runtime.create(spec(tmp_path, "c1", ["touch", str(marker)]))

    created = runtime.create_task("c1")

    assert created.status == "created"
    assert created.started_at is None
    assert alive(created.pid)
    # Its own session and process group, so signals to the group reach it all.
    assert os.getsid(created.pid) == created.pid
    assert os.getpgid(created.pid) == created.pid
    assert not marker.exists()

    started = runtime.start_task("c1")
    exit_ = runtime.wait("c1", WAIT)

    assert started.status in ("running", "stopped")
    assert started.pid == created.pid
    assert exit_ == ExitEvent("c1", created.pid, 0, exit_.exited_at if exit_ else 0.0, None)
    assert marker.exists()
    assert runtime.task("c1").status == "stopped"  # type: ignore[union-attr]


def test_the_pid_recorded_at_create_is_the_pid_of_the_command(
    runtime: ProcessRuntime, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pid"
    runtime.create(spec(tmp_path, "c1", sh(f"echo $$ > {pidfile}; exec sleep 1000")))
    pid = runtime.create_task("c1").pid
    runtime.start_task("c1")

    eventually(lambda: read_int(pidfile) is not None, "the command wrote its pid")
    assert read_int(pidfile) == pid
    eventually(
        lambda: Path(f"/proc/{pid}/cmdline").read_bytes() == b"sleep\0" + b"1000\0",
        "the pid runs the command",
    )


def test_a_task_still_created_can_be_killed_and_its_command_never_runs(
    runtime: ProcessRuntime, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    runtime.create(spec(tmp_path, "c1", ["touch", str(marker)]))
    runtime.create_task("c1")

    runtime.kill("c1", signal.SIGKILL)

    exit_ = runtime.wait("c1", WAIT)
    assert exit_ is not None and (exit_.exit_code, exit_.signal) == (137, 9)
    with pytest.raises(Conflict, match="cannot start task c1: it has exited"):
        runtime.start_task("c1")
    assert not marker.exists()


# -- exit codes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cmd", "code", "sig"),
    [
        (["true"], 0, None),
        (sh("exit 3"), 3, None),
        (sh("exit 255"), 255, None),
        (sh("kill -KILL $$"), 137, 9),
        (sh("kill -TERM $$"), 143, 15),
    ],
    ids=["zero", "three", "255", "self-SIGKILL", "self-SIGTERM"],
)
def test_exit_codes_come_from_the_kernel(
    runtime: ProcessRuntime, tmp_path: Path, cmd: list[str], code: int, sig: int | None
) -> None:
    pid = run(runtime, tmp_path, "c1", cmd)

    exit_ = runtime.wait("c1", WAIT)

    assert exit_ is not None
    assert (exit_.pid, exit_.exit_code, exit_.signal) == (pid, code, sig)
    info = runtime.task("c1")
    assert info is not None and (info.status, info.exit_code) == ("stopped", code)
    assert info.exited_at == exit_.exited_at


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGKILL, 137), (signal.SIGTERM, 143)])
def test_killed_tasks_exit_with_128_plus_the_signal(
    runtime: ProcessRuntime, tmp_path: Path, sig: int, code: int
) -> None:
    run(runtime, tmp_path, "c1", ["sleep", "1000"])

    runtime.kill("c1", sig)

    exit_ = runtime.wait("c1", WAIT)
    assert exit_ is not None and (exit_.exit_code, exit_.signal) == (code, sig)


def test_a_missing_command_fails_the_start_with_127(
    runtime: ProcessRuntime, tmp_path: Path
) -> None:
    runtime.create(spec(tmp_path, "c1", ["no-such-command-chartd"]))
    runtime.create_task("c1")

    with pytest.raises(ExecFailed) as failed:
        runtime.start_task("c1")

    assert str(failed.value) == 'exec: "no-such-command-chartd": executable file not found in $PATH'
    assert isinstance(failed.value, InvalidParameter)
    assert failed.value.exit_code == 127
    info = runtime.task("c1")
    assert info is not None and (info.status, info.exit_code, info.started_at) == (
        "stopped",
        127,
        None,
    )
    exit_ = runtime.delete_task("c1")
    assert exit_ is not None and exit_.exit_code == 127


def test_a_missing_absolute_path_fails_with_127(runtime: ProcessRuntime, tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    runtime.create(spec(tmp_path, "c1", [str(missing)]))
    runtime.create_task("c1")

    with pytest.raises(ExecFailed, match="no such file or directory") as failed:
        runtime.start_task("c1")

    assert failed.value.exit_code == 127
    assert runtime.wait("c1", WAIT).exit_code == 127  # type: ignore[union-attr]


@pytest.mark.parametrize("kind", ["not-executable", "directory"])
def test_a_command_that_cannot_be_executed_fails_with_126(
    runtime: ProcessRuntime, tmp_path: Path, kind: str
) -> None:
    target = tmp_path / "target"
    if kind == "directory":
        target.mkdir()
        reason = "is a directory"
    else:
        target.write_text("#!/bin/sh\necho never\n")
        target.chmod(0o644)
        reason = "permission denied"
    runtime.create(spec(tmp_path, "c1", [str(target)]))
    runtime.create_task("c1")

    with pytest.raises(ExecFailed) as failed:
        runtime.start_task("c1")

    assert str(failed.value) == f'exec: "{target}": {reason}'
    assert failed.value.exit_code == 126
    assert runtime.wait("c1", WAIT).exit_code == 126  # type: ignore[union-attr]


def test_a_missing_working_dir_fails_the_task_create_and_leaves_nothing(
    runtime: ProcessRuntime, tmp_path: Path
) -> None:
    events: list[ExitEvent] = []
    runtime.subscribe(events.append)
    runtime.create(spec(tmp_path, "c1", ["true"], working_dir=str(tmp_path / "nowhere")))

    with pytest.raises(ExecFailed, match=r'chdir to cwd \(".*nowhere"\)') as failed:
        runtime.create_task("c1")

    assert failed.value.exit_code == 127
    assert runtime.task("c1") is None
    assert runtime.tasks() == []
    assert runtime.delete_task("c1") is None
    assert not (tmp_path / "containers" / "c1" / "runtime" / "task.json").exists()
    assert events == []


# -- the process group -----------------------------------------------------------------


def test_nothing_of_the_group_is_left_when_the_main_process_exits(
    open_runtime: Callable[..., ProcessRuntime], tmp_path: Path, strays: Strays, freezer: str
) -> None:
    runtime = open_runtime(freezer)
    pidfile = tmp_path / "child"
    run(runtime, tmp_path, "c1", sh(f"sleep 1000 & echo $! > {pidfile}; exit 3"))

    exit_ = runtime.wait("c1", WAIT)

    assert exit_ is not None and exit_.exit_code == 3
    child = read_int(pidfile)
    assert child is not None
    strays.add(child)
    eventually(lambda: not alive(child), "the background child was killed")


def test_under_the_cgroup_freezer_even_a_process_that_left_the_group_is_killed(
    open_runtime: Callable[..., ProcessRuntime], tmp_path: Path, strays: Strays
) -> None:
    runtime = open_runtime("cgroup")
    pidfile = tmp_path / "child"
    run(runtime, tmp_path, "c1", sh(f"setsid sleep 1000 & echo $! > {pidfile}; wait"))
    eventually(lambda: read_int(pidfile) is not None, "the child started")
    child = strays.add(read_int(pidfile) or 0)
    eventually(lambda: alive(child) and os.getsid(child) == child, "the child has its own session")

    exit_ = runtime.delete_task("c1")

    assert exit_ is not None and exit_.exit_code == 137
    eventually(lambda: not alive(child), "the child in another session was killed")


def test_a_prepared_task_is_made_in_its_cgroup_and_the_warm_up_leaves_nothing_at_close(
    open_runtime: Callable[..., ProcessRuntime], tmp_path: Path
) -> None:
    # prepare_task warms the cgroup migration ahead, with a process and a cgroup of its own
    # beside the tasks' (not among them, where every cgroup is a task's).
    runtime = open_runtime("cgroup")
    parent = runtime._cgroup_parent
    assert parent is not None
    warm = parent.with_name(f"{parent.name}-warm")
    runtime.prepare_task("c1")
    eventually(lambda: bool(read_int(warm / "cgroup.procs")), "the warm-up process is in place")
    warmer = read_int(warm / "cgroup.procs")
    assert warmer is not None
    runtime.prepare_task("c1")  # again: the same process, moved where it is

    pid = run(runtime, tmp_path, "c1", ["sleep", "1000"])

    assert (parent / "c1" / "cgroup.procs").read_text().split() == [str(pid)]
    assert [p.name for p in parent.iterdir() if p.is_dir()] == ["c1"]
    assert read_int(warm / "cgroup.procs") == warmer
    runtime.delete_task("c1")
    runtime.close()
    assert not warm.exists() and not alive(warmer)


def test_kill_signals_the_whole_group(runtime: ProcessRuntime, tmp_path: Path) -> None:
    # The shell only runs its trap once its foreground sleep is gone: the group
    # signal ends the sleep too (SIGUSR1 is fatal to it).
    ready = tmp_path / "ready"
    script = f'trap "echo got-usr1; exit 7" USR1; touch {ready}; while :; do sleep 1000; done'
    run(runtime, tmp_path, "c1", sh(script))
    eventually(ready.exists, "the trap is set")

    runtime.kill("c1", signal.SIGUSR1)

    exit_ = runtime.wait("c1", WAIT)
    assert exit_ is not None and (exit_.exit_code, exit_.signal) == (7, None)
    assert "got-usr1" in (tmp_path / "containers" / "c1" / "c1-json.log").read_text()


def test_kill_refuses_a_task_that_is_not_running_and_a_bad_signal(
    runtime: ProcessRuntime, tmp_path: Path
) -> None:
    runtime.create(spec(tmp_path, "c1", ["true"]))
    with pytest.raises(Conflict, match=r"^container c1 is not running$"):
        runtime.kill("c1", signal.SIGTERM)
    runtime.create_task("c1")
    runtime.start_task("c1")
    runtime.wait("c1", WAIT)
    with pytest.raises(Conflict, match=r"^container c1 is not running$"):
        runtime.kill("c1", signal.SIGTERM)
    for bad in (0, -1, 4096):
        with pytest.raises(InvalidParameter, match=f"^invalid signal: {bad}$"):
            runtime.kill("c1", bad)


# -- pause and resume ------------------------------------------------------------------


def test_pause_freezes_every_process_and_resume_thaws_them(
    open_runtime: Callable[..., ProcessRuntime], tmp_path: Path, freezer: str
) -> None:
    runtime = open_runtime(freezer)
    assert runtime.freezer == freezer
    # c1 is paused; c2, the same loop left running, shows how far c1 would have got.
    counter, witness = tmp_path / "counter", tmp_path / "witness"
    for cid, path in (("c1", counter), ("c2", witness)):
        run(
            runtime,
            tmp_path,
            cid,
            sh(
                f"i=0; while :; do i=$((i+1)); echo $i > {path}.tmp; mv {path}.tmp {path}; "
                "sleep 0.01; done"
            ),
        )
    eventually(lambda: (read_int(counter) or 0) > 2, "the counter advances")

    runtime.pause("c1")
    runtime.pause("c1")  # idempotent

    info = runtime.task("c1")
    assert info is not None and info.status == "paused"
    frozen_at = read_int(counter)
    witnessed = read_int(witness) or 0
    eventually(lambda: (read_int(witness) or 0) >= witnessed + 5, "the running one advances")
    assert read_int(counter) == frozen_at

    runtime.resume("c1")
    runtime.resume("c1")  # idempotent

    assert runtime.task("c1").status == "running"  # type: ignore[union-attr]
    eventually(lambda: (read_int(counter) or 0) > (frozen_at or 0), "the counter advances again")


def test_a_paused_task_can_be_deleted(
    open_runtime: Callable[..., ProcessRuntime], tmp_path: Path, freezer: str
) -> None:
    runtime = open_runtime(freezer)
    pid = run(runtime, tmp_path, "c1", ["sleep", "1000"])
    runtime.pause("c1")

    exit_ = runtime.delete_task("c1")

    assert exit_ is not None and (exit_.pid, exit_.exit_code) == (pid, 137)
    assert not alive(pid)
    assert runtime.task("c1") is None


def test_pause_and_resume_need_a_started_live_task(runtime: ProcessRuntime, tmp_path: Path) -> None:
    runtime.create(spec(tmp_path, "c1", ["true"]))
    runtime.create_task("c1")
    for operation in (runtime.pause, runtime.resume):
        with pytest.raises(Conflict, match=r"^container c1 is not running$"):
            operation("c1")
    runtime.start_task("c1")
    runtime.wait("c1", WAIT)
    for operation in (runtime.pause, runtime.resume):
        with pytest.raises(Conflict, match=r"^container c1 is not running$"):
            operation("c1")


# -- logs, environment, working directory, descriptors ---------------------------------


def test_stdout_and_stderr_are_appended_to_the_log_file_apart(
    runtime: ProcessRuntime, tmp_path: Path
) -> None:
    log = tmp_path / "containers" / "c1" / "c1-json.log"
    log.parent.mkdir(parents=True)
    log.write_text("earlier\n")
    run(runtime, tmp_path, "c1", sh("echo to-stdout; echo to-stderr >&2"))
    runtime.wait("c1", WAIT)
    runtime.delete_task("c1")
    runtime.create_task("c1")
    runtime.start_task("c1")
    runtime.wait("c1", WAIT)

    lines = log.read_text().splitlines()
    assert lines[0] == "earlier"
    entries = [json.loads(line) for line in lines[1:]]
    # docker's json-file lines; each stream in its order (the two interleave as copied)
    for stream in ("stdout", "stderr"):
        mine = [e["log"] for e in entries if e["stream"] == stream]
        assert mine == [f"to-{stream}\n"] * 2


def test_the_environment_is_exactly_the_spec_plus_the_default_path(
    runtime: ProcessRuntime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHARTD_DAEMON_ONLY", "leak")
    pid = run(runtime, tmp_path, "c1", ["sleep", "1000"], env={"FOO": "bar baz", "EMPTY": ""})

    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")

    assert sorted(e.decode() for e in environ if e) == [
        "EMPTY=",
        "FOO=bar baz",
        f"PATH={DEFAULT_PATH}",
    ]


def test_the_shims_cd_leaves_pwd_and_oldpwd_as_the_spec_has_them(
    runtime: ProcessRuntime, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    without = run(runtime, tmp_path, "c1", ["sleep", "1000"], working_dir=str(work))
    given = {"PWD": "/elsewhere", "OLDPWD": "/before"}
    with_them = run(runtime, tmp_path, "c2", ["sleep", "1000"], working_dir=str(work), env=given)

    def environ(pid: int) -> list[str]:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
        return sorted(e.decode() for e in raw.split(b"\0") if e)

    assert environ(without) == [f"PATH={DEFAULT_PATH}"]
    assert environ(with_them) == ["OLDPWD=/before", f"PATH={DEFAULT_PATH}", "PWD=/elsewhere"]
    assert os.readlink(f"/proc/{with_them}/cwd") == str(work)


def test_signals_the_daemon_ignores_or_blocks_are_default_in_the_container(
    runtime: ProcessRuntime, tmp_path: Path
) -> None:
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    try:
        pid = run(runtime, tmp_path, "c1", ["sleep", "1000"])
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        signal.signal(signal.SIGHUP, previous)

    status = dict(
        line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    assert not int(status["SigIgn"], 16) & 1 << (signal.SIGHUP - 1)
    assert not int(status["SigBlk"], 16) & 1 << (signal.SIGUSR1 - 1)
    runtime.kill("c1", signal.SIGHUP)
    assert runtime.wait("c1", 10) is not None
    assert runtime.task("c1").exit_code == 128 + signal.SIGHUP  # type: ignore[union-attr]


def test_a_path_in_the_spec_is_used_to_find_the_command(
    runtime: ProcessRuntime, tmp_path: Path
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "chartd-tool"
    tool.write_text("#!/bin/sh\necho tool-ran\nexit 4\n")
    tool.chmod(0o755)
    run(runtime, tmp_path, "c1", ["chartd-tool"], env={"PATH": f"{bin_dir}:/usr/bin:/bin"})

    exit_ = runtime.wait("c1", WAIT)

    assert exit_ is not None and exit_.exit_code == 4
    assert "tool-ran" in (tmp_path / "containers" / "c1" / "c1-json.log").read_text()


def test_the_working_dir_is_honoured(runtime: ProcessRuntime, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    pid = run(runtime, tmp_path, "c1", ["sleep", "1000"], working_dir=str(work))
    assert Path(f"/proc/{pid}/cwd").resolve() == work.resolve()

    pid = run(runtime, tmp_path, "c2", ["sleep", "1000"])
    assert Path(f"/proc/{pid}/cwd").resolve() == Path("/")


def test_the_process_has_only_stdio_open(runtime: ProcessRuntime, tmp_path: Path) -> None:
    leak = os.open(tmp_path / "leak", os.O_CREAT | os.O_WRONLY)
    os.set_inheritable(leak, True)  # even an inheritable descriptor must not get through
    try:
        pid = run(runtime, tmp_path, "c1", ["sleep", "1000"])
    finally:
        os.close(leak)

    def open_fds() -> dict[str, str]:
        found = {}
        for fd in os.listdir(f"/proc/{pid}/fd"):
            # The loader may close a descriptor between the listing and the look: gone.
            with contextlib.suppress(FileNotFoundError):
                found[fd] = os.readlink(f"/proc/{pid}/fd/{fd}")
        return found

    # Right after the exec the dynamic loader still has the libraries open (at fd 3).
    eventually(lambda: sorted(open_fds()) == ["0", "1", "2"], "only stdio is open")
    fds = open_fds()
    assert fds["0"] == os.devnull
    records = tmp_path / "containers" / "c1" / "runtime"
    assert (fds["1"], fds["2"]) == (str(records / "init-stdout"), str(records / "init-stderr"))


# -- idempotency and errors ------------------------------------------------------------


def test_every_step_and_compensation_is_idempotent(runtime: ProcessRuntime, tmp_path: Path) -> None:
    the_spec = spec(tmp_path, "c1", ["sleep", "1000"])
    runtime.create(the_spec)
    runtime.create(the_spec)
    first = runtime.create_task("c1")
    assert runtime.create_task("c1") == first
    started = runtime.start_task("c1")
    assert runtime.start_task("c1") == started

    with pytest.raises(Conflict, match="its task is still running"):
        runtime.delete("c1")
    with pytest.raises(Conflict, match="live task"):
        runtime.create(spec(tmp_path, "c1", ["sleep", "2000"]))

    exit_ = runtime.delete_task("c1")
    assert exit_ is not None and (exit_.pid, exit_.exit_code, exit_.signal) == (first.pid, 137, 9)
    assert not alive(first.pid)
    assert runtime.delete_task("c1") is None
    runtime.delete("c1")
    runtime.delete("c1")
    assert not (tmp_path / "containers" / "c1" / "runtime").exists()
    assert runtime.delete_task("never-created") is None
    # A runtime that keeps nothing per deleted container (a lock, say) does not grow
    # with every container a daemon ever ran.
    assert kept(runtime, "c1") == []
    assert kept(runtime, "never-created") == []


def test_unknown_containers_and_tasks(runtime: ProcessRuntime, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match='container "c1": not found'):
        runtime.create_task("c1")
    runtime.create(spec(tmp_path, "c1", ["true"]))
    with pytest.raises(NotFound, match="task c1 not found"):
        runtime.start_task("c1")
    with pytest.raises(NotFound, match="task c1 not found"):
        runtime.wait("c1", 0)
    assert runtime.task("c1") is None
    with pytest.raises(InvalidParameter, match="invalid container ID"):
        runtime.create_task("../escape")


def test_wait_times_out_with_none(runtime: ProcessRuntime, tmp_path: Path) -> None:
    run(runtime, tmp_path, "c1", ["sleep", "1000"])
    assert runtime.wait("c1", 0.05) is None


def test_exit_events_are_delivered_exactly_once(runtime: ProcessRuntime, tmp_path: Path) -> None:
    events: list[ExitEvent] = []
    lock = threading.Lock()

    def record(event: ExitEvent) -> None:
        with lock:
            events.append(event)

    def broken(event: ExitEvent) -> None:
        raise RuntimeError("a failing subscriber does not stop delivery")

    runtime.subscribe(broken)
    runtime.subscribe(record)
    for i in range(4):
        run(runtime, tmp_path, f"exits{i}", sh(f"exit {i}"))
    run(runtime, tmp_path, "killed", ["sleep", "1000"])
    runtime.create(spec(tmp_path, "missing", ["no-such-command-chartd"]))
    runtime.create_task("missing")
    with pytest.raises(ExecFailed):
        runtime.start_task("missing")
    for i in range(4):
        runtime.wait(f"exits{i}", WAIT)
    runtime.delete_task("killed")
    for info in runtime.tasks():
        runtime.delete_task(info.container_id)
    eventually(lambda: len(events) >= 6, "six exits reported")
    runtime.close()  # joins the delivery thread: nothing more can arrive

    assert Counter(e.container_id for e in events) == Counter(
        ["exits0", "exits1", "exits2", "exits3", "killed", "missing"]
    )
    assert {e.container_id: e.exit_code for e in events} == {
        "exits0": 0,
        "exits1": 1,
        "exits2": 2,
        "exits3": 3,
        "killed": 137,
        "missing": 127,
    }


def test_one_runtime_at_a_time_per_state_dir(
    open_runtime: Callable[..., ProcessRuntime], tmp_path: Path
) -> None:
    first = open_runtime()
    with pytest.raises(Conflict, match="in use by another runtime"):
        ProcessRuntime(tmp_path / "state")
    first.close()
    with pytest.raises(Unavailable, match="closed"):
        first.create_task("c1")
    open_runtime()  # the lock is free again


# -- restore ---------------------------------------------------------------------------


CRASHING_DAEMON = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from statecharts.container.process import ProcessRuntime
    from statecharts.container.runtime import ContainerSpec

    base = Path(sys.argv[1])
    runtime = ProcessRuntime(base / "state")

    def spec(cid, cmd):
        root = base / "containers" / cid
        return ContainerSpec(id=cid, name="/" + cid, cmd=cmd, log_path=root / "log", root=root)

    for cid, cmd, start in [
        ("survivor", ["sleep", "1000"], True),
        ("orphaned", ["sh", "-c", f"sleep 1000 & echo $! > {base / 'orphan'}; wait"], True),
        ("never-started", ["sleep", "1000"], False),
    ]:
        runtime.create(spec(cid, cmd))
        runtime.create_task(cid)
        if start:
            runtime.start_task(cid)
    while not (base / "orphan").exists() or not (base / "orphan").read_text().strip():
        pass
    print(json.dumps({t.container_id: t.pid for t in runtime.tasks()}), flush=True)
    os._exit(0)  # crash: no delete, no close
    """
).replace("import os, sys", "import json, os, sys")


def test_a_new_runtime_finds_the_tasks_a_crashed_one_left_and_can_kill_them(
    open_runtime: Callable[..., ProcessRuntime], tmp_path: Path, strays: Strays
) -> None:
    crashed = subprocess.run(
        [sys.executable, "-c", CRASHING_DAEMON, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[3],
        check=False,
    )
    assert crashed.returncode == 0, crashed.stderr
    pids: dict[str, int] = json.loads(crashed.stdout)
    orphan = read_int(tmp_path / "orphan")
    assert orphan is not None
    for pid in [*pids.values(), orphan]:
        strays.add(pid)
    assert alive(pids["survivor"]) and alive(orphan)
    # The leader of "orphaned" dies while no runtime watches: its child must not survive.
    os.kill(pids["orphaned"], signal.SIGKILL)
    eventually(lambda: not alive(pids["orphaned"]), "the leader died")

    runtime = open_runtime()
    events: list[ExitEvent] = []
    runtime.subscribe(events.append)

    found = {t.container_id: t for t in runtime.tasks()}
    assert set(found) == {"survivor", "orphaned", "never-started"}
    assert (found["survivor"].pid, found["survivor"].status) == (pids["survivor"], "running")
    assert (found["orphaned"].status, found["orphaned"].exit_code) == ("stopped", EXIT_UNKNOWN)
    eventually(lambda: not alive(orphan), "the orphaned group member was killed at restore")
    # Its release pipe died with the daemon: the shim exits without running.
    eventually(
        lambda: runtime.task("never-started").status == "stopped",  # type: ignore[union-attr]
        "the never-started task ended",
    )

    runtime.kill("survivor", signal.SIGKILL)
    exit_ = runtime.wait("survivor", WAIT)
    assert exit_ is not None and (exit_.pid, exit_.exit_code) == (pids["survivor"], 137)
    eventually(lambda: not alive(pids["survivor"]), "the survivor was killed")
    for cid in found:
        runtime.delete_task(cid)
        runtime.delete(cid)
    assert runtime.tasks() == []
    eventually(lambda: any(e.container_id == "survivor" for e in events), "its exit reported")


def test_a_reused_pid_is_not_taken_for_the_task(
    open_runtime: Callable[..., ProcessRuntime], tmp_path: Path, strays: Strays
) -> None:
    first = open_runtime()
    # The real task is left to the strays fixture (under the cgroup freezer the
    # restore kills it: whatever is left in the task's cgroup is the container's).
    strays.add(run(first, tmp_path, "c1", ["sleep", "1000"]))
    first.close()  # leaves the task running
    other = subprocess.Popen(["sleep", "1000"])
    strays.add(other.pid)
    try:
        # Make the record name an unrelated live process, as if the pid had been reused.
        record = tmp_path / "containers" / "c1" / "runtime" / "task.json"
        data = json.loads(record.read_text())
        data["pid"] = other.pid
        record.write_text(json.dumps(data))

        second = open_runtime()
        info = second.task("c1")

        assert info is not None and (info.status, info.exit_code) == ("stopped", EXIT_UNKNOWN)
        second.delete_task("c1")
        assert alive(other.pid)
    finally:
        other.kill()
        other.wait(WAIT)


def test_a_runtime_reopened_in_the_same_process_still_reads_real_exit_codes(
    open_runtime: Callable[..., ProcessRuntime], tmp_path: Path
) -> None:
    go = tmp_path / "go"
    first = open_runtime()
    pid = run(first, tmp_path, "c1", sh(f"while [ ! -e {go} ]; do sleep 0.01; done; exit 5"))
    first.close()
    assert alive(pid)  # close does not stop running tasks

    second = open_runtime()
    assert second.task("c1").status == "running"  # type: ignore[union-attr]
    go.touch()

    exit_ = second.wait("c1", WAIT)
    assert exit_ is not None and (exit_.pid, exit_.exit_code) == (pid, 5)
