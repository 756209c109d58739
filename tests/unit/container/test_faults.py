"""FaultRuntime fails any Runtime call on demand and records it; FakeRuntime keeps the contract."""

from __future__ import annotations

import dataclasses
import signal
from pathlib import Path

import pytest

from engine.errors import ChartdError, Conflict, InvalidParameter, NotFound, System, Unavailable
from statecharts.container.faults import STDIN_ROOM, Call, FakeRuntime, FaultRuntime
from statecharts.container.runtime import (
    DEFAULT_PATH,
    ContainerSpec,
    ExecFailed,
    ExitEvent,
    Runtime,
    TaskInfo,
    exit_code_from_start_error,
)


def spec(cid: str = "c1", cmd: list[str] | None = None) -> ContainerSpec:
    return ContainerSpec(
        id=cid,
        name=f"/{cid}",
        cmd=cmd or ["sleep", "1000"],
        log_path=Path(f"/nonexistent/{cid}.log"),
        root=Path(f"/nonexistent/{cid}"),
    )


def started(runtime: Runtime, cid: str = "c1") -> TaskInfo:
    runtime.create(spec(cid))
    runtime.create_task(cid)
    return runtime.start_task(cid)


@pytest.fixture
def fake() -> FakeRuntime:
    return FakeRuntime(clock=lambda: 100.0)


@pytest.fixture
def faulty(fake: FakeRuntime) -> FaultRuntime:
    return FaultRuntime(fake)


# -- FaultRuntime ----------------------------------------------------------------------


def test_both_runtimes_satisfy_the_protocol(fake: FakeRuntime, faulty: FaultRuntime) -> None:
    assert isinstance(fake, Runtime)
    assert isinstance(faulty, Runtime)


def test_every_call_is_recorded_in_order_with_its_container(faulty: FaultRuntime) -> None:
    events: list[ExitEvent] = []
    faulty.subscribe(events.append)
    started(faulty)
    faulty.pause("c1")
    faulty.resume("c1")
    faulty.kill("c1", signal.SIGTERM)
    faulty.wait("c1", 0)
    faulty.task("c1")
    faulty.tasks()
    faulty.delete_task("c1")
    faulty.delete("c1")
    faulty.close()

    assert faulty.calls == [
        ("subscribe", None),
        ("create", "c1"),
        ("create_task", "c1"),
        ("start_task", "c1"),
        ("pause", "c1"),
        ("resume", "c1"),
        ("kill", "c1"),
        ("wait", "c1"),
        ("task", "c1"),
        ("tasks", None),
        ("delete_task", "c1"),
        ("delete", "c1"),
        ("close", None),
    ]
    assert faulty.calls[0] == Call(method="subscribe", container=None)
    assert faulty.calls_of("create_task", "delete_task") == [
        ("create_task", "c1"),
        ("delete_task", "c1"),
    ]
    assert [e.exit_code for e in events] == [143]
    assert faulty.failures == []


def test_a_fault_fails_the_next_call_once_by_default(
    faulty: FaultRuntime, fake: FakeRuntime
) -> None:
    faulty.create(spec())
    faulty.fail("create_task")

    with pytest.raises(System, match=r"^injected fault: create_task$"):
        faulty.create_task("c1")

    assert fake.task("c1") is None  # failed before the inner call
    assert faulty.create_task("c1").status == "created"
    assert faulty.failures == [("create_task", "c1")]
    assert faulty.calls_of("create_task") == [("create_task", "c1")] * 2


def test_the_nth_call_fails_and_times_counts_the_failures(faulty: FaultRuntime) -> None:
    faulty.fail("tasks", nth=2, times=2)

    outcomes = []
    for _ in range(5):
        try:
            faulty.tasks()
            outcomes.append("ok")
        except System:
            outcomes.append("failed")

    assert outcomes == ["ok", "failed", "failed", "ok", "ok"]


def test_times_none_fails_forever_and_clear_disarms(faulty: FaultRuntime) -> None:
    faulty.fail("tasks", times=None)
    for _ in range(3):
        with pytest.raises(System):
            faulty.tasks()
    faulty.clear()
    assert faulty.tasks() == []


