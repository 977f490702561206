"""Stage 2: loose drafts from the adapters become strict, normalised versions (pure).

`normalise_post` takes what the files adapter read and the input's settings and returns a
`Version`: dates read and converted to UTC, tags and source normalised, the identity key and
body hash computed. It raises `ParseError` when a file is not a post (no title); the caller
reports it and goes on. `render_body` turns the same draft's body into sanitised HTML and a
summary, when a feed that includes the post is written.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import zoneinfo
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from aggregator.errors import ParseError
from aggregator.normalise import dates, html, identity, text, urls
from aggregator.types import PostDraft, Tag, Version

IMAGE_KEYS = ("headimg", "thumbnail", "cover", "image")
TAG_KEYS = ("tags", "categories", "category", "tag")
_FILE_DATE = re.compile(r"(?:^|/)(\d{4}-\d{2}-\d{2})-[^/]*$")


@dataclass(frozen=True, slots=True)
class PostSettings:
    """What an input's configuration says about how to read its posts."""

    source: str | None = None
    tags: tuple[str, ...] = ()
    timezone: str = "UTC"
    language: str | None = None
    summary_length: int = 280
    rules: urls.UrlRules = urls.DEFAULT_RULES
    not_after: datetime | None = None
    """Dates later than this are mistakes (see `not_future`); not part of `settings_key`."""

    @property
    def tz(self) -> tzinfo:
        return UTC if self.timezone == "UTC" else zoneinfo.ZoneInfo(self.timezone)


# Bump when reading the same file or item under the same settings gives other fields: stored
# copies are then read again (see `settings_key`).
READ_VERSION = 1


