"""Which feeds exist, where their files go and which URLs serve them (pure functions).

Layout of the output folder:

    index.html  feeds.opml  feed.xsl
    all.atom  all.rss  all.json
    source/<slug>.atom …        one feed per source
    tag/<slug>.atom …           one feed per tag
    archive/all/<n>.atom …      archive pages (RFC 5005) of each feed, n = 1, 2, …
    archive/source/<slug>/<n>.atom …
    archive/tag/<slug>/<n>.atom …

Archive pages. Every entry of a feed has a fixed place in it, counted from 1 in the order entries
joined the feed (see `store.models.FeedMemberRow`); page n holds places (n-1)*size+1 .. n*size,
where size is `feeds.archive_page`, newest published first within the page. A feed whose entries all
fit its subscription document (`feeds.entries`) is complete (`<fh:complete/>`) and has no pages; any
other whose last place given is L has pages 1 .. L//size+1: all full but the last, which holds 0 ..
size-1 entries, so a page is full before the next one exists and never needs a `next-archive` link
added later. Entries that left the feed leave gaps (a page may hold fewer entries than its places).
The subscription document (`all.atom`) links `prev-archive` to the last page; page n links `current`
to the subscription document, `prev-archive` to page n-1 (from page 2) and `next-archive` to page
n+1 (up to the last but one) and is marked `<fh:archive/>`. Archive folders sit apart from the feeds
so a web server can serve them with long cache lifetimes: a full page changes only when one of its
entries is edited or removed.

A slug is the normalised name itself whenever that is a safe file name (`联合早报`, `covid-19`),
so URLs stay readable and stable; a name that had to be changed to be safe (spaces, slashes,
very long names) gets a short hash of the name appended, so two names never share a file.
URLs percent-encode the UTF-8 path, which makes CJK names valid URIs.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import quote

EMPTY_FEED_DATE = datetime(1970, 1, 1, tzinfo=UTC)
"""The `updated` date of a feed with no entries (fixed: output never depends on the clock)."""
FORMAT_SUFFIX = {"atom": ".atom", "rss": ".rss", "json": ".json"}
MEDIA_TYPE = {
    "atom": "application/atom+xml",
    "rss": "application/rss+xml",
    "json": "application/feed+json",
}
FOLDER = {"source": "source", "tag": "tag"}
ARCHIVE_FOLDER = "archive"
STYLESHEET = "feed.xsl"
"""The XSLT that lets a browser show an Atom or RSS file as a page (written beside index.html)."""
MAX_SLUG = 60
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\%?#<>:\"|*\s]+")


@dataclass(frozen=True, slots=True)
class FeedRef:
    """Where one feed lives: its key, kind, display name and relative file stem."""

    key: str
    kind: Literal["all", "source", "tag"]
    name: str
    stem: str
    """Path without suffix, relative to the output folder (`tag/联合早报`)."""

    def path(self, fmt: str) -> str:
        return self.stem + FORMAT_SUFFIX[fmt]

    def url(self, base_url: str, fmt: str) -> str:
        return base_url + quote(self.path(fmt), safe="/")

    def archive_path(self, page: int, fmt: str) -> str:
        return f"{ARCHIVE_FOLDER}/{self.stem}/{page}{FORMAT_SUFFIX[fmt]}"

    def archive_url(self, base_url: str, page: int, fmt: str) -> str:
        return base_url + quote(self.archive_path(page, fmt), safe="/")


def archive_pages(last_place: int, page_size: int) -> int:
    """How many archive pages a feed has whose last place given is `last_place`: enough
    that the last one is never full (see module docstring); none when archives are off."""
    return last_place // page_size + 1 if page_size > 0 else 0


def page_places(page: int, page_size: int) -> tuple[int, int]:
    """The first and last place of archive page `page`."""
    return (page - 1) * page_size + 1, page * page_size


def slug(key: str) -> str:
    """A safe, stable file name stem for a normalised name (see module docstring)."""
    safe = _UNSAFE.sub("-", key).strip("-.")
    if safe == key and 0 < len(safe) <= MAX_SLUG:
        return safe
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=3).hexdigest()
    return f"{safe[:MAX_SLUG].rstrip('-.')}-{digest}" if safe else digest


def feed_ref(key: str, name: str) -> FeedRef:
    """The reference of the feed with store key `all`, `source:<key>` or `tag:<key>`."""
    if key == "all":
        return FeedRef(key, "all", name, "all")
    kind, _, rest = key.partition(":")
    if kind not in FOLDER:
        raise ValueError(f"unknown feed key {key!r}")
    return FeedRef(key, kind, name, f"{FOLDER[kind]}/{slug(rest)}")  # type: ignore[arg-type]


def sort_key(ref: FeedRef) -> tuple[int, str]:
    """Order of feeds in listings: everything first, then sources, then tags, by name."""
    return ({"all": 0, "source": 1, "tag": 2}[ref.kind], ref.name.casefold())
