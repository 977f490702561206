"""inputs remember the settings their copies were read under

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22

Existing inputs get none: their copies are read again once, under the settings of the next run.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inputs") as batch:
        batch.add_column(sa.Column("read_settings", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inputs") as batch:
        batch.drop_column("read_settings")
