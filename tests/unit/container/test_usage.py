"""docker stats' readings: /proc's texts parsed, real processes measured, the service's verb."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import engine
from engine.api.hostinfo import (
    HostCpu,
    host_cpu,
    mem_total,
    parse_meminfo_total,
    parse_proc_stat,
)
from engine.api.times import rfc3339_nano
from engine.errors import NotFound
from statecharts.container.faults import FakeRuntime
from statecharts.container.service import Containers
from statecharts.container.usage import measure, parse_io, parse_stat, parse_status

_TICK = 10**9 // os.sysconf("SC_CLK_TCK")


def test_a_stat_line_is_read_past_a_command_name_with_parentheses() -> None:
    raw = b"42 (a) (b c) S 1 42 42 0 -1 4194304 10 0 0 0 7 3 5 2 20 0 1 0 99 0 0\n"
    assert parse_stat(raw) == ((7 + 5) * _TICK, (3 + 2) * _TICK)


def test_status_gives_resident_memory_in_bytes_and_threads() -> None:
    text = (
        "Name:\tpython3\nVmRSS:\t  2048 kB\nRssAnon:\t  1024 kB\nRssFile:\t  1000 kB\n"
        "RssShmem:\t  24 kB\nThreads:\t3\nSigPnd:\t0000000000000000\n"
    )
    memory, threads = parse_status(text)
    assert memory == {
        "rss": 2048 * 1024,
        "anon": 1024 * 1024,
        "file": 1000 * 1024,
        "shmem": 24 * 1024,
    }
    assert threads == 3
    assert parse_status("Name:\tx\n") == ({}, 0)  # a kernel thread has no memory lines


def test_io_gives_the_bytes_that_reached_the_disk() -> None:
    text = "rchar: 100\nwchar: 50\nread_bytes: 4096\nwrite_bytes: 8192\ncancelled_write_bytes: 0\n"
    assert parse_io(text) == (4096, 8192)
    assert parse_io("garbage") == (0, 0)


def test_the_hosts_cpu_time_is_mobys_sum_of_seven_fields_and_its_cpus_counted() -> None:
    text = "cpu  1 2 3 4 5 6 7 8 9 10\ncpu0 1 1 1 1 1 1 1 0 0 0\ncpu1 0 1 2 3 4 5 6 8 0 0\nintr 5\n"
    assert parse_proc_stat(text) == HostCpu((1 + 2 + 3 + 4 + 5 + 6 + 7) * _TICK, 2)
    assert parse_proc_stat("") == HostCpu(0, 0)


def test_memtotal_is_in_bytes() -> None:
    assert parse_meminfo_total("MemFree: 5 kB\nMemTotal:       24683772 kB\n") == 24683772 * 1024
    assert parse_meminfo_total("MemTotal: lots\n") == 0
    assert mem_total() > 0 and host_cpu().online >= 1


def test_times_are_gos_rfc3339_nano() -> None:
    assert rfc3339_nano(0) == "0001-01-01T00:00:00Z"
    assert rfc3339_nano(1_700_000_000_123_400_000) == "2023-11-14T22:13:20.1234Z"
    assert rfc3339_nano(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"


def test_measure_reads_real_processes_and_skips_gone_ones() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "b = b'x' * (32 << 20); input()"], stdin=subprocess.PIPE
    )
    try:
        # Resident once written: wait for it by reading, not by sleeping.
        while measure([child.pid]).memory_usage < 32 << 20:
            assert child.poll() is None
        gone = subprocess.Popen(["true"])
        gone.wait()
        usage = measure([child.pid, gone.pid, os.getpid()])
        mine = measure([os.getpid()])
        assert usage.memory_usage >= (32 << 20) + mine.memory_usage // 2
        assert usage.memory_stats["anon"] >= 32 << 20
        assert usage.threads >= 1 + mine.threads
        assert usage.user_ns + usage.kernel_ns >= mine.user_ns + mine.kernel_ns > 0
        assert usage.read_ns > 0
    finally:
        child.kill()
        child.wait()
    empty = measure([])
    assert (empty.memory_usage, empty.threads, empty.user_ns, empty.memory_stats) == (0, 0, 0, {})


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Containers]:
    with engine.Engine.open(timers=False) as eng:
        yield Containers(eng, FakeRuntime(), tmp_path)


def test_the_service_samples_a_running_container_only(service: Containers) -> None:
    made = service.create(["sleep", "60"], name="web")
    found, usage = service.stats("web")
    assert (found.id, usage) == (made.id, None)  # created, not running: moby's zeros
    service.start("web")
    found, usage = service.stats(made.id[:12])
    assert found.id == made.id and usage is not None  # of the pid the fake made up
    service.stop("web", timeout=0)
    assert service.stats("web")[1] is None
    with pytest.raises(NotFound, match="No such container: nosuch"):
        service.stats("nosuch")
