"""The node an entity belongs to: entities of a chart with ``affinity: node``.

A chart whose steps act on one machine (the container chart: its processes
live on one host) records on each entity the node that created it; only that
node fires it, recovers its transitions and fires its timers. NULL (every
entity before this revision, and every entity of a chart without affinity)
means any node may.

Revision ID: 0008
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("entities") as batch:
        batch.add_column(sa.Column("node", sa.String(300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("entities") as batch:
        batch.drop_column("node")
