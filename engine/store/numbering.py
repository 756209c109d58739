"""Journal and outbox rows written without a shared lock, on PostgreSQL.

Numbers taken inside the writing transaction from a counter row lock it
until the commit: every process's commit then waits for the one before it,
fsync included, and four processes committed little more than one. So on
PostgreSQL a journal entry's ``seq`` comes from the sequence
``transition_seq`` (it orders each entity's journal: the commits of one
entity lock it in turn; the numbers may skip), and the outbox's events are
written unnumbered to ``pending_events``, numbered after the commit in the
order they became visible (:mod:`engine.store.sequencer`), which then
notifies every process's listener (:mod:`engine.store.notify`).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from engine.store import schema as t
from engine.store.statements import Prepared, compile_statement

__all__ = ["ServerNumbered"]


@dataclass(frozen=True, slots=True)
class ServerNumbered:
    """The statements that write journal and outbox rows without a counter (PostgreSQL)."""

    insert_transition: Prepared
    insert_pending: Prepared

    @classmethod
    def prepare(cls, dialect: sa.Dialect) -> ServerNumbered:
        """The statements compiled for ``dialect`` (PostgreSQL)."""
        numbered = t.transitions.insert().values(seq=sa.literal_column("nextval('transition_seq')"))
        return cls(
            insert_transition=compile_statement(numbered, dialect, t.transitions),
            insert_pending=compile_statement(
                t.pending_events.insert().values(
                    {c.name: sa.bindparam(c.name) for c in t.pending_events.c if c.name != "id"}
                ),
                dialect,
            ),
        )
