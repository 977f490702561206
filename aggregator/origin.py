"""Running the `origin` input: re-reading the original article pages entries link to.

For the newest entries whose page is due (a bounded number per run, one request at a time per
host and at least `HOST_INTERVAL` seconds between two to one host name), the page is fetched
with conditional GET and read (adapters/page.py). Then:

- the page says what readers already see (same text, by `same_text`): its copy is kept as
  provenance and ranks below the others, so nothing readers see changes;
- the page really differs: its copy becomes a new revision that wins, and the entry's
  `updated` moves (to the page's own modification time when that is newer, else now);
- the extraction is thin (less text than `min_chars`, or than 30% of what is stored) or failed:
  nothing is replaced, and a warning says so;
- another page answered (a redirect to the site's home page, say; see `other_page`): nothing
  is replaced, a warning names both pages, and the check is retried later, backing off;
- 404/410: the entry is kept and marked `removed at origin <date noticed>`: a category on
  the published entry but no tag feed (a mark, see types.MARK); its `updated` moves to the
  time it was noticed; the mark goes when the page is back;
- unreachable or any other status: a per-page warning and a later retry, never a failed run.

Pages are re-checked less often as their entries age: after a tenth of the entry's age, at
least an hour and at most 30 days.
"""

from __future__ import annotations

import logging
import re
import unicodedata
import zoneinfo
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from aggregator import due, fetch
from aggregator.config import Config, OriginInput
from aggregator.errors import ParseError
from aggregator.live import fetch_settings
from aggregator.normalise import dates, html, identity, settings_key, text, urls
from aggregator.store import Store
from aggregator.sync import ORIGIN_LOCATION, BodyLoader, InputReport, Reporter
from aggregator.types import MARK, FeedItem, OriginTarget, Skipped, Tag, Version

log = logging.getLogger("aggregator")

HOST_INTERVAL = 1.0  # seconds between the starts of two page fetches from one host name
SIMILAR = 0.9  # share of shingles in common above which two texts say the same
_WORDLESS = re.compile(r"[\W_]+", re.UNICODE)


def recheck_after(published: datetime, now: datetime) -> timedelta:
    """How long until an entry's page is checked again: older entries, less often."""
    age = max(now - published, timedelta(0))
    return min(timedelta(days=30), max(timedelta(hours=1), age / 10))


def _shingles(value: str, size: int = 5) -> set[str]:
    flat = _WORDLESS.sub("", unicodedata.normalize("NFKC", value).casefold())
    if len(flat) <= size:
        return {flat} if flat else set()
    return {flat[i : i + size] for i in range(len(flat) - size + 1)}


def same_text(a: str, b: str) -> bool:
    """Whether two plain texts say the same, ignoring spacing, punctuation and case, and small
    differences (a caption, a credit line): Jaccard similarity of 5-character shingles.

    Written here because the comparison must work for Chinese (no spaces between words) and
    cost little; no small library does that.
    """
    sa, sb = _shingles(a), _shingles(b)
    if not sa or not sb:
        return sa == sb
    return len(sa & sb) / len(sa | sb) >= SIMILAR


def removed_mark(noticed: datetime) -> Tag:
    """The mark of an entry whose page was found gone, with the (UTC) day it was noticed."""
    label = f"removed at origin {noticed.astimezone(UTC).date().isoformat()}"
    return (MARK + label, label)


def page_key(url: str, rules: urls.UrlRules = urls.DEFAULT_RULES) -> str | None:
    """What names one page when telling whether a redirect left the article: its canonical
    key (`url_key`: http = https, host aliases, tracking parameters…) without a leading `www.`
    on the host and a trailing slash on the path, as sites redirect between those forms."""
    key = urls.url_key(url, rules)
    if key is None:
        return None
    host, _, rest = key.partition("/")
    path, sep, query = rest.partition("?")
    return f"{host.removeprefix('www.')}/{path.rstrip('/')}{sep}{query}"


def other_page(
    article: str, final: str, canonical: str | None, rules: urls.UrlRules = urls.DEFAULT_RULES
) -> str | None:
    """The page that answered for `article` when it is not the article, else None.

    `final` is the URL reached after redirects; `canonical` the absolute URL the answering
    page names as its own, if it does. A redirect to another page is another page, unless
    that page names the article as its own. A page naming its site's home page as its own
    (the home page served at the article's URL) is another page too. A canonical URL naming
    some other article is not taken as proof: sites name slugged, mobile or AMP forms of the
    same article that way.
    """
    article_key = page_key(article, rules)
    canonical_key = page_key(canonical, rules) if canonical else None
    if page_key(final, rules) != article_key:
        return None if canonical_key == article_key else final
    home = canonical_key is not None and canonical_key.partition("/")[2] == ""
    if home and canonical_key != article_key:
        return canonical  # the site's home page (no path, no query) names itself
    return None


