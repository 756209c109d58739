"""Versioned charts: every registered version's document, and the version each entity runs on.

``chart_versions`` keeps each (chart, version) registered, with its document
and content hash: an entity created under version 1 keeps running on version
1's chart after version 2 is registered, until it is migrated. The entity's
``chart_version`` is NULL for entities created before this revision; the first
version of their chart registered afterwards adopts them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chart_versions",
        sa.Column("chart", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("registered_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("chart", "version", name="pk_chart_versions"),
    )
    with op.batch_alter_table("entities") as batch:
        batch.add_column(sa.Column("chart_version", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("entities") as batch:
        batch.drop_column("chart_version")
    op.drop_table("chart_versions")
