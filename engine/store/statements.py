"""The write path's statements, compiled once per database to the driver's SQL.

A commit of one fire runs four or five statements. Through SQLAlchemy's
execution layer each costs 15 to 50 us of Python even when its compiled form is
cached; the driver's cursor runs the same SQL in about 2 us. So the schema and
the SQL come from SQLAlchemy Core, and the hot path hands that SQL to the
driver, inside the transaction SQLAlchemy began.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from engine.store import schema as t
from engine.store.rows import ENTITY_CHANGES, ENTITY_VALUE_CHANGES, TRANSITION_CHANGES

__all__ = ["Prepared", "WriteStatements", "compile_statement", "prepare"]


class Prepared:
    """Driver SQL and how to turn named parameters into the driver's arguments."""

    __slots__ = ("_pick", "names", "sql")

    def __init__(self, sql: str, names: Sequence[str] | None) -> None:
        self.sql = sql
        self.names = tuple(names) if names else None  # positional paramstyle (SQLite's "?")
        # itemgetter picks the values in C; a generator over the names cost a few
        # microseconds per row, more than SQLite takes to insert it.
        self._pick = (
            operator.itemgetter(*self.names) if self.names and len(self.names) > 1 else None
        )

    def args(self, params: dict[str, Any]) -> Any:
        """The driver's arguments for these named parameters."""
        if self.names is None:
            return params
        if self._pick is None:
            return (params[self.names[0]],)
        return self._pick(params)


def compile_statement(stmt: Any, dialect: sa.Dialect, table: sa.Table | None = None) -> Prepared:
    """``stmt`` compiled for ``dialect``; an insert into ``table`` sets all its columns."""
    keys = [c.name for c in table.columns] if table is not None else None
    compiled = stmt.compile(dialect=dialect, column_keys=keys)
    return Prepared(compiled.string, compiled.positiontup)


@dataclass(frozen=True, slots=True)
class WriteStatements:
    """Every statement a commit runs, as driver SQL for one database.

    The entity and journal updates bind the row's id as ``b_id`` (and the
    version it must have as ``b_expect``) beside the values they write.
    ``allocators`` reserve numbers of one or of two sequences, by that width.
    """

    update_entity: Prepared
    update_entity_values: Prepared
    insert_entity: Prepared
    insert_transition: Prepared
    update_transition: Prepared
    insert_event: Prepared
    upsert_step: Prepared
    upsert_timer: Prepared
    upsert_owner: Prepared
    cancel_timers: Prepared
    """Cancel the entity's (``b_entity``) pending timers."""
    cancel_timer_event: Prepared
    """Cancel the entity's pending timers for one event (``b_event``): run once per event."""
    allocators: dict[int, Prepared]


def prepare(dialect: sa.Dialect) -> WriteStatements:
    """The write statements compiled for ``dialect``."""
    e, tr, tm = t.entities.c, t.transitions.c, t.timers.c
    # The states are written into the SQL: its only parameters are the entity and event.
    pending_of = t.timers.update().where(
        tm.entity_id == sa.bindparam("b_entity"), tm.status == sa.literal_column("'pending'")
    )
    cancelled: dict[str, Any] = {"status": sa.literal_column("'cancelled'")}

    def upsert(table: sa.Table, keys: tuple[str, ...]) -> Prepared:
        insert = postgresql.insert if dialect.name == "postgresql" else sqlite.insert
        stmt = insert(table)
        update = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
        return compile_statement(
            stmt.on_conflict_do_update(index_elements=list(keys), set_=update), dialect, table
        )

    return WriteStatements(
        update_entity=compile_statement(
            t.entities.update()
            .where(e.id == sa.bindparam("b_id"), e.version == sa.bindparam("b_expect"))
            .values({name: sa.bindparam(name) for name in ENTITY_CHANGES}),
            dialect,
        ),
        # A fire that neither renames nor finishes the entity leaves the indexes on its
        # name and liveness alone: two random index pages fewer to write at a million.
        update_entity_values=compile_statement(
            t.entities.update()
            .where(e.id == sa.bindparam("b_id"), e.version == sa.bindparam("b_expect"))
            .values({name: sa.bindparam(name) for name in ENTITY_VALUE_CHANGES}),
            dialect,
        ),
        insert_entity=compile_statement(t.entities.insert(), dialect, t.entities),
        insert_transition=compile_statement(t.transitions.insert(), dialect, t.transitions),
        update_transition=compile_statement(
            t.transitions.update()
            .where(tr.id == sa.bindparam("b_id"))
            .values({name: sa.bindparam(name) for name in TRANSITION_CHANGES}),
            dialect,
        ),
        insert_event=compile_statement(t.events.insert(), dialect, t.events),
        upsert_step=upsert(t.steps, ("transition_id", "index")),
        upsert_timer=upsert(t.timers, ("id",)),
        upsert_owner=upsert(t.owners, ("owner",)),
        # Every exit cancels its container's stop and probe timers: compiled once, not
        # per commit (compiling an UPDATE costs far more than running it).
        cancel_timers=compile_statement(pending_of.values(cancelled), dialect),
        cancel_timer_event=compile_statement(
            pending_of.where(tm.event == sa.bindparam("b_event")).values(cancelled), dialect
        ),
        # Reserving numbers of one or two sequences is one statement either way.
        allocators={
            width: compile_statement(
                sa.text(
                    "INSERT INTO counters (name, value) VALUES "
                    + ", ".join(f"(:name{i}, :n{i})" for i in range(width))
                    + " ON CONFLICT (name) DO UPDATE SET value = counters.value + excluded.value"
                    " RETURNING name, value"
                ),
                dialect,
            )
            for width in (1, 2)
        },
    )
