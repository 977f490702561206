"""Feed inputs end to end, in process: real HTTP servers on 127.0.0.1, a real SQLite store,
published files read back with feedparser."""

from __future__ import annotations

import hashlib
import json
import time
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import feedparser
import http_server as hs
import pytest

from aggregator import config as config_module
from aggregator.config import Config
from aggregator.errors import StoreError
from aggregator.store import Store
from aggregator.sync import QuietReporter, SyncReport, sync

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def rss(*items: str, title: str = "Live News") -> bytes:
    return (
        f"<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>{title}"
        f"</title><link>https://live.example/</link>{''.join(items)}</channel></rss>"
    ).encode()


def item(n: int, link: str | None = None, guid: str | None = None, body: str = "") -> str:
    link = link or f"https://live.example/a/{n}"
    return (
        f"<item><title>Story {n}</title><link>{link}</link>"
        + (f"<guid>{guid}</guid>" if guid else "")
        + f"<pubDate>Sun, {n:02d} Jul 2022 09:30:00 GMT</pubDate>"
        f"<description>{body or f'Body of story {n}'}</description></item>"
    )


def make_config(tmp_path: Path, feeds: list[dict[str, Any]], **extra: Any) -> Config:
    data: dict[str, Any] = {
        "database": "sqlite:///agg.db",
        "output": "public",
        "site": {"base_url": "https://agg.example/"},
        "fetch": {"allow_private_networks": True, "timeout": "5s"},
        "inputs": [{"kind": "feed", **f} for f in feeds],
        **extra,
    }
    return config_module.parse(data, base_dir=tmp_path)


def run(cfg: Config, now: datetime = NOW, force: bool = False) -> SyncReport:
    return sync(cfg, now=now, workers=1, force=force)


def archive_and_feed(tmp_path: Path, url: str, **extra: Any) -> Config:
    """The archive folder `posts` (in China's zone) and the live feed at `url`, `zb-live`."""
    return config_module.parse(
        {
            "database": "sqlite:///agg.db",
            "output": "public",
            "fetch": {"allow_private_networks": True},
            "inputs": [
                {"kind": "files", "path": "posts", "timezone": "Asia/Shanghai"},
                {"kind": "feed", "url": url, "name": "zb-live"},
            ],
            **extra,
        },
        base_dir=tmp_path,
    )


def published(cfg: Config, name: str = "all.atom") -> Any:
    return feedparser.parse((cfg.output_dir / name).read_bytes())


def input_row(cfg: Config, name: str) -> dict[str, Any]:
    with Store.open(cfg.database_url) as store:
        return next(r for r in store.input_rows() if r["name"] == name)


def test_feed_items_are_published_then_a_304_costs_nothing(tmp_path: Path) -> None:
    with hs.serve() as server:
        url = server.route("/feed.xml", hs.static(rss(item(1), item(2))))
        cfg = make_config(tmp_path, [{"url": url, "name": "live"}])
        report = run(cfg)
        assert (report.inputs[0].new, report.entries_new) == (2, 2)
        titles = [e.title for e in published(cfg).entries]
        assert titles == ["Story 2", "Story 1"]
        before = {p: p.stat().st_mtime_ns for p in cfg.output_dir.rglob("*")}

        again = run(cfg, NOW + timedelta(minutes=5))  # not due yet: no request at all
        assert server.hits("/feed.xml") == 1
        assert again.inputs[0].note and again.inputs[0].note.startswith("not due until")

        forced = run(cfg, NOW + timedelta(minutes=10), force=True)
        assert server.hits("/feed.xml") == 2
        assert server.requests[1].headers.get("if-none-match")
        assert forced.inputs[0].note == "not modified since the last fetch"
        assert forced.entries_new == forced.entries_updated == 0
        assert {p: p.stat().st_mtime_ns for p in cfg.output_dir.rglob("*")} == before
        row = input_row(cfg, "live")
        assert row["status"] == "not modified" and row["http_status"] == 304
        assert row["next_due_at"] == NOW + timedelta(minutes=40)


