"""docker exec and health checks through the Engine API: the real docker CLI, the SDK, HTTP."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import docker as docker_sdk
import pytest
from api_daemon import Daemon
from docker.errors import APIError
from docker_side import DockerCli, http
from test_docker_cli import until


def test_docker_exec_streams_and_exits_with_the_code(docker: DockerCli, tmp_path: Path) -> None:
    docker.ok("run", "-d", "--name", "dx", "-e", "A=one", "alpine", "sleep", "60")
    done = docker.run("exec", "dx", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")
    assert docker.run("exec", "dx", "true").returncode == 0
    script = 'echo "$A $B $(pwd)"'
    done = docker.run("exec", "-e", "B=two", "-w", str(tmp_path), "dx", "sh", "-c", script)
    assert (done.returncode, done.stdout) == (0, f"one two {tmp_path}\n")
    big = docker.ok("exec", "dx", "sh", "-c", "head -c 300000 /dev/zero | tr '\\0' x")
    assert big == "x" * 300000

    flag = tmp_path / "detached"
    assert docker.ok("exec", "-d", "dx", "sh", "-c", f"sleep 0.2; touch {flag}") == ""
    until(flag.exists, "the detached exec ran")

    missing = docker.run("exec", "dx", "no-such-command")
    assert missing.returncode == 127
    assert 'exec: "no-such-command": executable file not found in $PATH' in missing.stdout
    detached = docker.run("exec", "-d", "dx", "no-such-command")
    assert (detached.returncode, detached.stdout) == (1, "")
    assert detached.stderr.startswith("Error response from daemon: OCI runtime exec failed: ")
    docker.ok("rm", "-f", "dx")


def test_docker_exec_refusals(docker: DockerCli) -> None:
    cid = docker.ok("run", "-d", "--name", "dxr", "alpine", "sleep", "60").strip()
    docker.ok("pause", "dxr")
    paused = docker.run("exec", "dxr", "true")
    assert (paused.returncode, paused.stdout) == (1, "")
    assert paused.stderr == (
        "Error response from daemon: Container dxr is paused, unpause the container before exec\n"
    )
    docker.ok("unpause", "dxr")
    docker.ok("stop", "-t", "1", "dxr")
    stopped = docker.run("exec", "dxr", "true")
    assert (stopped.returncode, stopped.stdout) == (1, "")
    assert stopped.stderr == f"Error response from daemon: Container {cid} is not running\n"
    unknown = docker.run("exec", "dxnosuch", "true")
    assert unknown.returncode == 1
    assert unknown.stderr == "Error response from daemon: No such container: dxnosuch\n"
    docker.ok("start", "dxr")
    docker.ok("rm", "-f", "dxr")


def test_exec_run_through_the_sdk(sdk: docker_sdk.DockerClient) -> None:
    box = sdk.containers.run("alpine", ["sleep", "60"], name="sdkx", detach=True)
    result = box.exec_run(["sh", "-c", "echo $GREETING; exit 2"], environment={"GREETING": "hi"})
    assert (result.exit_code, result.output) == (2, b"hi\n")
    out, err = box.exec_run(["sh", "-c", "echo o; echo e >&2"], demux=True).output
    assert (out, err) == (b"o\n", b"e\n")
    only = box.exec_run(["sh", "-c", "echo o; echo e >&2"], stdout=False, demux=True)
    assert only.output == (None, b"e\n")
    streamed = box.exec_run(["sh", "-c", "echo a; echo b"], stream=True)
    assert b"".join(streamed.output) == b"a\nb\n"
    assert box.exec_run(["true"], detach=True).output == ""  # moby's empty answer, as text

    def exec_ids() -> object:
        box.reload()
        return box.attrs["ExecIDs"]

    until(lambda: exec_ids() is None, "the detached exec's end")
    running = sdk.api.exec_create("sdkx", ["sleep", "60"])["Id"]
    assert sdk.api.exec_start(running, detach=True) == ""
    assert exec_ids() == [running]
    assert sdk.api.exec_inspect(running)["Running"] is True

    api = sdk.api
    exec_id = api.exec_create("sdkx", ["sh", "-c", "exit 5"])["Id"]
    before = api.exec_inspect(exec_id)
    assert (before["Running"], before["ExitCode"], before["ContainerID"]) == (False, None, box.id)
    assert before["ProcessConfig"]["entrypoint"] == "sh"
    assert before["ProcessConfig"]["arguments"] == ["-c", "exit 5"]
    api.exec_resize(exec_id, height=24, width=80)
    assert api.exec_start(exec_id) == b""
    after = api.exec_inspect(exec_id)
    assert (after["Running"], after["ExitCode"], after["Pid"]) == (False, 5, 0)
    with pytest.raises(APIError) as again:
        api.exec_start(exec_id, detach=True)
    assert again.value.status_code == 409
    assert again.value.explanation == f"Error: Exec command {exec_id} has already run"
    # Refused before the hijack: an HTTP error, whether it asked for an upgrade or not.
    waiting = api.exec_create("sdkx", ["true"])["Id"]
    box.pause()
    for detach in (False, True):
        with pytest.raises(APIError) as paused:
            api.exec_start(waiting, detach=detach)
        assert paused.value.status_code == 409
        assert paused.value.explanation == (
            f"Container {box.id} is paused, unpause the container before exec"
        )
    box.unpause()
    assert api.exec_start(waiting) == b""
    assert api.exec_inspect(waiting)["ExitCode"] == 0
    with pytest.raises(APIError) as unknown:
        api.exec_inspect("nosuchexec")
    assert unknown.value.status_code == 404
    assert unknown.value.explanation == "No such exec instance: nosuchexec"
    box.remove(force=True)


def test_exec_requests_as_moby_answers_them(daemon: Daemon, docker: DockerCli) -> None:
    docker.ok("run", "-d", "--name", "hx", "alpine", "sleep", "60")
    with http(daemon) as h:
        for given, status, why in (
            ({"Cmd": []}, 400, "No exec command specified"),
            ({"Cmd": ["true"], "Tty": "yes"}, 400, "ExecOptions.Tty of type bool"),
            ({"Cmd": ["true"], "AttachStdin": 1}, 400, "ExecOptions.AttachStdin of type bool"),
            ({"Cmd": [1]}, 400, "number into Go struct field ExecOptions.Cmd of type string"),
            ({"Cmd": ["true"], "WorkingDir": "rel"}, 400, "needs to be an absolute path"),
            ({"Cmd": ["true"], "Detach": "yes"}, 400, "ExecOptions.Detach of type bool"),
        ):
            answer = h.post("/containers/hx/exec", json=given)
            assert answer.status_code == status, given
            assert why in answer.json()["message"], given
        cmd = ["sh", "-c", "echo a; echo b >&2"]
        # As moby's, a stream is sent only if attached (AttachStdout, AttachStderr).
        unattached = h.post("/containers/hx/exec", json={"Cmd": cmd}).json()["Id"]
        assert h.post(f"/exec/{unattached}/start", json={}).content == b""
        found = h.get(f"/exec/{unattached}/json").json()
        assert (found["OpenStdout"], found["OpenStderr"], found["ExitCode"]) == (False, False, 0)
        given = {"Cmd": cmd, "AttachStdout": True, "AttachStderr": True}
        created = h.post("/containers/hx/exec", json=given)
        assert created.status_code == 201
        exec_id = created.json()["Id"]
        assert h.post(f"/exec/{exec_id}/resize", params={"h": "x", "w": "1"}).status_code == 400
        assert h.post(f"/exec/{exec_id}/start", json={"Tty": 1}).status_code == 400
        # Without an upgrade, the same stream in a plain answer (moby's raw-stream).
        started = h.post(f"/exec/{exec_id}/start", json={})
        assert started.status_code == 200
        assert started.headers["content-type"] == "application/vnd.docker.raw-stream"
        assert started.content == b"\x01\0\0\0\0\0\0\x02a\n\x02\0\0\0\0\0\0\x02b\n"
        found = h.get(f"/exec/{exec_id}/json").json()
        assert (found["OpenStdout"], found["OpenStderr"], found["ExitCode"]) == (True, True, 0)
        assert h.post("/exec/nosuch/start", json={}).json() == {
            "message": "No such exec instance: nosuch"
        }
    docker.ok("rm", "-f", "hx")


def test_a_health_check_from_docker_run(docker: DockerCli) -> None:
    began = time.time() - 1
    cid = docker.ok(
        "run", "-d", "--name", "dh", "--health-cmd", "test -e /proc/self",
        "--health-interval", "100ms", "--health-retries", "1", "alpine", "sleep", "60",
    ).strip()  # fmt: skip
    docker.ok("run", "-d", "--name", "dnohealth", "alpine", "sleep", "60")
    config = json.loads(docker.ok("inspect", "-f", "{{json .Config.Healthcheck}}", "dh"))
    assert config == {
        "Test": ["CMD-SHELL", "test -e /proc/self"],
        "Interval": 100_000_000,
        "Retries": 1,
    }

    def health() -> str:
        return docker.ok("inspect", "-f", "{{.State.Health.Status}}", "dh").strip()

    until(lambda: health() == "healthy", "the container to become healthy")
    status = docker.ok("ps", "--filter", "name=^dh$", "--format", "{{.Status}}")
    assert status.startswith("Up ") and status.endswith(" (healthy)\n"), status
    assert docker.ok("ps", "--filter", "health=healthy", "--format", "{{.Names}}") == "dh\n"
    assert docker.ok("ps", "--filter", "health=unhealthy", "-q") == ""
    nohealth = docker.ok("ps", "--filter", "health=none", "--format", "{{.Names}}").split()
    assert "dnohealth" in nohealth and "dh" not in nohealth
    bad = docker.run("ps", "--filter", "health=fine")
    assert (bad.returncode, bad.stderr) == (
        1,
        "Error response from daemon: Unrecognised filter value for health: fine\n",
    )
    window = ("--since", str(began), "--until", str(time.time() + 0.5))
    actions = docker.ok(
        "events", *window, "--filter", f"container={cid}", "--filter", "event=health_status",
        "--format", "{{.Action}}",
    ).split("\n")  # fmt: skip
    assert actions[0] == "health_status: healthy", actions
    docker.ok("rm", "-f", "dh", "dnohealth")


def test_a_hijacked_start_reads_its_body_late_and_outlives_its_client(
    daemon: Daemon, docker: DockerCli
) -> None:
    docker.ok("run", "-d", "--name", "rx", "alpine", "sleep", "60")
    with http(daemon) as h:
        given = {"Cmd": ["sh", "-c", "echo first; sleep 1; echo second"], "AttachStdout": True}
        exec_id = h.post("/containers/rx/exec", json=given).json()["Id"]
        body = b'{"Detach": false, "Tty": false}'
        head = (
            f"POST /v1.51/exec/{exec_id}/start HTTP/1.1\r\nHost: docker\r\n"
            "Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        with socket.socket(socket.AF_UNIX) as raw:
            raw.settimeout(60)
            raw.connect(str(daemon.state_dir / "docker.sock"))
            raw.sendall(head.encode())
            raw.sendall(body[:5])  # the body comes apart from the head, and in pieces
            raw.sendall(body[5:])
            received = b""
            while b"first\n" not in received:
                chunk = raw.recv(4096)
                assert chunk, received
                received += chunk
        answer, _, stream = received.partition(b"\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 101 UPGRADED\r\n")
        assert b"content-type: application/vnd.docker.multiplexed-stream" in answer.lower()
        assert stream == b"\x01\0\0\0\0\0\0\x06first\n"
        # The client went; the exec runs to its end all the same.
        until(lambda: h.get(f"/exec/{exec_id}/json").json()["ExitCode"] == 0, "the exec's end")
    docker.ok("rm", "-f", "rx")


def test_an_attached_exec_and_a_followed_window_end_when_the_daemon_stops(
    tmp_path: Path, docker: DockerCli
) -> None:
    other = Daemon(tmp_path / "state")
    other.start()
    try:
        host = ("-H", f"unix://{other.state_dir / 'docker.sock'}")
        docker.ok(*host, "run", "-d", "--name", "sx", "alpine", "sh", "-c", "echo up; sleep 60")
        execing = docker.popen(*host, "exec", "sx", "sh", "-c", "echo in; exec sleep 60")
        following = docker.popen(*host, "logs", "-f", "--tail", "1", "sx")
        assert execing.stdout is not None and following.stdout is not None
        assert execing.stdout.readline() == "in\n"
        assert following.stdout.readline() == "up\n"
        assert other.stop() == 0, other.logs()
        execing.communicate(timeout=60)  # both streams ended with the daemon
        following.communicate(timeout=60)
    finally:
        assert other.stop() == 0, other.logs()
