"""``docker run -t``: the container's process has a pseudo-terminal; its output is raw.

As moby's: the process's stdin, stdout and stderr are the terminal (its
controlling one), the log holds one stream (stdout) with the terminal's
``\\r\\n``, attach and logs stream it unframed (``raw-stream``), ``POST
/containers/{id}/resize`` sets its window (the ``resize`` event), and with
``-i`` the client's stdin goes to the terminal.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import socket
import struct
import subprocess
import termios
import time

import httpx
import pytest
from api_daemon import Daemon
from docker_side import DockerCli, hijack_attach, hijack_exec_start, http
from test_docker_cli import until

RAW = "application/vnd.docker.raw-stream"


@pytest.fixture(scope="module")
def h(daemon: Daemon) -> httpx.Client:
    return http(daemon)


def _run(docker: DockerCli, *args: str) -> subprocess.CompletedProcess[bytes]:
    """``docker ARGS...`` with its output as bytes (text mode would turn ``\r\n`` into ``\n``)."""
    return subprocess.run(
        [docker.command, *args], env=docker.env, capture_output=True, timeout=60, check=False
    )


def _out(docker: DockerCli, *args: str) -> bytes:
    """``docker ARGS...``, which must succeed; its stdout as bytes."""
    done = _run(docker, *args)
    assert done.returncode == 0, (args, done.stderr)
    return done.stdout


def _all(raw: socket.socket) -> bytes:
    data = b""
    while chunk := raw.recv(65536):
        data += chunk
    return data


def test_docker_run_t_gives_the_process_a_terminal(docker: DockerCli) -> None:
    done = _run(docker, "run", "-t", "--rm", "alpine", "sh", "-c", "tty; echo hi; exit 3")
    assert done.returncode == 3, done.stderr
    assert re.fullmatch(rb"/dev/pts/\d+\r\nhi\r\n", done.stdout), done.stdout
    assert done.stderr == b""
    # One terminal: what the process writes to its stderr comes out with the rest.
    script = "echo out; echo err >&2; exec 3</dev/tty && echo controlling"
    done = _run(docker, "run", "-t", "--rm", "alpine", "sh", "-c", script)
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        b"out\r\nerr\r\ncontrolling\r\n",
        b"",
    )


def test_a_tty_containers_logs_and_attach_are_raw(docker: DockerCli, h: httpx.Client) -> None:
    docker.ok("create", "-t", "--name", "tl", "alpine", "sh", "-c", "echo one; echo two >&2")
    assert docker.ok("inspect", "-f", "{{.Config.Tty}}", "tl") == "true\n"
    assert _out(docker, "start", "-a", "tl") == b"one\r\ntwo\r\n"
    logs = _run(docker, "logs", "tl")
    assert (logs.stdout, logs.stderr) == (b"one\r\ntwo\r\n", b"")
    assert _out(docker, "logs", "--tail", "1", "tl") == b"two\r\n"
    for query in ("stdout=1&stderr=1", "stdout=1&stderr=1&tail=1"):
        answer = h.get(f"/containers/tl/logs?{query}")
        assert answer.headers["content-type"] == RAW
        assert answer.content.endswith(b"two\r\n") and b"\x01\0\0\0" not in answer.content
    replayed = h.post("/containers/tl/attach?logs=1&stdout=1&stderr=1")
    assert replayed.headers["content-type"] == RAW
    assert replayed.content == b"one\r\ntwo\r\n"
    # A container without a terminal stays multiplexed.
    docker.ok("create", "--name", "tnl", "alpine", "echo", "plain")
    assert docker.ok("start", "-a", "tnl") == "plain\n"
    framed = h.get("/containers/tnl/logs?stdout=1")
    assert framed.headers["content-type"] == "application/vnd.docker.multiplexed-stream"
    assert framed.content == b"\x01\0\0\0\0\0\0\x06plain\n"
    docker.ok("rm", "tl", "tnl")


def test_resize_sets_the_window_of_a_running_tty(docker: DockerCli, h: httpx.Client) -> None:
    began = time.time() - 1
    script = 'trap "stty size" WINCH; echo ready; while :; do sleep 0.05; done'
    cid = docker.ok("run", "-d", "-t", "--name", "tr", "alpine", "sh", "-c", script).strip()
    until(lambda: "ready" in docker.ok("logs", "tr"), "the trap to be set")
    assert h.post("/containers/tr/resize", params={"h": "30", "w": "100"}).status_code == 200
    until(lambda: b"30 100\r\n" in _out(docker, "logs", "tr"), "the process to see its window")
    docker.ok("run", "-d", "--name", "trplain", "alpine", "sleep", "60")
    # No terminal: nothing to resize, and moby says so with a 200 too.
    assert h.post("/containers/trplain/resize", params={"h": "1", "w": "1"}).status_code == 200
    window = ("--since", str(began), "--until", str(time.time() + 0.5))
    size = "{{.Actor.Attributes.height}}x{{.Actor.Attributes.width}}"
    shown = docker.ok(
        "events", *window, "--filter", "event=resize",
        "--format", "{{.Actor.Attributes.name}} " + size,
    )  # fmt: skip
    assert shown == "tr 30x100\ntrplain 1x1\n"
    docker.ok("rm", "-f", "trplain")
    docker.ok("kill", "tr")
    refused = h.post("/containers/tr/resize", params={"h": "30", "w": "100"})
    assert (refused.status_code, refused.json()) == (
        409,
        {"message": f"container {cid} is not running"},
    )
    docker.ok("rm", "tr")


def test_a_tty_container_whose_process_is_killed(docker: DockerCli) -> None:
    docker.ok("run", "-d", "-t", "--name", "tk", "alpine", "sh", "-c", "echo up; exec sleep 600")
    for expected in (b"up\r\n", b"up\r\n" * 2):  # started again: a terminal of its own
        until(lambda: _out(docker, "logs", "tk") == expected, "its output")  # noqa: B023
        docker.ok("kill", "tk")
        assert docker.ok("wait", "tk") == "137\n"
        if len(expected) == 4:
            docker.ok("start", "tk")
    assert _out(docker, "logs", "tk") == b"up\r\n" * 2
    docker.ok("rm", "tk")
    # Attached (docker run -t): killed by another client, the CLI ends with its code.
    attached = subprocess.Popen(
        [docker.command, "run", "-t", "--name", "tka", "alpine", "sh", "-c", "echo up; sleep 600"],
        env=docker.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert attached.stdout is not None
        assert attached.stdout.readline() == b"up\r\n"
        docker.ok("kill", "tka")
        assert attached.wait(timeout=60) == 137
    finally:
        attached.kill()
        attached.wait()
    docker.ok("rm", "tka")


def test_with_i_and_t_the_stdin_goes_to_the_terminal(daemon: Daemon, h: httpx.Client) -> None:
    body = {
        "Cmd": ["sh", "-c", 'read line; echo "got $line"'],
        "Tty": True,
        "OpenStdin": True,
        "StdinOnce": True,
        "AttachStdin": True,
    }
    assert h.post("/containers/create", params={"name": "tit"}, json=body).status_code == 201
    config = h.get("/containers/tit/json").json()["Config"]
    assert (config["Tty"], config["OpenStdin"]) == (True, True)
    with hijack_attach(daemon, "tit", "stdin=1&stdout=1&stderr=1&stream=1") as raw:
        assert h.post("/containers/tit/start").status_code == 204
        raw.sendall(b"hello\n")
        # The terminal echoes the line as it comes, then the process answers: unframed.
        assert _all(raw) == b"hello\r\ngot hello\r\n"
    assert h.post("/containers/tit/wait").json()["StatusCode"] == 0
    logs = h.get("/containers/tit/logs?stdout=1&stderr=1")
    assert logs.content == b"hello\r\ngot hello\r\n"
    assert h.delete("/containers/tit").status_code == 204


def test_the_json_file_of_a_tty_container_has_one_stream(daemon: Daemon, docker: DockerCli) -> None:
    cid = docker.ok("run", "-d", "-t", "--name", "tj", "alpine", "sh", "-c", "echo a; echo b >&2")
    cid = cid.strip()
    assert docker.ok("wait", "tj") == "0\n"
    path = docker.ok("inspect", "-f", "{{.LogPath}}", "tj").strip()
    with open(path) as log:
        entries = [json.loads(line) for line in log]
    assert [(e["stream"], e["log"]) for e in entries] == [("stdout", "a\r\n"), ("stdout", "b\r\n")]
    assert cid in path
    docker.ok("rm", "tj")


def test_docker_exec_t_gives_the_exec_a_terminal(docker: DockerCli) -> None:
    """moby's TestExec: an exec in a TTY container; with -t, one of its own."""
    docker.ok("run", "-d", "-t", "--name", "tx", "alpine", "sleep", "60")
    plain = _run(docker, "exec", "tx", "sh", "-c", "echo out; echo err >&2; tty; exit 2")
    assert (plain.returncode, plain.stdout, plain.stderr) == (2, b"out\nnot a tty\n", b"err\n")
    done = _run(docker, "exec", "-t", "tx", "sh", "-c", "tty; echo err >&2; exit 3")
    assert done.returncode == 3, done.stderr
    assert re.fullmatch(rb"/dev/pts/\d+\r\nerr\r\n", done.stdout), done.stdout
    docker.ok("rm", "-f", "tx")


