"""Feed items (from `kind: feed` inputs) into normalised versions (pure).

The same rules as for archived posts: the identity key is the canonical original URL, else the
item's GUID scoped to its input, else a fingerprint of source, title and day; bodies are
sanitised once, here, with nh3; text is cleaned of characters XML forbids.

Each item's locator in the store is its identity key, so a GUID repeated within a document, or
a GUID that changes on every fetch for the same link, lands on the same stored copy instead of
creating another.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass, replace
from datetime import UTC, datetime, tzinfo

from aggregator.errors import ParseError
from aggregator.normalise import dates, html, identity, merge_tags, not_future, text, urls
from aggregator.types import FeedDocument, ItemDraft, Version

TITLE_FROM_BODY = 80  # characters of text that stand in for a missing title


@dataclass(frozen=True, slots=True)
class ItemSettings:
    """What a `kind: feed` input's configuration says about its items."""

    scope: str
    """The input's name: GUIDs are unique only within their feed."""
    source: str | None = None
    tags: tuple[str, ...] = ()
    timezone: str | None = None
    """Zone for dates without one; None when the config does not set it."""
    language: str | None = None
    summary_length: int = 280
    rules: urls.UrlRules = urls.DEFAULT_RULES
    not_after: datetime | None = None
    """Dates later than this are mistakes (see `normalise.not_future`)."""

    @property
    def tz(self) -> tzinfo:
        return zoneinfo.ZoneInfo(self.timezone) if self.timezone else UTC


def _date(raw: str | None, settings: ItemSettings, warnings: list[str]) -> datetime | None:
    if not raw or not raw.strip():
        return None
    value = raw.strip()
    value = str(dates.drop_ambiguous_zone(value, settings.timezone))
    try:
        return dates.parse_date(value, settings.tz)
    except ValueError as exc:
        warnings.append(f"date ignored: {exc}")
        return None


def _plain(fragment: str | None) -> str:
    """Text of a title or name that may hold markup or entities."""
    if not fragment:
        return ""
    if "<" in fragment or "&" in fragment:
        return html.summarise(html.sanitise(fragment, None), 10_000)
    return text.clean_line(fragment)


def _permalink_anchor(item: ItemDraft) -> str | None:
    """The #fragment of an item whose GUID is its own link, fragment included: a permalink
    to one post among several on a page (Scripting News writes a day's posts so). Such a
    fragment names the article, and is kept in its identity and link; any other fragment is
    dropped as canonical URLs say. One that looks like tracking (`#xtor=RSS-3`) is dropped."""
    guid, link = item.guid, item.link
    if not guid or not link or "#" not in guid or guid.strip() != link.strip():
        return None
    anchor = link.strip().partition("#")[2]
    return anchor if anchor and "=" not in anchor else None


def normalise_item(item: ItemDraft, doc: FeedDocument, settings: ItemSettings) -> Version:
    """One feed item as a version; raises ParseError for an item with nothing to show."""
    warnings: list[str] = []
    link = urls.clean_url(item.link, settings.rules) if item.link else None
    anchor = _permalink_anchor(item) if link else None
    if link and anchor:
        link = f"{link}#{anchor}"
    base = item.content_base or link or doc.link
    content = html.sanitise(item.content, base) if item.content else ""
    summary_html = html.sanitise(item.summary, base) if item.summary else ""
    title = _plain(item.title)
    if not title:
        title = html.summarise(content or summary_html, TITLE_FROM_BODY)
    if not title and not link:
        raise ParseError("item has no title, no content and no link")
    title = title or link or ""

    written = _date(item.published, settings, warnings)
    written_updated = _date(item.updated, settings, warnings)
    dated = written or written_updated  # for the identity, which must not move with time
    published = not_future(written, settings.not_after, warnings)
    declared_updated = not_future(written_updated, settings.not_after, warnings, "`updated`")
    if published is None:
        published = declared_updated

    author = text.clean_line(", ".join(_plain(a) for a in item.authors if a)) or None
    source_name = text.display_name(
        settings.source
        or _plain(doc.title)
        or (urls.host_of(link) if link else None)
        or settings.scope
    )
    source_key = source_name.casefold()
    tags = merge_tags([*item.categories, *settings.tags])
    image = urls.absolute_url(item.image, base) if item.image else None
    enclosures = tuple(
        (clean, kind, length)
        for href, kind, length in item.enclosures
        if (clean := urls.absolute_url(href, base))
    )
    language = text.clean_line(item.language or settings.language or "") or None
    summary = html.summarise(summary_html or content, settings.summary_length) or None

    url_key = urls.clean_url_key(link.partition("#")[0], settings.rules) if link else None
    if url_key and anchor:
        url_key = f"{url_key}#{anchor}"
    guid = f"{settings.scope}\x1f{item.guid}" if item.guid and not url_key else None
    key = identity.identity_key(url_key, source_key, title, dated, guid=guid)
    body_hash = identity.body_hash(
        title,
        link,
        content,
        image,
        author,
        language,
        summary,
        "\x1e".join(f"{u}\x1f{k}\x1f{n or ''}" for u, k, n in enclosures),
    )
    return Version(
        locator=key,
        signature=body_hash,
        identity_key=key,
        title=title,
        link=link,
        published=published,
        declared_updated=declared_updated,
        author=author,
        source_key=source_key,
        source_name=source_name,
        tags=tags,
        image=image,
        language=language,
        content=content,
        summary=summary,
        body_hash=body_hash,
        mtime_ns=0,
        warnings=tuple(warnings),
        enclosures=enclosures,
    )


def normalise_document(
    doc: FeedDocument, settings: ItemSettings
) -> tuple[list[Version], list[tuple[int, str]]]:
    """Every item of a document: (versions, one per identity, first kept; skipped items as
    (position, reason))."""
    versions: dict[str, Version] = {}
    first: dict[str, tuple[int, str | None]] = {}  # identity -> (position, link as written)
    skipped: list[tuple[int, str]] = []
    for n, item in enumerate(doc.items):
        try:
            v = normalise_item(item, doc, settings)
        except ParseError as exc:
            skipped.append((n, str(exc)))
            continue
        kept = versions.setdefault(v.identity_key, v)
        if kept is v:
            first[v.identity_key] = (n, item.link)
            continue
        # Two items that differ, on one page: said, since only the first is kept.
        position, written = first[v.identity_key]
        fragments = (item.link or "").partition("#")[2], (written or "").partition("#")[2]
        if fragments[0] != fragments[1] and kept.body_hash != v.body_hash:
            note = (
                f"items {position + 1} and {n + 1} link to one page ({v.link}) but for their "
                "#fragments; read as one article, the first"
            )
            versions[v.identity_key] = replace(kept, warnings=(*kept.warnings, note))
    return list(versions.values()), skipped
