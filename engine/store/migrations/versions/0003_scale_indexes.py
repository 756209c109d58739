"""Indexes that keep reads independent of the number of entities.

A lookup by name without a chart (``engine.get("web")``), and the latest
finished entity that had a name, are served by (name, seq); a listing of one
chart's entities by (chart, seq), so it reads one page, not every entity of
every chart before it. The journal's index on entity_id goes: the unique
(entity_id, idempotency_key) index serves the same lookups, and every fire
wrote a random page of both.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_entities_name_seq", "entities", ["name", "seq"])
    op.create_index("ix_entities_chart_seq", "entities", ["chart", "seq"])
    op.drop_index("ix_transitions_entity_id", table_name="transitions")


def downgrade() -> None:
    op.create_index("ix_transitions_entity_id", "transitions", ["entity_id"])
    op.drop_index("ix_entities_chart_seq", table_name="entities")
    op.drop_index("ix_entities_name_seq", table_name="entities")