def test_an_exec_terminal_is_resized_and_read_raw(
    daemon: Daemon, docker: DockerCli, h: httpx.Client
) -> None:
    docker.ok("run", "-d", "--name", "txr", "alpine", "sleep", "60")
    given = {
        "Tty": True,
        "AttachStdin": True,
        "AttachStdout": True,
        "AttachStderr": True,
        "Cmd": ["sh", "-c", 'read line; echo "got $line"; stty size'],
    }
    exec_id = h.post("/containers/txr/exec", json=given).json()["Id"]
    raw, head = hijack_exec_start(daemon, exec_id, tty=True)
    assert f"content-type: {RAW}".encode() in head, head
    with raw:
        assert h.get(f"/exec/{exec_id}/json").json()["ProcessConfig"]["tty"] is True
        resized = h.post(f"/exec/{exec_id}/resize", params={"h": "20", "w": "60"})
        assert resized.status_code == 200
        raw.sendall(b"x\n")
        assert _all(raw) == b"x\r\ngot x\r\n20 60\r\n"
    assert h.get(f"/exec/{exec_id}/json").json()["ExitCode"] == 0
    # Ended: nothing to resize, as before it started.
    assert h.post(f"/exec/{exec_id}/resize", params={"h": "1", "w": "1"}).status_code == 200
    docker.ok("rm", "-f", "txr")