def _plain(fragment: str) -> str:
    return html.summarise(fragment, 10**9) if fragment else ""


def _stored_text(target: OriginTarget, bodies: BodyLoader) -> str | None:
    """The text readers see now; None when it is kept in a post file that cannot be read."""
    if target.content is not None:
        return _plain(target.content)
    if target.body_path is None:
        return ""
    item = FeedItem(
        entry_id="",
        title=target.title,
        link=target.url,
        published=target.published,
        updated=target.updated,
        author=None,
        source_name=target.source_name,
        categories=(),
        summary=None,
        content=None,
        image=None,
        language=None,
        body_path=target.body_path,
    )
    loaded = bodies(item)
    return None if loaded.body_error is not None else _plain(loaded.content or "")


def _version(
    target: OriginTarget,
    *,
    locator: str,
    title: str,
    content: str | None,
    published: datetime | None,
    declared: datetime | None,
    author: str | None = None,
    image: str | None = None,
    summary: str | None = None,
    tags: tuple[tuple[str, str], ...] = (),
    mtime_ns: int = -1,
) -> Version:
    body_hash = identity.body_hash(title, target.url, content or "", image, author, summary)
    return Version(
        locator=locator,
        signature=body_hash,
        identity_key=target.identity_key,
        title=title,
        link=target.url,
        published=published,
        declared_updated=declared,
        author=author,
        source_key=target.source_key,
        source_name=target.source_name,
        tags=tags,
        image=image,
        language=None,
        content=content,
        summary=summary,
        body_hash=body_hash,
        mtime_ns=mtime_ns,
    )


