"""One contract, every runtime: the same script and assertions on ProcessRuntime and FakeRuntime.

This is what lets fast tests of the service trust FakeRuntime: where it
matters to the service (states, errors and their messages, exit events
exactly once, idempotent compensations), it behaves as real processes do.
Like containerd's snapshotter test suite, run against each backend.
"""

from __future__ import annotations

import dataclasses
import json
import re
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.errors import Conflict, InvalidParameter, NotFound
from statecharts.container.faults import FakeRuntime
from statecharts.container.process import ProcessRuntime
from statecharts.container.runtime import ContainerSpec, ExitEvent, Runtime

WAIT = 10.0

# Exits with the code written to the file named by $1, once it is there.
WAIT_FOR_CODE = 'while [ ! -s "$1" ]; do sleep 0.01; done; exit $(cat "$1")'


class Harness:
    def __init__(self, runtime: Runtime, tmp_path: Path) -> None:
        self.runtime = runtime
        self.tmp_path = tmp_path
        self.events: list[ExitEvent] = []
        self._lock = threading.Lock()
        self.closed = False
        runtime.subscribe(self._record)

    def _record(self, event: ExitEvent) -> None:
        with self._lock:
            self.events.append(event)

    def spec(self, cid: str, *, variant: str = "", open_stdin: bool = False) -> ContainerSpec:
        root = self.tmp_path / "containers" / cid
        return ContainerSpec(
            id=cid,
            name=f"/{cid}",
            cmd=["sh", "-c", WAIT_FOR_CODE + variant, "sh", str(root / "code")],
            log_path=root / "log",
            root=root,
            open_stdin=open_stdin,
        )

    def finish(self, cid: str, code: int) -> None:
        """Make the container's main process exit with ``code``."""
        if isinstance(self.runtime, FakeRuntime):
            self.runtime.exit(cid, code)
            return
        path = self.tmp_path / "containers" / cid / "code"
        path.write_text(f"{code}\n")

    def close(self) -> None:
        """Close the runtime: every exit it reaped has been delivered when this returns."""
        self.closed = True
        self.runtime.close()

    def exits_of(self, cid: str) -> list[int]:
        """The exit codes reported for ``cid``, in order (call after ``close``)."""
        assert self.closed
        with self._lock:
            return [e.exit_code for e in self.events if e.container_id == cid]


@pytest.fixture(params=["process", "fake"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    if request.param == "process":
        request.getfixturevalue("process_runtime")  # skipped without it, failed under CI
    runtime: Runtime = (
        ProcessRuntime(tmp_path / "state") if request.param == "process" else FakeRuntime()
    )
    harness = Harness(runtime, tmp_path)
    try:
        yield harness
    finally:
        try:
            if not harness.closed:
                for info in runtime.tasks():
                    runtime.delete_task(info.container_id)
        finally:
            runtime.close()


def test_the_lifecycle_of_a_task(harness: Harness) -> None:
    runtime = harness.runtime
    runtime.create(harness.spec("c1"))
    runtime.create(harness.spec("c1"))

    created = runtime.create_task("c1")
    assert created.status == "created"
    assert runtime.create_task("c1") == created
    running = runtime.start_task("c1")
    assert (running.status, running.pid) == ("running", created.pid)
    assert runtime.start_task("c1") == running
    runtime.pause("c1")
    assert runtime.task("c1").status == "paused"  # type: ignore[union-attr]
    runtime.resume("c1")
    assert runtime.task("c1").status == "running"  # type: ignore[union-attr]
    assert runtime.wait("c1", 0.01) is None

    harness.finish("c1", 42)

    exit_ = runtime.wait("c1", WAIT)
    assert exit_ is not None and (exit_.pid, exit_.exit_code, exit_.signal) == (
        created.pid,
        42,
        None,
    )
    stopped = runtime.task("c1")
    assert stopped is not None
    assert (stopped.status, stopped.exit_code, stopped.exited_at) == (
        "stopped",
        42,
        exit_.exited_at,
    )
    assert [t.container_id for t in runtime.tasks()] == ["c1"]
    with pytest.raises(Conflict, match="cannot start task c1: it has exited"):
        runtime.start_task("c1")
    assert runtime.delete_task("c1") == exit_
    assert runtime.delete_task("c1") is None
    runtime.delete("c1")
    runtime.delete("c1")
    assert runtime.tasks() == []
    harness.close()
    assert harness.exits_of("c1") == [42]


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGKILL, 137)])
def test_signals_end_a_task_with_128_plus_the_signal(harness: Harness, sig: int, code: int) -> None:
    runtime = harness.runtime
    runtime.create(harness.spec("c1"))
    runtime.create_task("c1")
    runtime.start_task("c1")

    runtime.kill("c1", sig)

    exit_ = runtime.wait("c1", WAIT)
    assert exit_ is not None and (exit_.exit_code, exit_.signal) == (code, sig)
    runtime.delete_task("c1")
    harness.close()
    assert harness.exits_of("c1") == [code]


