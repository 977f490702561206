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
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from aggregator.errors import ParseError
from aggregator.normalise import dates, html, identity, merge_tags, text, urls
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


def normalise_item(item: ItemDraft, doc: FeedDocument, settings: ItemSettings) -> Version:
    """One feed item as a version; raises ParseError for an item with nothing to show."""
    warnings: list[str] = []
    link = urls.clean_url(item.link, settings.rules) if item.link else None
    base = item.content_base or link or doc.link
    content = html.sanitise(item.content, base) if item.content else ""
    summary_html = html.sanitise(item.summary, base) if item.summary else ""
    title = _plain(item.title)
    if not title:
        title = html.summarise(content or summary_html, TITLE_FROM_BODY)
    if not title and not link:
        raise ParseError("item has no title, no content and no link")
    title = title or link or ""

    published = _date(item.published, settings, warnings)
    declared_updated = _date(item.updated, settings, warnings)
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

    url_key = urls.clean_url_key(link, settings.rules) if link else None
    guid = f"{settings.scope}\x1f{item.guid}" if item.guid and not url_key else None
    key = identity.identity_key(url_key, source_key, title, published, guid=guid)
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
    skipped: list[tuple[int, str]] = []
    for n, item in enumerate(doc.items):
        try:
            v = normalise_item(item, doc, settings)
        except ParseError as exc:
            skipped.append((n, str(exc)))
            continue
        versions.setdefault(v.identity_key, v)
    return list(versions.values()), skipped
