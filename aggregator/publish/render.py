"""Rendering one feed to bytes: Atom 1.0 and RSS 2.0 with feedgen, JSON Feed 1.1 (pure).

Output depends only on its arguments: the same feed and items give the same bytes, so HTTP
validators and feed readers see nothing new when nothing changed. Dates come from the entries
(feed `updated` = newest entry), never from the clock.

feedgen quirks handled here (PITFALLS.md): entries are appended in order (its default prepends);
dates are always set explicitly (its default is "now"); one FeedGenerator per format; Atom entry
links lose `rel`, `type` and `length` in feedgen 1.0, so enclosures, media thumbnails and
`xml:lang` are added by a small extension instead; so are the `atom:link`s of RSS feeds
besides `self`, which feedgen drops.

Links between documents: `hub` (WebSub) on subscription documents when a hub is configured;
RFC 5005 `prev-archive` from a subscription document to its newest archive page, and on archive
pages `current`, `prev-archive`, `next-archive` and `<fh:archive/>`. A feed whose subscription
document holds every entry it has is complete (RFC 5005 section 2): `<fh:complete/>` and no
archive. JSON Feed has no archive links of its own: they go in an extension object
(`FEED_EXTENSION`), as its spec provides:

    "_rfc5005": {"about": "https://www.rfc-editor.org/rfc/rfc5005", "archive": true,
                 "current": URL, "prev_archive": URL, "next_archive": URL}

(a subscription document carries only `about` and `prev_archive`, or `"complete": true`).
Atom and RSS documents start with an `xml-stylesheet` instruction naming `feed.xsl`, so
browsers show them as a page.
"""

from __future__ import annotations

import json
import mimetypes
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Any

from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from feedgen.util import xml_elem

from aggregator import __version__
from aggregator.normalise.dates import iso
from aggregator.publish.plan import EMPTY_FEED_DATE
from aggregator.types import FeedItem

MEDIA_NS = "http://search.yahoo.com/mrss/"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
ATOM_NS = "http://www.w3.org/2005/Atom"
FH_NS = "http://purl.org/syndication/history/1.0"
GENERATOR = ("aggregator", __version__)
FEED_EXTENSION = "_rfc5005"
"""The JSON Feed extension object holding archive links (see module docstring)."""
RFC5005 = "https://www.rfc-editor.org/rfc/rfc5005"


@dataclass(frozen=True, slots=True)
class FeedMeta:
    """What a feed says about itself."""

    title: str
    description: str
    home_url: str
    """The human-readable page for the feed (the site's index.html)."""
    self_urls: dict[str, str]
    """format -> absolute URL of this feed in that format."""
    language: str | None
    stylesheet: str | None = None
    """URL of the XSLT named by Atom and RSS documents' `xml-stylesheet` instruction."""
    hub: str | None = None
    """WebSub hub to link to (subscription documents only)."""
    prev_archive: dict[str, str] | None = None
    """format -> URL of the previous (for a subscription document, the newest) archive page."""
    next_archive: dict[str, str] | None = None
    """format -> URL of the next archive page."""
    current: dict[str, str] | None = None
    """Set on archive pages only: format -> URL of the subscription document."""
    complete: bool = False
    """A subscription document holding every entry of its feed (which then has no archive)."""
    updated_at: datetime | None = None
    """The document's date when it is assembled from entry blocks (`assemble`); else its
    newest entry's."""

    def updated(self, items: list[FeedItem]) -> datetime:
        if self.updated_at is not None:
            return self.updated_at
        return max((i.updated for i in items), default=EMPTY_FEED_DATE)

    def links(self, fmt: str) -> list[tuple[str, str]]:
        """(rel, href) of the links besides `self` and `alternate`, in document order."""
        out: list[tuple[str, str]] = []
        if self.hub:
            out.append(("hub", self.hub))
        for rel, urls in (
            ("current", self.current),
            ("prev-archive", self.prev_archive),
            ("next-archive", self.next_archive),
        ):
            if urls and fmt in urls:  # archives may be in fewer formats than feeds
                out.append((rel, urls[fmt]))
        return out


