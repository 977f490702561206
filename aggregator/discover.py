"""Finding feeds: a URL that is a feed, or an HTML page that links to its feeds.

Autodiscovery reads the page's `<link rel="alternate">` tags (RSS, Atom, JSON Feed), the way
browsers and feed readers do; a page without any is tried at the usual feed paths
(`/feed`, `/rss.xml`…). Every candidate is fetched and read before it is offered, so what
`aggregator add` writes into the config is a feed that works today.
"""

from __future__ import annotations

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


@dataclass(frozen=True, slots=True)
class Found:
    url: str
    title: str | None
    items: int


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


def _read(result: fetch.Fetched) -> Found | None:
    if not result.ok:
        return None
    try:
        doc = feed_adapter.parse_document(result.content, result.url, result.charset)
    except ParseError:
        return None
    return Found(result.url, doc.title, len(doc.items))


def discover(url: str, settings: fetch.FetchSettings) -> list[Found]:
    """The feeds at or announced by `url`; raises SourceError when the URL cannot be fetched."""
    (first,) = fetch.fetch_all([fetch.Request(url)], settings)
    if first.error or first.status != 200:
        raise SourceError(f"{url}: {first.error or f'HTTP {first.status}'}")
    found = _read(first)
    if found is not None:
        return [found]
    text, _ = feed_adapter.decode_document(first.content, first.charset)
    candidates = feed_links(text, first.url)
    if not candidates:
        candidates = [urljoin(first.url, path) for path in COMMON_PATHS]
    results = fetch.fetch_all([fetch.Request(c) for c in candidates], settings)
    return [f for f in (_read(r) for r in results) if f is not None]
