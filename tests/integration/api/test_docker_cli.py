"""The real docker CLI drives a chartd daemon through its Engine API socket."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import re
import socket
import subprocess
import time
from pathlib import Path

import httpx
from api_daemon import Daemon
from docker_side import DockerCli, http


def state(docker: DockerCli, name: str) -> str:
    return docker.ok("inspect", "-f", "{{.State.Status}}", name).strip()


def until(check: object, what: str, timeout: float = 60.0) -> None:
    """Wait (generously) until ``check()`` is true."""
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_whole_lifecycle_through_the_docker_cli(docker: DockerCli) -> None:
    assert docker.ok("version", "-f", "{{.Server.Os}}") == "linux\n"
    began = time.time() - 1
    cid = docker.ok(
        "run", "-d", "--name", "dweb", "--label", "app=dweb", "-e", "GREETING=hello",
        "alpine:3", "sh", "-c", 'echo "$GREETING"; echo oops >&2; exec sleep 60',
    ).strip()  # fmt: skip
    assert re.fullmatch(r"[0-9a-f]{64}", cid)

    names = docker.ok("ps", "--format", "{{.Names}} {{.State}} {{.Image}}").splitlines()
    assert "dweb running alpine:3" in names
    assert cid[:12] in docker.ok("ps", "-q").split()
    filtered = docker.ok("ps", "-a", "--filter", "label=app=dweb", "--format", "{{.ID}}")
    assert filtered.split() == [cid[:12]]
    assert docker.ok("ps", "-a", "--filter", "label=app=other", "-q") == ""
    for pattern, found in (("^/dweb$", [cid[:12]]), ("^dweb$", [cid[:12]]), ("^dwe$", [])):
        assert docker.ok("ps", "--filter", f"name={pattern}", "-q").split() == found, pattern
    exited = docker.ok("ps", "-a", "--filter", "status=exited", "--format", "{{.Names}}")
    assert "dweb" not in exited.split()
    assert docker.ok("inspect", "-f", "{{.Name}} {{.Config.Image}} {{.State.Running}}", "dweb") == (
        "/dweb alpine:3 true\n"
    )

    until(lambda: docker.run("logs", "dweb").stdout == "hello\n", "the container's output")
    logs = docker.run("logs", "dweb")
    assert (logs.stdout, logs.stderr) == ("hello\n", "oops\n")
    stamped = docker.ok("logs", "-t", "dweb")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z hello\n", stamped)

    assert docker.ok("pause", "dweb") == "dweb\n"
    assert state(docker, "dweb") == "paused"
    assert "(Paused)" in docker.ok("ps", "--format", "{{.Status}}", "--filter", "name=dweb")
    assert docker.ok("unpause", "dweb") == "dweb\n"

    follower = docker.popen("logs", "-f", "dweb")
    assert docker.ok("stop", "-t", "1", "dweb") == "dweb\n"
    out, _ = follower.communicate(timeout=60)  # the follow ends with the container
    assert (follower.returncode, out) == (0, "hello\n")
    assert state(docker, "dweb") == "exited"
    assert docker.ok("wait", "dweb") == "143\n"  # 128 + SIGTERM
    assert docker.ok("restart", "-t", "1", "dweb") == "dweb\n"
    assert state(docker, "dweb") == "running"

    waiter = docker.popen("wait", "dweb")
    assert docker.ok("kill", "-s", "USR1", "dweb") == "dweb\n"
    out, _ = waiter.communicate(timeout=60)
    assert out == "138\n"  # 128 + SIGUSR1: sleep does not catch it

    assert docker.ok("rename", "dweb", "dweb2") == ""
    assert docker.ok("inspect", "-f", "{{.Name}}", cid) == "/dweb2\n"
    assert docker.ok("start", "dweb2") == "dweb2\n"
    assert docker.ok("rm", "-f", "dweb2") == "dweb2\n"
    assert cid[:12] not in docker.ok("ps", "-a", "-q").split()

    check_events(docker, cid, began)


def check_events(docker: DockerCli, cid: str, began: float) -> None:
    """What ``docker events`` tells of the lifecycle above, filtered to the container."""
    window = ("--since", str(began), "--until", str(time.time() + 0.5))
    actions = docker.ok(
        "events", *window, "--filter", f"container={cid}", "--filter", "type=container",
        "--format", "{{.Action}}",
    ).split()  # fmt: skip
    assert actions[:4] == ["create", "start", "pause", "unpause"]
    assert actions[-3:] == ["kill", "die", "destroy"]
    assert {"stop", "restart", "rename"} <= set(actions)
    lines = docker.ok(
        "events", *window, "--filter", f"container={cid}", "--filter", "event=die",
        "--format", "{{json .}}",
    ).splitlines()  # fmt: skip
    dies = [json.loads(line) for line in lines]
    assert [d["Actor"]["Attributes"]["exitCode"] for d in dies] == ["143", "138", "137"]
    assert {d["Actor"]["Attributes"]["image"] for d in dies} == {"alpine:3"}


def test_run_attached_prints_the_output_and_exits_with_the_code(docker: DockerCli) -> None:
    done = docker.run(
        "run", "--name", "dattached", "alpine", "sh", "-c", "echo out; echo err >&2; exit 3"
    )
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")
    assert state(docker, "dattached") == "exited"
    gone = docker.run("run", "--rm", "--name", "donce", "busybox", "sh", "-c", "echo bye; exit 4")
    assert (gone.returncode, gone.stdout, gone.stderr) == (4, "bye\n", "")
    assert "donce" not in docker.ok("ps", "-a", "--format", "{{.Names}}").split()
    assert docker.run("run", "--rm", "alpine", "true").returncode == 0


def test_docker_clis_own_run_cases(docker: DockerCli) -> None:
    """docker-cli's e2e TestRunAttach and TestRunInvalidEntrypointWithAutoremove."""
    for stream in ("stdin", "stdout", "stderr"):
        # Under a terminal, as docker's test runs it; stdin is taken and dropped.
        leader, follower = pty.openpty()
        try:
            run = subprocess.Popen(
                [docker.command, "run", "-a", stream, "--rm", "alpine", "sh", "-c",
                 "sleep 1 && exit 7"],
                env=docker.env, stdin=follower, stdout=follower, stderr=follower,
            )  # fmt: skip
            os.write(leader, b"typed into the terminal\n")
            assert run.wait(timeout=60) == 7, stream
        finally:
            os.close(follower)
            os.close(leader)
    invalid = docker.run("run", "--rm", "alpine", "invalidcommand")
    assert invalid.returncode == 127
    assert 'exec: "invalidcommand": executable file not found in $PATH' in invalid.stderr


