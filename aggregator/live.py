"""Running live inputs (`kind: feed`): fetch, read, store, remember the fetch state.

    fetch (httpx, async, in a thread) ─▶ parse + normalise (worker processes) ─▶ store

Feeds are fetched concurrently on an event loop in a background thread; each fetched document
is read and normalised in a worker process (parsing is most of the cost of a large refresh)
while this thread writes to the store. A document's items and its new validators (ETag,
Last-Modified) are committed in one transaction, so a crash never leaves a stored ETag whose
items were lost. A 304 costs one state update and no parsing.

Items that drop out of a feed are kept: a feed is a window on its newest items, not a list of
everything that exists.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import (
    FIRST_COMPLETED,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from aggregator import __version__, due, fetch
from aggregator.config import Config, FeedInput
from aggregator.normalise import FUTURE_SLACK, settings_key, urls
from aggregator.normalise.item import ItemSettings
from aggregator.normalise.urls import UrlRules
from aggregator.parsing import ParsedFeed, feed_pool, parse_feed
from aggregator.store import Store
from aggregator.sync import InputReport, Reporter
from aggregator.types import Skipped, Version

log = logging.getLogger("aggregator")
timing = logging.getLogger("aggregator.timing")  # how long each stage took (`-v`)

PARALLEL_MIN = 8  # documents to read before worker processes pay for themselves
WRITE_BATCH = 2000  # items per store transaction


def fetch_settings(config: Config) -> fetch.FetchSettings:
    f = config.fetch
    return fetch.FetchSettings(
        user_agent=f"aggregator/{__version__} (+{config.site.base_url})",
        concurrency=f.concurrency,
        per_host=f.per_host,
        deadline=f.timeout.total_seconds(),
        max_bytes=int(f.max_mib * fetch.MiB),
        max_redirects=f.max_redirects,
        allow_private_networks=f.allow_private_networks,
    )


def item_settings(config: Config, inp: FeedInput, now: datetime | None = None) -> ItemSettings:
    return ItemSettings(
        scope=inp.display_name,
        source=inp.source,
        tags=inp.tags,
        timezone=inp.timezone,
        language=inp.language or config.site.language,
        summary_length=config.feeds.summary_length,
        rules=UrlRules.make(config.identity.tracking_params, config.identity.host_aliases),
        not_after=now + FUTURE_SLACK if now else None,
    )


def policy(config: Config, inp: FeedInput) -> due.Policy:
    return due.Policy(
        every=inp.every,
        backoff_cap=config.fetch.backoff_cap,
        moved_after=config.fetch.moved_after,
        moved_after_fetches=config.fetch.moved_after_fetches,
    )


@dataclass
class _Job:
    inp: FeedInput
    input_id: int
    state: due.FetchState
    report: InputReport
    settings: ItemSettings
    started: float = field(default_factory=time.perf_counter)

    @cached_property
    def read_under(self) -> str:
        return settings_key(self.settings)

    @property
    def read_again(self) -> bool:
        """True when the input's copies were read under other settings: the document is
        fetched whole and every item is stored again."""
        return self.state.read_settings != self.read_under


@dataclass
class _Writer:
    """Collects copies and state changes, and commits them together in batches, each batch in
    a background thread while the next one is collected.

    SQLite and the database driver do their work without holding the interpreter lock, so
    writing a batch overlaps with handing documents to the workers and taking their results,
    which this process does too (it was the bottleneck of a cold sync: the workers waited
    while a batch was written). One batch is written at a time, in order.
    """

    store: Store
    now: datetime
    versions: list[tuple[int, list[Version]]] = field(default_factory=list)
    states: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    dropped: list[tuple[int, str]] = field(default_factory=list)
    """(version id, identity key) of copies to delete: see `_rekeyed`."""
    size: int = 0
    _thread: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="aggregator-write")
    )
    _writing: Future[None] | None = None

    def add(
        self,
        input_id: int,
        versions: list[Version],
        state: dict[str, Any],
        dropped: Sequence[tuple[int, str]] = (),
    ) -> None:
        self.dropped.extend(dropped)
        if versions:
            self.versions.append((input_id, versions))
            self.size += len(versions)
        self.states.append((input_id, state))
        if self.size >= WRITE_BATCH:
            self._start()

    def _start(self) -> None:
        self.wait()  # the previous batch first (and its error, if it failed)
        if not self.versions and not self.states:
            return
        batch = (self.versions, self.states, self.dropped)
        self.versions, self.states, self.dropped, self.size = [], [], [], 0
        if self.store.shared_across_threads:
            self._writing = self._thread.submit(self._write, *batch)
        else:  # an in-memory database exists only for this thread
            self._write(*batch)

    def _write(
        self,
        versions: list[tuple[int, list[Version]]],
        states: list[tuple[int, dict[str, Any]]],
        dropped: list[tuple[int, str]],
    ) -> None:
        with self.store.transaction() as tx:
            for input_id, batch in versions:
                tx.put_versions(input_id, batch, self.now)
                tx.mark_pending({v.identity_key for v in batch})
            if dropped:
                tx.delete_versions([vid for vid, _ in dropped])
                tx.mark_pending({key for _, key in dropped})
            tx.update_inputs(states)

    def wait(self) -> None:
        """Until the batch being written is committed."""
        writing, self._writing = self._writing, None
        if writing is not None:
            writing.result()

    def flush(self) -> None:
        """Write everything collected, and wait until it is committed."""
        self._start()
        self.wait()

    def close(self) -> None:
        """Wait for the batch being written. When the run stopped for another reason while
        it failed, its error is logged, not raised over that reason."""
        writing, self._writing = self._writing, None
        self._thread.shutdown(wait=True)
        if writing is not None and (error := writing.exception()) is not None:
            log.error("writing fetched items to the store failed: %s", error)


def _rekeyed(
    store: Store, input_id: int, versions: Sequence[Version], rules: UrlRules
) -> list[tuple[int, str]]:
    """Copies of this input that items read under new settings replace: the same page (link
    without its fragment, cleaned by the new rules) under another identity key, such as new
    tracking parameters or a permalink's anchor give it. Items that left the feed keep their
    copies, as always."""
    new = {v.locator for v in versions}
    pages = {v.link.partition("#")[0] for v in versions if v.link}
    dropped: list[tuple[int, str]] = []
    for vid, locator, key, link in store.linked_copies(input_id):
        page = (urls.clean_url(link, rules) or link).partition("#")[0]
        if locator not in new and page in pages:
            dropped.append((vid, key))
    return dropped


def _fetch_in_thread(
    requests: Sequence[fetch.Request], settings: fetch.FetchSettings
) -> queue.Queue[fetch.Fetched | None]:
    """Start fetching on an event loop in a background thread; results arrive on the queue,
    then None."""
    results: queue.Queue[fetch.Fetched | None] = queue.Queue()

    async def run() -> None:
        async for result in fetch.fetch_many(requests, settings):
            results.put(result)

    def main() -> None:
        try:
            fetch.run_async(run())
        finally:
            results.put(None)

    threading.Thread(target=main, name="aggregator-fetch", daemon=True).start()
    return results


def run_feed_inputs(
    store: Store,
    config: Config,
    inputs: Sequence[FeedInput],
    reporter: Reporter,
    now: datetime,
    workers: int,
    force: bool = False,
) -> list[InputReport]:
    """Fetch every due feed input (all of them with `force`), store what changed."""
    ids = store.ensure_inputs([(i.display_name, i.kind, i.url) for i in inputs], now)
    states = store.fetch_states(list(ids.values()))
    reports: list[InputReport] = []
    jobs: dict[int, _Job] = {}
    requests: list[fetch.Request] = []
    for inp in inputs:
        input_id = ids[inp.display_name]
        state = states[input_id]
        result = InputReport(inp.display_name, inp.kind, state.fetch_url)
        reports.append(result)
        if state.retired_at is not None:
            result.note = (
                f"retired: answered 410 Gone on {state.retired_at:%Y-%m-%d}; "
                "remove it from the config or give it a new url"
            )
            result.ran = False
            continue
        if not force and not state.due(now):
            result.note = state.waiting_note()
            result.ran = False
            continue
        job = jobs[input_id] = _Job(inp, input_id, state, result, item_settings(config, inp, now))
        if job.read_again:
            requests.append(fetch.Request(state.fetch_url, None, None, key=input_id))
        else:
            requests.append(
                fetch.Request(state.fetch_url, state.etag, state.last_modified, key=input_id)
            )
    if not requests:
        return reports

    reporter.input_started("feeds", len(requests))
    writer = _Writer(store, now)
    results = _fetch_in_thread(requests, fetch_settings(config))
    pool: ProcessPoolExecutor | None = None
    parsing: dict[Future[ParsedFeed], tuple[_Job, fetch.Fetched]] = {}

    def collect(block: bool) -> None:
        if not parsing:
            return
        done, _ = wait(list(parsing), timeout=None if block else 0, return_when=FIRST_COMPLETED)
        for future in done:
            job, fetched = parsing.pop(future)
            _finish(job, fetched, future.result(), writer, store, config, reporter, now)

    try:
        while (fetched := results.get()) is not None:
            job = jobs[fetched.request.key]
            if not fetched.ok:
                _finish(job, fetched, None, writer, store, config, reporter, now)
                continue
            settings = job.settings
            if pool is None and workers > 1 and len(requests) >= PARALLEL_MIN:
                pool = feed_pool(workers)
            if pool is None:
                parsed = parse_feed(fetched.content, fetched.url, fetched.charset, settings)
                _finish(job, fetched, parsed, writer, store, config, reporter, now)
                continue
            future = pool.submit(
                parse_feed, fetched.content, fetched.url, fetched.charset, settings
            )
            parsing[future] = (job, fetched)
            while len(parsing) >= 4 * workers:
                collect(block=True)
            collect(block=False)
        while parsing:
            collect(block=True)
        writer.flush()
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        writer.close()
    return reports


def _finish(
    job: _Job,
    fetched: fetch.Fetched,
    parsed: ParsedFeed | None,
    writer: _Writer,
    store: Store,
    config: Config,
    reporter: Reporter,
    now: datetime,
) -> None:
    """Record one fetched input: its changed items, its state, what the person should see."""
    result = job.report
    url = fetched.request.url
    error = fetched.error
    if error is None and fetched.status not in (200, 304):
        error = f"HTTP {fetched.status}"
    if parsed is not None and parsed.error:
        error = parsed.error
    versions: list[Version] = []
    dropped: list[tuple[int, str]] = []
    if parsed is not None and not parsed.error:
        for message in parsed.warnings:
            reporter.warning(url, message)
        for position, reason in parsed.skipped:
            result.skipped.append(Skipped(f"item {position + 1}", reason))
            reporter.skipped(f"{url} item {position + 1}", reason)
        known = store.known_signatures(job.input_id)
        read_again = job.read_again and bool(known)  # a first fetch has nothing to read again
        stored = store.known_copies(job.input_id, list(known)) if read_again else {}
        for v in parsed.versions:
            old = known.get(v.locator)
            if old is None:
                result.new += 1
                versions.append(v)
            elif old != v.signature:
                result.updated += 1
                versions.append(v)
            elif read_again:  # stored again under the new settings; changed if it shows so
                versions.append(v)
                if stored[v.locator].shown == store.shown_of(v):
                    result.unchanged += 1
                else:
                    result.updated += 1
            else:
                result.unchanged += 1
        if read_again:
            dropped = _rekeyed(store, job.input_id, parsed.versions, job.settings.rules)
    outcome = due.Outcome(
        status=fetched.status,
        ok=error is None,
        error=error,
        retry_after=fetched.retry_after,
        moved_permanently_to=fetched.moved_permanently_to,
        etag=fetched.etag,
        last_modified=fetched.last_modified,
    )
    changes = due.after_fetch(job.state, outcome, now, policy(config, job.inp))
    if error is None and parsed is not None and job.read_again:
        changes["read_settings"] = job.read_under
    if error is not None:
        result.error = f"{url}: {error}"
    elif fetched.not_modified:
        result.note = "not modified since the last fetch"
    if "url" in changes:
        reporter.warning(url, f"moved permanently to {changes['url']}; now fetched from there")
    writer.add(job.input_id, versions, changes, dropped)
    reporter.advance(1)
    result.seconds = time.perf_counter() - job.started
    timing.info(
        "input %s: %s, %d new, %d updated in %.2fs",
        job.inp.display_name,
        due.status_text(outcome) if error is None else error,
        result.new,
        result.updated,
        result.seconds,
    )
