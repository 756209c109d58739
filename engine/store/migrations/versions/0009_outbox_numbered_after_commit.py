"""The outbox numbered after the commits on PostgreSQL; the journal's seq from a sequence.

On PostgreSQL every commit used to reserve its journal and outbox numbers
from the ``counters`` rows, locking them to its end: commits of every
process went through their fsyncs one at a time. From this revision a
commit there writes its outbox events to ``pending_events``, not numbered,
and whoever reads the outbox first numbers the committed ones into
``events`` (engine.store.sequencer); a journal entry's ``seq`` comes from the
sequence ``transition_seq``, which orders an entity's journal and may skip
numbers. SQLite keeps numbering both in the commit (one writer at a time).

The table exists on SQLite too, empty, so that both schemas are one.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "pending_events",
        sa.Column("id", _Seq, autoincrement=True, nullable=False),
        sa.Column("entity_id", sa.String(64), nullable=False),
        sa.Column("entity_name", sa.String(300), nullable=False),
        sa.Column("chart", sa.String(200), nullable=False),
        sa.Column("type", sa.String(200), nullable=False),
        sa.Column("attributes", sa.Text, nullable=False),
        sa.Column("transition_id", sa.String(64)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_pending_events"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE SEQUENCE transition_seq")
        # Numbers go on from the counter's, so that the journal stays in order.
        op.execute(
            "SELECT setval('transition_seq', coalesce("
            "(SELECT value FROM counters WHERE name = 'transitions'), 0) + 1, false)"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # Events committed but not numbered yet: numbered now, as a reader would have.
        op.execute(
            "WITH moved AS (DELETE FROM pending_events RETURNING *),"
            " base AS (SELECT coalesce(max(value), 0) AS v FROM counters WHERE name = 'events'),"
            " numbered AS (INSERT INTO events (seq, entity_id, entity_name, chart, type,"
            " attributes, transition_id, created_at)"
            " SELECT base.v + row_number() OVER (ORDER BY moved.id), moved.entity_id,"
            " moved.entity_name, moved.chart, moved.type, moved.attributes,"
            " moved.transition_id, moved.created_at FROM moved, base RETURNING seq)"
            " INSERT INTO counters (name, value) SELECT 'events', max(seq) FROM numbered"
            " HAVING count(*) > 0"
            " ON CONFLICT (name) DO UPDATE SET value = excluded.value"
        )
        op.execute(
            "INSERT INTO counters (name, value)"
            " SELECT 'transitions', coalesce(max(seq), 0) FROM transitions"
            " ON CONFLICT (name) DO UPDATE SET value = GREATEST(counters.value, excluded.value)"
        )
        op.execute("DROP SEQUENCE transition_seq")
    op.drop_table("pending_events")
