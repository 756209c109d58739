"""docker stats through the Engine API: the real docker CLI and raw HTTP on a real daemon."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from typing import Any

from api_daemon import Daemon
from docker_side import DockerCli, http
from test_docker_cli import until

_BURN = ["sh", "-c", "while :; do :; done"]
_MIB = 1 << 20
# 64 MiB written (so resident), then nothing but waiting.
_HOLD = [sys.executable, "-c", "import time; b = b'x' * (64 << 20); time.sleep(120)"]
_TABLE = ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O"]


def _stats(daemon: Daemon, name: str, query: str) -> tuple[int, Any]:
    with http(daemon) as client:
        answer = client.get(f"/v1.47/containers/{name}/stats?{query}")
    return answer.status_code, answer.json()


def _resident(daemon: Daemon, name: str) -> bool:
    usage = _stats(daemon, name, "stream=false&one-shot=true")[1]["memory_stats"].get("usage", 0)
    return bool(usage >= 64 * _MIB)


def test_a_stream_false_document_has_mobys_shape(docker: DockerCli, daemon: Daemon) -> None:
    cid = docker.ok("run", "-d", "--name", "dsburn", "alpine", *_BURN).strip()
    status, doc = _stats(daemon, "dsburn", "stream=false")
    assert status == 200
    assert (doc["name"], doc["id"]) == ("/dsburn", cid)
    for key in ("read", "preread"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z", doc[key]), doc
    assert doc["preread"] < doc["read"]  # primed: the sample before, as moby's
    cpu, pre = doc["cpu_stats"], doc["precpu_stats"]
    assert set(cpu) == {"cpu_usage", "system_cpu_usage", "online_cpus", "throttling_data"}
    usage = cpu["cpu_usage"]
    assert usage["total_usage"] == usage["usage_in_usermode"] + usage["usage_in_kernelmode"]
    # A second of a busy loop in between: the container's CPU time and the host's rose.
    assert usage["total_usage"] > pre["cpu_usage"]["total_usage"]
    assert cpu["system_cpu_usage"] > pre["system_cpu_usage"]
    with http(daemon) as client:
        info = client.get("/v1.47/info").json()
    assert cpu["online_cpus"] >= info["NCPU"] >= 1  # equal unless chartd has an affinity mask
    assert doc["memory_stats"]["limit"] == info["MemTotal"] > 0
    assert doc["memory_stats"]["usage"] > 0
    assert doc["pids_stats"] == {"current": 1}
    assert [e["op"] for e in doc["blkio_stats"]["io_service_bytes_recursive"]] == ["read", "write"]
    assert (doc["num_procs"], doc["storage_stats"]) == (0, {})
    # one-shot: a single sample, no priming.
    status, once = _stats(daemon, cid[:12], "stream=false&one-shot=true")
    assert status == 200
    assert once["preread"] == "0001-01-01T00:00:00Z"
    assert once["precpu_stats"]["cpu_usage"]["total_usage"] == 0
    assert once["cpu_stats"]["cpu_usage"]["total_usage"] >= usage["total_usage"]
    status, refused = _stats(daemon, "dsburn", "stream=1&one-shot=1")
    assert (status, refused) == (400, {"message": "cannot have stream=true and one-shot=true"})
    docker.ok("rm", "-f", "dsburn")


def test_memory_a_container_holds_is_its_usage(docker: DockerCli, daemon: Daemon) -> None:
    docker.ok("run", "-d", "--name", "dshold", "alpine", *_HOLD)
    until(lambda: _resident(daemon, "dshold"), "64 MiB resident")
    row = docker.ok("stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}", "dshold")
    found = re.fullmatch(r"dshold (\d+(?:\.\d+)?)MiB / \S+\n", row)
    assert found is not None and float(found.group(1)) >= 64, row
    docker.ok("rm", "-f", "dshold")


def test_a_stopped_container_gets_zeros_and_an_unknown_one_404(
    docker: DockerCli, daemon: Daemon
) -> None:
    cid = docker.ok("create", "--name", "dsidle", "alpine", "true").strip()
    status, doc = _stats(daemon, "dsidle", "stream=false")
    assert status == 200
    assert (doc["name"], doc["id"], doc["read"]) == ("/dsidle", cid, "0001-01-01T00:00:00Z")
    assert doc["cpu_stats"]["cpu_usage"] == {
        "total_usage": 0,
        "usage_in_kernelmode": 0,
        "usage_in_usermode": 0,
    }
    assert (doc["memory_stats"], doc["pids_stats"]) == ({}, {})
    assert doc["blkio_stats"]["io_service_bytes_recursive"] is None
    assert _stats(daemon, "dsnosuch", "stream=false") == (
        404,
        {"message": "No such container: dsnosuch"},
    )
    unknown = docker.run("stats", "--no-stream", "dsnosuch")
    assert (unknown.returncode, unknown.stdout) == (1, "")
    assert unknown.stderr == "Error response from daemon: No such container: dsnosuch\n"
    docker.ok("rm", "dsidle")


def test_docker_stats_no_stream_tables(docker: DockerCli) -> None:
    docker.ok("run", "-d", "--name", "dstab1", "alpine", *_BURN)
    docker.ok("run", "-d", "--name", "dstab2", "alpine", "sleep", "120")
    docker.ok("create", "--name", "dstab3", "alpine", "true")  # not running: not listed
    one = docker.ok("stats", "--no-stream", "dstab1").splitlines()
    assert re.split(r"\s{2,}", one[0]) == [*_TABLE, "PIDS"], one
    cells = re.split(r"\s{2,}", one[1])
    assert cells[1] == "dstab1" and cells[2].endswith("%") and cells[-1] == "1", one
    every = docker.ok("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}").splitlines()
    assert {"dstab1 1", "dstab2 1"} <= set(every) and not any("dstab3" in r for r in every)
    docker.ok("rm", "-f", "dstab1", "dstab2", "dstab3")


def test_a_stream_sends_a_document_a_second_until_the_container_goes(
    docker: DockerCli, daemon: Daemon
) -> None:
    docker.ok("run", "-d", "--name", "dsflow", "alpine", *_BURN)
    with http(daemon) as client, client.stream("GET", "/v1.47/containers/dsflow/stats") as answer:
        assert answer.status_code == 200
        lines = answer.iter_lines()
        first, second = json.loads(next(lines)), json.loads(next(lines))
        assert first["preread"] == "0001-01-01T00:00:00Z"
        assert second["preread"] == first["read"]
        assert second["precpu_stats"] == first["cpu_stats"]
        was = first["cpu_stats"]["cpu_usage"]["total_usage"]
        assert second["cpu_stats"]["cpu_usage"]["total_usage"] > was
        docker.ok("stop", "-t", "0", "dsflow")
        # Stopped, it gets zeros (as moby's); removed, its stream ends.
        until(lambda: json.loads(next(lines))["read"].startswith("0001-"), "a document of zeros")
        docker.ok("rm", "dsflow")
        assert all(json.loads(line)["id"] for line in lines)


def _refreshes(follower: subprocess.Popen[str], row: str, count: int) -> None:
    """Read the follower's output until ``row`` (a regex) was printed ``count`` times."""
    assert follower.stdout is not None
    seen = 0
    while seen < count:  # each refresh moves the cursor home and prints the table again
        line = follower.stdout.readline()
        assert line, follower.stderr.read() if follower.stderr else ""
        seen += bool(re.search(row, line))


