"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "counters",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_counters")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("identity_key", sa.Text(), nullable=False),
        sa.Column("entry_id", sa.String(length=100), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("source_key", sa.Text(), nullable=False),
        sa.Column("source_name", sa.Text(), nullable=False),
        sa.Column("published", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_entries")),
        sa.UniqueConstraint("identity_key", name=op.f("uq_entries_identity_key")),
    )
    with op.batch_alter_table("entries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_entries_published_entry_id", ["published", "entry_id"], unique=False
        )

    op.create_table(
        "feed_state",
        sa.Column("feed_key", sa.Text(), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("feed_key", name=op.f("pk_feed_state")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "inputs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=40), nullable=True),
        sa.Column("error_count", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("etag", sa.Text(), nullable=True),
        sa.Column("last_modified", sa.Text(), nullable=True),
        sa.Column("lease_owner", sa.String(length=200), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inputs")),
        sa.UniqueConstraint("name", name=op.f("uq_inputs_name")),
    )
    op.create_table(
        "pending",
        sa.Column("identity_key", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("identity_key", name=op.f("pk_pending")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "sources",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("display", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_sources")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "tags",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("display", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_tags")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "entry_sources",
        sa.Column("entry_pk", sa.Integer(), nullable=False),
        sa.Column("source_key", sa.Text(), nullable=False),
        sa.Column("published", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_pk"], ["entries.id"], name=op.f("fk_entry_sources_entry_pk_entries")
        ),
        sa.PrimaryKeyConstraint("entry_pk", "source_key", name=op.f("pk_entry_sources")),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("entry_sources", schema=None) as batch_op:
        batch_op.create_index(
            "ix_entry_sources_source_key_published", ["source_key", "published"], unique=False
        )

    op.create_table(
        "entry_tags",
        sa.Column("entry_pk", sa.Integer(), nullable=False),
        sa.Column("tag_key", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("published", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_pk"], ["entries.id"], name=op.f("fk_entry_tags_entry_pk_entries")
        ),
        sa.PrimaryKeyConstraint("entry_pk", "tag_key", name=op.f("pk_entry_tags")),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("entry_tags", schema=None) as batch_op:
        batch_op.create_index(
            "ix_entry_tags_tag_key_published", ["tag_key", "published"], unique=False
        )

    op.create_table(
        "versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("input_id", sa.Integer(), nullable=False),
        sa.Column("locator", sa.Text(), nullable=False),
        sa.Column("signature", sa.String(length=200), nullable=False),
        sa.Column("identity_key", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("link", sa.Text(), nullable=True),
        sa.Column("published", sa.DateTime(timezone=True), nullable=True),
        sa.Column("declared_updated", sa.DateTime(timezone=True), nullable=True),
        sa.Column("author", sa.Text(), nullable=True),
        sa.Column("source_key", sa.Text(), nullable=False),
        sa.Column("source_name", sa.Text(), nullable=False),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("image", sa.Text(), nullable=True),
        sa.Column("language", sa.String(length=40), nullable=True),
        sa.Column("content", sa.Text(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("body_hash", sa.String(length=64), nullable=False),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["input_id"], ["inputs.id"], name=op.f("fk_versions_input_id_inputs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_versions")),
        sa.UniqueConstraint("input_id", "locator", name=op.f("uq_versions_input_id_locator")),
    )
    with op.batch_alter_table("versions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_versions_identity_key"), ["identity_key"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_versions_identity_key"))

    op.drop_table("versions")
    with op.batch_alter_table("entry_tags", schema=None) as batch_op:
        batch_op.drop_index("ix_entry_tags_tag_key_published")

    op.drop_table("entry_tags")
    with op.batch_alter_table("entry_sources", schema=None) as batch_op:
        batch_op.drop_index("ix_entry_sources_source_key_published")

    op.drop_table("entry_sources")
    op.drop_table("tags")
    op.drop_table("sources")
    op.drop_table("pending")
    op.drop_table("inputs")
    op.drop_table("feed_state")
    with op.batch_alter_table("entries", schema=None) as batch_op:
        batch_op.drop_index("ix_entries_published_entry_id")

    op.drop_table("entries")
    op.drop_table("counters")