def image_type(url: str) -> str:
    guessed, _ = mimetypes.guess_type(url.split("?", 1)[0])
    return guessed if guessed and guessed.startswith("image/") else "image/jpeg"


class _FeedExtras(BaseExtension):
    """Feed-level additions: namespaces, the RSS `atom:link`s feedgen drops, `fh:archive` and
    `fh:complete`."""

    meta: FeedMeta | None = None

    def _history(self) -> str | None:
        """The RFC 5005 element this document carries, if any."""
        if self.meta is None:
            return None
        if self.meta.current:
            return "archive"
        return "complete" if self.meta.complete else None

    def extend_ns(self) -> dict[str, str]:
        if self._history():
            return {"media": MEDIA_NS, "fh": FH_NS}
        return {"media": MEDIA_NS}

    def extend_atom(self, feed: Any) -> Any:
        if history := self._history():
            xml_elem(f"{{{FH_NS}}}{history}", feed)
        return feed

    def extend_rss(self, feed: Any) -> Any:
        meta = self.meta
        if meta is None:
            return feed
        channel = feed[0]
        for rel, href in meta.links("rss"):
            xml_elem(f"{{{ATOM_NS}}}link", channel, href=href, rel=rel)
        if history := self._history():
            xml_elem(f"{{{FH_NS}}}{history}", channel)
        return feed


class _Extras(BaseEntryExtension):
    """Per-entry additions feedgen cannot express correctly on its own."""

    item: FeedItem | None = None

    def extend_atom(self, entry: Any) -> Any:
        item = self.item
        if item is None:
            return entry
        if item.language:
            entry.set(XML_LANG, item.language)
        if item.image:
            xml_elem(
                f"{{{ATOM_NS}}}link" if entry.tag.startswith("{") else "link",
                entry,
                rel="enclosure",
                href=item.image,
                type=image_type(item.image),
                length="0",
            )
            xml_elem(f"{{{MEDIA_NS}}}thumbnail", entry, url=item.image)
        for url, kind, length in item.enclosures:
            if url != item.image:
                xml_elem(
                    f"{{{ATOM_NS}}}link" if entry.tag.startswith("{") else "link",
                    entry,
                    rel="enclosure",
                    href=url,
                    type=kind or "application/octet-stream",
                    length=str(length or 0),
                )
        return entry

    def extend_rss(self, entry: Any) -> Any:
        item = self.item
        if item is not None and item.image:
            xml_elem(f"{{{MEDIA_NS}}}thumbnail", entry, url=item.image)
        return entry


def _generator(meta: FeedMeta, items: list[FeedItem], fmt: str) -> FeedGenerator:
    fg = FeedGenerator()
    fg.register_extension("agg", _FeedExtras, _Extras)
    fg.agg.meta = meta
    if fmt == "rss":
        fg.load_extension("dc", atom=False, rss=True)  # RSS <author> must be an e-mail address
    self_url = meta.self_urls[fmt]
    # An archive page is part of the feed whose subscription document it names as current.
    fg.id(meta.current[fmt] if meta.current else self_url)
    fg.title(meta.title)
    fg.subtitle(meta.description)
    fg.link(href=self_url, rel="self")
    if fmt == "atom":
        for rel, href in meta.links(fmt):
            fg.link(href=href, rel=rel)
    fg.link(href=meta.home_url, rel="alternate")  # last: RSS <link> is the last link added
    fg.generator(*GENERATOR, uri="https://pypi.org/project/aggregator/")
    if meta.language:
        fg.language(meta.language)
    updated = meta.updated(items)
    fg.updated(updated)
    fg.lastBuildDate(updated)
    for item in items:
        fe = fg.add_entry(order="append")
        fe.id(item.entry_id)
        fe.title(item.title)
        if item.link:
            fe.link(href=item.link, rel="alternate")
        fe.published(item.published)
        fe.updated(item.updated)
        fe.author(name=item.author or item.source_name)
        for category in item.categories:
            fe.category(term=category)
        if fmt == "atom":
            fe.content(item.content or "", type="html")
            if item.summary:
                fe.summary(item.summary)
        else:
            fe.description(item.summary or item.title)
            fe.content(item.content or "", type="html")
            fe.guid(item.entry_id, permalink=False)
            fe.dc.dc_creator(item.author or item.source_name)
            # RSS allows one enclosure: the item's own media (a podcast's audio) comes first
            media = [e for e in item.enclosures if e[0] != item.image]
            if media:
                url, kind, length = media[0]
                fe.enclosure(url, str(length or 0), kind or "application/octet-stream")
            elif item.image:
                fe.enclosure(item.image, "0", image_type(item.image))
        fe.agg.item = item
    return fg