def test_archive_post_and_feed_item_are_one_entry_with_two_sources(tmp_path: Path) -> None:
    archive = tmp_path / "posts"
    archive.mkdir()
    (archive / "a.md").write_text(
        "---\ntitle: 中国经济新闻\ndate: 2022-07-10 09:30:00\nauthor: 联合早报\n"
        "from: https://www.zaobao.com.sg/news/china/story1?utm_source=x\ntags: [经济]\n---\n"
        "<p>存档正文</p>\n",
        encoding="utf-8",
    )
    feed_item = (
        "<item><title>中国经济新闻</title><link>http://www.zaobao.com/news/china/story1</link>"
        "<pubDate>Sun, 10 Jul 2022 01:30:00 GMT</pubDate><category>China</category>"
        "<description>&lt;p&gt;实时正文&lt;/p&gt;</description></item>"
    )
    with hs.serve() as server:
        url = server.route("/zb.xml", hs.static(rss(feed_item, title="早报实时")))
        aliases = {"zaobao.com.sg": "zaobao.com"}
        cfg = archive_and_feed(tmp_path, url, identity={"host_aliases": aliases})
        report = run(cfg)
    assert report.entries_total == 1
    everything = published(cfg)
    assert len(everything.entries) == 1
    entry = everything.entries[0]
    assert {t.term for t in entry.tags} == {"经济", "China"}
    feeds = json.loads((cfg.output_dir / ".aggregator-manifest.json").read_text())["feeds"]
    source_feeds = sorted(k for k in feeds if k.startswith("source:"))
    assert source_feeds == ["source:早报实时", "source:联合早报"]
    for key in source_feeds:
        path = cfg.output_dir / feeds[key]["files"]["atom"]
        assert [e.id for e in feedparser.parse(path.read_bytes()).entries] == [entry.id]


def test_unreachable_feed_fails_its_input_and_the_others_still_run(tmp_path: Path) -> None:
    with hs.serve() as server:
        good = server.route("/good.xml", hs.static(rss(item(1))))
        missing = server.url("/missing.xml")
        cfg = make_config(
            tmp_path, [{"url": missing, "name": "missing"}, {"url": good, "name": "good"}]
        )
        report = run(cfg)
    assert [i.name for i in report.failed] == ["missing"]
    assert report.failed[0].error == f"{missing}: HTTP 404"
    assert report.inputs[1].new == 1
    row = input_row(cfg, "missing")
    assert row["error_count"] == 1 and row["next_due_at"] == NOW + timedelta(minutes=5)


def test_a_broken_document_is_an_error_and_keeps_no_validators(tmp_path: Path) -> None:
    with hs.serve() as server:
        url = server.route("/page", hs.static(b"<html><body>not a feed</body></html>"))
        cfg = make_config(tmp_path, [{"url": url, "name": "page"}])
        report = run(cfg)
        assert report.failed and "not an RSS, Atom or JSON feed" in (report.failed[0].error or "")
        assert input_row(cfg, "page")["etag"] is None
        run(cfg, NOW + timedelta(hours=1))
        assert "if-none-match" not in server.requests[-1].headers


def test_410_retires_the_input(tmp_path: Path) -> None:
    with hs.serve() as server:
        url = server.route("/gone.xml", hs.status(410))
        cfg = make_config(tmp_path, [{"url": url, "name": "gone"}])
        run(cfg)
        later = run(cfg, NOW + timedelta(days=3), force=True)
        assert server.hits("/gone.xml") == 1
        assert later.inputs[0].note and later.inputs[0].note.startswith("retired")
        assert input_row(cfg, "gone")["retired_at"] == NOW


def test_429_retry_after_is_honoured(tmp_path: Path) -> None:
    with hs.serve() as server:
        url = server.route("/busy.xml", hs.status(429, {"Retry-After": "7200"}))
        cfg = make_config(tmp_path, [{"url": url, "name": "busy"}])
        run(cfg)
        assert input_row(cfg, "busy")["next_due_at"] == NOW + timedelta(hours=2)
        run(cfg, NOW + timedelta(hours=1))
        assert server.hits("/busy.xml") == 1
        run(cfg, NOW + timedelta(hours=2, seconds=1))
        assert server.hits("/busy.xml") == 2