def _in_terminal(
    docker: DockerCli, args: list[str], prompt: bytes, line: bytes
) -> tuple[int, bytes]:
    """``docker ARGS...`` on a terminal of 33 rows and 111 columns, as a user at one:
    it types ``line`` once ``prompt`` shows; its exit code and all it showed."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 111, 0, 0))
    cli = subprocess.Popen(
        [docker.command, *args], env=docker.env, stdin=slave, stdout=slave, stderr=slave,
        start_new_session=True,
    )  # fmt: skip
    os.close(slave)
    shown, typed = b"", False
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if select.select([master], [], [], 0.1)[0]:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the CLI exited, its terminal is gone
                    break
                shown += chunk
            if prompt in shown and not typed:
                os.write(master, line)
                typed = True
        return cli.wait(timeout=60), shown
    finally:
        cli.kill()
        cli.wait()
        os.close(master)


def test_docker_run_it_and_exec_it_at_a_terminal(docker: DockerCli) -> None:
    """What a user at a terminal sees: the window from the start (ConsoleSize), what is typed
    going to the process through its terminal, and its exit code."""
    script = 'stty size; read x; echo "got $x"; exit 5'
    code, shown = _in_terminal(
        docker, ["run", "-it", "--rm", "alpine", "sh", "-c", script], b"33 111", b"hello\r"
    )
    assert (code, shown) == (5, b"33 111\r\nhello\r\ngot hello\r\n")
    docker.ok("run", "-d", "--name", "tix", "alpine", "sleep", "60")
    code, shown = _in_terminal(
        docker, ["exec", "-it", "tix", "sh", "-c", script], b"33 111", b"there\r"
    )
    assert (code, shown) == (5, b"33 111\r\nthere\r\ngot there\r\n")
    docker.ok("rm", "-f", "tix")


def test_ctrl_p_ctrl_q_detaches_docker_run_it(docker: DockerCli, h: httpx.Client) -> None:
    """docker's CLI reads its detach keys itself: it goes, the container runs on."""
    args = ["run", "-it", "--name", "tdk", "alpine", "sh", "-c", "echo up; cat"]
    assert _in_terminal(docker, args, b"up", b"\x10\x11") == (0, b"up\r\n")
    assert h.get("/containers/tdk/json").json()["State"]["Running"] is True
    docker.ok("rm", "-f", "tdk")


