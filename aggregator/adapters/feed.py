"""Stage 1 for `kind: feed`: a fetched RSS/Atom/JSON Feed document into item drafts.

RSS 0.9x/1.0/2.0 and Atom 0.3/1.0 go through feedparser (this module owns it), with its own
sanitiser and relative-URI rewriting off: bodies are cleaned once, with nh3, in normalisation
(feedparser's sanitiser drops `data-src` images and keeps some dangerous URLs). feedparser is
the first XML parser to see the untrusted bytes, and it drops any DOCTYPE, so entity bombs and
external entities are harmless. JSON Feed 1.0/1.1 is read with the standard `json` module.

Bytes are decoded here before feedparser sees them: the HTTP charset and the XML declaration
are tried first, strictly, and a document that is valid in neither (GBK served as UTF-8, or
undeclared) is decoded by detection. A Western single-byte HTTP label (iso-8859-1, often a
server's default) that the document contradicts gives way to the document, with a warning.
feedparser then gets UTF-8 and is told so.
"""

from __future__ import annotations

import codecs
import html
import io
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import urljoin, urlsplit

from aggregator.errors import ParseError
from aggregator.types import FeedDocument, ItemDraft

_XML_DECL = re.compile(rb"^\s*<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._:-]+)[\"']", re.I)
# An HTML page's own declaration (`<meta charset>` or the http-equiv form), for origin pages.
_META_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?([A-Za-z0-9._:-]+)", re.I)
_XML_DECL_TEXT = re.compile(r"^(\s*<\?xml[^>]*?encoding\s*=\s*[\"'])([A-Za-z0-9._:-]+)", re.I)
# GB2312 and GBK documents often use characters only their superset has.
_SUPERSETS = {"gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "big5": "big5hkscs"}
_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))
_IMAGE_TYPES = ("image/",)
_DOCTYPE = re.compile(rb"<!DOCTYPE|<!ENTITY", re.I)
# A URL on a host feedparser-rs will not keep (see `_links_blanked`): loopback, private,
# link-local and unique-local addresses, IPv6 literals, `localhost`, `*.local`, `*.internal`.
_PRIVATE_URL = re.compile(
    rb"://(?:[^/@\s\"'<>]*@)?(?:localhost\b|127\.|10\.|192\.168\.|169\.254\.|0\.0\.0\.0"
    rb"|172\.(?:1[6-9]|2\d|3[01])\.|100\.(?:6[4-9]|[7-9]\d|1[01]\d|12[0-7])\.|\["
    rb"|[^/:\s\"'<>]*\.(?:local|internal|localhost)\b)",
    re.I,
)
_XML_BASE = re.compile(rb"""xml:base\s*=\s*["']([^"']*)["']""")
# An RSS `<link></link>`: feedparser-rs gives such an item its channel's link, feedparser none.
_EMPTY_LINK = re.compile(rb"<link\s*/>|<link>\s*</link>")
# Western single-byte charsets (as codecs names them): a server's default label, often wrong.
_WESTERN = frozenset({"iso8859-1", "cp1252", "ascii", "iso8859-15"})
_HAS_HOST = re.compile(r"https?://[^/?#\s]")

# The first item or entry of a document, and an element in it that says when it was updated
# (Atom <updated>, Atom 0.3 <modified>, RSS <atom:updated>, <a10:updated>, <dcterms:modified>).
_FIRST_ITEM = re.compile(rb"<((?:[A-Za-z_][\w.-]*:)?(?:item|entry))[\s>]")
# The end of a complete document: its root closes (free hosts may append a script after it).
_ROOT_END = re.compile(rb"</(?:[A-Za-z_][\w.-]*:)?(?:rss|feed|RDF)\s*>")
_UPDATED_ELEMENT = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(?:updated|modified)[\s/>]")


def _codec(name: str) -> str | None:
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def _own_charset(data: bytes, http_charset: str | None, declared: str | None) -> str | None:
    """The document's own charset when it contradicts a Western single-byte HTTP label.

    Servers add such a label by default (Apache's AddDefaultCharset, PHP's default_charset)
    whatever the document holds, and every byte is valid in it, so believing it garbles UTF-8
    or GBK silently. The document's own declaration wins then; without one, bytes that are
    valid UTF-8 (and not all ASCII) are UTF-8, which is also what XML assumes.
    """
    if not http_charset or _codec(http_charset) not in _WESTERN or data.isascii():
        return None
    if declared:
        return declared if _codec(declared) not in (None, _codec(http_charset)) else None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return "utf-8"


