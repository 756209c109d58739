"""AddressPool: IPv4 addresses for containers, leased durably from one subnet.

A lease is a file in ``lease_dir`` named after the address (``10.88.0.2``)
and holding the container ID. It is created with ``O_CREAT | O_EXCL``, so two
allocators (threads or processes) can never take the same address. Allocation
and release also hold an exclusive ``flock`` on ``lease_dir/.lock``: that
makes "one address per container" hold across processes, and lets an
allocator reclaim an empty lease file, which only a writer that crashed
between the create and the write can leave (under the lock nobody else is
writing).

Leases are not fsynced: like the process runtime's task records, they need
to survive a crash of the daemon (the kernel keeps what was written), not of
the machine, after which no container runs any more: a lease that a power
loss lost was its container's, which is not running; one whose release it
lost is given back by :meth:`AddressPool.release_all_but` when the daemon
restores its containers. The syncs would cost three a start and stop cycle.

Addresses are handed out lowest first, skipping the network address, the
gateway (the first host address, as docker's bridge uses it) and the
broadcast address.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from engine.errors import InvalidParameter, System, Unavailable

__all__ = ["AddressPool"]


class AddressPool:
    """Leases the host addresses of ``cidr`` (e.g. ``"10.88.0.0/16"``) to container IDs.

    Thread-safe and process-safe on one ``lease_dir``; every method is
    idempotent. InvalidParameter for a malformed CIDR, one with host bits
    set, or one smaller than /30 (it would have no address to lease).
    """

    def __init__(self, cidr: str, lease_dir: Path) -> None:
        try:
            network = ipaddress.IPv4Network(cidr, strict=True)
        except ValueError as exc:
            raise InvalidParameter(f"invalid address pool {cidr!r}: {exc}") from exc
        if network.prefixlen > 30:
            raise InvalidParameter(
                f"invalid address pool {cidr!r}: a /{network.prefixlen} has no address to lease"
            )
        self.network = network
        self.gateway = network.network_address + 1
        self.lease_dir = Path(lease_dir)
        self.lease_dir.mkdir(parents=True, exist_ok=True)
        self._thread_lock = threading.Lock()

    @property
    def prefixlen(self) -> int:
        """The subnet's prefix length, as moby reports it beside the address (``IPPrefixLen``)."""
        return self.network.prefixlen

    def allocate(self, container_id: str) -> str:
        """The address leased to ``container_id``: its existing lease, or the lowest free one.

        Idempotent: a container that holds a lease gets the same address back.
        Unavailable when every address of the pool is leased.
        """
        owner = self._check_owner(container_id)
        with self._locked():
            leases = self._scan()
            for address, holder in leases.items():
                if holder == owner:
                    return address
            taken = set(leases)
            for host in self.network.hosts():
                if host == self.gateway or str(host) in taken:
                    continue
                if self._claim(str(host), owner):
                    return str(host)
        raise Unavailable(f"no available addresses on this pool: {self.network}")

    def release(self, container_id: str) -> None:
        """Give back whatever ``container_id`` leases. Idempotent: no lease is a no-op."""
        owner = self._check_owner(container_id)
        with self._locked():
            for address, holder in self._scan().items():
                if holder == owner:
                    (self.lease_dir / address).unlink(missing_ok=True)

    def release_all_but(self, keep: set[str]) -> list[str]:
        """Give back every lease whose holder is not in ``keep``; the holders released."""
        released = []
        with self._locked():
            for address, holder in self._scan().items():
                if holder not in keep:
                    (self.lease_dir / address).unlink(missing_ok=True)
                    released.append(holder)
        return released

    def lookup(self, container_id: str) -> str | None:
        """The address leased to ``container_id``, or ``None``."""
        owner = self._check_owner(container_id)
        for address, holder in self.leases().items():
            if holder == owner:
                return address
        return None

    def leases(self) -> dict[str, str]:
        """Every lease, address to container ID, in address order."""
        with self._locked():
            return self._scan()

    # -- internals ---------------------------------------------------------------------

    @staticmethod
    def _check_owner(container_id: str) -> str:
        if not isinstance(container_id, str) or not container_id or "\n" in container_id:
            raise InvalidParameter(f"invalid container ID: {container_id!r}")
        return container_id

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # flock excludes other processes; each call opens its own description, so
        # it excludes the other threads too. The thread lock only saves them the
        # trip to the kernel.
        with self._thread_lock:
            fd = os.open(self.lease_dir / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)

    def _scan(self) -> dict[str, str]:
        leases: dict[str, tuple[ipaddress.IPv4Address, str]] = {}
        for entry in os.scandir(self.lease_dir):
            try:
                address = ipaddress.IPv4Address(entry.name)
            except ValueError:
                continue  # .lock, or anything else that is not a lease
            if address not in self.network:
                continue
            try:
                holder = Path(entry.path).read_text()
            except FileNotFoundError:
                continue
            if not holder:
                # Created, never written: its writer crashed (we hold the lock).
                Path(entry.path).unlink(missing_ok=True)
                continue
            leases[entry.name] = (address, holder)
        return {name: holder for name, (_, holder) in sorted(leases.items(), key=lambda i: i[1])}

    def _claim(self, address: str, owner: str) -> bool:
        path = self.lease_dir / address
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except FileExistsError:
            return False
        except OSError as exc:
            raise System(f"cannot lease {address}: {exc}") from exc
        try:
            os.write(fd, owner.encode())
        except OSError as exc:
            path.unlink(missing_ok=True)
            raise System(f"cannot lease {address}: {exc}") from exc
        finally:
            os.close(fd)
        return True