def run_origin_input(
    store: Store,
    config: Config,
    inp: OriginInput,
    reporter: Reporter,
    now: datetime,
) -> InputReport:
    result = InputReport(inp.display_name, inp.kind, "original pages")
    input_id = store.ensure_input(inp.display_name, inp.kind, ORIGIN_LOCATION, now)
    read_under = settings_key(
        {
            "selectors": inp.selectors,
            "min_chars": inp.min_chars,
            "timezone": inp.timezone,
            "summary_length": config.feeds.summary_length,
            "rules": urls.UrlRules.make(
                config.identity.tracking_params, config.identity.host_aliases
            ),
        }
    )
    if store.read_settings(input_id) != read_under:
        # Pages read with other selectors (or limits) are read again, newest first, a run's
        # worth at a time; recorded now, so the pages are made due only once.
        again = store.recheck_origin_pages(now)
        if again:
            log.info("%s: settings changed; %d original pages will be read again", inp.name, again)
        store.set_read_settings(input_id, read_under)
    targets = store.origin_targets(now, inp.per_run)
    if not targets:
        result.note = "no original page is due"
        store.record_run(input_id, now=now, ok=True, next_due=now + inp.every)
        return result
    reporter.input_started(inp.display_name, len(targets))
    settings = replace(fetch_settings(config), per_host=1, host_interval=HOST_INTERVAL)
    requests = [fetch.Request(t.url, t.etag, t.last_modified, key=t) for t in targets]
    known = store.known_signatures(input_id)
    bodies = BodyLoader(config.feeds.summary_length)
    tz = zoneinfo.ZoneInfo(inp.timezone) if inp.timezone else UTC
    rules = urls.UrlRules.make(config.identity.tracking_params, config.identity.host_aliases)
    versions: list[Version] = []
    gone_locators: list[str] = []
    pages: list[dict[str, Any]] = []
    for fetched in fetch.fetch_all(requests, settings):
        target: OriginTarget = fetched.request.key
        page: dict[str, Any] = {
            "url": target.url,
            "identity_key": target.identity_key,
            "checked_at": now,
            "http_status": fetched.status or None,
            "next_check_at": now + recheck_after(target.published, now),
            "error_count": 0,
            "last_error": None,
        }
        reporter.advance(1)
        if fetched.status in (404, 410):
            if target.removed_at is None:
                page["removed_at"] = now
                versions.append(
                    _version(
                        target,
                        locator="removed:" + target.url,
                        title=target.title,
                        content=None,
                        published=None,
                        declared=None,
                        tags=(removed_mark(now),),
                    )
                )
                result.updated += 1
                reporter.warning(target.url, f"removed at origin (HTTP {fetched.status})")
            else:
                result.unchanged += 1
            pages.append(page)
            continue
        if not (fetched.ok or fetched.not_modified):
            _not_read(
                page, target, fetched.error or f"HTTP {fetched.status}", now, result, reporter
            )
            pages.append(page)
            continue
        draft, unreadable = None, None
        if fetched.ok:
            try:
                draft = _read(fetched, inp)
            except ParseError as exc:
                unreadable = str(exc)
        canonical = draft.canonical if draft else None
        canonical = urls.absolute_url(canonical, fetched.url) if canonical else None
        elsewhere = other_page(target.url, fetched.url, canonical, rules)
        if elsewhere is not None:
            if elsewhere == fetched.url:
                problem = f"redirected to another page, {elsewhere}; stored content kept"
            else:
                problem = f"the page names {elsewhere} as its own; stored content kept"
            _not_read(page, target, problem, now, result, reporter)
            pages.append(page)
            continue
        if target.removed_at is not None:  # the page is back
            page["removed_at"] = None
            gone_locators.append("removed:" + target.url)
        if fetched.not_modified:
            result.unchanged += 1
            pages.append(page)
            continue
        page.update(etag=fetched.etag, last_modified=fetched.last_modified)
        pages.append(page)
        if draft is None:
            reporter.warning(target.url, f"original page not read: {unreadable}")
            result.skipped.append(Skipped(target.url, str(unreadable)))
            continue
        content = html.sanitise(draft.content or "", target.url)
        new_text = _plain(content)
        for heading in (draft.title, target.title):  # a heading repeating the title
            if heading and new_text.startswith(heading):
                new_text = new_text[len(heading) :].lstrip()
        stored_text = _stored_text(target, bodies)
        if stored_text is None:
            # nothing to compare with: checked again later, never taken as a change
            page.update(etag=None, last_modified=None)
            reason = f"stored body cannot be read ({target.body_path}); compared later"
            reporter.warning(target.url, reason)
            result.skipped.append(Skipped(target.url, reason))
            continue
        if len(new_text) < max(inp.min_chars, 0.3 * len(stored_text)):
            reason = f"extraction too thin ({len(new_text)} characters); stored content kept"
            reporter.warning(target.url, reason)
            result.skipped.append(Skipped(target.url, reason))
            continue
        title = text.clean_line(_plain(draft.title or "")) or target.title
        image = urls.absolute_url(draft.image, target.url) if draft.image else None
        author = text.clean_line(draft.author) if draft.author else None
        summary = html.summarise(content, config.feeds.summary_length)
        if same_text(new_text, stored_text):
            if target.winner_kind == "origin" or target.url in known:
                result.unchanged += 1
                continue
            # provenance: ranks below every copy with a date, so readers see no change
            version = _version(
                target, locator=target.url, title=title, content=content, published=None,
                declared=None, author=author, image=image, summary=summary,
            )  # fmt: skip
            result.new += 1
        else:
            modified = _date(draft.modified, tz)
            declared = modified if modified and modified > target.updated else now
            version = _version(
                target, locator=target.url, title=title, content=content,
                published=target.published, declared=declared, author=author, image=image,
                summary=summary, mtime_ns=0,
            )  # fmt: skip
            result.updated += 1
            reporter.warning(target.url, "the original page changed: stored as a new revision")
        if known.get(version.locator) != version.signature:
            versions.append(version)
    old = store.known_copies(input_id, gone_locators) if gone_locators else {}
    with store.transaction() as tx:
        tx.put_versions(input_id, versions, now)
        tx.delete_versions([c.version_id for c in old.values()])
        tx.mark_pending({v.identity_key for v in versions} | {c.identity_key for c in old.values()})
        tx.put_origin_pages(pages)
    store.record_run(input_id, now=now, ok=True, next_due=now + inp.every)
    return result


def _not_read(
    page: dict[str, Any],
    target: OriginTarget,
    problem: str,
    now: datetime,
    result: InputReport,
    reporter: Reporter,
) -> None:
    """Record that a page could not be read: a warning, and a later retry, backing off."""
    errors = target.error_count + 1
    page.update(
        error_count=errors,
        last_error=problem,
        next_check_at=now + due.backoff(errors, timedelta(days=7)),
    )
    reporter.warning(target.url, f"original page not read: {problem}")
    result.skipped.append(Skipped(target.url, problem))


def _read(fetched: fetch.Fetched, inp: OriginInput) -> Any:
    from aggregator.adapters.page import read_page

    return read_page(fetched.content, fetched.url, fetched.charset, inp.selectors)


def _date(raw: str | None, tz: Any) -> datetime | None:
    if not raw:
        return None
    try:
        return dates.parse_date(raw, tz)
    except ValueError:
        return None