def test_a_harmless_signal_does_not_end_a_task(harness: Harness) -> None:
    runtime = harness.runtime
    runtime.create(harness.spec("c1"))
    runtime.create_task("c1")
    runtime.start_task("c1")

    runtime.kill("c1", signal.SIGWINCH)
    # The signal is pending when kill returns, and the shell takes it before it runs
    # another command: an exit with the code written now comes after it.
    harness.finish("c1", 7)

    exit_ = runtime.wait("c1", WAIT)
    assert exit_ is not None and (exit_.exit_code, exit_.signal) == (7, None)
    harness.close()
    assert harness.exits_of("c1") == [7]


@pytest.mark.parametrize("status", ["created", "running", "paused"])
def test_delete_task_kills_a_live_task_in_any_status_and_reports_it_once(
    harness: Harness, status: str
) -> None:
    runtime = harness.runtime
    runtime.create(harness.spec("c1"))
    runtime.create_task("c1")
    if status != "created":
        runtime.start_task("c1")
    if status == "paused":
        runtime.pause("c1")

    exit_ = runtime.delete_task("c1")

    assert exit_ is not None and (exit_.exit_code, exit_.signal) == (137, 9)
    assert runtime.task("c1") is None
    assert runtime.delete_task("c1") is None
    harness.close()
    assert harness.exits_of("c1") == [137]


def test_refusals_and_their_messages(harness: Harness) -> None:
    runtime = harness.runtime
    with pytest.raises(NotFound, match=r'^container "c1": not found$'):
        runtime.create_task("c1")
    runtime.create(harness.spec("c1"))
    with pytest.raises(NotFound, match=r"^no running task found: task c1 not found$"):
        runtime.start_task("c1")
    with pytest.raises(NotFound, match=r"^no running task found: task c1 not found$"):
        runtime.wait("c1", 0)
    assert runtime.task("c1") is None
    with pytest.raises(Conflict, match=r"^container c1 is not running$"):
        runtime.kill("c1", signal.SIGTERM)

    runtime.create_task("c1")
    for operation in (runtime.pause, runtime.resume):
        with pytest.raises(Conflict, match=r"^container c1 is not running$"):
            operation("c1")
    with pytest.raises(InvalidParameter, match=r"^invalid signal: 0$"):
        runtime.kill("c1", 0)
    with pytest.raises(Conflict, match=r"^cannot delete container c1: its task is still running$"):
        runtime.delete("c1")
    with pytest.raises(Conflict, match=r"^container c1 has a live task"):
        runtime.create(harness.spec("c1", variant=" # another spec"))
    with pytest.raises(InvalidParameter, match=r"^invalid container ID"):
        runtime.delete_task("../c1")

    runtime.start_task("c1")
    harness.finish("c1", 0)
    runtime.wait("c1", WAIT)
    with pytest.raises(Conflict, match=r"^container c1 is not running$"):
        runtime.kill("c1", signal.SIGTERM)
    runtime.delete("c1")  # a stopped task goes with its container
    assert runtime.task("c1") is None


