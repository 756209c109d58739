"""``docker exec -i``: the client's stdin reaches the exec's process; its half-close is EOF.

The raw one is moby's TestExecWithCloseStdin (integration/container/exec_test.go):
an exec that reads its stdin to the end, and a client that half-closes at once.
"""

from __future__ import annotations

import socket
import subprocess

import httpx
import pytest
from api_daemon import Daemon
from docker_side import DockerCli, demuxed, hijack_exec_start, http


@pytest.fixture(scope="module")
def h(daemon: Daemon) -> httpx.Client:
    return http(daemon)


def test_docker_exec_i_copies_stdin_to_the_process(docker: DockerCli) -> None:
    docker.ok("run", "-d", "--name", "xi", "alpine", "sleep", "60")
    done = subprocess.run(
        [docker.command, "exec", "-i", "xi", "cat"],
        env=docker.env, input=b"hi\n", capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stdout, done.stderr) == (0, b"hi\n", b"")
    lines = b"".join(b"line %d\n" % i for i in range(100_000))
    script = "wc -c; echo closeIO; exit 4"
    done = subprocess.run(
        [docker.command, "exec", "-i", "xi", "sh", "-c", script],
        env=docker.env, input=lines, capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stdout.split()) == (4, [b"%d" % len(lines), b"closeIO"])
    # No stdin at all: EOF at once.
    done = subprocess.run(
        [docker.command, "exec", "-i", "xi", "cat"],
        env=docker.env, stdin=subprocess.DEVNULL, capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (0, b"")
    docker.ok("rm", "-f", "xi")


def test_exec_with_close_stdin(daemon: Daemon, docker: DockerCli, h: httpx.Client) -> None:
    """moby's TestExecWithCloseStdin: the half-close right after the start closes the stdin."""
    docker.ok("run", "-d", "--name", "xclose", "alpine", "sleep", "60")
    given = {
        "AttachStdin": True,
        "AttachStdout": True,
        "Cmd": ["sh", "-c", "cat && echo closeIO"],
    }
    exec_id = h.post("/containers/xclose/exec", json=given).json()["Id"]
    found = h.get(f"/exec/{exec_id}/json").json()
    assert (found["OpenStdin"], found["OpenStdout"], found["OpenStderr"]) == (True, True, False)
    raw, _ = hijack_exec_start(daemon, exec_id)
    with raw:
        raw.shutdown(socket.SHUT_WR)
        assert demuxed(raw) == b"closeIO\n"
    assert h.get(f"/exec/{exec_id}/json").json()["ExitCode"] == 0
    # What comes before the half-close is read first.
    exec_id = h.post("/containers/xclose/exec", json=given).json()["Id"]
    raw, _ = hijack_exec_start(daemon, exec_id)
    with raw:
        raw.sendall(b"one\ntwo\n")
        raw.shutdown(socket.SHUT_WR)
        assert demuxed(raw) == b"one\ntwo\ncloseIO\n"
    # A start without a hijack has no stdin to read: the process reads EOF at once.
    exec_id = h.post("/containers/xclose/exec", json=given).json()["Id"]
    started = h.post(f"/exec/{exec_id}/start", json={})
    assert started.content == b"\x01\0\0\0\0\0\0\x08closeIO\n"
    # Detached, it reads no stdin either (moby attaches none to a detached exec).
    exec_id = h.post("/containers/xclose/exec", json=given).json()["Id"]
    assert h.post(f"/exec/{exec_id}/start", json={"Detach": True}).status_code == 200
    docker.ok("rm", "-f", "xclose")


def test_a_process_that_closes_its_stdin_drops_the_rest(daemon: Daemon, h: httpx.Client) -> None:
    """The exec's process shuts its stdin and goes on: what the client sends is dropped."""
    h.post("/containers/create", params={"name": "xshut"}, json={"Cmd": ["sleep", "60"]})
    assert h.post("/containers/xshut/start").status_code == 204
    given = {
        "AttachStdin": True,
        "AttachStdout": True,
        "Cmd": ["sh", "-c", "exec 0<&-; sleep 1; echo on"],
    }
    exec_id = h.post("/containers/xshut/exec", json=given).json()["Id"]
    raw, _ = hijack_exec_start(daemon, exec_id)
    with raw:
        raw.sendall(b"x" * 200_000)
        raw.shutdown(socket.SHUT_WR)
        assert demuxed(raw) == b"on\n"
    assert h.get(f"/exec/{exec_id}/json").json()["ExitCode"] == 0
    assert h.delete("/containers/xshut", params={"force": "1"}).status_code == 204
