"""``chartd stats`` and the Containers API's Stats on a real daemon."""

from __future__ import annotations

import re
import signal

from api_daemon import Daemon, ok

from engine.api.chartd.v1 import containers_pb2 as c_pb2

_BURN = ["sh", "-c", "while :; do :; done"]
_TITLES = ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O"]


def test_stats_samples_a_running_container(daemon: Daemon) -> None:
    cid = ok(daemon, "run", "-d", "--name", "st-burn", *_BURN).strip()
    ok(daemon, "create", "--name", "st-idle", "true")
    with daemon.client() as client:
        first = client.containers.Stats(c_pb2.StatsRequest(container="st-burn"))
        second = client.containers.Stats(c_pb2.StatsRequest(container=cid[:12]))
        idle = client.containers.Stats(c_pb2.StatsRequest(container="st-idle"))
    assert (first.id, first.name, first.running, first.pids) == (cid, "st-burn", True, 1)
    assert first.memory_usage > 0 and first.memory_limit > first.memory_usage
    assert first.online_cpus >= 1 and first.read_time.ToNanoseconds() > 0
    # A busy loop: its CPU time does not go back (a tick's granularity: it may stay).
    assert second.cpu_user_ns + second.cpu_kernel_ns >= first.cpu_user_ns + first.cpu_kernel_ns
    assert second.system_cpu_ns >= first.system_cpu_ns
    assert (idle.running, idle.memory_usage, idle.cpu_user_ns, idle.pids) == (False, 0, 0, 0)
    assert not idle.HasField("read_time")


def test_stats_no_stream_prints_dockers_table(daemon: Daemon) -> None:
    ok(daemon, "run", "-d", "--name", "st-tab", *_BURN)
    lines = ok(daemon, "stats", "--no-stream", "st-tab").splitlines()
    assert re.split(r"\s{2,}", lines[0]) == [*_TITLES, "PIDS"], lines
    cells = re.split(r"\s{2,}", lines[1])
    assert cells[1] == "st-tab" and cells[-1] == "1" and cells[5] == "0B / 0B", lines
    # A second of a busy loop: its CPU % is more than nothing.
    assert float(cells[2].rstrip("%")) > 0, lines
    assert re.fullmatch(r"[\d.]+[KMG]iB / [\d.]+[KMGT]iB", cells[3]), lines
    every = ok(daemon, "stats", "--no-stream").splitlines()
    assert any(re.split(r"\s{2,}", row)[1] == "st-tab" for row in every[1:]), every
    unknown = daemon.cli("stats", "--no-stream", "st-nosuch")
    assert (unknown.returncode, unknown.stdout) == (1, "")
    assert unknown.stderr == "Error response from daemon: No such container: st-nosuch\n"


def test_stats_streams_until_interrupted(daemon: Daemon) -> None:
    ok(daemon, "run", "-d", "--name", "st-live", *_BURN)
    follower = daemon.popen("stats", "st-live")
    assert follower.stdout is not None
    try:
        tables = 0
        while tables < 2:
            line = follower.stdout.readline()
            assert line, follower.stderr.read() if follower.stderr else ""
            tables += line.startswith("CONTAINER ID")
        follower.send_signal(signal.SIGINT)
        assert follower.wait(timeout=30) == 130
    finally:
        if follower.poll() is None:
            follower.kill()
        follower.communicate()
