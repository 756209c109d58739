"""Journal and outbox rows numbered by the server, on PostgreSQL.

Numbers come from the ``counters`` table inside the writing transaction: the
upsert that reserves them locks the counter's row until the commit, so that
commits, and so numbers, follow one another without holes. Every process's
commit queues on that lock. Had the writer read the reserved numbers back
before inserting its rows, the lock would be held for a round trip and for
the Python that builds the rows, on a machine whose cores the processes
share with the database: a process descheduled there kept every other
process waiting (four processes committed less than one did). So on
PostgreSQL the reservation is sent without reading its answer, each row's
number is read from the counter by its own INSERT (the transaction sees its
own reservation; the row gives its distance back from the last number
reserved), and the reservation, the rows, the notification and the COMMIT
go out in one flight: the lock is held only while the server works.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from engine.store import schema as t
from engine.store.notify import CHANNEL
from engine.store.statements import Prepared, WriteStatements, compile_statement

__all__ = ["BACK", "ServerNumbered"]

BACK = "seq"
"""The parameter that carries a row's distance back from the last number reserved."""


def _last(counter: str) -> sa.ScalarSelect[int]:
    c = t.counters.c
    # The counter's name as a literal: the statement binds only the row's values.
    return sa.select(c.value).where(c.name == sa.literal_column(f"'{counter}'")).scalar_subquery()


@dataclass(frozen=True, slots=True)
class ServerNumbered:
    """The statements that number journal and outbox rows from the counters (PostgreSQL)."""

    insert_transition: Prepared
    insert_event: Prepared
    reserve_notifying: dict[int, Prepared]
    """WriteStatements.allocators that also ``pg_notify`` the last outbox number
    reserved (delivered on commit): for a batch with events, one statement fewer."""

    @classmethod
    def prepare(cls, dialect: sa.Dialect, writes: WriteStatements) -> ServerNumbered:
        """The statements compiled for ``dialect`` (PostgreSQL), beside ``writes``."""

        def numbered(table: sa.Table, counter: str) -> Prepared:
            stmt = table.insert().values(seq=_last(counter) - sa.bindparam(BACK))
            return compile_statement(stmt, dialect, table)

        def notifying(reserve: Prepared) -> Prepared:
            return Prepared(
                f"WITH reserved AS ({reserve.sql}) SELECT pg_notify('{CHANNEL}', value::text)"
                " FROM reserved WHERE name = 'events'",
                reserve.names,
            )

        return cls(
            insert_transition=numbered(t.transitions, "transitions"),
            insert_event=numbered(t.events, "events"),
            reserve_notifying={n: notifying(p) for n, p in writes.allocators.items()},
        )
