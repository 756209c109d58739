"""A chartd daemon for the container service tests: the real process runtime, a SQLite file.

``Daemon`` is what ``chartd`` runs: an engine on a SQLite file, a
ProcessRuntime (behind a FaultRuntime, which forwards every call until a
test arms a fault), an address pool and the ``Containers`` service. Its
engine runs on a ``Clock`` the test can hold: while it is held no timer
falls due, so a container sits in ``restarting`` for as long as the test
needs, and the backoff is read from the timers instead of wall time.

Every wait is bounded (``WAIT``); no test asserts on timing. Every daemon a
test opens is closed at teardown, and every task its runtime still has is
SIGKILLed and reaped first; pids a test records outside a runtime are killed
too.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

import engine
from statecharts.container.bindings import container_dir
from statecharts.container.faults import FaultRuntime
from statecharts.container.network import AddressPool
from statecharts.container.process import ProcessRuntime
from statecharts.container.service import Containers, status_of

WAIT = 10.0


def alive(pid: int) -> bool:
    """Running or stopped, not a zombie (a zombie has ended, even if nobody reaped it)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return raw[raw.rindex(b")") + 2 :].split()[0] not in (b"Z", b"X")


def run_crashing(script: str, base: Path, *args: str) -> Any:
    """Run ``script``, a daemon in a new interpreter that dies on purpose, on ``base``.

    The script gets ``base``, this directory (to import this module) and
    ``args``; it must exit 0 after printing one JSON document, returned here.
    """
    here = Path(__file__).resolve().parent
    done = subprocess.run(
        [sys.executable, "-c", script, str(base), str(here), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=here.parents[2],
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def eventually(check: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    """``check()`` once it is truthy; fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout}s: {what}")
        time.sleep(0.01)


class Clock:
    """The engine's clock: the wall clock, unless the test holds it.

    ``hold()`` stops it (at now, or ``at``); ``advance(s)`` moves a held clock;
    ``release()`` lets it follow the wall clock again. Timers fall due by this
    clock only, so nothing scheduled while it is held fires until it moves.
    Not held, it never reads the same twice, so the journal's times (e.g. when
    each compensation ran) give the order things happened in.
    """

    def __init__(self) -> None:
        self._held: float | None = None
        self._last = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            if self._held is not None:
                return self._held
            # Never the same reading twice: the journal's times order its entries.
            self._last = max(time.time(), self._last + 1e-6)
            return self._last

    def hold(self, at: float | None = None) -> float:
        with self._lock:
            self._held = time.time() if at is None else at
            return self._held

    def advance(self, seconds: float) -> float:
        with self._lock:
            assert self._held is not None, "advance a held clock"
            self._held += seconds
            return self._held

    def release(self) -> None:
        with self._lock:
            self._held = None


class Daemon:
    """One daemon on ``base``: ``base/chartd.db``, ``base/runtime``, ``base/state``.

    Opening another Daemon on the same ``base`` after this one closed (or
    crashed) is a daemon restart.
    """

    def __init__(
        self,
        base: Path,
        *,
        clock: Clock | None = None,
        timers: bool = True,
        cidr: str = "10.88.0.0/24",
    ) -> None:
        self.base = base
        self.clock = clock or Clock()
        self.url = f"sqlite:///{base / 'chartd.db'}"
        self.engine = engine.Engine.open(self.url, clock=self.clock, timers=timers)
        try:
            self.process = ProcessRuntime(base / "runtime")
        except BaseException:
            self.engine.close()
            raise
        self.runtime = FaultRuntime(self.process)
        self.root = base / "state"
        self.pool = AddressPool(cidr, self.root / "network")
        self.containers = Containers(self.engine, self.runtime, self.root, pool=self.pool)
        self.closed = False

    # -- reading -----------------------------------------------------------------------

    def entity(self, ref: str) -> engine.Entity:
        return self.engine.get(ref)

    def events(self, since: int, entity_id: str) -> list[str]:
        """The container's events after ``since``, as ``type`` or ``type:attribute``.

        The engine's own (create, transition, transition.failed) are left out;
        ``kill:15``, ``die:143`` and ``rename:/old`` carry moby's attribute.
        """
        out = []
        for event in self.engine.watch(since, filter={"entity": entity_id}, timeout=0.05):
            if event.type in ("create", "transition", "transition.failed"):
                continue
            out.append(_short(event.type, event.attributes))
        return out

    def until(self, entity_id: str, holds: Callable[[engine.Entity], bool], what: str) -> Any:
        return eventually(lambda: _if(self.engine.get(entity_id), holds), what)

    def settled(self, entity_id: str, status: str) -> engine.Entity:
        """The container once moby's status reads ``status`` (removed included)."""

        def check(e: engine.Entity) -> bool:
            return _status(e) == status

        entity: engine.Entity = self.until(entity_id, check, f"{entity_id[:12]} is {status}")
        return entity

    def leftovers(self, entity_id: str) -> list[str]:
        """What a start left of the container outside its own directory and log."""
        found = []
        own = container_dir(self.root, entity_id)
        for path in (own / "rootfs", own / "mounts", self.root / "run" / entity_id):
            if path.exists() or path.is_symlink():
                found.append(str(path.relative_to(self.root)))
        address = self.pool.lookup(entity_id)
        if address is not None:
            found.append(f"lease {address}")
        if self.process.task(entity_id) is not None:
            found.append("task")
        if (self.process.state_dir / "containers" / entity_id).is_symlink():
            found.append("runtime container")
        return found

    # -- ending ------------------------------------------------------------------------

    def close(self) -> None:
        """Kill every task left, then close runtime and engine (a test's teardown)."""
        if self.closed:
            return
        self.closed = True
        try:
            for task in self.process.tasks():
                with contextlib.suppress(Exception):
                    self.process.delete_task(task.container_id)
        finally:
            self.process.close()
            self.engine.close()

    def shutdown(self) -> None:
        """A clean daemon shutdown: stop the running containers, then close."""
        self.containers.shutdown()
        self.closed = True
        self.process.close()
        self.engine.close()


def _if(entity: engine.Entity, holds: Callable[[engine.Entity], bool]) -> engine.Entity | None:
    return entity if holds(entity) else None


def _status(entity: engine.Entity) -> str:
    return status_of(entity.configuration, entity.data)


def _short(kind: str, attributes: Mapping[str, Any]) -> str:
    if kind == "kill":
        return f"kill:{attributes['signal']}"
    if kind == "die":
        return f"die:{attributes['exitCode']}"
    if kind == "rename":
        return f"rename:{attributes['oldName']}"
    return kind


class Strays:
    """Pids a test leaves outside any runtime (a crashed daemon's); SIGKILLed at teardown."""

    def __init__(self) -> None:
        self.pids: list[int] = []

    def add(self, *pids: int) -> None:
        self.pids.extend(pids)

    def kill(self) -> None:
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


class Waiter:
    """``Containers.wait`` on a thread; returns once the wait is watching for events."""

    def __init__(
        self, daemon: Daemon, monkeypatch: pytest.MonkeyPatch, ref: str, condition: str
    ) -> None:
        self.result: tuple[int, str] | None = None
        self.error: BaseException | None = None
        watching = threading.Event()
        original = daemon.engine.watch

        def watch(*args: Any, **kw: Any) -> Iterator[engine.Event]:
            if threading.current_thread() is self.thread:
                watching.set()  # its `since` was read before: no later event is missed
            return original(*args, **kw)

        monkeypatch.setattr(daemon.engine, "watch", watch)
        self.thread = threading.Thread(
            target=self._run, args=(daemon.containers, ref, condition), daemon=True
        )
        self.thread.start()
        assert watching.wait(WAIT), "the wait is watching"

    def _run(self, svc: Containers, ref: str, condition: str) -> None:
        try:
            self.result = svc.wait(ref, condition, timeout=WAIT)
        except BaseException as exc:
            self.error = exc

    def join(self) -> tuple[int, str]:
        self.thread.join(WAIT + 5)
        assert not self.thread.is_alive()
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result