def test_an_open_stdin_takes_what_it_has_room_for_until_it_is_closed(harness: Harness) -> None:
    runtime = harness.runtime
    runtime.create(harness.spec("c1", open_stdin=True))
    runtime.create(harness.spec("c2"))
    for operation in (
        lambda: runtime.write_stdin("c1", b"x", 0),
        lambda: runtime.close_stdin("c1"),
    ):
        with pytest.raises(NotFound, match=r"^no running task found: task c1 not found$"):
            operation()
    runtime.create_task("c1")
    runtime.create_task("c2")
    with pytest.raises(Conflict, match=r"^container c2 has no open stdin$"):
        runtime.write_stdin("c2", b"x", 0)
    runtime.close_stdin("c2")  # none to close: a no-op
    runtime.start_task("c1")
    assert runtime.write_stdin("c1", b"abc", WAIT) == 3
    # The process never reads: what its stdin holds is bounded, and then nothing fits.
    taken, chunk = 0, b"y" * 65536
    while written := runtime.write_stdin("c1", chunk, 0.05):
        taken += written
        assert taken < 4 * 1024 * 1024
    runtime.close_stdin("c1")
    runtime.close_stdin("c1")
    with pytest.raises(Conflict, match=r"^container c1 has no open stdin$"):
        runtime.write_stdin("c1", b"x", 0)
    harness.finish("c1", 0)
    runtime.wait("c1", WAIT)
    with pytest.raises(Conflict, match=r"^container c1 has no open stdin$"):
        runtime.write_stdin("c1", b"x", 0)


def test_a_process_reads_its_open_stdin_to_the_end(process_runtime: None, tmp_path: Path) -> None:
    root = tmp_path / "containers" / "c1"
    spec = ContainerSpec(
        id="c1", name="/c1", cmd=["sh", "-c", 'cat > "$1"', "sh", str(tmp_path / "read")],
        log_path=root / "log", root=root, open_stdin=True,
    )  # fmt: skip
    with ProcessRuntime(tmp_path / "state") as runtime:
        runtime.create(spec)
        runtime.create_task("c1")
        runtime.start_task("c1")
        data = b"".join(b"line %d\n" % i for i in range(20000))
        left = data
        while left:
            left = left[runtime.write_stdin("c1", left, WAIT) :]
        runtime.close_stdin("c1")  # EOF: cat ends
        exit_ = runtime.wait("c1", WAIT)
        assert exit_ is not None and exit_.exit_code == 0
        assert (tmp_path / "read").read_bytes() == data
        runtime.delete_task("c1")


def test_exits_are_reported_exactly_once_per_task(harness: Harness) -> None:
    runtime = harness.runtime
    for i in range(3):
        runtime.create(harness.spec(f"c{i}"))
        runtime.create_task(f"c{i}")
        runtime.start_task(f"c{i}")
    for i in range(3):
        harness.finish(f"c{i}", i + 1)
    for i in range(3):
        runtime.wait(f"c{i}", WAIT)
        runtime.delete_task(f"c{i}")
    # A second task of the same container is a new task: its exit is reported too.
    (harness.tmp_path / "containers" / "c0" / "code").unlink(missing_ok=True)
    runtime.create_task("c0")
    runtime.start_task("c0")
    runtime.delete_task("c0")
    harness.close()

    assert harness.exits_of("c0") == [1, 137]
    assert harness.exits_of("c1") == [2]
    assert harness.exits_of("c2") == [3]


