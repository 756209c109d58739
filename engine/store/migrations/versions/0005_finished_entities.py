"""Indexes that keep finished entities out of the way: listings of live ones, and retention.

A listing of a chart's live entities (``ps``) reads (chart, seq) among live
entities only, so entities in a top-level final state (removed containers)
cost it nothing, however many there are. The retention sweep finds finished
entities in creation order through (seq) among finished ones. Both indexes
are partial on ``live``, which changes once in an entity's life: a fire that
neither renames nor finishes an entity writes neither (and on PostgreSQL its
update stays a HOT one).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_entities_live_chart_seq",
        "entities",
        ["chart", "seq"],
        sqlite_where=sa.text("live"),
        postgresql_where=sa.text("live"),
    )
    op.create_index(
        "ix_entities_finished_seq",
        "entities",
        ["seq"],
        sqlite_where=sa.text("NOT live"),
        postgresql_where=sa.text("NOT live"),
    )


def downgrade() -> None:
    op.drop_index("ix_entities_finished_seq", table_name="entities")
    op.drop_index("ix_entities_live_chart_seq", table_name="entities")