def _interrupted(follower: subprocess.Popen[str], times: int = 1) -> None:
    """SIGINT the follower (up to ``times`` times, one after another); it must end."""
    for _ in range(times):
        follower.send_signal(signal.SIGINT)
        try:
            follower.communicate(timeout=5)
            return
        except subprocess.TimeoutExpired:
            continue
    follower.kill()
    follower.communicate()
    raise AssertionError(f"docker stats still ran after {times} SIGINTs")


def test_docker_stats_streams_until_interrupted(docker: DockerCli) -> None:
    docker.ok("run", "-d", "--name", "dslive", "alpine", *_BURN)
    # Every running container: Ctrl-C ends it.
    every = docker.popen("stats", "--format", "{{.Name}} {{.CPUPerc}}")
    _refreshes(every, r"dslive \d+\.\d\d%", 2)
    _interrupted(every)
    # A named one: the stream ends at Ctrl-C, but docker 28's loop does not look at it
    # (docker/cli#6090): it ends at docker's third SIGINT, as against dockerd.
    named = docker.popen("stats", "--format", "{{.Name}} {{.CPUPerc}} {{.PIDs}}", "dslive")
    _refreshes(named, r"dslive \d+\.\d\d% 1", 2)
    _interrupted(named, times=3)
    docker.ok("rm", "-f", "dslive")
