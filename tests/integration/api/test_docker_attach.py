"""A live attach streams the process's output as written, and a slow client holds back
only its own container (moby's broadcaster), never the daemon's memory.

The first is docker-cli's e2e TestRunReadAfterContainerExit, by the real CLI, with
4 MiB of random bytes instead of its 18,933,764 (CI time), read as slowly.
"""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import httpx
import pytest
from api_daemon import Daemon, eventually
from docker_side import DockerCli, demuxed, hijack_attach, http

_SLOW = 50 * 1024 * 1024  # what a process writes to a client that does not read


@pytest.fixture(scope="module")
def h(daemon: Daemon) -> httpx.Client:
    return http(daemon)


def test_run_reads_after_the_container_exit(docker: DockerCli) -> None:
    """docker-cli's TestRunReadAfterContainerExit: every byte, exact, and exit 0."""
    sent = os.urandom(4 * 1024 * 1024)
    run = subprocess.Popen(
        [docker.command, "run", "--rm", "-i", "alpine", "sh", "-c", "cat -"],
        env=docker.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert run.stdin is not None and run.stdout is not None and run.stderr is not None
    errors: list[bytes] = []

    def feed() -> None:
        assert run.stdin is not None and run.stderr is not None
        run.stdin.write(sent)
        run.stdin.close()

    def drain_stderr() -> None:
        assert run.stderr is not None
        errors.append(run.stderr.read())

    helpers = [threading.Thread(target=f, daemon=True) for f in (feed, drain_stderr)]
    for helper in helpers:
        helper.start()
    got = bytearray()
    paused_at = 0
    try:
        while chunk := run.stdout.read1(64 * 1024):
            got += chunk
            if len(got) - paused_at >= 1024 * 1024:  # the test's slow reader
                paused_at = len(got)
                threading.Event().wait(0.1)
        assert run.wait(timeout=120) == 0, errors
    finally:
        run.kill()
        run.wait()
    for helper in helpers:
        helper.join(30)
    assert len(got) == len(sent)
    assert bytes(got) == sent


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_client_that_does_not_read_holds_back_only_its_container(
    daemon: Daemon, h: httpx.Client
) -> None:
    assert daemon.proc is not None
    # Long lines of letters: the json-file log of it stays about as large as it.
    body = {"Cmd": ["sh", "-c", f"head -c {_SLOW} /dev/zero | tr '\\0' a"]}
    assert h.post("/containers/create", params={"name": "aslow"}, json=body).status_code == 201
    log = Path(h.get("/containers/aslow/json").json()["LogPath"])
    before = _rss_kib(daemon.proc.pid)
    with hijack_attach(daemon, "aslow", "stdout=1&stream=1") as raw:
        assert h.post("/containers/aslow/start").status_code == 204
        eventually(lambda: log.exists() and log.stat().st_size > 0, "aslow's output copied")
        # Another container's output flows meanwhile, to its log.
        other = {"Cmd": ["sh", "-c", "echo other flows"]}
        assert (
            h.post("/containers/create", params={"name": "aother"}, json=other).status_code == 201
        )
        assert h.post("/containers/aother/start").status_code == 204
        assert h.post("/containers/aother/wait").json()["StatusCode"] == 0
        logs = h.get("/containers/aother/logs", params={"stdout": 1})
        assert logs.content.endswith(b"other flows\n")
        # The slow one waits for its client: its process is blocked writing, the daemon
        # holds no more than its tap's bound and the connection's buffers.
        assert h.get("/containers/aslow/json").json()["State"]["Running"] is True
        grown = _rss_kib(daemon.proc.pid) - before
        assert grown < 24 * 1024, f"the daemon grew by {grown} KiB"
        # The client reads a little: the output goes on from where it stopped.
        assert raw.recv(8)[:1] == b"\x01"
    # The client went: its container no longer waits for it.
    assert h.post("/containers/aslow/wait").json()["StatusCode"] == 0
    for name in ("aslow", "aother"):
        assert h.delete(f"/containers/{name}").status_code == 204


def test_a_live_attach_is_exact_and_ends_at_the_exit(daemon: Daemon, h: httpx.Client) -> None:
    """Binary output, the chosen stream only, every byte once; it ends with the process."""
    script = "printf '\\377\\376\\0x'; printf err >&2; seq 1 50000"
    body = {"Cmd": ["sh", "-c", script]}
    assert h.post("/containers/create", params={"name": "aexact"}, json=body).status_code == 201
    with hijack_attach(daemon, "aexact", "stdout=1&stream=1") as raw:
        assert h.post("/containers/aexact/start").status_code == 204
        out = demuxed(raw)
    assert out == b"\xff\xfe\x00x" + b"".join(b"%d\n" % i for i in range(1, 50001))
    assert h.post("/containers/aexact/wait").json()["StatusCode"] == 0
    assert h.delete("/containers/aexact").status_code == 204