def _with_stylesheet(data: bytes, href: str | None) -> bytes:
    """The document with an `xml-stylesheet` instruction after its XML declaration."""
    if not href:
        return data
    declaration, newline, rest = data.partition(b"\n")
    instruction = f'<?xml-stylesheet type="text/xsl" href="{escape(href)}"?>'
    return declaration + newline + instruction.encode("utf-8") + b"\n" + rest


def render_atom(meta: FeedMeta, items: list[FeedItem]) -> bytes:
    data = _generator(meta, items, "atom").atom_str(pretty=True, encoding="UTF-8")
    return _with_stylesheet(bytes(data), meta.stylesheet)


def render_rss(meta: FeedMeta, items: list[FeedItem]) -> bytes:
    data = _generator(meta, items, "rss").rss_str(pretty=True, encoding="UTF-8")
    return _with_stylesheet(bytes(data), meta.stylesheet)


def render_json(meta: FeedMeta, items: list[FeedItem]) -> bytes:
    """JSON Feed 1.1 (https://jsonfeed.org/version/1.1). No library writes it well; it is a
    plain JSON document, so it is built here: exactly `json.dumps(feed, indent=2)`, written
    item by item so that documents can be assembled from items (`assemble`)."""
    return _json_document(meta, [_json_block(_json_item(item)) for item in items])


def _json_document(meta: FeedMeta, blocks: list[bytes]) -> bytes:
    feed: dict[str, object] = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": meta.title,
        "home_page_url": meta.home_url,
        "feed_url": meta.self_urls["json"],
        "description": meta.description,
    }
    if meta.language:
        feed["language"] = meta.language
    if meta.hub:
        feed["hubs"] = [{"type": "WebSub", "url": meta.hub}]
    archive: dict[str, object] = {}
    if meta.current and "json" in meta.current:
        archive.update(archive=True, current=meta.current["json"])
    if meta.prev_archive and "json" in meta.prev_archive:  # archives may skip JSON Feed
        archive["prev_archive"] = meta.prev_archive["json"]
    if meta.next_archive and "json" in meta.next_archive:
        archive["next_archive"] = meta.next_archive["json"]
    if meta.complete and not meta.current:
        archive["complete"] = True
    if archive:
        feed[FEED_EXTENSION] = {"about": RFC5005, **archive}
    feed["items"] = []
    head = json.dumps(feed, ensure_ascii=False, indent=2).encode("utf-8")
    if not blocks:
        return head + b"\n"
    assert head.endswith(_JSON_NO_ITEMS)
    items = b"[\n" + b",\n".join(blocks) + b"\n  ]\n}\n"
    return head[: -len(_JSON_NO_ITEMS)] + items


_JSON_NO_ITEMS = b"[]\n}"


def _json_block(item: dict[str, Any]) -> bytes:
    """One item as `json.dumps(..., indent=2)` writes it inside the feed's `items` list."""
    text = json.dumps(item, ensure_ascii=False, indent=2)
    return ("    " + text.replace("\n", "\n    ")).encode("utf-8")


def _json_item(item: FeedItem) -> dict[str, object]:
    out: dict[str, object] = {"id": item.entry_id}
    if item.link:
        out["url"] = item.link
    out["title"] = item.title
    out["content_html"] = item.content or ""
    if item.summary:
        out["summary"] = item.summary
    if item.image:
        out["image"] = item.image
    if item.enclosures:
        out["attachments"] = [
            {"url": url, "mime_type": kind or "application/octet-stream"}
            | ({"size_in_bytes": length} if length else {})
            for url, kind, length in item.enclosures
        ]
    out["date_published"] = iso(item.published)
    out["date_modified"] = iso(item.updated)
    out["authors"] = [{"name": item.author or item.source_name}]
    if item.categories:
        out["tags"] = list(item.categories)
    if item.language:
        out["language"] = item.language
    return out


