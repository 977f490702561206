"""archive pages: each entry's fixed place in every feed it belongs to; the revision that
last wrote each entry

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22

Existing entries are given their places here, per feed, oldest published first and then by
entry id: the same order a new database gets when it imports the same posts in one run.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# One statement per kind of feed: its key, what splits it into feeds, and its rows.
_LINKED = "{} l JOIN entries e ON e.id = l.entry_pk"
_BACKFILL = (
    ("'all'", None, "entries e"),
    ("'source:' || l.source_key", "l.source_key", _LINKED.format("entry_sources")),
    ("'tag:' || l.tag_key", "l.tag_key", _LINKED.format("entry_tags")),
)


def upgrade() -> None:
    with op.batch_alter_table("feed_state") as batch:
        batch.add_column(sa.Column("last_seq", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("entries") as batch:
        batch.add_column(sa.Column("changed_revision", sa.BigInteger(), nullable=True))
    op.create_table(
        "feed_members",
        sa.Column("feed_key", sa.Text(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("entry_pk", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_pk"], ["entries.id"], name=op.f("fk_feed_members_entry_pk_entries")
        ),
        sa.PrimaryKeyConstraint("feed_key", "seq", name=op.f("pk_feed_members")),
        sqlite_with_rowid=False,
    )
    op.create_index(op.f("ix_feed_members_entry_pk"), "feed_members", ["entry_pk"], unique=False)
    op.create_table(
        "feed_joins",
        sa.Column("feed_key", sa.Text(), nullable=False),
        sa.Column("entry_pk", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_pk"], ["entries.id"], name=op.f("fk_feed_joins_entry_pk_entries")
        ),
        sa.PrimaryKeyConstraint("feed_key", "entry_pk", name=op.f("pk_feed_joins")),
        sqlite_with_rowid=False,
    )
    for feed_key, partition, source in _BACKFILL:
        by = f"PARTITION BY {partition} " if partition else ""
        op.execute(
            "INSERT INTO feed_members (feed_key, seq, entry_pk) "
            f"SELECT {feed_key}, ROW_NUMBER() OVER ({by}ORDER BY e.published, e.entry_id), e.id "
            f"FROM {source}"
        )
    op.execute(
        "UPDATE feed_state SET last_seq = (SELECT MAX(m.seq) FROM feed_members m "
        "WHERE m.feed_key = feed_state.feed_key)"
    )
    op.execute(
        "INSERT INTO feed_state (feed_key, revision, last_seq) "
        "SELECT m.feed_key, 0, MAX(m.seq) FROM feed_members m "
        "WHERE NOT EXISTS (SELECT 1 FROM feed_state s WHERE s.feed_key = m.feed_key) "
        "GROUP BY m.feed_key"
    )


def downgrade() -> None:
    op.drop_table("feed_joins")
    op.drop_index(op.f("ix_feed_members_entry_pk"), table_name="feed_members")
    op.drop_table("feed_members")
    with op.batch_alter_table("entries") as batch:
        batch.drop_column("changed_revision")
    with op.batch_alter_table("feed_state") as batch:
        batch.drop_column("last_seq")