def test_a_fault_for_one_container_spares_the_others(faulty: FaultRuntime) -> None:
    faulty.fail("create", container="c2", nth=2)

    faulty.create(spec("c1"))
    faulty.create(spec("c2"))  # the 1st call for c2
    faulty.create(spec("c1"))
    with pytest.raises(System, match=r"^injected fault: create \(c2\)$"):
        faulty.create(spec("c2"))  # the 2nd

    assert faulty.failures == [("create", "c2")]


def test_after_lets_the_call_take_effect_then_fails(
    faulty: FaultRuntime, fake: FakeRuntime
) -> None:
    faulty.create(spec())
    faulty.fail("create_task", after=True)

    with pytest.raises(System):
        faulty.create_task("c1")

    info = fake.task("c1")
    assert info is not None and info.status == "created"  # the effect a saga must undo


def test_the_error_is_raised_fresh_each_time_with_its_category(faulty: FaultRuntime) -> None:
    faulty.create(spec())
    faulty.create_task("c1")
    armed = ExecFailed('exec: "x": executable file not found in $PATH', exit_code=127)
    faulty.fail("start_task", error=armed, times=2)

    raised: list[ChartdError] = []
    for _ in range(2):
        with pytest.raises(ExecFailed) as failed:
            faulty.start_task("c1")
        raised.append(failed.value)

    assert raised[0] is not raised[1] and raised[0] is not armed
    for error in raised:
        assert isinstance(error, InvalidParameter)
        assert (str(error), error.exit_code) == (str(armed), 127)  # type: ignore[attr-defined]
        assert exit_code_from_start_error(error) == 127
    assert exit_code_from_start_error(System("boom")) == 128


def test_the_error_can_be_a_factory_or_any_exception(faulty: FaultRuntime) -> None:
    faulty.fail("tasks", error=lambda: Unavailable("runtime down"))
    faulty.fail("task", error=OSError(5, "EIO"))

    with pytest.raises(Unavailable, match="runtime down"):
        faulty.tasks()
    with pytest.raises(OSError, match="EIO"):
        faulty.task("c1")


def test_faults_are_checked_in_the_order_they_were_armed(faulty: FaultRuntime) -> None:
    faulty.fail("tasks", error=Conflict("first"))
    faulty.fail("tasks", error=Unavailable("second"))

    with pytest.raises(Conflict, match="first"):
        faulty.tasks()
    # The second one saw that call too: it fires on the next.
    with pytest.raises(Unavailable, match="second"):
        faulty.tasks()
    assert faulty.tasks() == []


def test_compensations_can_be_failed(faulty: FaultRuntime, fake: FakeRuntime) -> None:
    started(faulty)
    faulty.fail("delete_task", times=None)

    for _ in range(2):
        with pytest.raises(System):
            faulty.delete_task("c1")

    assert fake.task("c1") is not None  # still there: the caller must retry
    faulty.clear()
    assert faulty.delete_task("c1") is not None


def test_fail_checks_its_arguments(faulty: FaultRuntime) -> None:
    with pytest.raises(InvalidParameter, match="not a Runtime method"):
        faulty.fail("explode")
    with pytest.raises(InvalidParameter, match="count from 1"):
        faulty.fail("tasks", nth=0)
    with pytest.raises(InvalidParameter, match="count from 1"):
        faulty.fail("tasks", times=0)


# -- FakeRuntime -----------------------------------------------------------------------


def test_a_fake_task_lives_until_it_exits(fake: FakeRuntime) -> None:
    events: list[ExitEvent] = []
    fake.subscribe(events.append)
    fake.create(spec())
    created = fake.create_task("c1")
    assert (created.status, created.started_at) == ("created", None)
    assert fake.create_task("c1") == created  # idempotent

    running = fake.start_task("c1")
    assert (running.status, running.started_at, running.pid) == ("running", 100.0, created.pid)
    assert fake.start_task("c1") == running
    assert fake.wait("c1", 0) is None

    event = fake.exit("c1", 3)

    assert event == ExitEvent("c1", created.pid, 3, 100.0, None)
    assert events == [event]
    assert fake.wait("c1", 0) == event
    stopped = fake.task("c1")
    assert stopped is not None and (stopped.status, stopped.exit_code) == ("stopped", 3)
    assert fake.delete_task("c1") == event
    assert fake.delete_task("c1") is None
    assert events == [event]  # exactly once


