"""``chartd exec`` against a real daemon: output, exit codes, refusals, ExecIDs and events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grpc
import pytest
from api_daemon import Daemon, alive, eventually, inspect, ok

from engine.api.chartd.v1 import engine_pb2, exec_pb2


def sequence(daemon: Daemon) -> int:
    with daemon.client() as c:
        return c.engine.GetSequence(engine_pb2.GetSequenceRequest()).sequence


def events(daemon: Daemon, name: str, since: int) -> list[dict[str, Any]]:
    out = ok(daemon, "events", "--after", str(since), "--until", "0s", "--format", "json")
    found = [json.loads(line) for line in out.splitlines()]
    return [e for e in found if e["Actor"]["Attributes"]["name"] == name]


def test_exec_prints_both_streams_and_exits_with_the_code(daemon: Daemon) -> None:
    ok(daemon, "run", "-d", "--name", "ex-code", "sleep", "60")
    done = daemon.cli("exec", "ex-code", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")
    assert daemon.cli("exec", "ex-code", "true").returncode == 0
    ok(daemon, "rm", "-f", "ex-code")


def test_exec_i_and_t_over_the_api_read_no_stdin_and_have_no_terminal(daemon: Daemon) -> None:
    # The gRPC API streams no stdin and has no terminal: -i reads EOF, -t is accepted.
    ok(daemon, "run", "-d", "--name", "ex-it", "sleep", "60")
    done = daemon.cli("exec", "-i", "-t", "ex-it", "sh", "-c", "cat; tty; echo done")
    assert (done.returncode, done.stdout) == (0, "not a tty\ndone\n")
    ok(daemon, "rm", "-f", "ex-it")


def test_exec_has_the_containers_environment_and_working_directory(
    daemon: Daemon, tmp_path: Path
) -> None:
    ok(daemon, "run", "-d", "--name", "ex-env", "-e", "A=one", "-w", str(tmp_path), "sleep", "60")
    script = 'echo "$A $B"; pwd'
    done = daemon.cli("exec", "-e", "B=two", "ex-env", "sh", "-c", script)
    assert (done.returncode, done.stdout) == (0, f"one two\n{tmp_path}\n")
    done = daemon.cli("exec", "-e", "A=over", "-w", "/", "ex-env", "sh", "-c", script)
    assert done.stdout == "over \n/\n"
    ok(daemon, "rm", "-f", "ex-env")


def test_a_command_that_cannot_run_is_126_or_127(daemon: Daemon, tmp_path: Path) -> None:
    ok(daemon, "run", "-d", "--name", "ex-bad", "sleep", "60")
    prefix = "OCI runtime exec failed: exec failed: unable to start container process: "
    done = daemon.cli("exec", "ex-bad", "no-such-command")
    assert done.returncode == 127
    # (\r\n as docker's daemon writes it; the text mode of the capture reads \n)
    assert done.stdout == (
        f'{prefix}exec: "no-such-command": executable file not found in $PATH: unknown\n'
    )
    plain = tmp_path / "plain"
    plain.write_text("not a program\n")
    done = daemon.cli("exec", "ex-bad", str(plain))
    assert done.returncode == 126 and "permission denied" in done.stdout
    done = daemon.cli("exec", "-w", str(tmp_path / "nowhere"), "ex-bad", "true")
    assert done.returncode == 127 and "chdir to cwd" in done.stdout
    # Detached, the failure is the daemon's answer: on stderr, exit status 1.
    done = daemon.cli("exec", "-d", "ex-bad", "no-such-command")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        f'Error response from daemon: {prefix}exec: "no-such-command": '
        "executable file not found in $PATH: unknown\n"
    )
    ok(daemon, "rm", "-f", "ex-bad")


def test_refusals_are_moby_s(daemon: Daemon) -> None:
    cid = ok(daemon, "create", "--name", "ex-created", "sleep", "60").strip()
    done = daemon.cli("exec", "ex-created", "true")
    assert (done.returncode, done.stderr) == (
        1,
        f"Error response from daemon: Container {cid} is not running\n",
    )
    ok(daemon, "start", "ex-created")
    ok(daemon, "pause", "ex-created")
    for ref in ("ex-created", cid[:12]):
        done = daemon.cli("exec", ref, "true")
        assert (done.returncode, done.stderr) == (
            1,
            f"Error response from daemon: Container {ref} is paused, "
            "unpause the container before exec\n",
        )
    ok(daemon, "unpause", "ex-created")
    ok(daemon, "stop", "-t", "0", "ex-created")
    assert daemon.cli("exec", "ex-created", "true").returncode == 1
    done = daemon.cli("exec", "ex-nobody", "true")
    assert (done.returncode, done.stderr) == (
        1,
        "Error response from daemon: No such container: ex-nobody\n",
    )
    ok(daemon, "rm", "-f", "ex-created")


def test_a_restarting_container_refuses_exec(daemon: Daemon) -> None:
    cid = ok(daemon, "run", "-d", "--name", "ex-loop", "--restart", "always", "false").strip()
    refusal = (
        f"Error response from daemon: Container {cid} is restarting, "
        "wait until the container is running\n"
    )

    def refused_while_restarting() -> bool:
        # The backoff grows with each exit: soon the container is restarting most of the time.
        return daemon.cli("exec", "ex-loop", "true").stderr == refusal

    eventually(refused_while_restarting, "exec refused while restarting", timeout=60)
    ok(daemon, "rm", "-f", "ex-loop")


def test_detached_exec_exec_ids_events_and_the_end_with_the_container(
    daemon: Daemon, tmp_path: Path
) -> None:
    ok(daemon, "run", "-d", "--name", "ex-bg", "sleep", "60")
    since = sequence(daemon)
    flag = tmp_path / "done"
    done = daemon.cli("exec", "-d", "ex-bg", "sh", "-c", f"touch {flag}")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    eventually(flag.exists, "the detached exec ran")
    with daemon.client() as c:
        created = c.exec.CreateExec(
            exec_pb2.CreateExecRequest(container="ex-bg", cmd=["sleep", "99"])
        )
        for _ in c.exec.StartExec(exec_pb2.StartExecRequest(exec_id=created.id, detach=True)):
            pass
        found = c.exec.InspectExec(exec_pb2.InspectExecRequest(exec_id=created.id))
    assert found.running and found.pid > 0 and not found.HasField("exit_code")
    assert (found.entrypoint, list(found.arguments)) == ("sleep", ["99"])
    state = inspect(daemon, "ex-bg")
    assert state["ExecIDs"] == [created.id]
    main = state["State"]["Pid"]
    # In the container's cgroup (with the cgroup freezer, frozen with it).
    assert Path(f"/proc/{found.pid}/cgroup").read_text() == Path(f"/proc/{main}/cgroup").read_text()

    ok(daemon, "kill", "ex-bg")
    eventually(lambda: not alive(found.pid), "the exec ended with its container")
    assert inspect(daemon, "ex-bg")["ExecIDs"] is None
    actions = [e["Action"] for e in events(daemon, "ex-bg", since)]
    assert actions.count(f"exec_create: sh -c touch {flag}") == 1
    assert actions.count(f"exec_start: sh -c touch {flag}") == 1
    assert actions.count("exec_create: sleep 99") == 1
    dies = [e for e in events(daemon, "ex-bg", since) if e["Action"] == "exec_die"]
    codes = {d["Actor"]["Attributes"]["execID"]: d["Actor"]["Attributes"]["exitCode"] for d in dies}
    assert codes[created.id] == "137"
    assert "0" in codes.values()
    ok(daemon, "rm", "-f", "ex-bg")


def test_exec_inspect_after_the_end_and_a_second_start(daemon: Daemon) -> None:
    ok(daemon, "run", "-d", "--name", "ex-once", "sleep", "60")
    with daemon.client() as c:
        created = c.exec.CreateExec(
            exec_pb2.CreateExecRequest(container="ex-once", cmd=["sh", "-c", "exit 4"])
        )
        out = list(c.exec.StartExec(exec_pb2.StartExecRequest(exec_id=created.id)))
        assert out[-1].exit_code == 4
        found = c.exec.InspectExec(exec_pb2.InspectExecRequest(exec_id=created.id))
        assert not found.running and found.exit_code == 4
        with pytest.raises(grpc.RpcError, match=f"Exec command {created.id} has already run"):
            list(c.exec.StartExec(exec_pb2.StartExecRequest(exec_id=created.id)))
        with pytest.raises(grpc.RpcError, match="No such exec instance: nope"):
            c.exec.InspectExec(exec_pb2.InspectExecRequest(exec_id="nope"))
    ok(daemon, "rm", "-f", "ex-once")
