"""a user can be disabled; the steering holding the lock records its verifying key

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("disabled_at", sa.Float(), nullable=True))
    op.create_table(
        "steering_key",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("since", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("steering_key")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("disabled_at")