RENDERERS = {"atom": render_atom, "rss": render_rss, "json": render_json}


# ---- documents assembled from entry blocks ---------------------------------------------------
#
# An entry's bytes do not depend on the rest of the document (lxml writes an element the same
# whatever its neighbours; namespace prefixes are declared on the root, the same for every
# document of a format), and one entry is in several documents: everything, its sources, its
# tags, their archive pages. So the publisher renders each entry once per format
# (`render_blocks`) and assembles every document from those blocks and its frame
# (`assemble`); an archive page also copies the blocks of its unchanged entries from its old
# file (`entry_blocks`). The result is the same bytes as rendering every entry
# of the document afresh (tests check), so machines sharing a store publish identical files.

# Where entries are in a document we rendered: each starts and ends a line with these bytes
# (text is escaped, so they occur nowhere else at these indentations).
_ENTRY = {
    "atom": (b"\n  <entry", b"\n  </entry>\n"),
    "rss": (b"\n    <item>\n", b"\n    </item>\n"),
    "json": (b"\n    {\n", b"\n    }"),
}
_ENTRY_ID = {
    "atom": (b"\n    <id>", b"</id>\n"),
    "rss": (b'\n      <guid isPermaLink="false">', b"</guid>\n"),
    "json": (b'\n      "id": "', b'",\n'),
}
_XML_END = {"atom": b"</feed>\n", "rss": b"  </channel>\n</rss>\n"}


def _spans(fmt: str, data: bytes) -> list[tuple[int, int]] | None:
    """(start, end) of each entry of a document we rendered; None if it is not in shape."""
    start_mark, end_mark = _ENTRY[fmt]
    spans: list[tuple[int, int]] = []
    # JSON: other lists of objects (`hubs`) come before the items, at the same indentation
    pos = data.find(start_mark, data.find(b'\n  "items": [') if fmt == "json" else 0)
    while pos >= 0:
        end = data.find(end_mark, pos)
        if end < 0:
            return None
        end += len(end_mark)
        spans.append((pos + 1, end))
        pos = data.find(start_mark, end - 1)
    return spans


def entry_blocks(fmt: str, data: bytes) -> dict[str, bytes]:
    """entry id -> the bytes of that entry in a document we rendered (empty when the document
    is not in the expected shape)."""
    spans = _spans(fmt, data)
    if not spans:
        return {}
    id_start, id_end = _ENTRY_ID[fmt]
    out: dict[str, bytes] = {}
    for start, end in spans:
        at = data.find(id_start, start, end)
        if at < 0:
            return {}
        at += len(id_start)
        stop = data.find(id_end, at, end)
        if stop < 0:
            return {}
        out[data[at:stop].decode("utf-8")] = data[start:end]
    return out


def render_blocks(fmt: str, items: list[FeedItem]) -> dict[str, bytes]:
    """entry id -> the bytes of that entry in any document of format `fmt` (see above): the
    items are rendered together in one throwaway document, which is then cut up."""
    if fmt == "json":
        return {i.entry_id: _json_block(_json_item(i)) for i in items}
    if not items:
        return {}
    rendered = RENDERERS[fmt](_BLOCK_META, items)
    spans = _spans(fmt, rendered)
    assert spans is not None and len(spans) == len(items)
    return {i.entry_id: rendered[a:b] for i, (a, b) in zip(items, spans, strict=True)}


_BLOCK_META = FeedMeta(
    title="-",
    description="-",
    home_url="https://example.invalid/",
    self_urls={"atom": "https://example.invalid/", "rss": "https://example.invalid/"},
    language=None,
)


def assemble(fmt: str, meta: FeedMeta, blocks: list[bytes]) -> bytes:
    """The document of `meta` holding these entry blocks, in order (`meta.updated_at` must be
    set: the blocks do not say which entry is newest)."""
    assert meta.updated_at is not None or not blocks
    if fmt == "json":
        return _json_document(meta, blocks)
    frame = RENDERERS[fmt](meta, [])
    end = _XML_END[fmt]
    assert frame.endswith(end)
    return frame[: -len(end)] + b"".join(blocks) + end
