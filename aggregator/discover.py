"""Finding feeds: a URL that is a feed, or an HTML page that links to its feeds.

Autodiscovery reads the page's `<link rel="alternate">` tags (RSS, Atom, JSON Feed), the way
browsers and feed readers do; a page without any is tried at the usual feed paths
(`/feed`, `/rss.xml`…), and a feed found there is marked as guessed, so that the commands say
it is not the one asked for. A URL whose document is a feed that cannot be read is an error,
not a page to look around from. Every candidate is fetched and read before it is offered, so
what `aggregator add` writes into the config is a feed that works today.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urljoin

from aggregator import fetch
from aggregator.adapters import feed as feed_adapter
from aggregator.errors import ParseError, SourceError

FEED_TYPES = frozenset(
    {
        "application/rss+xml",
        "application/atom+xml",
        "application/feed+json",
        "application/json",
        "application/rdf+xml",
        "text/xml",
        "application/xml",
    }
)
COMMON_PATHS = ("/feed", "/rss", "/feed.xml", "/rss.xml", "/atom.xml", "/index.xml", "/feed.json")
# A document that begins as a feed does: JSON, or XML whose root is <rss>, <feed> or <rdf:RDF>
# (after any declaration, comments, processing instructions and DOCTYPE).
_FEED_START = re.compile(
    r"\A\s*(?:(?:<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^>\[]*(?:\[.*?\])?\s*>)\s*)*"
    r"(?:[{\[]|<(?:[\w.-]+:)?(?:rss|feed|RDF)[\s/>])",
    re.S | re.I,
)


@dataclass(frozen=True, slots=True)
class Found:
    url: str
    """The feed's URL, after redirects."""
    title: str | None
    items: int
    guessed: bool = False
    """Found at one of the usual feed paths: neither the URL asked for nor linked from it."""
    warnings: tuple[str, ...] = ()
    """What was wrong with the document, though it could be read (as sync will report)."""


class _LinkFinder(HTMLParser):
    """Collects `<link rel="alternate" type="…feed type…" href>` (stdlib: no DOM needed)."""

    def __init__(self, base: str):
        super().__init__(convert_charrefs=True)
        self.base = base
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "base":
            href = dict(attrs).get("href")
            if href:
                self.base = urljoin(self.base, href)
        if tag not in ("link", "a"):
            return
        a = {k.lower(): (v or "") for k, v in attrs}
        rels = a.get("rel", "").lower().split()
        if "alternate" in rels and a.get("type", "").lower().split(";")[0] in FEED_TYPES:
            href = a.get("href", "").strip()
            if href:
                self.links.append(urljoin(self.base, href))


def feed_links(html: str, base: str) -> list[str]:
    """Feed URLs an HTML page announces, in page order, without repeats."""
    finder = _LinkFinder(base)
    finder.feed(html)
    finder.close()
    return list(dict.fromkeys(finder.links))


def _looks_like_feed(text: str) -> bool:
    """Whether a document begins as an RSS, Atom, RDF or JSON feed does (JSON that names no
    JSON Feed version, such as a site's API, is not one: its page is searched as any other)."""
    head = text[:8192]
    if _FEED_START.match(head) is None:
        return False
    return head.lstrip()[:1] not in "{[" or "jsonfeed.org/version" in head


def _read(result: fetch.Fetched, guessed: bool = False) -> Found | None:
    if not result.ok:
        return None
    try:
        doc = feed_adapter.parse_document(result.content, result.url, result.charset)
    except ParseError:
        return None
    return Found(result.url, doc.title, len(doc.items), guessed, doc.warnings)


def discover(url: str, settings: fetch.FetchSettings) -> list[Found]:
    """The feeds at or announced by `url`, else at its site's usual feed paths (`guessed`).

    Raises SourceError when the URL cannot be fetched, and ParseError when its document is a
    feed that cannot be read (cut off, say): the usual paths may well hold another feed, but
    not the one asked for.
    """
    (first,) = fetch.fetch_all([fetch.Request(url)], settings)
    if first.error or first.status != 200:
        raise SourceError(f"{url}: {first.error or f'HTTP {first.status}'}")
    try:
        doc = feed_adapter.parse_document(first.content, first.url, first.charset)
    except ParseError as exc:
        problem = exc
    else:
        return [Found(first.url, doc.title, len(doc.items), warnings=doc.warnings)]
    try:
        text, _ = feed_adapter.decode_document(first.content, first.charset)
    except ParseError:
        text = ""  # not text at all: nothing links from it
    if _looks_like_feed(text):
        raise ParseError(f"{url}: {problem}") from None
    candidates = feed_links(text, first.url)
    guessed = not candidates
    if guessed:
        candidates = [urljoin(first.url, path) for path in COMMON_PATHS]
    results = fetch.fetch_all([fetch.Request(c) for c in candidates], settings)
    found = [f for f in (_read(r, guessed) for r in results) if f is not None]
    unique: dict[str, Found] = {}
    for f in found:  # /feed and /rss often redirect to /feed.xml: one feed, listed once
        unique.setdefault(f.url, f)
    return list(unique.values())


def guess_note(url: str, found: Sequence[Found]) -> str | None:
    """The line that says the feeds found are not at `url` nor linked from it, if so."""
    if not found or not found[0].guessed:
        return None
    where = found[0].url if len(found) == 1 else f"{len(found)} at the site's usual feed paths"
    return f"no feed at {url}; found {'one at ' if len(found) == 1 else ''}{where}"
