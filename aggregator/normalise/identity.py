"""Which article a copy is, and whether it changed: one function each, versioned.

Identity key, first that applies (DESIGN.md):
  url:<canonical url without scheme>      the original article's URL
  guid:<hash of input name, GUID>          a feed item with no URL: its GUID, within its feed
  fp:<hash of source, title, date>         a post with no original URL

The published entry id is a UUID v5 of the identity key: the same after the database is deleted
and everything is synced again, and never derived from a file path. Changing how keys or hashes
are computed changes every id or every hash, so each has a version that is part of its input.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from datetime import datetime

from aggregator.normalise.text import clean_line

IDENTITY_VERSION = 1
HASH_VERSION = 1
# Namespace of aggregator entry ids (uuid5 of "aggregator entry id" in the URL namespace).
ENTRY_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://aggregator.invalid/entry-id")
_SEP = "\x1f"


def _digest(*parts: str) -> str:
    return hashlib.blake2b(_SEP.join(parts).encode("utf-8"), digest_size=16).hexdigest()


def title_key(title: str) -> str:
    """A title as compared for identity: whitespace collapsed, case-folded."""
    return clean_line(title).casefold()


def identity_key(
    url_key: str | None,
    source_key: str,
    title: str,
    published: datetime | None,
    guid: str | None = None,
) -> str:
    """The key of the article a copy belongs to (see the module docstring for the order).

    `guid` is a feed item's GUID already scoped to its input (GUIDs are unique only per feed).
    """
    if url_key:
        return "url:" + url_key
    if guid:
        return "guid:" + _digest(f"v{IDENTITY_VERSION}", guid)
    day = published.date().isoformat() if published else ""
    return "fp:" + _digest(f"v{IDENTITY_VERSION}", source_key, title_key(title), day)


def entry_id(key: str) -> str:
    """The stable published id of the entry with this identity key."""
    return uuid.uuid5(ENTRY_NAMESPACE, key).urn


def body_hash(title: str, link: str | None, content: str, *extra: str | None) -> str:
    """Hash of what a reader sees of one copy: normalised title, link and content, and any
    `extra` fields shown with it (lead image, author, language)."""
    return _digest(f"v{HASH_VERSION}", title, link or "", content, *(e or "" for e in extra))


def content_hash(body: str, tag_keys: Iterable[str]) -> str:
    """Hash of an entry as published: the winning copy's body hash and the union of tags.

    An entry's `updated` moves only when this changes.
    """
    return _digest(f"v{HASH_VERSION}", body, *sorted(tag_keys))