def test_fake_signals_end_the_task_unless_ignored_or_harmless(fake: FakeRuntime) -> None:
    started(fake, "term")
    fake.kill("term", signal.SIGTERM)
    assert fake.wait("term", 0) == ExitEvent("term", 1000, 143, 100.0, signal.SIGTERM)

    started(fake, "stubborn")
    fake.ignore("stubborn", signal.SIGTERM)
    fake.kill("stubborn", signal.SIGTERM)
    fake.kill("stubborn", signal.SIGWINCH)
    assert fake.task("stubborn").status == "running"  # type: ignore[union-attr]
    fake.kill("stubborn", signal.SIGKILL)
    assert fake.wait("stubborn", 0).exit_code == 137  # type: ignore[union-attr]


def test_fake_pause_holds_signals_until_resume_but_not_sigkill(fake: FakeRuntime) -> None:
    started(fake)
    fake.pause("c1")
    fake.pause("c1")
    assert fake.task("c1").status == "paused"  # type: ignore[union-attr]

    fake.kill("c1", signal.SIGTERM)
    assert fake.task("c1").status == "paused"  # type: ignore[union-attr]
    fake.resume("c1")
    assert fake.wait("c1", 0).exit_code == 143  # type: ignore[union-attr]

    started(fake, "c2")
    fake.pause("c2")
    fake.kill("c2", signal.SIGKILL)
    assert fake.wait("c2", 0).exit_code == 137  # type: ignore[union-attr]


def test_fake_exec_failures(fake: FakeRuntime) -> None:
    events: list[ExitEvent] = []
    fake.subscribe(events.append)
    fake.create(spec(cmd=["nope"]))
    fake.create_task("c1")
    fake.fail_exec("c1")

    with pytest.raises(ExecFailed, match=r'^exec: "nope": executable file not found in \$PATH$'):
        fake.start_task("c1")

    info = fake.task("c1")
    assert info is not None and (info.status, info.exit_code) == ("stopped", 127)
    assert [e.exit_code for e in events] == [127]
    with pytest.raises(Conflict, match="cannot start task c1: it has exited"):
        fake.start_task("c1")


def test_fake_errors_match_the_contract(fake: FakeRuntime) -> None:
    with pytest.raises(NotFound, match='container "c1": not found'):
        fake.create_task("c1")
    fake.create(spec())
    with pytest.raises(NotFound, match="task c1 not found"):
        fake.start_task("c1")
    with pytest.raises(NotFound, match="task c1 not found"):
        fake.wait("c1", 0)
    with pytest.raises(Conflict, match=r"^container c1 is not running$"):
        fake.kill("c1", signal.SIGTERM)
    fake.create_task("c1")
    with pytest.raises(Conflict, match=r"^container c1 is not running$"):
        fake.pause("c1")
    with pytest.raises(InvalidParameter, match=r"^invalid signal: 0$"):
        fake.kill("c1", 0)
    with pytest.raises(Conflict, match="its task is still running"):
        fake.delete("c1")
    with pytest.raises(Conflict, match="live task"):
        fake.create(spec(cmd=["other"]))
    fake.create(spec())  # the same spec: a no-op
    fake.delete_task("c1")
    fake.delete("c1")
    fake.delete("c1")
    assert fake.spec("c1") is None


