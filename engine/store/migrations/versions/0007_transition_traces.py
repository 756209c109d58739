"""Trace context in the journal: where each fire sat in a distributed trace, and its cause.

``trace_id`` and ``span_id`` are the W3C ids of the fire's span (an RPC's
``traceparent`` makes the caller's trace the fire's); ``caused_by`` is the
id of the transition whose timer, follow-up or process exit fired this
one. All nullable: journal entries written before this revision, and fires
no observer traced, have none.

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("transitions") as batch:
        batch.add_column(sa.Column("trace_id", sa.String(32)))
        batch.add_column(sa.Column("span_id", sa.String(16)))
        batch.add_column(sa.Column("caused_by", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("transitions") as batch:
        batch.drop_column("caused_by")
        batch.drop_column("span_id")
        batch.drop_column("trace_id")
