"""Timer claims: the engine firing a due timer, so that of several replicas one fires it.

An engine claims due timers in one transaction (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL) before firing them; the claim lapses at ``claimed_until``, so a
timer whose claimer died is fired by another engine.

Revision ID: 0004
Revises: 0003
Create Date: 2027-01-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("timers") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(64)))
        batch.add_column(sa.Column("claimed_until", sa.Float))


def downgrade() -> None:
    with op.batch_alter_table("timers") as batch:
        batch.drop_column("claimed_until")
        batch.drop_column("claimed_by")