def test_server_errors_back_off_exponentially_and_keep_retrying(tmp_path: Path) -> None:
    with hs.serve() as server:
        url = server.route("/err.xml", hs.status(500))
        cfg = make_config(tmp_path, [{"url": url, "name": "err"}])
        now = NOW
        waits = []
        for _ in range(12):
            run(cfg, now)
            due = input_row(cfg, "err")["next_due_at"]
            waits.append(due - now)
            now = due
        assert server.hits("/err.xml") == 12
    assert waits[:4] == [timedelta(minutes=m) for m in (5, 10, 20, 40)]
    assert waits[-1] == timedelta(days=1)
    assert input_row(cfg, "err")["error_count"] == 12


def test_permanent_redirect_moves_the_url_only_once_it_persists(tmp_path: Path) -> None:
    with hs.serve() as server:
        new = server.route("/new.xml", hs.static(rss(item(1))))
        old = server.route("/old.xml", hs.redirect(301, new))
        tmp = server.route("/tmp.xml", hs.redirect(302, new))
        cfg = make_config(tmp_path, [{"url": old, "name": "old"}, {"url": tmp, "name": "tmp"}])
        for hours in (0, 1, 2):  # three fetches, but within a day: not yet
            run(cfg, NOW + timedelta(hours=hours), force=True)
        assert input_row(cfg, "old")["url"] is None
        run(cfg, NOW + timedelta(days=1, hours=1), force=True)
        assert input_row(cfg, "old")["url"] == new
        assert input_row(cfg, "tmp")["url"] is None
        hits = server.hits("/old.xml")
        run(cfg, NOW + timedelta(days=2), force=True)
        assert server.hits("/old.xml") == hits  # fetched from the new URL now


def test_guids_that_change_on_every_fetch_make_no_duplicates(tmp_path: Path) -> None:
    with hs.serve() as server:
        cfg = make_config(tmp_path, [{"url": server.url("/f.xml"), "name": "f"}])
        for n, guid in enumerate(("a-1", "b-2", "c-3")):
            server.route("/f.xml", hs.static(rss(item(1, guid=guid), item(1, guid=guid))))
            run(cfg, NOW + timedelta(hours=n), force=True)
    assert [e.title for e in published(cfg).entries] == ["Story 1"]


def test_items_that_leave_the_feed_are_kept(tmp_path: Path) -> None:
    with hs.serve() as server:
        cfg = make_config(tmp_path, [{"url": server.url("/f.xml"), "name": "f"}])
        server.route("/f.xml", hs.static(rss(item(1), item(2))))
        run(cfg)
        server.route("/f.xml", hs.static(rss(item(2), item(3))))
        report = run(cfg, NOW + timedelta(hours=1), force=True)
    assert report.inputs[0].new == 1 and report.inputs[0].unchanged == 1
    assert sorted(e.title for e in published(cfg).entries) == ["Story 1", "Story 2", "Story 3"]


def test_a_changed_item_moves_updated(tmp_path: Path) -> None:
    with hs.serve() as server:
        cfg = make_config(tmp_path, [{"url": server.url("/f.xml"), "name": "f"}])
        server.route("/f.xml", hs.static(rss(item(1))))
        run(cfg)
        server.route("/f.xml", hs.static(rss(item(1, body="Corrected body"))))
        later = NOW + timedelta(hours=1)
        report = run(cfg, later, force=True)
    assert report.inputs[0].updated == 1 and report.entries_updated == 1
    entry = published(cfg).entries[0]
    assert entry.summary == "Corrected body"
    assert entry.updated == later.isoformat()


