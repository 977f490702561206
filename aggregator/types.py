"""The types that cross stage boundaries, named for the boundary they cross.

    adapter ──PostDraft, FeedDocument──▶ normalise ──Version──▶ store
    store ──StoredVersion, StoredEntry──▶ decide ──EntryIntent──▶ store
    store ──FeedItem──▶ publish

All are frozen: a stage hands data on and never sees it change behind its back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, NamedTuple

Enclosure = tuple[str, str, int | None]
"""(url, media type, length in bytes)."""
Tag = tuple[str, str]
"""(key, display): the key is the normalised form used for matching, display as first seen."""
MARK = "Mark:"
"""How the key of a mark begins: a tag that says something about an entry (`removed at origin
2026-11-22`) rather than what it is about. A mark is shown among the entry's categories but has
no feed of its own. Tag keys are case-folded, so no tag from a post, a feed or config begins so.
"""


def is_mark(tag_key: str) -> bool:
    return tag_key.startswith(MARK)


class FileStat(NamedTuple):
    """A post file found on disk, before it is read.

    A named tuple rather than a frozen dataclass: one is made for every file on every sync,
    and building a tuple costs a fifth as much. Tuples sort by locator, the first field.
    """

    locator: str
    """Path relative to the input folder, with `/` separators: the file's name in the store."""
    path: str
    """Absolute path to read."""
    signature: str
    """`mtime_ns:size`; a file whose signature is unchanged is not read again."""
    mtime_ns: int
    """Last modification, used only to rank otherwise equal copies of one article."""


@dataclass(frozen=True, slots=True)
class PostDraft:
    """What the files adapter read from one post: front matter as found, body split off."""

    file: FileStat
    meta: Mapping[str, Any]
    """Front matter: strings, lists and mappings exactly as written (no YAML type guessing)."""
    body: str
    """The post body with the epoch comment and the repeated `[title](url)` heading removed."""
    body_format: Literal["html", "markdown"]
    epoch_ms: int | None = None
    """Milliseconds since 1970 from a leading `<!--1657206240000-->` comment."""
    heading_url: str | None = None
    """URL of the `[title](url)` heading line that repeated the title."""
    warnings: tuple[str, ...] = ()
    """Things a person may want to know that did not stop the post being read."""


@dataclass(frozen=True, slots=True)
class ItemDraft:
    """One item of a fetched feed as the feed adapter read it: text as found, dates unparsed."""

    guid: str | None
    link: str | None
    """Absolute (resolved against the feed's URL), not yet cleaned."""
    title: str | None
    """May hold markup (Atom `type="html"` titles); normalisation reduces it to text."""
    published: str | None
    updated: str | None
    content: str | None
    """Untrusted HTML: the full content, else the description."""
    summary: str | None
    """Untrusted HTML, when the item has both a summary and content."""
    authors: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    enclosures: tuple[Enclosure, ...] = ()
    image: str | None = None
    """Media thumbnail, image media content, or image enclosure."""
    language: str | None = None
    content_base: str | None = None
    """The `xml:base` the content was written under, when the document declares one: what
    its relative URLs are relative to (else the item's link)."""


@dataclass(frozen=True, slots=True)
class FeedDocument:
    """A fetched feed, read: its own metadata and its items in document order."""

    title: str | None
    link: str | None
    language: str | None
    items: tuple[ItemDraft, ...]
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Version:
    """One input's copy of an article, normalised: what the store keeps per file or feed item."""

    locator: str
    """Where in its input this copy lives (a relative path)."""
    signature: str
    """Changes whenever the underlying file or item does."""
    identity_key: str
    """Which article this is (see `normalise.identity.identity_key`)."""
    title: str
    link: str | None
    """The original article's URL, tracking parameters removed."""
    published: datetime | None
    """Aware UTC; None when no date could be found anywhere."""
    declared_updated: datetime | None
    """The post's own `updated` date, aware UTC."""
    author: str | None
    source_key: str
    source_name: str
    tags: tuple[Tag, ...]
    image: str | None
    """Lead image URL (`headimg`, `thumbnail`, `cover`, `image`)."""
    language: str | None
    content: str | None
    """Sanitised HTML with absolute URLs where the original URL is known; None when the body
    stays in the post file and is rendered from it when published (see `normalise.render_body`).
    """
    summary: str | None
    """Plain text, at most the configured length; None when derived from the body."""
    body_hash: str
    """Hash of what readers see of the copy: title, link, body as published (an HTML post
    body sanitised; see `normalise._hashed_body`) and the other shown fields."""
    mtime_ns: int
    warnings: tuple[str, ...] = ()
    enclosures: tuple[Enclosure, ...] = ()
    """Media attached to a feed item (podcast audio, images)."""


@dataclass(frozen=True, slots=True)
class Skipped:
    """A file that is not a post: reported with its location and the reason, never fatal."""

    locator: str
    reason: str


class StoredVersion(NamedTuple):
    """The parts of a stored version that deciding an entry needs (no content).

    A named tuple, like `FileStat`: one is built per stored copy when a large batch is decided.
    """

    version_id: int
    identity_key: str
    published: datetime | None
    declared_updated: datetime | None
    mtime_ns: int
    locator: str
    body_hash: str
    source_key: str
    source_name: str
    tags: tuple[Tag, ...]
    from_origin: bool = False
    """A copy the origin input made of the article's original page: it vouches for an article
    another input carries, and never keeps an entry alive alone."""


class StoredEntry(NamedTuple):
    """What the store holds of an entry, for deciding whether it changed."""

    entry_pk: int
    identity_key: str
    version_id: int
    content_hash: str
    published: datetime
    updated: datetime
    source_key: str
    tag_keys: frozenset[str]
    source_keys: frozenset[str]


@dataclass(frozen=True, slots=True)
class EntryIntent:
    """What the store must do with one entry after a batch: create, change, or remove it."""

    identity_key: str
    action: Literal["new", "updated", "relinked", "unchanged", "removed"]
    entry_id: str = ""
    """Published id, minted once from the identity key."""
    version_id: int = 0
    """The winning copy: it supplies title, content, link, dates."""
    published: datetime | None = None
    updated: datetime | None = None
    content_hash: str = ""
    source_key: str = ""
    source_name: str = ""
    tags: tuple[Tag, ...] = ()
    sources: tuple[Tag, ...] = ()
    feeds: frozenset[str] = field(default_factory=frozenset)
    """Keys of the feeds this change touches (before and after), to republish."""


class OriginTarget(NamedTuple):
    """An entry whose original page is due for a check, with what readers see of it now."""

    identity_key: str
    url: str
    published: datetime
    updated: datetime
    source_key: str
    source_name: str
    title: str
    content: str | None
    body_path: str | None
    """The post file holding the winning copy's body, when the store does not hold it."""
    winner_kind: str
    """Kind of the input whose copy readers see (`files`, `feed`, `origin`)."""
    etag: str | None
    last_modified: str | None
    error_count: int
    removed_at: datetime | None
    declared_updated: datetime | None


@dataclass(frozen=True, slots=True)
class FeedItem:
    """One entry as the publisher renders it."""

    entry_id: str
    title: str
    link: str | None
    published: datetime
    updated: datetime
    author: str | None
    source_name: str
    categories: tuple[str, ...]
    summary: str | None
    content: str | None
    """None until rendered from `body_path` (see `Version.content`)."""
    image: str | None
    language: str | None
    body_path: str | None = None
    """The post file holding the body, when the store does not hold it."""
    enclosures: tuple[Enclosure, ...] = ()
    body_error: str | None = None
    """Why the post file could not be read when publishing (the body is empty this time)."""