def test_refusals_carry_dockers_messages_and_exit_codes(docker: DockerCli) -> None:
    docker.ok("run", "-d", "--name", "drefused", "alpine", "sleep", "60")
    docker.ok("pause", "drefused")
    start = docker.run("start", "drefused")
    assert (start.returncode, start.stdout) == (1, "")
    assert start.stderr == (
        "Error response from daemon: cannot start a paused container, try unpause instead\n"
        "Error: failed to start containers: drefused\n"
    )
    docker.ok("unpause", "drefused")
    rm = docker.run("rm", "drefused")
    assert (rm.returncode, rm.stdout) == (1, "")
    assert rm.stderr == (
        'Error response from daemon: cannot remove container "drefused": container is '
        "running: stop the container before removing or force remove\n"
    )
    for verb in ("start", "stop", "inspect", "logs", "rm"):
        unknown = docker.run("container", verb, "dnosuch")
        assert unknown.returncode == 1, verb
        assert "Error response from daemon: No such container: dnosuch" in unknown.stderr, verb
    # moby's router wraps every kill error with the container as typed, the signal
    # checked first; the container runs on.
    cid = docker.ok("inspect", "--format", "{{.Id}}", "drefused").strip()
    for args, shown, cause in (
        (["dnosuch"], "dnosuch", "No such container: dnosuch"),
        (["-s", "SIGNOPE", "dnosuch"], "dnosuch", "invalid signal: SIGNOPE"),
        (["-s", "0", cid[:12]], cid[:12], "invalid signal: 0"),
        (["-s", "RTMIN+16", "drefused"], "drefused", "invalid signal: RTMIN+16"),
    ):
        kill = docker.run("kill", *args)
        assert (kill.returncode, kill.stdout) == (1, ""), args
        assert (
            kill.stderr == f"Error response from daemon: cannot kill container: {shown}: {cause}\n"
        )
    assert state(docker, "drefused") == "running"
    # Neither a container nor a valid image reference: docker's own answer (docker-cli's
    # e2e TestInspectInvalidReference).
    missing = docker.run("inspect", "FooBar")
    assert (missing.returncode, missing.stdout, missing.stderr) == (
        1,
        "[]\n",
        "Error: No such object: FooBar\n",
    )
    assert docker.ok("inspect", "--format", "{{.RepoTags}}", "alpine") == "[alpine:latest]\n"
    listed = docker.ok("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").splitlines()
    alpine = docker.ok("image", "inspect", "--format", "{{.Id}}", "docker.io/library/alpine:latest")
    assert f"alpine:latest {alpine.strip()[len('sha256:') :][:12]}" in listed
    # docker info counts the images docker images lists.
    assert docker.ok("info", "--format", "{{.Images}}") == f"{len(listed)}\n"
    pull = docker.run("pull", "alpine")
    assert pull.returncode == 1
    assert "Error response from daemon: chartd has no registry" in pull.stderr
    assert docker.ok("rm", "-f", "drefused") == "drefused\n"