def test_a_change_of_a_feeds_settings_reads_it_whole_again(tmp_path: Path) -> None:
    with hs.serve() as server:
        url = server.route("/f.xml", hs.static(rss(item(1), item(2))))
        run(make_config(tmp_path, [{"url": url, "name": "f"}]))
        cfg = make_config(tmp_path, [{"url": url, "name": "f", "source": "Wire", "tags": ["x"]}])
        report = run(cfg, NOW + timedelta(hours=1), force=True)
        # validators would get a 304 and leave the stored items as they were read before
        assert server.requests[1].headers.get("if-none-match") is None
        assert server.requests[1].headers.get("if-modified-since") is None
        assert (report.inputs[0].updated, report.inputs[0].unchanged) == (2, 0)
        entries = published(cfg).entries
        assert [sorted(t.term for t in e.tags) for e in entries] == [["x"], ["x"]]
        assert len(published(cfg, "source/wire.atom").entries) == 2

        again = run(cfg, NOW + timedelta(hours=2), force=True)
        assert server.requests[2].headers.get("if-none-match")
        assert again.inputs[0].note == "not modified since the last fetch"

        # a setting that changes nothing in these items: read again, and found unchanged
        zoned = make_config(tmp_path, [{"url": url, "name": "f", "source": "Wire",
                                        "tags": ["x"], "timezone": "Asia/Tokyo"}])  # fmt: skip
        third = run(zoned, NOW + timedelta(hours=3), force=True)
        assert server.requests[3].headers.get("if-none-match") is None
        assert (third.inputs[0].updated, third.inputs[0].unchanged) == (0, 2)
        assert third.entries_updated == 0


def test_new_url_rules_replace_the_items_they_rename(tmp_path: Path) -> None:
    """An item whose identity new rules change is one article still, not the old and the new;
    an item that left the feed meanwhile is kept, as ever."""
    with hs.serve() as server:
        first = rss(item(1, link="https://live.example/a/1?ref=rss"), item(2))
        url = server.route("/f.xml", hs.static(first))
        run(make_config(tmp_path, [{"url": url, "name": "f"}]))
        server.route("/f.xml", hs.static(rss(item(1, link="https://live.example/a/1?ref=rss"))))
        cfg = make_config(
            tmp_path, [{"url": url, "name": "f"}], identity={"tracking_params": ["ref"]}
        )
        report = run(cfg, NOW + timedelta(hours=1), force=True)
    assert report.entries_removed == 1  # the article as the old rules named it
    links = sorted(e.link for e in published(cfg).entries)
    assert links == ["https://live.example/a/1", "https://live.example/a/2"]


def test_a_10_mb_feed(tmp_path: Path) -> None:
    body = "这是一段很长的正文。" * 170  # about 5 KB of UTF-8 per item
    items = [item(n % 28 + 1, link=f"https://big.example/{n}", body=body) for n in range(2000)]
    data = rss(*items)
    assert len(data) > 10 * 1024 * 1024
    with hs.serve() as server:
        url = server.route("/big.xml", hs.static(data, gzipped=True))
        cfg = make_config(tmp_path, [{"url": url, "name": "big"}])
        report = run(cfg)
    assert report.inputs[0].new == 2000 and report.entries_total == 2000
    assert len(published(cfg).entries) == 50


def test_the_fetch_guard_is_on_by_default(tmp_path: Path) -> None:
    with hs.serve() as server:
        url = server.route("/f.xml", hs.static(rss(item(1))))
        cfg = config_module.parse(
            {"inputs": [{"kind": "feed", "url": url, "name": "f"}], "database": "sqlite:///a.db"},
            base_dir=tmp_path,
        )
        report = run(cfg)
    assert server.requests == []
    assert "not a public address" in (report.failed[0].error or "")


def test_many_feeds_are_read_in_worker_processes(tmp_path: Path) -> None:
    with hs.serve() as server:
        feeds = [
            {"url": server.route(f"/f{n}.xml", hs.static(rss(item(n + 1), title=f"S{n}"))),
             "name": f"f{n}"}
            for n in range(10)
        ]  # fmt: skip
        cfg = make_config(tmp_path, feeds)
        report = sync(cfg, now=NOW, workers=2)
    assert report.entries_total == 10 and not report.failed


