"""One sync: run every input through the stages, then publish. The CLI and (later) the
scheduler call this; it only calls the stages.

    files adapter ─▶ normalise ─▶ store.put_versions ─▶ decide ─▶ store.apply ─▶ publish

Reading and normalising posts is CPU-bound, so a large batch of changed files is spread over
worker processes (one per core) while this process writes to the store. Results come back in
file order, at most a few chunks ahead of the writer, so memory stays bounded.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from aggregator.adapters import files as files_adapter
from aggregator.config import Config, FeedInput, FilesInput, OriginInput
from aggregator.config import Input as InputConfig
from aggregator.decide import decide_entries
from aggregator.errors import ParseError, SourceError
from aggregator.leases import Leases, live_holder, owner_name
from aggregator.normalise import FUTURE_SLACK, PostSettings, render_body, settings_key
from aggregator.normalise.urls import UrlRules
from aggregator.parsing import parsed
from aggregator.publish import PublishResult, publish
from aggregator.store import Store
from aggregator.types import EntryIntent, FeedItem, FileStat, Skipped, Version

timing = logging.getLogger("aggregator.timing")  # how long each stage took (`-v`)

BATCH = 2000  # posts per store transaction (their bodies are held in memory until written)
DECIDE_BATCH = 10_000  # entries decided per transaction
ORIGIN_LOCATION = "from: URLs"  # the origin input reads the links of stored entries


class Reporter(Protocol):
    """What a sync tells the person watching (the CLI draws it; tests record it)."""

    def input_started(self, name: str, to_read: int) -> None: ...
    def advance(self, n: int) -> None: ...
    def skipped(self, path: str, reason: str) -> None: ...
    def warning(self, path: str, message: str) -> None: ...
    def publishing(self, done: int, total: int) -> None: ...


class QuietReporter:
    def input_started(self, name: str, to_read: int) -> None:
        pass

    def advance(self, n: int) -> None:
        pass

    def skipped(self, path: str, reason: str) -> None:
        pass

    def warning(self, path: str, message: str) -> None:
        pass

    def publishing(self, done: int, total: int) -> None:
        pass


@dataclass
class InputReport:
    """What happened to one input: its posts (files) and the entries they changed."""

    name: str
    kind: str
    location: str
    new: int = 0
    """Posts not seen before."""
    updated: int = 0
    """Posts whose file changed since the last sync."""
    unchanged: int = 0
    removed: int = 0
    """Posts whose file is gone."""
    skipped: list[Skipped] = field(default_factory=list)
    error: str | None = None
    """Set when the input as a whole failed (folder missing, feed unreachable…)."""
    note: str | None = None
    """Why an input did not run this time (not due yet, retired)."""
    seconds: float | None = None
    """How long it took."""
    ran: bool = True
    """False when the input was left alone this time (not due, retired, run elsewhere)."""


@dataclass
class SyncReport:
    inputs: list[InputReport] = field(default_factory=list)
    entries_new: int = 0
    entries_updated: int = 0
    entries_removed: int = 0
    entries_total: int = 0
    published: PublishResult | None = None

    @property
    def failed(self) -> list[InputReport]:
        return [i for i in self.inputs if i.error]

    def count(self, intents: Iterable[EntryIntent]) -> None:
        for intent in intents:
            if intent.action == "new":
                self.entries_new += 1
            elif intent.action == "updated":
                self.entries_updated += 1
            elif intent.action == "removed":
                self.entries_removed += 1


def post_settings(config: Config, inp: FilesInput, now: datetime | None = None) -> PostSettings:
    return PostSettings(
        source=inp.source,
        tags=inp.tags,
        timezone=inp.timezone,
        language=inp.language or config.site.language,
        summary_length=config.feeds.summary_length,
        rules=UrlRules.make(config.identity.tracking_params, config.identity.host_aliases),
        not_after=now + FUTURE_SLACK if now else None,
    )


class BodyLoader:
    """Fills in the content and summary of feed items whose body is kept in a post file.

    The publisher renders each entry once per run (see `publish`), so nothing is remembered
    here. A file that can no longer be read gives an empty body and says why (`body_error`);
    it never stops publishing, and the caller reports it.
    """

    def __init__(self, summary_length: int):
        self.summary_length = summary_length

    def __call__(self, item: FeedItem) -> FeedItem:
        if item.content is not None or item.body_path is None:
            return item
        file = FileStat(Path(item.body_path).name, item.body_path, "", 0)
        try:
            draft = files_adapter.read_post(file, title=item.title)
        except ParseError as exc:
            return replace(item, content="", summary=item.summary or "", body_error=str(exc))
        content, summary = render_body(draft, item.link, self.summary_length)
        return replace(item, content=content, summary=item.summary or summary)


def write_copies(
    store: Store,
    input_id: int,
    versions: Sequence[Version],
    delete_ids: Sequence[int],
    old_keys: Iterable[str],
    now: datetime,
) -> None:
    """Phase 1: store (or delete) copies and mark every identity they touch as pending."""
    with store.transaction() as tx:
        tx.put_versions(input_id, versions, now)
        tx.delete_versions(delete_ids)
        tx.mark_pending({v.identity_key for v in versions} | set(old_keys))


def decide_pending(store: Store, now: datetime, report: SyncReport | None = None) -> None:
    """Phase 2: decide the entry of every pending identity from all its copies at once.

    Deciding only after every copy is stored makes the result independent of batch
    boundaries and of interruptions: two copies of one article met in the same run are
    merged as one new entry, never as an entry and an update to it.

    Entries that joined feeds get their places in the feeds' archives when the last batch is
    written, all at once (see `Batch.place_joined`), so those places do not depend on batch
    boundaries either.
    """
    while True:
        with store.transaction() as tx:
            keys = tx.take_pending(DECIDE_BATCH)
            if not keys:
                # nothing left to decide: place what an interrupted run left waiting
                tx.place_joined()
                return
            stored_versions, stored_entries = tx.decision_state(keys)
            intents = decide_entries(keys, stored_versions, stored_entries, now)
            last = len(keys) < DECIDE_BATCH
            if tx.apply(intents, now, place=last) is None and last:
                tx.place_joined()
            tx.clear_pending(keys)
        if report is not None:
            report.count(intents)
        if last:
            return


def write_batch(
    store: Store,
    input_id: int,
    versions: Sequence[Version],
    delete_ids: Sequence[int],
    old_keys: Iterable[str],
    now: datetime,
) -> None:
    """Both phases for one batch (for callers that store a few copies at a time)."""
    write_copies(store, input_id, versions, delete_ids, old_keys, now)
    decide_pending(store, now)


def display_path(root: Path, locator: str) -> str:
    path = root / locator
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def run_files_input(
    store: Store,
    config: Config,
    inp: FilesInput,
    report: SyncReport,
    reporter: Reporter,
    now: datetime,
    workers: int,
) -> InputReport:
    root = config.resolve(inp.path)
    result = InputReport(inp.display_name, inp.kind, str(root))
    started = time.perf_counter()
    input_id = store.ensure_input(inp.display_name, inp.kind, str(root), now)
    # One after the other: reading the stored signatures in a thread while the folder is
    # scanned made a sync with nothing new slower (at 100k posts 1.1 s against 0.65 s), since
    # the scan gives up the GIL at every stat call and then waits to get it back.
    unlisted: list[Skipped] = []
    try:
        found = files_adapter.scan(root, unlisted)
    except SourceError as exc:
        result.error = str(exc)
        store.record_run(input_id, now=now, ok=False, error=result.error, next_due=now + inp.every)
        return result
    signatures = store.known_signatures(input_id)
    settings = post_settings(config, inp, now)
    read_under = settings_key(settings)
    read_again = store.read_settings(input_id) != read_under
    if read_again:  # read under other settings (or before they were recorded): read all again
        changed = found
    else:
        changed = [f for f in found if signatures.get(f.locator) != f.signature]
    present = {f.locator for f in found}
    # Posts in a folder that could not be listed are not gone: their stored copies stay.
    hidden = tuple(s.locator for s in unlisted if s.locator.endswith("/"))
    missing = [loc for loc in signatures if loc not in present and not loc.startswith(hidden)]
    for folder in unlisted:
        result.skipped.append(folder)
        reporter.skipped(display_path(root, folder.locator), folder.reason)
    reread = [f.locator for f in changed if f.locator in signatures]
    known = store.known_copies(input_id, [*missing, *reread]) if missing or reread else {}
    gone = [(loc, known[loc].version_id, known[loc].identity_key) for loc in missing]
    result.unchanged = len(found) - len(changed)
    reporter.input_started(inp.display_name, len(changed))

    batch: list[Version] = []

    def flush() -> None:
        old_keys = {known[v.locator].identity_key for v in batch if v.locator in known}
        write_copies(store, input_id, batch, (), old_keys, now)
        batch.clear()

    for chunk in parsed(changed, settings, workers):
        for item in chunk:
            if isinstance(item, Skipped):
                result.skipped.append(item)
                reporter.skipped(display_path(root, item.locator), item.reason)
                continue
            for message in item.warnings:
                reporter.warning(display_path(root, item.locator), message)
            stored = known.get(item.locator)
            if stored is None:
                result.new += 1
            elif stored.identity_key != item.identity_key or stored.shown != store.shown_of(item):
                result.updated += 1
            else:  # only the file's time changed (or it was read again after an interruption)
                result.unchanged += 1
            batch.append(item)
        reporter.advance(len(chunk))
        if len(batch) >= BATCH:
            flush()
    if batch:
        flush()
    for i in range(0, len(gone), BATCH):
        part = gone[i : i + BATCH]
        write_copies(
            store, input_id, (), [vid for _, vid, _ in part], {key for *_, key in part}, now
        )
    result.removed = len(gone)
    result.seconds = time.perf_counter() - started
    # Posts in a folder that could not be listed were not read again: not done yet.
    done = read_under if not (read_again and hidden) else None
    store.record_run(input_id, now=now, ok=True, next_due=now + inp.every, read_settings=done)
    timing.info(
        "input %s: %d files, %d read, %d removed in %.2fs",
        inp.display_name,
        len(found),
        len(changed),
        len(gone),
        result.seconds,
    )
    return result


def input_spec(config: Config, inp: InputConfig) -> tuple[str, str, str]:
    """(name, kind, location) of an input, as the store keeps it."""
    if isinstance(inp, FilesInput):
        location = str(config.resolve(inp.path))
    elif isinstance(inp, FeedInput):
        location = inp.url
    else:
        location = ORIGIN_LOCATION
    return inp.display_name, inp.kind, location


@dataclass
class Claimed:
    """Inputs registered in the store and claimed for this process."""

    ids: dict[str, int]
    """name -> input id, for every input asked for"""
    runnable: list[InputConfig]
    """Those this process holds now."""
    busy: dict[str, InputReport]
    """Those another process is running now, as reports saying so."""


def claim_inputs(
    store: Store, config: Config, chosen: Sequence[InputConfig], leases: Leases, now: datetime
) -> Claimed:
    """Register these inputs and claim them; an input another process runs now is left to it."""
    ids = store.ensure_inputs([input_spec(config, inp) for inp in chosen], now)
    mine = leases.claim(ids.values())
    holders = leases.holders(set(ids.values()) - mine)
    runnable: list[InputConfig] = []
    busy: dict[str, InputReport] = {}
    for inp in chosen:
        input_id = ids[inp.display_name]
        if input_id in mine:
            runnable.append(inp)
            continue
        name, kind, location = input_spec(config, inp)
        holder = holders.get(input_id, "another process")
        busy[name] = InputReport(
            name, kind, location, note=f"being refreshed by {holder}", ran=False
        )
    return Claimed(ids, runnable, busy)


def run_inputs(
    store: Store,
    config: Config,
    chosen: Sequence[InputConfig],
    report: SyncReport,
    reporter: Reporter,
    now: datetime,
    workers: int,
    *,
    force: bool = False,
    due_only: bool = False,
    ids: dict[str, int] | None = None,
) -> dict[str, InputReport]:
    """Run these inputs and decide their entries (the caller holds their leases).

    Live feeds are fetched when due (all with `force`); with `due_only`, folders and origin
    pages too wait for their `every` (the daemon), else they always run (`aggregator sync`).
    `ids` are the inputs' ids when the caller has them (`claim_inputs`).
    """
    done: dict[str, InputReport] = {}
    if due_only and not force:
        if ids is None:
            ids = store.ensure_inputs([input_spec(config, inp) for inp in chosen], now)
        states = store.fetch_states(list(ids.values()))
        waiting = [
            inp
            for inp in chosen
            if not isinstance(inp, FeedInput) and not states[ids[inp.display_name]].due(now)
        ]
        for waits in waiting:
            name, kind, location = input_spec(config, waits)
            note = states[ids[waits.display_name]].waiting_note()
            done[name] = InputReport(name, kind, location, note=note, ran=False)
        chosen = [inp for inp in chosen if inp.display_name not in done]
    for inp in chosen:
        if isinstance(inp, FilesInput):
            done[inp.display_name] = run_files_input(
                store, config, inp, report, reporter, now, workers
            )
    feeds = [inp for inp in chosen if isinstance(inp, FeedInput)]
    if feeds:
        from aggregator import live  # httpx and feedparser load only when needed

        for result in live.run_feed_inputs(
            store, config, feeds, reporter, now, workers, force=force
        ):
            done[result.name] = result
    origins = [inp for inp in chosen if isinstance(inp, OriginInput)]
    if origins:
        from aggregator import origin  # lxml.html and readability load only when needed

        decide_pending(store, now, report)  # the pages to check belong to decided entries
        for inp in origins:
            started = time.perf_counter()
            done[inp.display_name] = result = origin.run_origin_input(
                store, config, inp, reporter, now
            )
            result.seconds = time.perf_counter() - started
    started = time.perf_counter()
    decide_pending(store, now, report)
    timing.info("decided entries in %.2fs", time.perf_counter() - started)
    return done


def sync(
    config: Config,
    *,
    only: Sequence[str] = (),
    reporter: Reporter | None = None,
    now: datetime | None = None,
    workers: int | None = None,
    store: Store | None = None,
    force: bool = False,
) -> SyncReport:
    """Run the enabled inputs (or those named in `only`), then publish.

    Live inputs are fetched when they are due (all of them with `force`). An input another
    process is running now (a daemon) is left to it. Raises StoreError when the database cannot
    be used; a failing input is recorded in the report and the others still run.
    """
    reporter = reporter or QuietReporter()
    now = now or datetime.now(UTC)
    workers = workers if workers is not None else (os.cpu_count() or 1)
    report = SyncReport()
    own_store = store is None
    store = store or Store.open(config.database_url)
    try:
        chosen = [
            inp for inp in config.inputs if inp.enabled and (not only or inp.display_name in only)
        ]
        leases = Leases(store, owner_name("sync"), config.serve.lease)
        try:
            claimed = claim_inputs(store, config, chosen, leases, now)
            done = run_inputs(
                store, config, claimed.runnable, report, reporter, now, workers, force=force
            )
        finally:
            leases.close()
        done.update(claimed.busy)
        report.inputs.extend(done[inp.display_name] for inp in chosen)
        started = time.perf_counter()
        report.published = publish(
            store,
            config,
            progress=reporter.publishing,
            workers=workers,
            bodies=BodyLoader(config.feeds.summary_length),
        )
        timing.info(
            "published in %.2fs: %d of %d feeds rendered again, %d files written",
            time.perf_counter() - started,
            report.published.rendered,
            len(report.published.feeds),
            len(report.published.written),
        )
        report.entries_total = store.entry_count()
    finally:
        if own_store:
            store.close()
    return report


@dataclass
class Unlisted:
    """An input the store knows and the configuration no longer names (see `prune`)."""

    input_id: int
    name: str
    kind: str
    location: str
    copies: int
    held_by: str | None = None
    """The process refreshing it now (its configuration still names it): left alone."""

    @property
    def copies_text(self) -> str:
        return f"{self.copies} {'copy' if self.copies == 1 else 'copies'}"


def unlisted_inputs(config: Config, store: Store, now: datetime | None = None) -> list[Unlisted]:
    """Stored inputs the configuration does not name, with how many copies each keeps."""
    now = now or datetime.now(UTC)
    names = {inp.display_name for inp in config.inputs}
    rows = [r for r in store.input_rows() if r["name"] not in names]
    copies = store.input_copies() if rows else {}
    return [
        Unlisted(
            r["id"],
            r["name"],
            r["kind"],
            r.get("url") or r["location"],
            copies.get(r["id"], 0),
            live_holder(r["lease_owner"], r["lease_until"], now),
        )
        for r in rows
    ]


def prune(
    config: Config,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    workers: int | None = None,
) -> tuple[list[Unlisted], SyncReport]:
    """Remove the inputs the configuration no longer names, and their copies, then publish.

    Entries that no other input carries leave the feeds; those another input also carries
    stay, with what that input says. Inputs are never removed just because a configuration
    left them out (a second config file on the same database, an input commented out for a
    while): this is asked for. An input another process is refreshing now is left alone.
    """
    now = now or datetime.now(UTC)
    report = SyncReport()
    with Store.open(config.database_url) as store:
        unlisted = unlisted_inputs(config, store, now)
        if dry_run or not unlisted:
            return unlisted, report
        removed = store.remove_inputs([u.input_id for u in unlisted if u.held_by is None], now)
        for u in unlisted:  # claimed by another process since it was listed: left to it
            if u.held_by is None and u.input_id not in removed:
                u.held_by = "another process"
        decide_pending(store, now, report)
        report.published = publish(
            store,
            config,
            workers=workers if workers is not None else (os.cpu_count() or 1),
            bodies=BodyLoader(config.feeds.summary_length),
        )
        report.entries_total = store.entry_count()
    return unlisted, report