def test_the_console_size_is_the_first_window(docker: DockerCli, h: httpx.Client) -> None:
    body = {"Cmd": ["stty", "size"], "Tty": True, "HostConfig": {"ConsoleSize": [20, 50]}}
    assert h.post("/containers/create", params={"name": "tcs"}, json=body).status_code == 201
    assert h.get("/containers/tcs/json").json()["HostConfig"]["ConsoleSize"] == [20, 50]
    assert _out(docker, "start", "-a", "tcs") == b"20 50\r\n"
    for size in ([20], [-1, 5], "20x50", [True, 1]):
        bad = {**body, "HostConfig": {"ConsoleSize": size}}
        answer = h.post("/containers/create", json=bad)
        assert answer.status_code == 400, size
        assert answer.json()["message"].startswith("invalid ConsoleSize: "), size
    docker.ok("rm", "tcs")


def _until_seen(raw: socket.socket, wanted: bytes) -> bytes:
    """What comes on ``raw`` until ``wanted`` has."""
    seen = b""
    while wanted not in seen:
        chunk = raw.recv(65536)
        assert chunk, seen
        seen += chunk
    return seen


def test_the_end_of_a_ttys_stdin_ends_the_attach_not_the_stdin(
    daemon: Daemon, h: httpx.Client
) -> None:
    """moby's attach: StdinOnce closes the process's stdin only without a TTY; else the
    client's half-close ends the attach's output, and the process reads on."""
    body = {
        "Cmd": ["sh", "-c", 'read a; echo "a=$a"; read b; echo "b=$b"'],
        "Tty": True,
        "OpenStdin": True,
        "StdinOnce": True,
    }
    assert h.post("/containers/create", params={"name": "tend"}, json=body).status_code == 201
    with hijack_attach(daemon, "tend", "stdin=1&stdout=1&stream=1") as raw:
        assert h.post("/containers/tend/start").status_code == 204
        raw.sendall(b"one\n")
        assert _until_seen(raw, b"a=one\r\n") == b"one\r\na=one\r\n"
        raw.shutdown(socket.SHUT_WR)
        assert _all(raw) == b""  # the attach ends; the container runs on
    assert h.get("/containers/tend/json").json()["State"]["Running"] is True
    with hijack_attach(daemon, "tend", "stdin=1&stdout=1&stream=1") as raw:
        raw.sendall(b"two\n")  # its stdin is still open
        assert _all(raw) == b"two\r\nb=two\r\n"
    assert h.post("/containers/tend/wait").json()["StatusCode"] == 0
    # Without a TTY nor StdinOnce (docker run -d -i, then docker attach): the same.
    body = {"Cmd": ["sh", "-c", "cat; echo never"], "OpenStdin": True}
    assert h.post("/containers/create", params={"name": "tcat"}, json=body).status_code == 201
    assert h.post("/containers/tcat/start").status_code == 204
    with hijack_attach(daemon, "tcat", "stdin=1&stdout=1&stream=1") as raw:
        raw.shutdown(socket.SHUT_WR)
        assert _all(raw) == b""
    assert h.get("/containers/tcat/json").json()["State"]["Running"] is True
    for name in ("tend", "tcat"):
        assert h.delete(f"/containers/{name}", params={"force": "1"}).status_code == 204


def test_the_end_of_a_tty_execs_stdin_ends_its_stream(
    daemon: Daemon, docker: DockerCli, h: httpx.Client
) -> None:
    docker.ok("run", "-d", "--name", "txend", "alpine", "sleep", "60")
    given = {"Tty": True, "AttachStdin": True, "AttachStdout": True, "Cmd": ["cat"]}
    exec_id = h.post("/containers/txend/exec", json=given).json()["Id"]
    raw, _ = hijack_exec_start(daemon, exec_id, tty=True)
    with raw:
        raw.sendall(b"x\n")
        _until_seen(raw, b"x\r\nx\r\n")  # the terminal's echo, then cat's
        raw.shutdown(socket.SHUT_WR)
        assert _all(raw) == b""
    assert h.get(f"/exec/{exec_id}/json").json()["Running"] is True  # its stdin is open
    docker.ok("rm", "-f", "txend")