def test_the_engine_api_socket_is_private(daemon: Daemon, docker: DockerCli) -> None:
    assert docker.socket.stat().st_mode & 0o777 == 0o600


def test_the_engine_api_on_loopback_tcp(tmp_path: Path, docker: DockerCli) -> None:
    with socket.socket() as probe:  # a free port (the daemon binds it moments later)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    other = Daemon(tmp_path / "state")
    other.start("--docker-socket", f"tcp://127.0.0.1:{port}", "--insecure")
    try:
        host = ("-H", f"tcp://127.0.0.1:{port}")
        assert docker.ok(*host, "run", "--rm", "alpine", "echo", "over tcp") == "over tcp\n"
        assert not (other.state_dir / "docker.sock").exists()
        # A follower still open when the daemon stops: its stream is ended, the daemon exits.
        with httpx.stream("GET", f"http://127.0.0.1:{port}/events", timeout=60) as events:
            assert events.status_code == 200
            assert other.stop() == 0, other.logs()
            with contextlib.suppress(httpx.RemoteProtocolError):
                assert b"".join(events.iter_bytes()) == b""
    finally:
        assert other.stop() == 0, other.logs()
    assert f"--insecure on tcp://127.0.0.1:{port} gives every local user" in other.logs()


def test_restart_with_a_signal_and_bad_signals_as_moby(daemon: Daemon, docker: DockerCli) -> None:
    # The shell ignores SIGTERM (its stop signal): only the SIGKILL asked for ends it.
    script = 'trap "" TERM; echo up; while :; do sleep 1; done'
    cid = docker.ok("run", "-d", "--name", "dsig", "alpine", "sh", "-c", script).strip()
    began = time.time() - 1

    def started() -> tuple[str, str]:
        return tuple(docker.ok("inspect", "-f", "{{.State.Pid}} {{.State.StartedAt}}", cid).split())

    pid, at = started()
    assert docker.ok("restart", "-s", "SIGKILL", "dsig") == "dsig\n"
    again, at_again = started()
    assert state(docker, "dsig") == "running"
    assert again != pid and at_again != at
    window = ("--since", str(began), "--until", str(time.time() + 0.5))
    sent = docker.ok(
        "events", *window, "--filter", f"container={cid}", "--filter", "event=kill",
        "--format", "{{.Actor.Attributes.signal}}",
    ).split()  # fmt: skip
    assert sent == ["9"]  # the signal asked for, not the stop signal then the timeout's kill

    # moby's messages: the kill's router wrapper, stop's and restart's daemon wrappers;
    # nothing is sent, and the container runs on.
    for verb, refusal in (
        ("kill", "cannot kill container: dsig: invalid signal: NOPE"),
        ("stop", "cannot stop container: dsig: invalid signal: NOPE"),
        ("restart", "Cannot restart container dsig: invalid signal: NOPE"),
    ):
        done = docker.run(verb, "-s", "NOPE", "dsig")
        assert (done.returncode, done.stdout) == (1, ""), verb
        assert done.stderr == f"Error response from daemon: {refusal}\n", verb
    assert started() == (again, at_again)
    with http(daemon) as h:
        for verb in ("kill", "stop", "restart"):
            refused = h.post(f"/containers/dsig/{verb}?signal=NOPE")
            assert refused.status_code == 400, verb  # moby's stop and restart: 500
        # A stopped container's signal is never read: stop is NotModified, restart starts it.
        docker.ok("kill", "dsig")
        assert h.post("/containers/dsig/stop?signal=NOPE").status_code == 304
        assert h.post("/containers/dsig/restart?signal=NOPE").status_code == 204
    assert state(docker, "dsig") == "running"
    docker.ok("rm", "-f", "dsig")
