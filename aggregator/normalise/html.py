"""Post bodies to safe HTML, and safe HTML to plain-text summaries (owns nh3 and markdown-it).

Untrusted HTML is sanitised once, here, before it is stored or published: no script, style,
iframe, event handler, `javascript:` or `data:` URL survives; relative URLs are resolved against
the original article's URL; lazy-loaded images (`data-src` and friends) become real `src`
images; characters XML forbids are removed.
"""

from __future__ import annotations

import html
import re
import threading
from functools import lru_cache
from typing import TYPE_CHECKING
from urllib.parse import urljoin

import nh3

from aggregator.normalise.text import strip_invalid_xml

if TYPE_CHECKING:
    from markdown_it import MarkdownIt

ALLOWED_TAGS = (nh3.ALLOWED_TAGS | {"figure", "figcaption", "picture", "source"}) - {"map", "area"}
DROPPED_WITH_CONTENT = {"script", "style", "iframe", "noscript", "template", "object", "embed"}
ATTRIBUTES = {
    **{tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()},
    "img": {"src", "alt", "title", "width", "height"},
    "a": {"href", "title", "hreflang"},
    "source": {"src", "type", "media"},
}
URL_SCHEMES = {"http", "https", "mailto"}

# Attributes that lazy-loading sites put the real image URL in, most specific first.
_HAS_DATA_ATTR = re.compile("data-", re.IGNORECASE)
_LAZY_ATTRS = ("data-src", "data-original", "data-lazy-src", "data-actualsrc", "data-url")
# nh3 has no hook that can move one attribute's value into another, and parsing each body into a
# DOM just for that (lxml, selectolax) would cost more than the sanitising itself, so `<img>` tags
# are rewritten with these two expressions before nh3 sees them. They follow the HTML attribute
# grammar (quoted values may hold `>`); nh3 then parses the result properly.
_IMG_TAG = re.compile(r"<img\b(?:[^>\"']|\"[^\"]*\"|'[^']*')*>", re.IGNORECASE)
_ATTR = re.compile(r"""([^\s"'>/=]+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s>]+))?""")

# Sanitised HTML is well formed and double-quotes attribute values, so stripping tags from it for
# a summary needs no parser.
_TAG = re.compile(r"<(?:[^>\"']|\"[^\"]*\")*>")
_BLOCK_END = re.compile(
    r"</?(?:p|div|li|ul|ol|h[1-6]|blockquote|figure|figcaption|table|tr|td|th|pre|section)\b"
    r"(?:[^>\"']|\"[^\"]*\")*>|<br\s*/?>",
    re.I,
)
_SPACE = re.compile(r"\s+")
_HTML_START = re.compile(r"\s*<(?:/?[a-zA-Z][a-zA-Z0-9-]*|!--)")


def _promote_lazy(match: re.Match[str]) -> str:
    tag = match.group()
    attrs = _ATTR.findall(tag[4:-1])
    found = {name.lower(): value for name, value in attrs}
    lazy = next((found[a] for a in _LAZY_ATTRS if found.get(a, "").strip("\"' ")), None)
    if lazy is None:
        return tag
    kept = " ".join(
        f"{name}={value}" if value else name
        for name, value in attrs
        if name.lower() not in ("src", "srcset") and name.lower() not in _LAZY_ATTRS
    )
    return f"<img src={lazy} {kept}>"


def promote_lazy_images(body: str) -> str:
    """Give lazy-loaded images their real `src` (the placeholder is dropped)."""
    if not _HAS_DATA_ATTR.search(body):
        return body
    return _IMG_TAG.sub(_promote_lazy, body)


# The document being cleaned, for resolving its relative URLs (see `_resolve`). One cleaner
# is built once: building nh3's options for every call cost as much as the cleaning itself.
_current = threading.local()


def _resolve(url: str) -> str | None:
    base = getattr(_current, "base", None)
    return urljoin(base, url) if base else url


_CLEANER = nh3.Cleaner(
    tags=ALLOWED_TAGS,
    clean_content_tags=DROPPED_WITH_CONTENT,
    attributes=ATTRIBUTES,
    url_schemes=URL_SCHEMES,
    url_relative=_resolve,
    strip_comments=True,
)


def sanitise(body: str, base_url: str | None) -> str:
    """Safe HTML from untrusted HTML, with URLs made absolute against `base_url` when known."""
    _current.base = base_url
    try:
        clean = _CLEANER.clean(promote_lazy_images(strip_invalid_xml(body))).strip()
    finally:
        _current.base = None
    # nh3 decodes character references, and `&#1;` decodes to a character XML forbids.
    return strip_invalid_xml(clean) if "&#" in body else clean


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    from markdown_it import MarkdownIt  # archived posts are mostly HTML: load only when needed

    return MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])


def render_markdown(text: str) -> str:
    """Markdown (CommonMark with tables and strikethrough; raw HTML passes) to HTML."""
    return _markdown().render(text)


def looks_like_html(body: str) -> bool:
    """True when a body is HTML written into a Markdown file (as archived posts usually are).

    Markdown passes HTML blocks through unchanged, so rendering such a body gives back the same
    HTML; skipping the Markdown pass for it saves most of the time of reading a large archive.
    A body counts as HTML when it starts with a tag and every paragraph (text after a blank
    line) starts with one too; any other body is rendered as Markdown.
    """
    if not _HTML_START.match(body):
        return False
    pos = body.find("\n\n")
    while pos >= 0:
        rest = body[pos + 2 :].lstrip("\n")
        if rest and not _HTML_START.match(rest):
            return False
        pos = body.find("\n\n", pos + 2)
    return True


def summarise(content: str, limit: int) -> str:
    """Plain text of sanitised HTML, whitespace collapsed, cut at `limit` characters with `…`."""
    if limit <= 0:
        return ""
    window = content.rfind(">", 0, limit * 12) + 1 or len(content)
    text = _text_of(content[:window])
    if len(text) <= limit and len(content) > window:
        text = _text_of(content)
    if len(text) <= limit:
        return text
    return text[: limit - 1].rstrip() + "…"


def _text_of(fragment: str) -> str:
    # Block boundaries become spaces; inline tags vanish, so `有<b>粗体</b>的` stays one word.
    fragment = _TAG.sub("", _BLOCK_END.sub(" ", fragment))
    return _SPACE.sub(" ", html.unescape(fragment)).strip()
