"""live inputs: fetch state, enclosures, origin pages

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inputs") as batch:
        batch.add_column(sa.Column("url", sa.Text(), nullable=True))
        batch.add_column(sa.Column("http_status", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("moved_to", sa.Text(), nullable=True))
        batch.add_column(sa.Column("moved_since", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("moved_count", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("versions") as batch:
        batch.add_column(sa.Column("enclosures", sa.Text(), nullable=True))
    op.create_table(
        "origin_pages",
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("identity_key", sa.Text(), nullable=False),
        sa.Column("etag", sa.Text(), nullable=True),
        sa.Column("last_modified", sa.Text(), nullable=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_check_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("error_count", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("url", name=op.f("pk_origin_pages")),
        sqlite_with_rowid=False,
    )
    op.create_index(
        op.f("ix_origin_pages_next_check_at"), "origin_pages", ["next_check_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_origin_pages_next_check_at"), table_name="origin_pages")
    op.drop_table("origin_pages")
    with op.batch_alter_table("versions") as batch:
        batch.drop_column("enclosures")
    with op.batch_alter_table("inputs") as batch:
        for column in (
            "retired_at",
            "moved_count",
            "moved_since",
            "moved_to",
            "http_status",
            "url",
        ):
            batch.drop_column(column)
