"""population-based training: the lineage of every member, segment by segment

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lineage",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("task_id", sa.Integer(), sa.ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False),
        sa.Column("point_id", sa.Integer(), sa.ForeignKey("points.id", ondelete="CASCADE"), nullable=False),
        sa.Column("member", sa.Integer(), nullable=False),
        sa.Column("segment", sa.Integer(), nullable=False),
        sa.Column("step", sa.Float(), nullable=False),
        sa.Column("until", sa.Float(), nullable=False),
        sa.Column("config_before", sa.JSON(), nullable=False),
        sa.Column("config_after", sa.JSON(), nullable=False),
        sa.Column("parent", sa.Integer(), nullable=True),
        sa.Column("parent_checkpoint", sa.String(1024), nullable=True),
        sa.Column("restore", sa.String(1024), nullable=True),
        sa.Column("restored_at", sa.Float(), nullable=True),
        sa.Column("end_value", sa.Float(), nullable=True),
        sa.Column("end_checkpoint", sa.String(1024), nullable=True),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.UniqueConstraint("point_id", "segment", name="uq_lineage_point_segment"),
    )
    op.create_index("ix_lineage_task_id", "lineage", ["task_id"])


def downgrade() -> None:
    op.drop_index("ix_lineage_task_id", "lineage")
    op.drop_table("lineage")
