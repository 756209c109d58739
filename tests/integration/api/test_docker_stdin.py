"""``docker run -i`` and ``docker attach`` with stdin: the client's stdin reaches the process.

The first three are docker-cli's own e2e cases (TestProcessTermination,
TestAttachExitCode, and ``run -i`` copying its stdin), run by the real CLI.
"""

from __future__ import annotations

import contextlib
import json
import select
import signal
import socket
import subprocess

import httpx
import pytest
from api_daemon import Daemon
from docker_side import DockerCli, demuxed, hijack_attach, http

_ROOMY = 64 * 1024 * 1024  # more than the stdin's way holds: a daemon that buffered would take it


@pytest.fixture(scope="module")
def h(daemon: Daemon) -> httpx.Client:
    return http(daemon)


def _docker(docker: DockerCli, *args: str, stdin: int | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [docker.command, *args],
        env=docker.env,
        stdin=subprocess.DEVNULL if stdin is None else stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_run_i_copies_stdin_to_the_process(docker: DockerCli) -> None:
    done = subprocess.run(
        [docker.command, "run", "-i", "--rm", "alpine", "cat"],
        env=docker.env, input=b"hello\n", capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stdout, done.stderr) == (0, b"hello\n", b"")
    # No stdin at all: the process reads EOF at once (StdinOnce), and ends.
    empty = subprocess.run(
        [docker.command, "run", "-i", "--rm", "alpine", "cat"],
        env=docker.env, stdin=subprocess.DEVNULL, capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert (empty.returncode, empty.stdout) == (0, b"")


def test_run_i_copies_megabytes_of_stdin(docker: DockerCli) -> None:
    lines = b"".join(b"line %d of the input\n" % i for i in range(150_000))
    assert len(lines) > 3_000_000
    done = subprocess.run(
        [docker.command, "run", "-i", "--rm", "alpine", "cat"],
        env=docker.env, input=lines, capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == lines


def test_a_sigterm_to_the_cli_reaches_the_process(docker: DockerCli) -> None:
    """docker-cli's TestProcessTermination: sig-proxy forwards it; the trap exits 0."""
    run = _docker(
        docker, "run", "--rm", "-i", "alpine", "sh", "-c",
        "echo 'starting trap'; trap 'echo got signal; exit 0;' TERM; while true; do sleep 10; done",
    )  # fmt: skip
    assert run.stdout is not None
    try:
        assert run.stdout.readline() == b"starting trap\n"
        run.send_signal(signal.SIGTERM)
        assert run.wait(timeout=60) == 0
        assert b"got signal\n" in run.stdout.read()
    finally:
        run.kill()
        run.wait()


def test_attach_writes_stdin_and_exits_with_the_code(docker: DockerCli) -> None:
    """docker-cli's TestAttachExitCode (``read x``: the host's sh may be dash, which
    wants a name): ``-d -i`` keeps the stdin open (no StdinOnce) for an attach."""
    cid = docker.ok("run", "-d", "-i", "alpine", "sh", "-c", "read x; exit 21").strip()
    shown = docker.ok(
        "inspect", "-f", "{{.Config.OpenStdin}} {{.Config.StdinOnce}} {{.Config.AttachStdin}}", cid
    )
    assert shown == "true false false\n"
    attach = subprocess.run(
        [docker.command, "attach", cid],
        env=docker.env, input=b"\n", capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert attach.returncode == 21, attach.stderr
    docker.ok("rm", cid)


def test_create_keeps_the_stdin_options(h: httpx.Client) -> None:
    body = {"Cmd": ["true"], "OpenStdin": True, "StdinOnce": True, "AttachStdin": True}
    created = h.post("/containers/create", params={"name": "hstdin"}, json=body)
    assert created.status_code == 201, created.text
    config = h.get("/containers/hstdin/json").json()["Config"]
    assert (config["OpenStdin"], config["StdinOnce"], config["AttachStdin"]) == (True, True, True)
    h.post("/containers/create", params={"name": "hnostdin"}, json={"Cmd": ["true"]})
    config = h.get("/containers/hnostdin/json").json()["Config"]
    assert (config["OpenStdin"], config["StdinOnce"], config["AttachStdin"]) == (False,) * 3
    refused = h.post("/containers/create", json={"Cmd": ["true"], "OpenStdin": "yes"})
    assert refused.status_code == 400
    for name in ("hstdin", "hnostdin"):
        assert h.delete(f"/containers/{name}").status_code == 204


def test_stdin_is_dropped_for_a_container_without_open_stdin(
    daemon: Daemon, h: httpx.Client
) -> None:
    # moby's answer to `docker run -a stdin` without -i: the stdin is /dev/null.
    body = {"Cmd": ["sh", "-c", "cat; echo end"]}
    assert h.post("/containers/create", params={"name": "hdrop"}, json=body).status_code == 201
    with hijack_attach(daemon, "hdrop", "stdin=1&stdout=1&stream=1") as raw:
        raw.sendall(b"dropped\n")
        assert h.post("/containers/hdrop/start").status_code == 204
        assert demuxed(raw) == b"end\n"
    assert h.post("/containers/hdrop/wait").json()["StatusCode"] == 0
    assert h.delete("/containers/hdrop").status_code == 204


def test_a_process_that_never_reads_holds_the_client_back(daemon: Daemon, h: httpx.Client) -> None:
    """Backpressure: the daemon takes no more than the way to the stdin holds."""
    body = {"Cmd": ["sleep", "600"], "OpenStdin": True}
    assert h.post("/containers/create", params={"name": "hnoread"}, json=body).status_code == 201
    assert h.post("/containers/hnoread/start").status_code == 204
    with hijack_attach(daemon, "hnoread", "stdin=1&stdout=1&stream=1") as raw:
        raw.setblocking(False)
        sent, chunk = 0, b"x" * 65536
        while sent < _ROOMY:
            # Room to write within a few seconds: the daemon read on; none: it holds back.
            if not select.select([], [raw], [], 5.0)[1]:
                break
            try:
                sent += raw.send(chunk)
            except BlockingIOError:
                continue
        assert sent < _ROOMY // 4, sent
        raw.setblocking(True)
        assert h.post("/containers/hnoread/kill").status_code == 204
        # The attach ends with the process; what the daemon held unread resets the close.
        with contextlib.suppress(ConnectionResetError):
            assert demuxed(raw) == b""
    assert h.delete("/containers/hnoread").status_code == 204


def test_stdin_once_closes_the_stdin_at_the_clients_half_close(
    daemon: Daemon, h: httpx.Client
) -> None:
    body = {"Cmd": ["sh", "-c", "cat; echo end"], "OpenStdin": True, "StdinOnce": True}
    assert h.post("/containers/create", params={"name": "honce"}, json=body).status_code == 201
    with hijack_attach(daemon, "honce", "stdin=1&stdout=1&stream=1") as raw:
        assert h.post("/containers/honce/start").status_code == 204
        raw.sendall(b"one\ntwo\n")
        raw.shutdown(socket.SHUT_WR)
        assert demuxed(raw) == b"one\ntwo\nend\n"
    waited = h.post("/containers/honce/wait").json()
    assert waited == {"StatusCode": 0}, json.dumps(waited)
    assert h.delete("/containers/honce").status_code == 204
