"""Names are unique among live entities only: a finished entity frees its name.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("entities") as batch:
        batch.add_column(sa.Column("live", sa.Boolean(), nullable=False, server_default=sa.true()))
        batch.drop_constraint("uq_entities_chart_name", type_="unique")
    op.create_index(
        "uq_entities_live_name",
        "entities",
        ["chart", "name"],
        unique=True,
        sqlite_where=sa.text("live"),
        postgresql_where=sa.text("live"),
    )


def downgrade() -> None:
    op.drop_index("uq_entities_live_name", table_name="entities")
    with op.batch_alter_table("entities") as batch:
        batch.create_unique_constraint("uq_entities_chart_name", ["chart", "name"])
        batch.drop_column("live")