def settings_key(settings: Any) -> str:
    """A digest of everything an input's settings (`PostSettings`, `ItemSettings`, or a dict
    of plain values and `rules`) change in the copies read under them. The store keeps it per
    input: copies read under other settings (a new `source`, `tags`, time zone, language,
    summary length or URL rules) are read again.
    """
    if isinstance(settings, dict):
        values = dict(settings)
    else:
        values = {f.name: getattr(settings, f.name) for f in fields(settings)}
    rules: urls.UrlRules = values.pop("rules")
    values.pop("not_after", None)  # the time of the run
    values["tracking_params"] = sorted(rules.tracking_params)
    values["host_aliases"] = sorted(rules.host_aliases.items())
    values["version"] = READ_VERSION
    data = json.dumps(values, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.blake2b(data, digest_size=12).hexdigest()


FUTURE_SLACK = timedelta(days=1)  # a date in a wrong time zone is hours ahead, not days


def not_future(
    value: datetime | None, not_after: datetime | None, warnings: list[str], what: str = "date"
) -> datetime | None:
    """`value`, unless it is later than `not_after` (the run's time and a day): a post or an
    item dated in 2099 would otherwise head every feed it is in for as long as it is kept.
    Such a date is dropped with a warning, and the copy is dated when first seen."""
    if value is None or not_after is None or value <= not_after:
        return value
    warnings.append(f"{what} {dates.iso(value)} is in the future: ignored")
    return None


def _scalar(value: Any) -> str | None:
    """A front matter value as one string, or None when empty or not a single value."""
    if isinstance(value, str):
        return value.strip() or None
    return None


def _authors(value: Any) -> Iterator[str]:
    """Author names from `author: A`, `author: [A, B]` or `author: {name: A, …}` (Jekyll)."""
    if isinstance(value, dict):
        value = value.get("name")
    if isinstance(value, list):
        for item in value:
            yield from _authors(item)
    elif isinstance(value, str) and value.strip():
        yield value


def flatten_names(value: Any) -> Iterator[str]:
    """Tag names from a string, a list, or Hexo's nested lists (each name becomes a tag)."""
    if isinstance(value, str):
        if value.strip():
            yield value
    elif isinstance(value, list):
        for item in value:
            yield from flatten_names(item)


def merge_tags(names: Iterable[str]) -> tuple[Tag, ...]:
    """Normalised (key, display) pairs, first spelling kept, duplicates dropped, order kept."""
    seen: dict[str, str] = {}
    for name in names:
        display = text.display_name(name)
        if display:
            seen.setdefault(display.casefold(), display)
    return tuple(seen.items())


def _date(
    meta: Any, keys: tuple[str, ...], settings: PostSettings, warnings: list[str]
) -> datetime | None:
    for key in keys:
        raw = meta.get(key)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            continue
        raw = dates.drop_ambiguous_zone(raw, settings.timezone)
        try:
            return dates.parse_date(raw, settings.tz)
        except ValueError as exc:
            warnings.append(f"`{key}` ignored: {exc}")
    return None


def normalise_post(draft: PostDraft, settings: PostSettings) -> Version:
    """A post read from a file, as a normalised version (see module docstring)."""
    meta = draft.meta
    warnings = list(draft.warnings)
    title = text.clean_line(_scalar(meta.get("title")) or "")
    if not title:
        raise ParseError("no title in front matter")
    tz = settings.tz

    raw_link = _scalar(meta.get("from")) or _scalar(meta.get("link")) or draft.heading_url
    link = urls.clean_url(raw_link, settings.rules) if raw_link else None
    if raw_link and link is None:
        warnings.append(f"original URL ignored (not an absolute http(s) URL): {raw_link!r}")

    published = _date(meta, ("date", "published", "pubDate"), settings, warnings)
    if published is None and draft.epoch_ms is not None:
        published = dates.from_epoch_ms(draft.epoch_ms)
    if published is None:
        found = _FILE_DATE.search(draft.file.locator)
        if found:
            with contextlib.suppress(ValueError):
                published = dates.parse_date(found.group(1), tz)
    if published is None and not any(w.startswith("`") for w in warnings):
        warnings.append(
            "no date (front matter `date`, an epoch comment or a YYYY-MM-DD- file name): "
            "dated when first seen"
        )
    declared_updated = _date(meta, ("updated", "modified", "lastmod"), settings, warnings)
    dated = published  # for the identity, which must not move with time
    published = not_future(published, settings.not_after, warnings)
    declared_updated = not_future(declared_updated, settings.not_after, warnings, "`updated`")

    authors = [n for n in (text.clean_line(a) for a in _authors(meta.get("author"))) if n]
    author = ", ".join(authors) or None
    source_name = text.display_name(
        settings.source
        or (authors[0] if authors else None)
        or (urls.host_of(link) if link else None)
        or "unknown"
    )
    source_key = source_name.casefold()

    names: list[str] = []
    for key in TAG_KEYS:
        names.extend(flatten_names(meta.get(key)))
    names.extend(settings.tags)
    tags = merge_tags(names)

    image = next((v for v in (_scalar(meta.get(k)) for k in IMAGE_KEYS) if v), None)
    if image:
        image = urls.absolute_url(image, link)
    language = (
        _scalar(meta.get("lang")) or _scalar(meta.get("language")) or settings.language or None
    )

    summary = _scalar(meta.get("description")) or _scalar(meta.get("excerpt"))
    if summary:
        summary = html.summarise(html.sanitise(summary, link), settings.summary_length)
    url_key = urls.clean_url_key(link, settings.rules) if link else None
    return Version(
        locator=draft.file.locator,
        signature=draft.file.signature,
        identity_key=identity.identity_key(url_key, source_key, title, dated),
        title=title,
        link=link,
        published=published,
        declared_updated=declared_updated,
        author=author,
        source_key=source_key,
        source_name=source_name,
        tags=tags,
        image=image,
        language=text.clean_line(language) if language else None,
        content=None,  # rendered from the file when published: see `render_body`
        summary=summary or None,
        body_hash=identity.body_hash(
            title, link, _hashed_body(draft, link), image, author, language, summary
        ),
        mtime_ns=draft.file.mtime_ns,
        warnings=tuple(warnings),
    )


def _hashed_body(draft: PostDraft, link: str | None) -> str:
    """The body as far as whether it changed is concerned.

    An HTML body is hashed as published (sanitised): an edit that sanitising removes (a
    script, a comment, an event handler, attribute quoting), such as an archiver saving a page
    again with a new nonce in its scripts, does not move the entry's `updated`. This costs
    about 0.08 ms a post (reading one costs 0.14 ms without it). A Markdown body is hashed
    as written: rendering it here too would cost more than reading the post (markdown-it is
    pure Python), and an edit to Markdown nearly always changes what it renders to.
    """
    if draft.body_format == "html":
        return "html:" + html.sanitise(draft.body, link)
    return "markdown:" + draft.body


def render_body(draft: PostDraft, link: str | None, summary_length: int) -> tuple[str, str]:
    """A post's body as published: (sanitised HTML, plain-text summary).

    Bodies of archived posts are not kept in the store, only their hash: the post file holds
    them, and most are never in any feed's newest entries. Rendering them when a feed needs them
    keeps a 100,000-post store at a tenth of the size and a cold sync at half the time. Each is
    still sanitised once on its way out, and nothing unsanitised is ever stored.
    """
    body = draft.body if draft.body_format == "html" else html.render_markdown(draft.body)
    content = html.sanitise(body, link)
    return content, html.summarise(content, summary_length)
