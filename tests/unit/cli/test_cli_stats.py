"""``chartd stats``' figures, as docker's CLI prints them."""

from __future__ import annotations

from engine.api.chartd.v1 import containers_pb2 as c_pb2
from engine.cli_stats import binary_size, cpu_percent, decimal_size, stats_row


def test_sizes_are_go_units() -> None:
    assert binary_size(0) == "0B"
    assert binary_size(1023) == "1023B"
    assert binary_size(64 << 20) == "64MiB"
    assert binary_size(24683772 * 1024) == "23.54GiB"
    assert decimal_size(0) == "0B"
    assert decimal_size(4096) == "4.1kB"
    assert decimal_size(1_234_567) == "1.23MB"


def _sample(cpu: int, system: int, **more: int) -> c_pb2.StatsResponse:
    return c_pb2.StatsResponse(
        id="a" * 64,
        name="web",
        running=True,
        cpu_user_ns=cpu,
        system_cpu_ns=system,
        online_cpus=2,
        **more,
    )


def test_cpu_percent_is_the_share_of_the_hosts_time_times_the_cpus() -> None:
    before, now = _sample(1_000, 10_000), _sample(2_000, 20_000)
    assert cpu_percent(now, before) == 20.0
    assert cpu_percent(now, None) == 0.0
    assert cpu_percent(before, now) == 0.0


def test_a_row_as_dockers() -> None:
    now = _sample(
        2_000,
        20_000,
        memory_usage=64 << 20,
        memory_limit=256 << 20,
        pids=3,
        block_read=4096,
        block_write=0,
    )
    row = stats_row(now, _sample(1_000, 10_000))
    assert row == [
        "a" * 12,
        "web",
        "20.00%",
        "64MiB / 256MiB",
        "25.00%",
        "0B / 0B",
        "4.1kB / 0B",
        "3",
    ]
    stopped = c_pb2.StatsResponse(id="b" * 64, name="old", memory_limit=256 << 20)
    assert stats_row(stopped, None) == [
        "b" * 12,
        "old",
        "0.00%",
        "0B / 0B",
        "0.00%",
        "0B / 0B",
        "0B / 0B",
        "0",
    ]