def test_a_task_is_resized_while_it_is_live(harness: Harness) -> None:
    runtime = harness.runtime
    runtime.create(dataclasses.replace(harness.spec("c1"), tty=True))
    runtime.create(harness.spec("c2"))
    with pytest.raises(Conflict, match=r"^container c1 is not running$"):
        runtime.resize("c1", 24, 80)
    runtime.create_task("c1")
    runtime.create_task("c2")
    runtime.resize("c1", 24, 80)  # a created task is live: its window is set before it runs
    runtime.resize("c2", 24, 80)  # no terminal: nothing to resize
    runtime.start_task("c1")
    runtime.resize("c1", 2**16 + 30, -1)  # modulo 2**16, as runc's
    if isinstance(runtime, FakeRuntime):
        assert runtime.terminal_size("c1") == (30, 2**16 - 1)
        assert runtime.terminal_size("c2") is None
    harness.finish("c1", 0)
    runtime.wait("c1", WAIT)
    with pytest.raises(Conflict, match=r"^container c1 is not running$"):
        runtime.resize("c1", 24, 80)
    runtime.delete_task("c2")


def _log_lines(path: Path) -> list[tuple[str, str]]:
    return [(e["stream"], e["log"]) for e in map(json.loads, path.read_text().splitlines())]


def test_a_tty_process_has_its_terminal(process_runtime: None, tmp_path: Path) -> None:
    root = tmp_path / "containers" / "c1"
    script = (
        "tty; stty size; echo err >&2; exec 3</dev/tty && echo controlling;"
        ' read line; echo "got $line"; exit 3'
    )
    spec = ContainerSpec(
        id="c1", name="/c1", cmd=["sh", "-c", script], log_path=root / "log", root=root,
        tty=True, open_stdin=True,
    )  # fmt: skip
    with ProcessRuntime(tmp_path / "state") as runtime:
        runtime.create(spec)
        runtime.create_task("c1")
        runtime.resize("c1", 24, 80)
        tap = runtime.tap("c1")
        runtime.start_task("c1")
        assert runtime.write_stdin("c1", b"hello\n", WAIT) == 6
        exit_ = runtime.wait("c1", WAIT)
        assert exit_ is not None and exit_.exit_code == 3
        runtime.delete_task("c1")
        chunks, ended = tap.take()
        assert ended and {stream for stream, _ in chunks} == {"stdout"}
    lines = _log_lines(root / "log")
    assert {stream for stream, _ in lines} == {"stdout"}
    said = "".join(line for _, line in lines).split("\r\n")
    # The terminal echoes the input when it comes, wherever the process is.
    said.remove("hello")
    assert re.fullmatch(r"/dev/pts/\d+", said[0]), said
    assert said[1:] == ["24 80", "err", "controlling", "got hello", ""]


def test_a_tty_task_killed_ends_with_its_output(process_runtime: None, tmp_path: Path) -> None:
    root = tmp_path / "containers" / "c1"
    spec = ContainerSpec(
        id="c1", name="/c1", cmd=["sh", "-c", "echo up; exec sleep 600"],
        log_path=root / "log", root=root, tty=True,
    )  # fmt: skip
    with ProcessRuntime(tmp_path / "state") as runtime:
        runtime.create(spec)
        for _ in range(2):  # a second task gets a terminal of its own
            tap = runtime.tap("c1")
            runtime.create_task("c1")
            runtime.start_task("c1")
            seen = b""
            deadline = time.monotonic() + WAIT
            while b"up" not in seen and time.monotonic() < deadline:
                seen += b"".join(data for _, data in tap.take()[0])
                time.sleep(0.01)
            tap.close()
            runtime.kill("c1", int(signal.SIGKILL))
            exit_ = runtime.wait("c1", WAIT)
            assert exit_ is not None and exit_.exit_code == 137
            runtime.delete_task("c1")
        assert not list((root / "runtime").glob("init-*"))  # no FIFO: the terminal is all
    assert _log_lines(root / "log") == [("stdout", "up\r\n")] * 2