def test_container_specs_are_checked(tmp_path: Path) -> None:
    def make(**kw: object) -> ContainerSpec:
        fields: dict[str, object] = {
            "id": "c1",
            "name": "/c1",
            "cmd": ["true"],
            "log_path": tmp_path / "log",
            "root": tmp_path,
        }
        fields.update(kw)
        return ContainerSpec(**fields)  # type: ignore[arg-type]

    with pytest.raises(InvalidParameter, match="invalid container ID"):
        make(id="../c1")
    with pytest.raises(InvalidParameter, match="No command specified"):
        make(cmd=[])
    with pytest.raises(InvalidParameter, match="needs to be an absolute path"):
        make(working_dir="relative")
    with pytest.raises(InvalidParameter, match="invalid environment variable"):
        make(env={"A=B": "c"})
    with pytest.raises(InvalidParameter, match="invalid signal: 99"):
        make(stop_signal=99)
    assert make().process_env() == {"PATH": DEFAULT_PATH}
    assert make(env={"PATH": "/bin"}).process_env() == {"PATH": "/bin"}
    round_trip = make(env={"A": "1"}, labels={"l": "v"}, working_dir="/w")
    assert ContainerSpec.from_json(round_trip.to_json()) == round_trip


def test_the_fake_process_reads_its_open_stdin_to_its_end(fake: FakeRuntime) -> None:
    fake.create(dataclasses.replace(spec(), open_stdin=True))
    fake.create_task("c1")
    assert fake.write_stdin("c1", b"abc", 0) == 3
    assert fake.read_stdin("c1") == b"abc"
    assert fake.read_stdin("c1") == b""  # open, nothing written: it would wait
    assert fake.write_stdin("c1", b"x" * (STDIN_ROOM + 1), 0) == STDIN_ROOM
    fake.close_stdin("c1")
    assert fake.read_stdin("c1") == b"x" * STDIN_ROOM  # what was written before the close
    assert fake.read_stdin("c1") is None  # then its end
    with pytest.raises(Conflict, match=r"^container c1 has no open stdin$"):
        fake.write_stdin("c1", b"y", 0)


def test_the_fake_process_output_reaches_its_taps_until_its_exit(fake: FakeRuntime) -> None:
    early = fake.tap("c1")  # before the task: it waits for it
    fake.create(spec())
    fake.create_task("c1")
    fake.start_task("c1")
    assert early.joined
    fake.output("c1", "stdout", b"\xffout")
    late = fake.tap("c1")
    fake.output("c1", "stderr", b"err")
    fake.exit("c1", 0)
    assert early.take() == ([("stdout", b"\xffout"), ("stderr", b"err")], True)
    assert late.take() == ([("stderr", b"err")], True)
    with pytest.raises(Conflict, match="is not running"):
        fake.output("c1", "stdout", b"after")
    gone = fake.tap("c1")
    gone.close()  # its subscriber went: dropped
    fake.delete_task("c1")
    assert gone.take() == ([], False)


def test_a_tap_can_be_failed_like_any_runtime_call(fake: FakeRuntime) -> None:
    faulty = FaultRuntime(fake)
    faulty.fail("tap")
    with pytest.raises(System, match="injected fault: tap"):
        faulty.tap("c1")
    assert not faulty.tap("c1").joined
    assert faulty.calls_of("tap") == [Call("tap", "c1"), Call("tap", "c1")]


def test_a_resize_can_be_failed_and_reaches_the_fake_terminal(fake: FakeRuntime) -> None:
    faulty = FaultRuntime(fake)
    faulty.create(dataclasses.replace(spec(), tty=True))
    faulty.create_task("c1")
    assert fake.terminal_size("c1") == (0, 0)  # a new terminal's, until resized
    faulty.fail("resize")
    with pytest.raises(System, match=r"^injected fault: resize$"):
        faulty.resize("c1", 24, 80)
    assert fake.terminal_size("c1") == (0, 0)
    faulty.resize("c1", 24, 80)
    assert fake.terminal_size("c1") == (24, 80)
    assert faulty.calls_of("resize") == [Call("resize", "c1")] * 2
    assert ContainerSpec.from_json(spec().to_json()).tty is False
    tty = dataclasses.replace(spec(), tty=True, console_size=(20, 50))
    assert ContainerSpec.from_json(tty.to_json()) == tty
