"""each objective's and constraint's value of a point, and whether its constraints held
(multi-objective search and constraints)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("points") as batch:
        batch.add_column(sa.Column("metric_values", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("feasible", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("points") as batch:
        batch.drop_column("feasible")
        batch.drop_column("metric_values")
