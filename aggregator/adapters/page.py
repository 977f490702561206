"""Stage 1 for `kind: origin`: an original article page into a draft (owns lxml.html,
cssselect and readability-lxml).

Metadata comes from what publishers put in pages for search engines and social sites, most
trusted first: JSON-LD (`NewsArticle`, `Article`, `BlogPosting`…), OpenGraph and `article:*`
meta tags, then `<time datetime>` and `<title>`; the URL the page names as its own from
`<link rel="canonical">` (not `og:url`, which many site templates fill with the home page on
every page). The article body comes from the CSS selector
configured for the page's host when there is one, else from readability-lxml's generic
extractor. The result is untrusted HTML: it is sanitised in normalisation like every body.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aggregator.adapters.feed import decode_document
from aggregator.errors import ParseError

ARTICLE_TYPES = {
    "newsarticle",
    "article",
    "blogposting",
    "reportagenewsarticle",
    "analysisnewsarticle",
    "opinionnewsarticle",
    "techarticle",
    "webpage",
}


@dataclass(frozen=True, slots=True)
class PageDraft:
    """What an original article page says about itself, as found."""

    title: str | None
    published: str | None
    modified: str | None
    author: str | None
    image: str | None
    description: str | None
    canonical: str | None
    """The URL the page names as its own (`<link rel="canonical">`), as written: possibly
    relative."""
    content: str | None
    """Untrusted HTML of the article body; None when nothing could be extracted."""
    extractor: str
    """`selector`, `readability` or `none`: how the body was found."""


def _jsonld_objects(value: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(value, list):
        for v in value:
            yield from _jsonld_objects(v)
    elif isinstance(value, dict):
        yield value
        if "@graph" in value:
            yield from _jsonld_objects(value["@graph"])


def _types(obj: Mapping[str, Any]) -> set[str]:
    t = obj.get("@type")
    values = t if isinstance(t, list) else [t]
    return {str(v).lower() for v in values if v}


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, list) and value:
        return _text(value[0])
    if isinstance(value, dict):
        return _text(value.get("name") or value.get("url") or value.get("@id"))
    return None


def _article_ld(tree: Any) -> Mapping[str, Any]:
    """The first JSON-LD object of an article type (a NewsArticle before a WebPage)."""
    best: Mapping[str, Any] = {}
    for script in tree.xpath('//script[@type="application/ld+json"]'):
        try:
            data = json.loads(script.text or "")
        except ValueError:
            continue
        for obj in _jsonld_objects(data):
            kinds = _types(obj)
            if kinds & ARTICLE_TYPES - {"webpage"}:
                return obj
            if "webpage" in kinds and not best:
                best = obj
    return best


def _meta(tree: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for el in tree.xpath("//meta[@content]"):
        key = (el.get("property") or el.get("name") or el.get("itemprop") or "").strip().lower()
        if key and key not in out:
            out[key] = el.get("content", "").strip()
    return out


def _canonical(tree: Any) -> str | None:
    for el in tree.xpath("//link[@rel][@href]"):
        if "canonical" in el.get("rel", "").lower().split() and el.get("href", "").strip():
            return str(el.get("href")).strip()
    return None


def _host_selector(url: str, selectors: Mapping[str, str]) -> str | None:
    host = (urlsplit(url).hostname or "").lower()
    while host:
        if host in selectors:
            return selectors[host]
        _, _, host = host.partition(".")
    return None


def read_page(
    data: bytes, url: str, charset: str | None = None, selectors: Mapping[str, str] | None = None
) -> PageDraft:
    """Read an HTML page; raises ParseError when it is not HTML at all."""
    import lxml.html
    from lxml import etree

    text, _ = decode_document(data, charset)
    if not text.strip():
        raise ParseError("empty page")
    try:
        tree = lxml.html.document_fromstring(text)
    except (etree.ParserError, ValueError) as exc:
        raise ParseError(f"not an HTML page ({exc})") from None
    ld = _article_ld(tree)
    meta = _meta(tree)
    times = tree.xpath("//time[@datetime]/@datetime")
    title_el = tree.xpath("//title/text()")
    author = _text(ld.get("author")) or meta.get("article:author") or meta.get("author")

    content: str | None = None
    extractor = "none"
    selector = _host_selector(url, selectors or {})
    if selector:
        from lxml.cssselect import CSSSelector

        found = CSSSelector(selector)(tree)
        if found:
            content = "".join(lxml.html.tostring(el, encoding="unicode") for el in found)
            extractor = "selector"
    if content is None:
        from readability import Document

        try:
            content = Document(text, url=url).summary(html_partial=True)
            extractor = "readability"
        except Exception:  # readability raises its own Unparseable and lxml errors alike
            content = None
    return PageDraft(
        title=_text(ld.get("headline")) or meta.get("og:title") or _text(title_el),
        published=_text(ld.get("datePublished"))
        or meta.get("article:published_time")
        or (times[0] if times else None),
        modified=_text(ld.get("dateModified")) or meta.get("article:modified_time"),
        author=author,
        image=_text(ld.get("image")) or meta.get("og:image"),
        description=_text(ld.get("description")) or meta.get("og:description"),
        canonical=_canonical(tree),
        content=content,
        extractor=extractor,
    )