def decode_document(data: bytes, http_charset: str | None) -> tuple[str, str | None]:
    """Text of a fetched document and, when it was not what it claimed, a warning."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data.decode(encoding, errors="replace").lstrip("\ufeff"), None
    found = _XML_DECL.match(data[:400]) or _META_CHARSET.search(data[:4096])
    declared = found.group(1).decode("ascii") if found else None
    own = _own_charset(data, http_charset, declared)
    candidates = [own, http_charset, declared, "utf-8"]
    tried: list[str] = []
    for n, label in enumerate(candidates):
        if not label:
            continue
        name = _SUPERSETS.get(label.lower(), label.lower())
        if name in tried:
            continue
        tried.append(name)
        try:
            text = data.decode(name)
        except (UnicodeDecodeError, LookupError):
            continue
        if n == 0:  # the document's own charset, over the HTTP label
            says = "says" if declared else "is valid"
            return text, (
                f"declared charset {http_charset} in HTTP but the document {says} {own}; "
                f"read as {own}"
            )
        return text, None
    from aggregator.adapters import charset

    guessed = charset.guess(data)
    if guessed is None:
        raise ParseError("not text in any encoding we can detect")
    text, encoding = guessed
    said = http_charset or declared
    warning = f"decoded as {encoding}" + (f" (it claimed {said})" if said else "")
    return text, warning


def parse_document(data: bytes, url: str, http_charset: str | None = None) -> FeedDocument:
    """Read a feed document; raises ParseError when it is not a feed at all."""
    if not data.strip():
        raise ParseError("empty document")
    text, warning = decode_document(data, http_charset)
    head = text.lstrip()[:1]
    doc = _parse_json(text, url) if head in ("{", "[") else _parse_xml(text, url)
    return replace(doc, warnings=(warning, *doc.warnings)) if warning else doc


# ---- RSS and Atom (feedparser) ------------------------------------------------------------


def _fast_parse(data: bytes, bases: list[bytes]) -> Any | None:
    """feedparser-rs's reading of a well-formed feed, or None when feedparser must read it.

    feedparser-rs reads the benchmark's feeds 18 times faster than feedparser does with the same
    options (bench/RESULTS.md), with the same result shape, but stops at the first XML error
    where feedparser recovers more; it says so (`bozo`), and then feedparser reads the document
    instead. A document with a DOCTYPE always goes to feedparser, which drops it: entity
    definitions only ever reach the parser that is known to ignore them.
    """
    if _DOCTYPE.search(data, 0, 8192):
        return None
    try:
        import feedparser_rs
    except ImportError:  # not installed (no wheel for this Python): feedparser reads all
        return None
    try:
        parsed = feedparser_rs.parse(data, sanitize_html=False, resolve_relative_uris=True)
    except Exception:  # any failure of the fast path just means feedparser reads it
        return None
    if parsed.get("bozo") or not parsed.get("version"):
        return None
    if bases and (str(parsed.get("version")).startswith("rss") or _root_base(data, bases) is None):
        # feedparser-rs ignores xml:base in RSS, and in Atom it applies it to links but does
        # not say which base each content's relative URLs are relative to; feedparser does
        # both. An Atom document with one xml:base, on its root, keeps the fast path: that
        # base is every content's (see `_root_base`).
        return None
    if _links_blanked(parsed, data, bases):
        return None
    return parsed


_ROOT_START = re.compile(rb"<(?:\w+:)?feed\b[^>]*>")


def _root_base(data: bytes, bases: list[bytes]) -> bytes | None:
    """The `xml:base` of an Atom document when it declares exactly one (`bases`, all it
    declares), on its root element."""
    root = _ROOT_START.search(data)
    if len(bases) != 1 or root is None:
        return None
    found = _XML_BASE.search(data, root.start(), root.end())
    return found.group(1) if found else None


def _links_blanked(parsed: Any, data: bytes, bases: list[bytes]) -> bool:
    """Whether feedparser-rs blanked a link that feedparser would keep.

    feedparser-rs (0.7) replaces an http(s) URL whose host is loopback, private, link-local or
    a name such as `localhost` or `*.internal` with "" (a server-side request filter), in an
    item's link (a permalink GUID copied there too), its enclosures and an Atom feed's link;
    its media and body URLs are kept. Such feeds are read when `allow_private_networks` is on,
    and their links must survive, so feedparser reads a document with such an empty string.
    An `xml:base` naming such a host is dropped too, and the links under it stay relative
    (feedparser resolves them against it): feedparser reads a document with such an
    `xml:base` as well. Public feeds pay one look at each item and a scan of the document for
    such hosts only when a link came back empty (1-2% of reading them).
    """
    first = _FIRST_ITEM.search(data)
    if first is not None and _EMPTY_LINK.search(data, first.start()):
        return True  # an item's (see _EMPTY_LINK): rare, and feedparser's reading is kept
    links = [parsed["feed"].get("link")]
    for entry in parsed["entries"]:
        links.append(entry.get("link"))
        links.extend(enclosure.get("href") for enclosure in entry.get("enclosures") or ())
    if "" in links and _PRIVATE_URL.search(data):
        return True  # blanked (an empty link written as such is kept: both read it alike)
    return any(_PRIVATE_URL.search(base) for base in bases)


def _items_are_dated(data: bytes) -> bool:
    """Whether the document's items say when they were updated, judged by its first item.

    Both parsers answer an item's `updated` with its published date when it has none, so the
    answer must come from the document. Feeds are written from one template, so the first item
    stands for the rest: that costs microseconds, where scanning every item's body would add
    5-10% to reading a feed.
    """
    first = _FIRST_ITEM.search(data)
    if first is None:
        return False
    start = first.end()
    end = data.find(b"</" + first.group(1) + b">", start)
    end = len(data) if end < 0 else end
    if data.find(b"updated", start, end) < 0 and data.find(b"modified", start, end) < 0:
        return False
    return _UPDATED_ELEMENT.search(data, start, end) is not None


def _parse_xml(text: str, url: str) -> FeedDocument:
    # Declare UTF-8, since the text is now UTF-8 whatever the original declaration said.
    text = _XML_DECL_TEXT.sub(lambda m: m.group(1) + "utf-8", text, count=1)
    data = text.encode("utf-8")
    dated = _items_are_dated(data)
    bases = _XML_BASE.findall(data)
    parsed = _fast_parse(data, bases)
    if parsed is not None and dated and not str(parsed.get("version")).startswith("atom"):
        parsed = None  # feedparser-rs ignores an RSS item's <atom:updated>, <dcterms:modified>
    fast = parsed is not None
    if parsed is None:
        import feedparser  # imported here: a process that only reads archives never loads it

        # No content-location: feedparser would resolve every <guid> and <id> against it
        # ("42" becoming https://host/42), where feedparser-rs keeps them as written. Links are
        # made absolute against the feed's URL below, whichever parser read them.
        parsed = feedparser.parse(
            io.BytesIO(data),
            response_headers={"content-type": "application/xml; charset=utf-8"},
            sanitize_html=False,
            resolve_relative_uris=False,
        )
    feed = parsed.get("feed", {})
    entries = parsed.get("entries", [])
    problem = parsed.get("bozo_exception")
    if not entries and parsed.get("version", "") == "":
        reason = " ".join(str(problem).split()) if problem else "no feed found"
        raise ParseError(f"not an RSS, Atom or JSON feed ({reason})")
    warnings: list[str] = []
    # (feedparser's CharacterEncodingOverride only says it read another encoding than declared)
    damaged = problem is not None and type(problem).__name__ != "CharacterEncodingOverride"
    if parsed.get("bozo") and damaged:
        reason = " ".join(str(problem).split())[:200]
        if not entries and _items_lost(data):
            raise ParseError(f"not well-formed, and no item could be read ({reason})")
        warnings.append(f"not well-formed, read leniently ({reason})")
    language = feed.get("language") or None
    base = _item_base(parsed, url, bases)
    root_base = _root_base(data, bases) if fast and bases else None
    content_base = _absolute(root_base.decode("utf-8", "replace"), url) if root_base else None
    return FeedDocument(
        title=feed.get("title") or None,
        link=_absolute(feed.get("link"), url),
        language=language,
        items=tuple(_xml_item(e, base, language, fast, dated, content_base) for e in entries),
        warnings=tuple(warnings),
    )


def _items_lost(data: bytes) -> bool:
    """Whether a malformed document in which no item was found may have had some: it has an
    item tag, or it was cut off (its root element never closes).

    Read as an empty feed, such a document would pass for one that works (a server that
    fails halfway through writing its feed sends just that). An undefined entity in a feed
    without items loses nothing, and it is read as before.
    """
    return _FIRST_ITEM.search(data) is not None or _ROOT_END.search(data[-4096:]) is None


def _item_base(parsed: Any, url: str, bases: list[bytes]) -> str:
    """What the relative URLs of items (links, enclosures, thumbnails) are relative to: in RSS,
    the document's `xml:base` (feedparser, which reads such documents, applies it to links
    but not to enclosures), else the channel's link (the site, often on another host than its
    feed: feedparser-rs reads links and enclosures so, and a feed read by either parser must
    give the same items); in Atom, the document (`xml:base` applied by both parsers)."""
    if not str(parsed.get("version")).startswith("rss"):
        return url
    if bases:
        base = _absolute(bases[0].decode("utf-8", "replace"), url)
        if base and _HAS_HOST.match(base):
            return base
    channel = parsed.get("feed", {}).get("link")
    return str(channel) if channel and _HAS_HOST.match(channel) else url


def _absolute(link: str | None, base: str) -> str | None:
    if not link:
        return None
    if "&amp;" in link:  # feedparser-rs leaves entities in attribute values
        link = html.unescape(link)
    try:
        return urljoin(base, link.strip())
    except ValueError:
        return None


def _is_web_url(value: str) -> bool:
    """An absolute http(s) URL, or a scheme-relative one (`//host/path`), which names one
    page whichever document it is read from."""
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https", "") and bool(parts.netloc)


def _xml_item(
    e: Mapping[str, Any],
    base: str,
    language: str | None,
    fast: bool,
    dated: bool,
    root_base: str | None = None,
) -> ItemDraft:
    """One item; `base` is what its relative URLs are relative to (see `_item_base`), `fast`
    when feedparser-rs read it, `dated` when the document's items have an element saying when
    they were updated (see _items_are_dated), `root_base` the xml:base of the whole document
    when feedparser-rs read it (see `_root_base`)."""
    content: str | None = None
    content_base: str | None = None  # the xml:base in scope, as feedparser read it
    for part in e.get("content") or ():
        value = part.get("value")
        if value and (content is None or "html" in (part.get("type") or "")):
            content, content_base = value, part.get("base")
    summary = e.get("summary") or None
    if content is None:
        content, summary = summary, None
        content_base = (e.get("summary_detail") or {}).get("base")
    authors = [a.get("name") for a in e.get("authors") or () if a.get("name")]
    if not authors and e.get("author"):
        authors = [e.get("author")]
    categories = [t.get("term") or t.get("label") for t in e.get("tags") or ()]
    enclosures = tuple(
        (href, enc.get("type") or "", _int(enc.get("length")))
        for enc in e.get("enclosures") or ()
        if (href := _absolute(enc.get("href"), base))
    )
    image = None
    for thumb in e.get("media_thumbnail") or ():
        image = image or _absolute(thumb.get("url"), base)
    for media in e.get("media_content") or ():
        if media.get("medium") == "image" or (media.get("type") or "").startswith("image/"):
            image = image or _absolute(media.get("url"), base)
    for href, kind, _ in enclosures:
        if kind.startswith(_IMAGE_TYPES):
            image = image or href
    guid = (e.get("id") or "").strip() or None
    link = e.get("link") or None
    # RSS 2.0: a <guid> is the item's permalink unless isPermaLink="false", and both parsers
    # copy it into `link` when the item has no <link> (an Atom <id> too): feedparser-rs says so
    # with `guidislink`; feedparser says `guidislink` for any permalink GUID seen before a
    # <link>, so there the link must also be the GUID itself. Such a link is kept only when
    # the GUID is an absolute http(s) URL: "42" or "tag:…" is no address, and made absolute
    # the two parsers would make different ones (against the channel link, or the feed's).
    if guid and link and e.get("guidislink") and (fast or link == guid) and not _is_web_url(guid):
        link = None
    # An absolute link with a host needs no joining (joining costs as much as the rest of
    # reading the item): `normalise` cleans it either way. One without a host (`http:///a`)
    # takes the host of `base` from joining, as it always did.
    if not (link and _HAS_HOST.match(link) and "&amp;" not in link):
        link = _absolute(link, base)
    # Both parsers answer `updated` with the published date when the item has no updated
    # element, and feedparser files <dc:date> as `updated`: an item has `updated` only when
    # the document's items have such an element and, in feedparser's answer (which tells
    # which items have one), this item does. Otherwise a date found is the published one.
    published = e.get("published") or e.get("created") or None
    if fast:
        found, has_updated = e.get("updated"), dated
    else:
        plain = dict(e)  # feedparser's own .get("updated") falls back to the published date
        found, has_updated = plain.get("updated"), dated and "updated" in plain
    updated = found if has_updated else None
    if not has_updated:
        published = published or found
    return ItemDraft(
        guid=guid,
        link=link,
        title=e.get("title") or None,
        published=published or None,
        updated=updated or None,
        content=content,
        summary=summary,
        authors=tuple(authors),
        categories=tuple(c for c in categories if c),
        enclosures=enclosures,
        image=image,
        language=e.get("language") or language,
        content_base=root_base if fast else _absolute(content_base, base) if content_base else None,
    )


def _int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


# ---- JSON Feed 1.0 / 1.1 -----------------------------------------------------------------


def _parse_json(text: str, url: str) -> FeedDocument:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ParseError(f"not valid JSON ({exc})") from None
    if not isinstance(data, dict) or "items" not in data:
        raise ParseError("JSON without `items`: not a JSON Feed")
    items_in = data.get("items")
    if not isinstance(items_in, list):
        raise ParseError("JSON Feed `items` is not a list")
    language = _str(data.get("language"))
    base = _str(data.get("home_page_url")) or url
    feed_authors = _json_authors(data)
    items = tuple(
        _json_item(item, base, language, feed_authors)
        for item in items_in
        if isinstance(item, dict)
    )
    return FeedDocument(
        title=_str(data.get("title")),
        link=_absolute(_str(data.get("home_page_url")), url),
        language=language,
        items=items,
    )


def _str(value: Any) -> str | None:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        text = str(value).strip()
        return text or None
    return None


def _json_authors(obj: Mapping[str, Any]) -> tuple[str, ...]:
    found: list[str] = []
    authors = obj.get("authors")
    if isinstance(authors, list):
        found.extend(n for a in authors if isinstance(a, dict) and (n := _str(a.get("name"))))
    author = obj.get("author")  # JSON Feed 1.0
    if not found and isinstance(author, dict) and (n := _str(author.get("name"))):
        found.append(n)
    return tuple(found)


def _json_item(
    item: Mapping[str, Any], base: str, language: str | None, feed_authors: tuple[str, ...]
) -> ItemDraft:
    content = _str(item.get("content_html"))
    if content is None and (plain := _str(item.get("content_text"))):
        content = "<p>" + _escape(plain).replace("\n\n", "</p><p>") + "</p>"
    summary = _str(item.get("summary"))
    attachments = item.get("attachments")
    enclosures = tuple(
        (href, _str(a.get("mime_type")) or "", _int(a.get("size_in_bytes")))
        for a in (attachments if isinstance(attachments, list) else ())
        if isinstance(a, dict) and (href := _absolute(_str(a.get("url")), base))
    )
    tags = item.get("tags")
    return ItemDraft(
        guid=_str(item.get("id")),
        link=_absolute(_str(item.get("url")) or _str(item.get("external_url")), base),
        title=_str(item.get("title")),
        published=_str(item.get("date_published")),
        updated=_str(item.get("date_modified")),
        content=content,
        summary=summary,
        authors=_json_authors(item) or feed_authors,
        categories=tuple(t for t in _strings(tags)),
        enclosures=enclosures,
        image=_absolute(_str(item.get("image")) or _str(item.get("banner_image")), base),
        language=_str(item.get("language")) or language,
    )


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, list):
        for v in value:
            if (s := _str(v)) is not None:
                yield s


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