def test_copies_written_in_background_batches_are_all_stored_with_their_validators(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aggregator import live

    monkeypatch.setattr(live, "WRITE_BATCH", 3)  # a batch every third item, many batches
    bodies = [rss(item(2 * n + 1), item(2 * n + 2), title=f"S{n}") for n in range(12)]
    with hs.serve() as server:
        feeds = [
            {"url": server.route(f"/f{n}.xml", hs.static(body)), "name": f"f{n}"}
            for n, body in enumerate(bodies)
        ]
        cfg = make_config(tmp_path, feeds)
        report = sync(cfg, now=NOW, workers=2)
    assert report.entries_total == 24 and not report.failed
    for n, body in enumerate(bodies):  # each document's validator, committed with its items
        assert input_row(cfg, f"f{n}")["etag"] == f'"{hashlib.sha1(body).hexdigest()}"'
    assert len(published(cfg).entries) == 24


class _FailingFirstWrite:
    """A store whose first write transaction fails (the database locked by another writer);
    the transactions tried are recorded."""

    shared_across_threads = True

    def __init__(self) -> None:
        self.tried = 0

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        self.tried += 1
        if self.tried == 1:
            raise StoreError("agg.db: database is locked")
        yield _NoBatch()


class _NoBatch:
    def put_versions(self, *args: Any) -> None: ...
    def mark_pending(self, *args: Any) -> None: ...
    def update_inputs(self, *args: Any) -> None: ...


def test_a_failed_background_write_fails_the_run_at_the_next_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A batch that cannot be written is not lost silently: starting the next batch raises
    its error, and that batch is not written after it."""
    from aggregator import live

    monkeypatch.setattr(live, "WRITE_BATCH", 1)
    store = _FailingFirstWrite()
    writer = live._Writer(store, NOW)  # type: ignore[arg-type]
    version = _a_version()
    try:
        writer.add(1, [version], {"status": "ok"})  # batch 1, written in the background
        with pytest.raises(StoreError, match="database is locked"):
            writer.add(2, [version], {"status": "ok"})  # batch 2 waits for batch 1 first
        assert store.tried == 1
    finally:
        writer.close()


def test_a_failed_background_write_is_logged_when_the_run_stops_for_another_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from aggregator import live

    writer = live._Writer(_FailingFirstWrite(), NOW)  # type: ignore[arg-type]
    writer.add(1, [], {"status": "ok"})
    writer._start()  # in the background; then the run stops (Ctrl-C, a broken worker…)
    writer.close()
    assert "writing fetched items to the store failed: agg.db: database is locked" in caplog.text


def _a_version() -> Any:
    from aggregator.adapters.feed import parse_document
    from aggregator.normalise.item import ItemSettings, normalise_document

    doc = parse_document(rss(item(1)), "https://live.example/feed.xml")
    versions, _ = normalise_document(doc, ItemSettings(scope="x"))
    return versions[0]


def test_an_in_memory_database_stores_feed_items(tmp_path: Path) -> None:
    """`database: sqlite://` keeps the store in memory for one run (each thread would see a
    database of its own, so copies are written from the thread that reads them)."""
    with hs.serve() as server:
        url = server.route("/f.xml", hs.static(rss(item(1), item(2))))
        cfg = make_config(tmp_path, [{"url": url, "name": "mem"}], database="sqlite://")
        report = run(cfg)
    assert not report.failed and report.entries_new == 2
    assert len(published(cfg).entries) == 2


def test_a_link_urllib_cannot_rebuild_is_ignored_and_the_run_goes_on(tmp_path: Path) -> None:
    """`http://[::1]@a]b/` parses with the host `a]b`; with host aliases configured its key
    once took a second parse, which failed and stopped the whole run."""
    with hs.serve() as server:
        url = server.route("/f.xml", hs.static(rss(item(1, link="http://[::1]@a]b/"), item(2))))
        cfg = make_config(
            tmp_path,
            [{"url": url, "name": "odd"}],
            identity={"host_aliases": {"zaobao.com.sg": "zaobao.com"}},
        )
        report = run(cfg)
    assert not report.failed and report.entries_new == 2
    links = {e.get("link") for e in published(cfg).entries}
    assert "https://live.example/a/2" in links and not any("a]b" in (x or "") for x in links)


class Recorder(QuietReporter):
    """Keeps the warnings a person running `aggregator sync` would see."""

    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warning(self, path: str, message: str) -> None:
        self.warnings.append(f"{path}: {message}")


def test_an_item_dated_past_the_end_of_time_is_a_warning_and_the_run_goes_on(
    tmp_path: Path,
) -> None:
    far = item(1).replace("Sun, 01 Jul 2022 09:30:00 GMT", "Fri, 31 Dec 9999 23:00:00 -0500")
    with hs.serve() as server:
        url = server.route("/f.xml", hs.static(rss(far, item(2))))
        cfg = make_config(tmp_path, [{"url": url, "name": "f"}])
        recorder = Recorder()
        report = sync(cfg, now=NOW, workers=1, reporter=recorder)
    assert report.entries_new == 2 and not report.failed
    assert any("year 9999 is out of range" in w for w in recorder.warnings), recorder.warnings
    assert input_row(cfg, "f")["status"] == "ok"


def test_an_item_dated_in_the_future_is_dated_when_first_seen(tmp_path: Path) -> None:
    ahead = item(1).replace("Sun, 01 Jul 2022 09:30:00 GMT", "Thu, 01 Jan 2099 09:30:00 GMT")
    with hs.serve() as server:
        url = server.route("/f.xml", hs.static(rss(ahead, item(2))))
        cfg = make_config(tmp_path, [{"url": url, "name": "f"}])
        recorder = Recorder()
        sync(cfg, now=NOW, workers=1, reporter=recorder)
    assert recorder.warnings == [f"{url}: date 2099-01-01T09:30:00Z is in the future: ignored"]
    first = published(cfg).entries[0]  # still newest: dated when first seen, now
    assert (first.title, first.published) == ("Story 1", NOW.isoformat())


ZH_TITLE = {"gbk": "联合早报：中国经济新闻", "big5": "聯合早報：中國經濟新聞"}
ZH_BODY = {
    "gbk": "新加坡联合早报报道，中国经济持续增长，出口和消费都有回升。" * 12,
    "big5": "新加坡聯合早報報道，中國經濟持續增長，出口和消費都有回升。" * 12,
}


@pytest.mark.parametrize(
    ("script", "encoding", "declared", "content_type", "warning"),
    [
        ("gbk", "gbk", "gbk", "application/rss+xml", None),
        ("gbk", "gbk", None, "application/rss+xml", "decoded as"),  # detected
        ("gbk", "gbk", None, "application/rss+xml; charset=GBK", None),
        ("gbk", "gbk", "gbk", "text/xml; charset=iso-8859-1",
         "declared charset iso-8859-1 in HTTP but the document says gbk; read as gbk"),
        ("gbk", "utf-8", "utf-8", "text/xml; charset=ISO-8859-1",
         "declared charset iso-8859-1 in HTTP but the document says utf-8; read as utf-8"),
        ("big5", "big5", "big5", "application/rss+xml", None),
        ("big5", "big5", None, "application/rss+xml; charset=big5", None),
    ],
    ids=["gbk-declared", "gbk-undeclared", "gbk-http", "gbk-http-latin1", "utf8-http-latin1",
         "big5-declared", "big5-http"],
)  # fmt: skip
def test_chinese_feeds_are_published_as_written(
    tmp_path: Path,
    script: str,
    encoding: str,
    declared: str | None,
    content_type: str,
    warning: str | None,
) -> None:
    title, body = ZH_TITLE[script], ZH_BODY[script]
    decl = f"<?xml version='1.0' encoding='{declared}'?>" if declared else ""
    data = (
        f"{decl}<rss version='2.0'><channel><title>{title}</title>"
        "<link>https://www.zaobao.com/</link><item>"
        f"<title>{title}</title><link>https://www.zaobao.com/n/1</link>"
        f"<description>{body}</description></item></channel></rss>"
    ).encode(encoding)
    recorder = Recorder()
    with hs.serve() as server:
        url = server.route("/zb.xml", hs.static(data, content_type=content_type))
        cfg = make_config(tmp_path, [{"url": url, "name": "zb"}])
        report = sync(cfg, now=NOW, workers=1, reporter=recorder)
    assert not report.failed
    (entry,) = published(cfg).entries
    assert entry.title == title and entry.summary.startswith(body[:40])
    feeds = json.loads((cfg.output_dir / ".aggregator-manifest.json").read_text())["feeds"]
    assert f"source:{unicodedata.normalize('NFKC', title)}" in feeds  # named by its title
    if warning is None:
        assert recorder.warnings == []
    else:
        (line,) = recorder.warnings
        assert line.startswith(f"{url}: {warning}")


def test_a_latin1_feed_labelled_so_is_read_as_latin1(tmp_path: Path) -> None:
    data = (
        "<?xml version='1.0' encoding='iso-8859-1'?><rss version='2.0'><channel><title>Café"
        "</title><item><title>Crème brûlée à Paris</title><link>https://fr.example/1</link>"
        "</item></channel></rss>"
    ).encode("latin-1")
    recorder = Recorder()
    with hs.serve() as server:
        url = server.route("/fr.xml", hs.static(data, "application/rss+xml; charset=ISO-8859-1"))
        cfg = make_config(tmp_path, [{"url": url, "name": "fr"}])
        sync(cfg, now=NOW, workers=1, reporter=recorder)
    assert [e.title for e in published(cfg).entries] == ["Crème brûlée à Paris"]
    assert recorder.warnings == []


def test_entity_tricks_expand_nothing_read_no_file_and_the_run_goes_on(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-4815162342")
    lol = "".join(f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, 10)).replace(
        "&lol0;", "lol"
    )
    bomb = (
        f"<?xml version='1.0'?><!DOCTYPE rss [{lol}]><rss version='2.0'><channel>"
        "<title>Bomb</title><item><title>Bomb &lol9;</title><link>https://bomb.example/1</link>"
        "<description>&lol9;</description></item></channel></rss>"
    ).encode()
    with hs.serve() as server:
        dtd = server.route("/evil.dtd", hs.static(b'<!ENTITY leak "FROM-THE-NETWORK">'))
        xxe = (
            f"<?xml version='1.0'?><!DOCTYPE rss [<!ENTITY file SYSTEM '{secret.as_uri()}'>"
            f"<!ENTITY % remote SYSTEM '{dtd}'> %remote;]><rss version='2.0'><channel>"
            "<title>XXE</title><item><title>Leak &file; &leak;</title>"
            "<link>https://xxe.example/1</link><description>&file;</description></item>"
            "</channel></rss>"
        ).encode()
        feeds = [
            {"url": server.route("/bomb.xml", hs.static(bomb)), "name": "bomb"},
            {"url": server.route("/xxe.xml", hs.static(xxe)), "name": "xxe"},
            {"url": server.route("/good.xml", hs.static(rss(item(1)))), "name": "good"},
        ]
        cfg = make_config(tmp_path, feeds)
        started = time.monotonic()
        report = run(cfg)
        assert time.monotonic() - started < 30
        assert server.hits("/evil.dtd") == 0  # no external entity was fetched
    assert not report.failed and report.entries_total == 3
    links = sorted(e.link for e in published(cfg).entries)
    assert links == ["https://bomb.example/1", "https://live.example/a/1", "https://xxe.example/1"]
    written = [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and p != secret]
    for data in written:  # every published file, and the database itself
        assert b"TOP-SECRET" not in data and b"FROM-THE-NETWORK" not in data
        assert b"lollollollol" not in data


def test_a_repeated_guid_is_one_entry(tmp_path: Path) -> None:
    twice = (
        "<item><title>Same story</title><guid isPermaLink='false'>dup-1</guid>"
        "<description>First copy</description></item>"
        "<item><title>Same story</title><guid isPermaLink='false'>dup-1</guid>"
        "<description>Second copy</description></item>"
    )
    with hs.serve() as server:
        url = server.route("/d.xml", hs.static(rss(twice, item(2, guid="s-2"), item(2))))
        cfg = make_config(tmp_path, [{"url": url, "name": "d"}])
        report = run(cfg)
    assert report.entries_total == 2
    entries = published(cfg).entries
    assert sorted(e.title for e in entries) == ["Same story", "Story 2"]
    assert next(e for e in entries if e.title == "Same story").summary == "First copy"


def test_a_guid_without_link_is_one_entry_whether_or_not_the_feed_is_well_formed(
    tmp_path: Path,
) -> None:
    # A well-formed document is read by the fast parser, a broken one by feedparser: the
    # item must keep one identity across both.
    story = "<item><title>Numbered</title><guid>42</guid><description>Text</description></item>"
    well_formed = rss(story)
    broken = rss(story, title="Live News & more")  # a bare '&': not well-formed XML
    with hs.serve() as server:
        cfg = make_config(tmp_path, [{"url": server.url("/n.xml"), "name": "n"}])
        for n, data in enumerate((well_formed, broken, well_formed)):
            server.route("/n.xml", hs.static(data))
            report = run(cfg, NOW + timedelta(hours=n), force=True)
            assert not report.failed
    assert report.entries_total == 1
    (entry,) = json.loads((cfg.output_dir / "all.json").read_text())["items"]
    assert entry["title"] == "Numbered" and "url" not in entry  # "42" is no address


def test_a_feed_teaser_dated_like_the_archived_copy_does_not_replace_it(
    tmp_path: Path, parser: str
) -> None:
    archive = tmp_path / "posts"
    archive.mkdir()
    (archive / "a.md").write_text(
        "---\ntitle: 中国经济新闻\ndate: 2022-07-10 09:30:00\nauthor: 联合早报\n"
        "from: https://www.zaobao.com/news/china/story1\n---\n"
        "<p>存档的全文，很长很长。</p>\n",
        encoding="utf-8",
    )
    teaser = (
        "<item><title>中国经济新闻</title><link>https://www.zaobao.com/news/china/story1</link>"
        "<pubDate>Sun, 10 Jul 2022 01:30:00 GMT</pubDate><description>摘要</description></item>"
    )
    with hs.serve() as server:
        url = server.route("/zb.xml", hs.static(rss(teaser, title="早报实时")))
        cfg = archive_and_feed(tmp_path, url)
        report = run(cfg)
    assert report.entries_total == 1
    (entry,) = published(cfg).entries
    assert "存档的全文" in entry.content[0].value


def test_a_private_network_feed_publishes_its_links(tmp_path: Path) -> None:
    # A home server's feed (allow_private_networks): its links name 127.0.0.1 too.
    with hs.serve() as server:
        page, sound = server.url("/a1.html"), server.url("/a1.mp3")
        enclosure = f"<enclosure url='{sound}' type='audio/mpeg' length='5'/>"
        url = server.route(
            "/feed.xml",
            hs.static(rss(item(1, link=page).replace("</item>", f"{enclosure}</item>"))),
        )
        cfg = make_config(tmp_path, [{"url": url, "name": "home"}])
        run(cfg)
    (entry,) = json.loads((cfg.output_dir / "all.json").read_text())["items"]
    assert entry["url"] == page
    assert [a["url"] for a in entry["attachments"]] == [sound]
    assert published(cfg).entries[0].link == page


def test_a_feed_cut_off_before_its_first_item_is_an_error(tmp_path: Path) -> None:
    # Read as an empty feed, it showed as "ok" with nothing new, run after run.
    cut = rss(item(1)).split(b"<item>")[0]
    with hs.serve() as server:
        url = server.route("/cut.xml", hs.static(cut))
        cfg = make_config(tmp_path, [{"url": url, "name": "cut"}])
        report = run(cfg)
    assert "not well-formed, and no item could be read" in (report.failed[0].error or "")
    row = input_row(cfg, "cut")
    assert row["error_count"] == 1 and row["etag"] is None
