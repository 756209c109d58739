"""AddressPool on a real directory: leases, idempotency, exhaustion, threads and processes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from pathlib import Path

import pytest

from engine.errors import InvalidParameter, Unavailable
from statecharts.container.network import AddressPool

ROOT = Path(__file__).resolve().parents[3]


def test_addresses_are_leased_lowest_first_skipping_network_gateway_and_broadcast(
    tmp_path: Path,
) -> None:
    pool = AddressPool("10.1.2.0/29", tmp_path)  # .0 network, .1 gateway, .7 broadcast

    got = [pool.allocate(f"c{i}") for i in range(5)]

    assert got == ["10.1.2.2", "10.1.2.3", "10.1.2.4", "10.1.2.5", "10.1.2.6"]
    assert (pool.gateway.exploded, pool.prefixlen) == ("10.1.2.1", 29)
    with pytest.raises(Unavailable, match=r"no available addresses on this pool: 10\.1\.2\.0/29"):
        pool.allocate("c5")


def test_allocate_is_idempotent_per_container_and_release_frees_the_address(
    tmp_path: Path,
) -> None:
    pool = AddressPool("10.1.2.0/29", tmp_path)
    first = pool.allocate("web")

    assert pool.allocate("web") == first
    assert pool.lookup("web") == first
    assert pool.leases() == {first: "web"}
    assert (tmp_path / first).read_text() == "web"

    pool.release("web")
    pool.release("web")  # idempotent
    pool.release("never-allocated")

    assert pool.leases() == {}
    assert pool.lookup("web") is None
    assert pool.allocate("db") == first  # the lowest free address again


def test_release_all_but_gives_back_every_other_lease(tmp_path: Path) -> None:
    pool = AddressPool("10.1.2.0/29", tmp_path)
    for name in ("web", "db", "cache"):
        pool.allocate(name)

    assert sorted(pool.release_all_but({"db"})) == ["cache", "web"]
    assert pool.leases() == {"10.1.2.3": "db"}


def test_leases_survive_a_new_pool_on_the_same_directory(tmp_path: Path) -> None:
    AddressPool("10.1.2.0/28", tmp_path).allocate("web")

    reopened = AddressPool("10.1.2.0/28", tmp_path)

    assert reopened.leases() == {"10.1.2.2": "web"}
    assert reopened.allocate("web") == "10.1.2.2"
    assert reopened.allocate("db") == "10.1.2.3"


def test_an_empty_lease_left_by_a_crashed_writer_is_reclaimed(tmp_path: Path) -> None:
    pool = AddressPool("10.1.2.0/29", tmp_path)
    (tmp_path / "10.1.2.2").touch()  # created with O_EXCL, never written

    assert pool.allocate("web") == "10.1.2.2"
    assert pool.leases() == {"10.1.2.2": "web"}


def test_files_that_are_not_leases_of_this_pool_are_ignored(tmp_path: Path) -> None:
    (tmp_path / "10.9.9.9").write_text("elsewhere")
    (tmp_path / "notes.txt").write_text("hello")
    pool = AddressPool("10.1.2.0/29", tmp_path)

    assert pool.leases() == {}
    assert pool.allocate("web") == "10.1.2.2"


@pytest.mark.parametrize(
    ("cidr", "why"),
    [
        ("10.1.2.3/24", "host bits set"),
        ("not-a-network", "invalid address pool .not-a-network."),
        ("10.1.2.0/31", "no address to lease"),
        ("fd00::/64", "invalid address pool .fd00::/64."),
    ],
)
def test_bad_pools_are_refused(tmp_path: Path, cidr: str, why: str) -> None:
    with pytest.raises(InvalidParameter, match=why):
        AddressPool(cidr, tmp_path)


def test_bad_container_ids_are_refused(tmp_path: Path) -> None:
    pool = AddressPool("10.1.2.0/29", tmp_path)
    for bad in ("", "a\nb"):
        with pytest.raises(InvalidParameter, match="invalid container ID"):
            pool.allocate(bad)


def test_threads_never_share_an_address(tmp_path: Path) -> None:
    pool = AddressPool("10.1.0.0/24", tmp_path)
    results: dict[str, list[str]] = {}
    barrier = threading.Barrier(8)

    def worker(n: int) -> None:
        barrier.wait()
        # Each thread allocates its own containers, and all of them the shared ones.
        mine = [pool.allocate(f"t{n}-{i}") for i in range(10)]
        shared = [pool.allocate(f"shared-{i}") for i in range(5)]
        results[f"t{n}"] = mine + shared

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    leases = pool.leases()
    assert len(leases) == 8 * 10 + 5
    assert len(set(leases)) == len(leases)
    assert Counter(leases.values()).most_common(1)[0][1] == 1  # one address per container
    shared = {f"shared-{i}": pool.lookup(f"shared-{i}") for i in range(5)}
    for got in results.values():
        assert got[10:] == [shared[f"shared-{i}"] for i in range(5)]


ALLOCATOR = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from engine.errors import Unavailable
    from statecharts.container.network import AddressPool

    cidr, lease_dir, prefix, count = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    pool = AddressPool(cidr, lease_dir)
    sys.stdin.readline()  # start together
    got = {}
    for i in range(count):
        for cid in (f"{prefix}-{i}", f"shared-{i}"):
            try:
                got[cid] = pool.allocate(cid)
            except Unavailable:
                got[cid] = None
    print(json.dumps(got), flush=True)
    """
)


def allocate_in_processes(
    cidr: str, lease_dir: Path, count: int, prefixes: list[str]
) -> list[dict[str, str | None]]:
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", ALLOCATOR, cidr, str(lease_dir), prefix, str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for prefix in prefixes
    ]
    try:
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        outputs = [process.communicate(timeout=60)[0] for process in processes]
    finally:
        for process in processes:
            process.kill()
            process.wait(30)
    assert all(p.returncode == 0 for p in processes), outputs
    return [json.loads(out) for out in outputs]


def test_two_processes_never_share_an_address_and_agree_on_shared_containers(
    tmp_path: Path,
) -> None:
    a, b = allocate_in_processes("10.2.0.0/25", tmp_path, 20, ["a", "b"])

    leases = AddressPool("10.2.0.0/25", tmp_path).leases()
    assert len(leases) == 20 + 20 + 20  # a-*, b-*, and shared-* once each
    assert sorted(leases.values()) == sorted({**a, **b})
    for i in range(20):
        assert a[f"shared-{i}"] == b[f"shared-{i}"]


def test_two_processes_exhaust_a_pool_exactly(tmp_path: Path) -> None:
    # A /28 has 13 leasable addresses; the two processes ask for 2 * 10 + 10.
    a, b = allocate_in_processes("10.3.0.0/28", tmp_path, 10, ["a", "b"])

    leases = AddressPool("10.3.0.0/28", tmp_path).leases()
    assert len(leases) == 13
    granted = {cid: addr for got in (a, b) for cid, addr in got.items() if addr is not None}
    assert granted == {cid: addr for addr, cid in leases.items()}
