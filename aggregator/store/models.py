"""The database schema (SQLAlchemy 2.x). Alembic revisions in `migrations/` build exactly this;
a test checks that `upgrade head` matches these models. The schema only grows.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# The head revision of `migrations/`; the store checks it before using a database (a test keeps
# it equal to Alembic's head).
SCHEMA_REVISION = "0004"

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# Tables keyed by text or by two columns are stored as one B-tree on SQLite (a rowid table
# would keep the rows and a separate index of the key): every row written costs half. Other
# databases ignore the option.
WITHOUT_ROWID = {"sqlite_with_rowid": False}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on every backend.

    SQLite has no time zones and hands back naive values; PostgreSQL's timestamptz would read a
    naive value in the session's zone. Values are stored as UTC and returned aware in UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class InputRow(Base):
    """One configured input and its fetch state (kept here, not in memory)."""

    __tablename__ = "inputs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    location: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str | None] = mapped_column(String(40))
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(Text)
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # 0002: fetch state of live inputs
    url: Mapped[str | None] = mapped_column(Text)
    """Where the input is fetched now, when a permanent redirect moved it from `location`."""
    http_status: Mapped[int | None] = mapped_column(Integer)
    moved_to: Mapped[str | None] = mapped_column(Text)
    """Target of permanent redirects seen lately, not yet trusted (see `moved_count`)."""
    moved_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    moved_count: Mapped[int | None] = mapped_column(Integer)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """When the input answered 410 Gone; it is not fetched again."""
    # 0004
    read_settings: Mapped[str | None] = mapped_column(String(64))
    """`normalise.settings_key` of the settings the input's copies were read under: when the
    configuration changes it, every copy is read again."""


class VersionRow(Base):
    """One input's copy of an article (a file, later a feed item or an origin page)."""

    __tablename__ = "versions"
    __table_args__ = (UniqueConstraint("input_id", "locator"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    input_id: Mapped[int] = mapped_column(ForeignKey("inputs.id"))
    locator: Mapped[str] = mapped_column(Text)
    signature: Mapped[str] = mapped_column(String(200))
    identity_key: Mapped[str] = mapped_column(Text, index=True)
    title: Mapped[str] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(Text)
    published: Mapped[datetime | None] = mapped_column(UTCDateTime)
    declared_updated: Mapped[datetime | None] = mapped_column(UTCDateTime)
    author: Mapped[str | None] = mapped_column(Text)
    source_key: Mapped[str] = mapped_column(Text)
    source_name: Mapped[str] = mapped_column(Text)
    tags: Mapped[str] = mapped_column(Text)
    """Tag pairs: `key<US>display` joined by <RS> (see `store.encode_tags`)."""
    image: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(40))
    content: Mapped[str | None] = mapped_column(Text)
    """Sanitised HTML; NULL for a post file, whose body is rendered from the file."""
    summary: Mapped[str | None] = mapped_column(Text)
    body_hash: Mapped[str] = mapped_column(String(64))
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    enclosures: Mapped[str | None] = mapped_column(Text)
    """0002: a feed item's media, `url<US>type<US>length` joined by <RS>."""


class OriginPageRow(Base):
    """Fetch state of one original article page (the `origin` input)."""

    __tablename__ = "origin_pages"
    __table_args__ = (WITHOUT_ROWID,)
    url: Mapped[str] = mapped_column(Text, primary_key=True)
    identity_key: Mapped[str] = mapped_column(Text)
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(Text)
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    http_status: Mapped[int | None] = mapped_column(Integer)
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """When the page answered 404/410: the entry is kept, marked removed at origin."""


class EntryRow(Base):
    """One article, however many copies of it exist; its winning copy supplies the content."""

    __tablename__ = "entries"
    __table_args__ = (Index("ix_entries_published_entry_id", "published", "entry_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    identity_key: Mapped[str] = mapped_column(Text, unique=True)
    entry_id: Mapped[str] = mapped_column(String(100))
    """Minted from identity_key (a UUID v5), so unique with it; no index of its own."""
    version_id: Mapped[int] = mapped_column(Integer)
    source_key: Mapped[str] = mapped_column(Text)
    source_name: Mapped[str] = mapped_column(Text)
    published: Mapped[datetime] = mapped_column(UTCDateTime)
    updated: Mapped[datetime] = mapped_column(UTCDateTime)
    content_hash: Mapped[str] = mapped_column(String(64))
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    changed_revision: Mapped[int | None] = mapped_column(BigInteger)
    """0003: the store revision that last wrote this entry (NULL: before 0003). An archive page
    rendered at a later revision holds it as it is now (see `publish`)."""


class TagRow(Base):
    __tablename__ = "tags"
    __table_args__ = (WITHOUT_ROWID,)
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    display: Mapped[str] = mapped_column(Text)
    """The spelling first seen."""


class SourceRow(Base):
    __tablename__ = "sources"
    __table_args__ = (WITHOUT_ROWID,)
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    display: Mapped[str] = mapped_column(Text)


class EntryTagRow(Base):
    """An entry's tags (the key leads with the entry: its tags are found and replaced
    together); the index serves per-tag feeds, newest first."""

    __tablename__ = "entry_tags"
    __table_args__ = (
        Index("ix_entry_tags_tag_key_published", "tag_key", "published"),
        WITHOUT_ROWID,
    )
    entry_pk: Mapped[int] = mapped_column(ForeignKey("entries.id"), primary_key=True)
    tag_key: Mapped[str] = mapped_column(Text, primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    published: Mapped[datetime] = mapped_column(UTCDateTime)


class EntrySourceRow(Base):
    __tablename__ = "entry_sources"
    __table_args__ = (
        Index("ix_entry_sources_source_key_published", "source_key", "published"),
        WITHOUT_ROWID,
    )
    entry_pk: Mapped[int] = mapped_column(ForeignKey("entries.id"), primary_key=True)
    source_key: Mapped[str] = mapped_column(Text, primary_key=True)
    published: Mapped[datetime] = mapped_column(UTCDateTime)


class FeedStateRow(Base):
    """The store revision at which each feed's entries last changed (drives republishing)."""

    __tablename__ = "feed_state"
    __table_args__ = (WITHOUT_ROWID,)
    feed_key: Mapped[str] = mapped_column(Text, primary_key=True)
    revision: Mapped[int] = mapped_column(BigInteger)
    last_seq: Mapped[int | None] = mapped_column(BigInteger)
    """0003: the last place given in the feed's archive (`feed_members.seq`); never decreases."""


class FeedMemberRow(Base):
    """An entry's place in a feed's archive (RFC 5005 archive pages).

    `seq` counts the entries that ever joined the feed, from 1, and is fixed when the entry
    joins, so archive page n (seq n*size-size+1 .. n*size) never gains members once full.
    An entry that leaves the feed (removed, or its tag dropped) leaves its place empty.
    """

    __tablename__ = "feed_members"
    __table_args__ = (WITHOUT_ROWID,)
    feed_key: Mapped[str] = mapped_column(Text, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    entry_pk: Mapped[int] = mapped_column(ForeignKey("entries.id"), index=True)


class FeedJoinRow(Base):
    """Entries that joined a feed and wait for their place in its archive.

    Places are given at the end of a decide run, to everything that joined during it at once,
    oldest published first (then by entry id): an archive imported in several batches is
    numbered as if in one.
    """

    __tablename__ = "feed_joins"
    __table_args__ = (WITHOUT_ROWID,)
    feed_key: Mapped[str] = mapped_column(Text, primary_key=True)
    entry_pk: Mapped[int] = mapped_column(ForeignKey("entries.id"), primary_key=True)


class PendingRow(Base):
    """Identity keys whose copies changed and whose entries are still to be decided.

    Copies are written first, each batch marking its keys here in the same transaction; entries
    are decided afterwards from all copies at once. A run killed in between leaves the marks, so
    the next run finishes the work, and the result is the same as if it had never stopped.
    """

    __tablename__ = "pending"
    __table_args__ = (WITHOUT_ROWID,)
    identity_key: Mapped[str] = mapped_column(Text, primary_key=True)


class CounterRow(Base):
    """Named counters; `revision` goes up by one in every transaction that changes entries."""

    __tablename__ = "counters"
    __table_args__ = (WITHOUT_ROWID,)
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)
