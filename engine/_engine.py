"""The composition root: the runtime's Engine wired to the SQL store."""

from __future__ import annotations

from engine.ports import Clock, Observer
from engine.runtime.engine import Engine as _Engine
from engine.runtime.limits import Limits
from engine.runtime.shared import check_node
from engine.store import open_store

__all__ = ["Engine"]


class Engine(_Engine):
    """The durable engine: charts, entities, fires, journal, timers, events.

    Open it with :meth:`Engine.open` and use it as a context manager::

        with engine.Engine.open("sqlite:///var/lib/chartd/chartd.db") as eng:
            eng.register(chart, bindings)
            nightly = eng.create("job", "nightly", {"cmd": ["backup"]})
            eng.fire(nightly, "run")
    """

    @classmethod
    def open(
        cls,
        url: str | None = None,
        *,
        clock: Clock | None = None,
        observer: Observer | None = None,
        timers: bool = True,
        limits: Limits | None = None,
        node: str | None = None,
    ) -> Engine:
        """An engine on the database at ``url``, migrated to the current schema.

        ``url`` None means an in-memory SQLite database (for tests); a
        ``sqlite:///path`` URL is the embedded default; a
        ``postgresql+psycopg://`` URL is shared by several replicas.
        ``timers=False`` leaves due timers to :meth:`run_due_timers`;
        ``limits`` paces heartbeats and takeover (docs/replicas.md) and bounds what
        the engine keeps (:class:`~engine.runtime.limits.Limits`: e.g.
        ``retain_finished``, how long finished entities are kept); ``node``
        names this engine's node (the host name by default), which owns the
        entities it creates of charts with ``affinity: node``.
        """
        if node is not None:
            check_node(node)  # before a store is opened that nothing would close
        return cls(
            open_store(url or "sqlite://"),
            clock=clock,
            observer=observer,
            timers=timers,
            limits=limits,
            node=node,
        )
