"""What the rooms of one engine share: its ports, its identity, its registry and caches."""

from __future__ import annotations

import itertools
import re
import secrets
import socket
from typing import TypeVar

from engine import core
from engine.errors import Conflict, InvalidParameter, NotFound, Unavailable
from engine.locks import KeyedLock
from engine.model.validate import build
from engine.ports import Clock, EntityRow, Observer, Store
from engine.runtime.commit import GroupCommit
from engine.runtime.limits import Limits
from engine.runtime.outcomes import Stranded
from engine.runtime.records import Entity
from engine.runtime.registry import Registered, Registry, missing_code

__all__ = ["NAME", "Recent", "RowCache", "Shared", "check_node", "may_be_id"]

V = TypeVar("V")

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$")
"""What an entity's name and a node's name may be (docker's container names)."""

_ID = re.compile(r"[0-9a-f]{64}")


def may_be_id(key: str) -> bool:
    """Whether ``key`` has the shape of an entity's id: 64 lowercase hex digits.

    The engine makes every id (32 random bytes in hex), so a key of another
    shape can only be a name, and its lookup need not descend the id index.
    """
    return len(key) == 64 and _ID.fullmatch(key) is not None


def check_node(node: str) -> str:
    """``node`` if it is a valid node name (a host name's characters); InvalidParameter if not."""
    if not isinstance(node, str) or not NAME.match(node):
        raise InvalidParameter(
            f"invalid node name {node!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed, "
            "at most 253 characters"
        )
    return node


class Recent(dict[str, V]):
    """The values this engine used last, by key; past ``capacity``, the oldest go."""

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity

    def __setitem__(self, key: str, value: V) -> None:
        super().__setitem__(key, value)
        if len(self) > self.capacity:
            del self[next(iter(self))]


class RowCache(Recent[EntityRow]):
    """The entity rows this engine read or wrote last, by id.

    A row is only a guess of the stored one: every commit checks its version,
    so forgetting one costs a read, never correctness.
    """


class Shared:
    """One engine's ports and state that more than one of its rooms reads or writes.

    ``commit`` is set by the engine once the room that wakes watchers exists,
    since every commit tells that room what it wrote.
    """

    commit: GroupCommit

    def __init__(
        self,
        store: Store,
        clock: Clock,
        observer: Observer,
        limits: Limits,
        node: str | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.observer = observer
        self.limits = limits
        self.id = secrets.token_hex(8)
        self.host = socket.gethostname()
        # Entities of charts with node affinity created here belong to this node.
        self.node = self.host if node is None else check_node(node)
        # Transition ids: this engine's id and a counter. Unique across engines and
        # restarts (the engine id is new each time), and no system call on the hot path.
        self._serial = itertools.count(1)
        self.registry = Registry()
        self.cache = RowCache(limits.cached_rows)
        # The live entity each name found last, for fires by name (see resolve).
        self.names: Recent[str] = Recent(limits.cached_rows)
        # Entities another engine fired since this one cached them, lately: their
        # fires read the row first (a failed commit costs more than a read).
        self.contended: Recent[bool] = Recent(limits.cached_rows)
        self.locks = KeyedLock(limits.idle_locks)
        self.recovering: set[str] = set()  # entities whose transition recovery is finishing
        # Entities whose saga ended unrecorded, by id: fires on them wait for recovery.
        self.stranded: dict[str, Stranded] = {}
        self.closed = False

    def check_open(self) -> None:
        """Unavailable once the engine is closed."""
        if self.closed:
            raise Unavailable("the engine is closed")

    def next_transition_id(self) -> str:
        """A new transition id, unique across engines."""
        return f"{self.id}{next(self._serial):016x}"

    def row(self, ref: str | Entity, chart: str | None = None) -> EntityRow:
        """The stored entity with this id or name; NotFound or InvalidParameter otherwise."""
        key = ref.id if isinstance(ref, Entity) else ref
        if not isinstance(key, str) or not key:
            raise InvalidParameter(f"invalid name or ID supplied: {key!r}")
        row = self.store.entity(key, chart, by_id=may_be_id(key))
        if row is None:
            raise NotFound(f"No such entity: {key}")
        return row

    def registered(self, row: EntityRow) -> Registered:
        """The chart and code the entity runs on: its version's, loaded from the store if need be.

        NotFound if its chart is not registered here; InvalidParameter if its
        version names code the newest version's bindings lack (register that
        version with its own bindings).
        """
        newest = self.registry[row.chart]
        if row.chart_version in (0, newest.chart.version):
            return newest
        return self.registry.version(row.chart, row.chart_version) or self.stored_version(
            row.chart, row.chart_version
        )

    def stored_version(self, chart: str, version: int) -> Registered:
        """Version ``version`` of ``chart`` from its stored document, with the newest's code."""
        newest = self.registry[chart]
        for stored in self.store.chart_versions(chart):
            if stored.version == version:
                break
        else:
            raise NotFound(f"chart {chart!r} has no version {version} (none is stored)")
        model = build(stored.document, source=f"{chart} version {version} (stored)")
        loaded = core.Chart(model)
        missing = missing_code(loaded, newest.bindings)
        if missing:
            raise InvalidParameter(
                f"chart {chart!r} version {version} needs code the bindings of version "
                f"{newest.chart.version} lack: {', '.join(missing)}; register version "
                f"{version} with its own bindings"
            )
        self.registry.add(loaded, newest.bindings, newest=False)
        return self.registry.version(chart, version) or Registered(loaded, newest.bindings)

    def check_owned(self, row: EntityRow, doing: str) -> None:
        """Conflict (FAILED_PRECONDITION) if the entity belongs to another node than this one."""
        if row.node is not None and row.node != self.node:
            raise Conflict(
                f"{row.name} belongs to node {row.node!r}, not this node ({self.node!r}): "
                f"{doing} on node {row.node!r}"
            )

    def resolve(self, ref: str | Entity) -> tuple[EntityRow, str | None]:
        """The entity's row for a fire, and the name it was guessed by (else None).

        By id, the cached row, else the stored one. By name, the cached row of
        the live entity this name found last, without a read: a guess like any
        cached row, checked by the commit's version check. A fire that finds
        the guessed entity no longer live under that name looks the name up
        again (:class:`engine.runtime.outcomes.Renamed`). An entity another
        engine fires too (``contended``) is read: a commit that fails its
        version check costs more than a read.
        """
        key = ref.id if isinstance(ref, Entity) else ref
        if isinstance(key, str):
            known = key if key in self.cache else self.names.get(key)
            cached = self.cache.get(known) if known is not None else None
            if cached is not None and known not in self.contended:
                if known == key:
                    return cached, None
                if cached.live and cached.name == key:
                    return cached, key
        else:
            cached = None
        row = self.row(ref)
        if cached is not None and cached.id == row.id and cached.version == row.version:
            self.contended.pop(row.id, None)  # no other engine fired it since: calm again
        self.cache[row.id] = row
        if row.live and row.name == key:
            self.names[key] = row.id
        return row, None

    def created(self, row: EntityRow) -> None:
        """Cache the row of an entity created here; its name names it now, or (shared
        with another chart's live entity) none of them."""
        self.cache[row.id] = row
        self.names.pop(row.name, None)
