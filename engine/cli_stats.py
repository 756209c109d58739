"""``chartd stats [--no-stream] [CONTAINER...]``: what containers spend, as docker's stats.

Each container is sampled through the Containers API's ``Stats``, twice a
second apart for the first table (a CPU percentage needs two samples, as
docker's ``--no-stream`` has the daemon take), then once a second; without
a name, every running container. The table is docker's: CPU % (the
container's CPU time over the host's between two samples, times the online
CPUs), memory in binary units, block I/O in decimal ones, NET I/O ``0B /
0B`` (no network of its own). ``--no-stream`` prints one table; otherwise a
table a second until Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
import time

from engine.api.chartd.v1 import containers_pb2 as c_pb2
from engine.cli_format import tabwrite, write
from engine.cli_session import CallFailed, Session
from engine.cli_verbs import Verb, arg

__all__ = ["VERBS", "binary_size", "cpu_percent", "decimal_size", "stats_row"]

_INTERVAL = 1.0  # seconds between samples, docker's daemon's
_TITLES = ("CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O")
_BINARY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")
_DECIMAL = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")


def _scaled(size: float, base: float, names: tuple[str, ...], digits: int) -> str:
    """go-units' CustomSize: divided by ``base`` while it can be, ``digits`` significant."""
    unit = 0
    while size >= base and unit < len(names) - 1:
        size, unit = size / base, unit + 1
    return f"{size:.{digits}g}{names[unit]}"


def binary_size(size: float) -> str:
    """docker's memory sizes (go-units' BytesSize): ``64MiB``, ``1.5GiB``."""
    return _scaled(size, 1024.0, _BINARY, 4)


def decimal_size(size: float) -> str:
    """docker's I/O sizes (go-units' HumanSizeWithPrecision, 3 digits): ``4.1kB``."""
    return _scaled(size, 1000.0, _DECIMAL, 3)


def cpu_percent(now: c_pb2.StatsResponse, before: c_pb2.StatsResponse | None) -> float:
    """docker's CPU %: the container's CPU time over the host's between the samples,
    times the online CPUs (0 without an earlier sample, or if either did not grow)."""
    if before is None:
        return 0.0
    used = (now.cpu_user_ns + now.cpu_kernel_ns) - (before.cpu_user_ns + before.cpu_kernel_ns)
    passed = now.system_cpu_ns - before.system_cpu_ns
    if used <= 0 or passed <= 0:
        return 0.0
    return used / passed * now.online_cpus * 100.0


def stats_row(now: c_pb2.StatsResponse, before: c_pb2.StatsResponse | None) -> list[str]:
    """A row of docker's stats table (zeros for a container that is not running)."""
    limit = now.memory_limit if now.running else 0  # moby's document of zeros: no limit
    return [
        now.id[:12],
        now.name,
        f"{cpu_percent(now, before):.2f}%",
        f"{binary_size(now.memory_usage)} / {binary_size(limit)}",
        f"{now.memory_usage / limit * 100.0 if limit else 0.0:.2f}%",
        "0B / 0B",
        f"{decimal_size(now.block_read)} / {decimal_size(now.block_write)}",
        str(now.pids),
    ]


def _sample(s: Session, names: list[str]) -> dict[str, c_pb2.StatsResponse]:
    """A sample of each container by name; one that failed is reported and left out."""
    found = {}
    for name in names:
        try:
            found[name] = s.call(s.client.containers.Stats, c_pb2.StatsRequest(container=name))
        except CallFailed:
            continue
    return found


def _table(now: dict[str, c_pb2.StatsResponse], before: dict[str, c_pb2.StatsResponse]) -> str:
    rows = [[*_TITLES, "PIDS"], *(stats_row(v, before.get(k)) for k, v in now.items())]
    return tabwrite("".join("\t".join(row) + "\n" for row in rows), min_width=10, padding=3)


def _stats(args: argparse.Namespace) -> None:
    """Display a live stream of containers' resource usage statistics."""
    with Session(args) as s:
        names = list(args.containers)
        if not names:
            try:
                listed = s.call(s.client.list_containers, c_pb2.ListContainersRequest())
            except CallFailed:
                raise SystemExit(1) from None
            names = [c.id for c in listed]
        before = _sample(s, names)
        if s.failed:  # as docker's: a named container that cannot be read ends it
            s.done()
        try:
            while True:
                time.sleep(_INTERVAL)
                now = _sample(s, list(before))
                table = _table(now, before)
                if not args.no_stream and sys.stdout.isatty():
                    table = "\033[H\033[J" + table  # docker's: the cursor home, the screen cleared
                write(table)
                sys.stdout.flush()
                if args.no_stream or not now:
                    break
                before = now
        except KeyboardInterrupt:
            raise SystemExit(130) from None
        s.done()


VERBS = (
    Verb(
        "stats",
        "Display a live stream of container(s) resource usage statistics.",
        _stats,
        (
            arg("containers", nargs="*", metavar="CONTAINER", help="The containers."),
            arg(
                "--no-stream",
                action="store_true",
                help="Disable streaming stats and only pull the first result.",
            ),
        ),
        description=__doc__,
    ),
)
"""``stats``."""
