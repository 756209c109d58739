"""The inspector's reads: live entities counted by configuration, entities paged by name.

Not part of the Store port (the runtime never needs them): the inspector
(:mod:`engine.web`) reads a :class:`~engine.store.SqlStore` with these. Both
are statements compiled once, run as the store's own reads are.

A page is keyset-paged on the entities' creation ``seq`` (``seq > :after``
in the order of an index), so the thousandth page costs what the first
does, at a thousand entities or a million.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from engine.errors import InvalidParameter, Unavailable
from engine.ports import EntityRow, TransitionRow
from engine.store import schema as t
from engine.store.dialect import parse_url
from engine.store.migrate import HEAD, current
from engine.store.queries import _LIVE, _entities_page, _steps_of
from engine.store.reads import _like
from engine.store.rows import loads, to_entity
from engine.store.sql import SqlStore

__all__ = ["entity_page", "live_counts", "open_reader", "recent_transitions"]

_e, _tr = t.entities.c, t.transitions.c


def live_counts(store: SqlStore) -> dict[tuple[str, tuple[str, ...]], int]:
    """How many live entities each (chart, configuration) has.

    One grouped scan of the live entities: the inspector runs it when it
    starts and when an event does not say where an entity went, and
    follows the outbox in between.
    """

    def build() -> Any:
        return (
            sa.select(_e.chart, _e.configuration, sa.func.count().label("n"))
            .where(_LIVE)
            .group_by(_e.chart, _e.configuration)
        )

    query = store._reads.shape("inspect.counts", build)
    with store._db.querying() as conn:
        rows = store._db.query(conn, query, {})
    counts: dict[tuple[str, tuple[str, ...]], int] = {}
    for r in rows:
        key = (r["chart"], tuple(loads(r["configuration"])))
        counts[key] = counts.get(key, 0) + int(r["n"])
    return counts


def entity_page(
    store: SqlStore,
    chart: str,
    *,
    state: str | None = None,
    name: str | None = None,
    after: int = 0,
    limit: int = 50,
) -> list[EntityRow]:
    """Entities of ``chart`` after seq ``after``, in ``state`` and named ``name*`` if given."""
    params: dict[str, Any] = {"chart": chart, "after": after, "limit": limit}
    if state:
        params["pattern"] = f"%|{_like(state)}|%"
    if name:
        params["name"] = _like(name) + "%"

    def build() -> Any:
        query = _entities_page(chart=True, state=bool(state), live=False)
        if name:
            query = query.where(_e.name.like(sa.bindparam("name"), escape="\\"))
        return query

    prepared = store._reads.shape(("inspect.page", bool(state), bool(name)), build)
    with store._db.querying() as conn:
        rows = store._db.query(conn, prepared, params)
    return [to_entity(r) for r in rows]


def open_reader(url: str) -> SqlStore:
    """A store to read the engine database at ``url``; never migrated, never written.

    InvalidParameter if there is no such SQLite file (one would be made) or
    the database is not at the schema this chartd reads.
    """
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database
        if not path or path == ":memory:" or not Path(path).is_file():
            raise InvalidParameter(f"no engine database at {url}: no such file")
    store = SqlStore(url)
    try:
        found = current(store.engine)
    except sa.exc.SQLAlchemyError as exc:
        store.close()
        where = store.url.render_as_string(hide_password=True)
        raise Unavailable(f"cannot open the database {where}: {exc}") from None
    if found != HEAD:
        store.close()
        where = store.url.render_as_string(hide_password=True)
        what = "no chartd schema" if found is None else f"schema {found}"
        raise InvalidParameter(
            f"the database {where} has {what}; this chartd reads schema {HEAD}: "
            "open it once with chartd serve or engine.Engine.open to migrate it"
        )
    return store


def recent_transitions(store: SqlStore, entity_id: str, limit: int) -> list[TransitionRow]:
    """The newest ``limit`` transitions of the entity's journal, with their steps, oldest first.

    An entity fired a million times must not make its page read a million
    journal entries: this reads the newest ones by the journal's order.
    """

    def newest() -> Any:
        return (
            sa.select(_tr.id)
            .where(_tr.entity_id == sa.bindparam("entity"))
            .order_by(_tr.seq.desc())
            .limit(sa.bindparam("limit"))
        )

    def build_journal() -> Any:
        return t.transitions.select().where(_tr.id.in_(newest())).order_by(_tr.seq)

    def build_steps() -> Any:
        return _steps_of(newest())

    reads = store._reads
    query = reads.shape("inspect.recent", build_journal)
    steps = reads.shape("inspect.recent_steps", build_steps)
    return store._journal(query, steps, {"entity": entity_id, "limit": limit})
