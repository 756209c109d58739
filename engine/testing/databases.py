"""The databases a harness runs on: cheap to make, and one idle engine kept for the next harness.

Migrating a new SQLite database with Alembic, or opening an engine on it,
costs more than a whole short test run. So each process migrates one
database once and copies it (:func:`copy_template`), and a harness that
ends healthy on a database of the kit's own leaves its engine in the
:data:`POOL` for the next harness (entity names are unique per harness, so
runs do not see each other).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import Unavailable
from engine.ports import Store, Write
from engine.runtime import Engine
from engine.store import SqlStore, open_store
from engine.store.schema import chart_versions
from engine.testing.crashable import CrashableStore

__all__ = [
    "POOL",
    "REUSES",
    "Clock",
    "FullStore",
    "KeptStore",
    "Pool",
    "Pooled",
    "copy_template",
]


class Clock:
    """The harness's time: still, except that a crash moves it on (the dead engine's heartbeat)."""

    def __init__(self) -> None:
        self.t = 1_000_000.0

    def now(self) -> float:
        """The current time, in seconds."""
        return self.t


class KeptStore:
    """The harness's SQL store, lent to one engine: that engine's close() does not close it."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store

    def close(self) -> None:
        """Nothing: the harness closes the store when it is done with it."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


class FullStore:
    """A store whose writes fail, while ``full`` is set, as SQLite's do on a full disk.

    Reads go on (a full disk still reads); every commit, heartbeat and purge
    raises the Unavailable the SQL store raises for ``database or disk is full``.
    ``refused`` counts the commits (``apply``) refused so far.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.full = False
        self.refused = 0

    def _write(self) -> None:
        if self.full:
            raise Unavailable("the database is unavailable: database or disk is full")

    def apply(self, batch: Sequence[Write]) -> list[Exception | None]:
        """Delegated, unless the disk is full."""
        if self.full:
            self.refused += 1
        self._write()
        return self.store.apply(batch)

    def heartbeat(self, owner: str, pid: int, host: str, now: float) -> None:
        """Delegated, unless the disk is full."""
        self._write()
        self.store.heartbeat(owner, pid, host, now)

    def purge_finished(self, before: float, limit: int) -> int:
        """Delegated, unless the disk is full."""
        self._write()
        return self.store.purge_finished(before, limit)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


@dataclass(slots=True)
class Pooled:
    """An open engine on a database of its own, left by a harness for the next one."""

    tmp: str
    url: str
    sql: SqlStore
    proxy: CrashableStore
    engine: Engine
    clock: Clock
    uses: int


def forget_chart_versions(sql: SqlStore) -> None:
    """Forget every chart version ``sql`` keeps: a pooled database lent to a new chart."""
    with sql.engine.begin() as conn:
        conn.execute(chart_versions.delete())


REUSES = 200
"""How many harnesses may use one pooled database; then a fresh one, so that none grows."""


class Pool:
    """At most one idle engine per process; closed at exit."""

    def __init__(self) -> None:
        self._idle: list[Pooled] = []
        self._lock = threading.Lock()
        atexit.register(self.drain)

    def take(self) -> Pooled | None:
        """The idle engine, if there is one; it is no longer the pool's."""
        with self._lock:
            return self._idle.pop() if self._idle else None

    def give(self, pooled: Pooled) -> bool:
        """Keep ``pooled`` for the next harness; False if the pool is full (close it yourself)."""
        with self._lock:
            if self._idle:
                return False
            self._idle.append(pooled)
            return True

    def drain(self) -> None:
        """Close the idle engine and remove its database."""
        with self._lock:
            idle, self._idle = self._idle, []
        for pooled in idle:
            pooled.engine.close()
            pooled.sql.close()
            shutil.rmtree(pooled.tmp, ignore_errors=True)


POOL = Pool()
"""The process's pool."""

_TEMPLATE: dict[str, Path] = {}  # the one migrated database each process copies
_TEMPLATE_LOCK = threading.Lock()


def copy_template(path: Path) -> None:
    """Put an empty, migrated SQLite database at ``path``: a copy of one migrated once.

    Migrating a new database with Alembic costs more than a whole short
    test run; a file copy costs nearly nothing.
    """
    with _TEMPLATE_LOCK:
        template = _TEMPLATE.get("path")
        if template is None or not template.exists():
            folder = Path(tempfile.mkdtemp(prefix="chartd-template-"))
            atexit.register(shutil.rmtree, folder, ignore_errors=True)
            template = _TEMPLATE["path"] = folder / "template.db"
            open_store(f"sqlite:///{template}").close()
        shutil.copyfile(template, path)
