"""Archive pages (RFC 5005), hub links, the feed stylesheet and file times, as a feed reader
or a browser meets them: published from a real store (SQLite and PostgreSQL) and read back
by following the links, starting at each feed's subscription document."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import feedparser
import pytest
from alembic import command
from lxml import etree

from aggregator import config as config_module
from aggregator.config import Config
from aggregator.decide import decide_entries
from aggregator.normalise import identity
from aggregator.publish import MANIFEST, STYLESHEET_DATE, publish
from aggregator.publish.plan import feed_ref
from aggregator.store import Store, migrate
from aggregator.sync import decide_pending, write_batch, write_copies
from aggregator.types import Tag, Version

NOW = datetime(2024, 7, 20, 9, 30, tzinfo=UTC)
BASE = "https://feeds.example.org/news/"
ATOM = "{http://www.w3.org/2005/Atom}"
FH_ARCHIVE = "{http://purl.org/syndication/history/1.0}archive"
FH_COMPLETE = "{http://purl.org/syndication/history/1.0}complete"
FORMATS = ("atom", "rss", "json")
ZAOBAO: Tag = ("联合早报", "联合早报")
GUANCHA: Tag = ("观察者网", "观察者网")


def day(n: int) -> datetime:
    return datetime(2024, 1, 1, 12, tzinfo=UTC) + timedelta(days=n)


def post(
    n: int, published: datetime, *, tags: Sequence[Tag] = (), source: Tag = ZAOBAO, text: str = ""
) -> Version:
    title = f"Post {n}"
    link = f"https://example.org/{n}"
    content = f"<p>{title}{text}</p>"
    return Version(
        locator=f"{n}.md",
        signature=f"{n}:{text}",
        identity_key=f"url:example.org/{n}",
        title=title,
        link=link,
        published=published,
        declared_updated=None,
        author=source[1],
        source_key=source[0],
        source_name=source[1],
        tags=tuple(tags),
        image=None,
        language="zh",
        content=content,
        summary=title,
        body_hash=identity.body_hash(title, link, content + str(sorted(tags))),
        mtime_ns=1,
    )


def put(store: Store, input_id: int, *versions: Version) -> None:
    """Store copies (new or replacing those of the same locator) and decide their entries."""
    known = store.known_copies(input_id, [v.locator for v in versions])
    old = {known[v.locator][1] for v in versions if v.locator in known}
    write_batch(store, input_id, versions, (), old, NOW)


def configure(tmp_path: Path, store_url: str, hub: str | None = None, **feeds: Any) -> Config:
    data: dict[str, Any] = {
        "database": store_url,
        "output": str(tmp_path / "public"),
        "site": {"title": "Test site", "base_url": BASE},
        # every format has archives here, to check each; by default only Atom has them
        "feeds": {"entries": 2, "archive_page": 3, "archive_formats": list(FORMATS), **feeds},
        "websub": {"hub": hub},
        "inputs": [],
    }
    return config_module.parse(data, base_dir=tmp_path)


@pytest.fixture
def archive_input(store: Store) -> int:
    return store.ensure_input("archive", "files", "/srv/archive", NOW)


def seeded_and_published(store: Store, input_id: int, tmp_path: Path, store_url: str) -> Config:
    """`seed`, then publish with the archive tests' settings; returns those settings."""
    seed(store, input_id)
    config = configure(tmp_path, store_url)
    publish(store, config)
    return config


def seed(store: Store, input_id: int) -> None:
    """Eight posts over two sources; tag `a` on every other one."""
    put(
        store,
        input_id,
        *(
            post(
                n, day(n), tags=[("a", "A")] if n % 2 else (), source=(ZAOBAO, GUANCHA)[n % 3 == 0]
            )
            for n in range(1, 9)
        ),
    )


# ---- reading what was published, as a reader does ------------------------------------------


@dataclass
class Doc:
    links: dict[str, str]
    """rel -> href (besides alternate)."""
    archive: bool
    ids: list[str]
    titles: list[str]
    complete: bool = False
    """Carries RFC 5005's `fh:complete`: it holds every entry of its feed."""


def path_of(output: Path, url: str) -> Path:
    assert url.startswith(BASE), url
    return output / unquote(url[len(BASE) :])


def read(output: Path, url: str, fmt: str) -> Doc:
    data = path_of(output, url).read_bytes()
    if fmt == "json":
        doc = json.loads(data)
        ext = doc.get("_rfc5005", {})
        links = {
            k.replace("_", "-"): v
            for k, v in ext.items()
            if k not in ("about", "archive", "complete")
        }
        links["self"] = doc["feed_url"]
        if doc.get("hubs"):
            links["hub"] = doc["hubs"][0]["url"]
        items = doc["items"]
        return Doc(links, ext.get("archive") is True, [i["id"] for i in items],
                   [i["title"] for i in items], ext.get("complete") is True)  # fmt: skip
    assert not feedparser.parse(data).bozo
    root = etree.fromstring(data)
    if fmt == "atom":
        top, entries = root, root.findall(f"{ATOM}entry")
        ids = [e.findtext(f"{ATOM}id") for e in entries]
        titles = [e.findtext(f"{ATOM}title") for e in entries]
    else:
        top, entries = root.find("channel"), root.findall("channel/item")
        ids = [e.findtext("guid") for e in entries]
        titles = [e.findtext("title") for e in entries]
    links = {
        link.get("rel"): link.get("href")
        for link in top.findall(f"{ATOM}link")
        if link.get("rel") != "alternate"
    }
    return Doc(
        links,
        top.find(FH_ARCHIVE) is not None,
        ids,  # type: ignore[arg-type]
        titles,  # type: ignore[arg-type]
        top.find(FH_COMPLETE) is not None,
    )


def walk(output: Path, feed_url: str, fmt: str) -> list[tuple[str, Doc]]:
    """The archive pages reached from a subscription document by `prev-archive`, oldest first."""
    pages: list[tuple[str, Doc]] = []
    url = read(output, feed_url, fmt).links.get("prev-archive")
    while url:
        assert url not in [u for u, _ in pages], "prev-archive loops"
        doc = read(output, url, fmt)
        pages.append((url, doc))
        url = doc.links.get("prev-archive")
    return pages[::-1]


def feed_keys(output: Path) -> dict[str, str]:
    manifest = json.loads((output / MANIFEST).read_text(encoding="utf-8"))
    return {key: entry["name"] for key, entry in manifest["feeds"].items()}


def archive_files(output: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(output)): p.read_bytes()
        for p in sorted((output / "archive").rglob("*"))
        if p.is_file()
    }


# ---- the archive a reader walks --------------------------------------------------------------


def check_archives(store: Store, config: Config) -> dict[tuple[str, str], list[list[str]]]:
    """Walk every feed's archive in every format and check what RFC 5005 promises; returns
    (feed key, format) -> ids of each page, oldest page first."""
    output = config.output_dir
    size = config.feeds.archive_page
    out: dict[tuple[str, str], list[list[str]]] = {}
    for key, name in feed_keys(output).items():
        ref = feed_ref(key, name)
        expected = sorted(i.entry_id for i in store.feed_items(key, 10_000))
        for fmt in FORMATS:
            feed_url = ref.url(BASE, fmt)
            feed = read(output, feed_url, fmt)
            assert not feed.archive and "current" not in feed.links
            if feed.complete:  # it holds every entry: no archive (RFC 5005 section 2)
                assert len(expected) <= config.feeds.entries, (key, fmt)
                assert "prev-archive" not in feed.links
                assert sorted(feed.ids) == expected
                out[key, fmt] = []
                continue
            assert len(expected) > config.feeds.entries, (key, fmt)
            pages = walk(output, feed_url, fmt)
            assert pages, (key, fmt)
            urls = [u for u, _ in pages]
            assert urls == [ref.archive_url(BASE, n, fmt) for n in range(1, len(pages) + 1)]
            assert feed.links["prev-archive"] == urls[-1]
            for n, (url, doc) in enumerate(pages):
                assert doc.archive, url
                assert doc.links["self"] == url
                assert doc.links["current"] == feed_url
                assert doc.links.get("prev-archive") == (urls[n - 1] if n else None)
                assert doc.links.get("next-archive") == (urls[n + 1] if n + 1 < len(urls) else None)
                assert "hub" not in doc.links
                assert len(doc.ids) <= size
            ids = [i for _, doc in pages for i in doc.ids]
            assert len(ids) == len(set(ids)), f"{key} {fmt}: an entry on two pages"
            assert sorted(ids) == expected, (key, fmt)
            out[key, fmt] = [doc.ids for _, doc in pages]
    return out


def test_every_entry_is_on_exactly_one_page_reached_from_the_feed(
    store: Store, archive_input: int, tmp_path: Path, store_url: str
) -> None:
    config = seeded_and_published(store, archive_input, tmp_path, store_url)
    pages = check_archives(store, config)
    assert set(feed_keys(config.output_dir)) == {
        "all",
        "source:联合早报",
        "source:观察者网",
        "tag:a",
    }
    # 8 entries: pages of 3, 3, 2; the oldest on page 1, newest first within a page
    assert [len(p) for p in pages["all", "atom"]] == [3, 3, 2]
    titles = [read(config.output_dir, feed_ref("all", "").archive_url(BASE, 1, "atom"), "atom")]
    assert titles[0].titles == ["Post 3", "Post 2", "Post 1"]
    # every format holds the same entries on the same pages
    for key in feed_keys(config.output_dir):
        assert pages[key, "atom"] == pages[key, "rss"] == pages[key, "json"]


def test_a_full_page_is_followed_by_an_empty_one_at_once(
    store: Store, archive_input: int, tmp_path: Path, store_url: str
) -> None:
    put(store, archive_input, *(post(n, day(n)) for n in range(1, 7)))
    config = configure(tmp_path, store_url)
    publish(store, config)
    assert [len(p) for p in check_archives(store, config)["all", "atom"]] == [3, 3, 0]


def test_full_pages_keep_their_members_and_bytes_as_the_feed_grows(
    store: Store, archive_input: int, tmp_path: Path, store_url: str
) -> None:
    """Back-dated imports and an old entry tagged later join at the end: full pages do not
    move. Only pages holding an edited entry change bytes (the tag shows in its categories)."""
    config = seeded_and_published(store, archive_input, tmp_path, store_url)
    before_pages = check_archives(store, config)
    before_files = archive_files(config.output_dir)

    # two posts older than everything, and post 2 (on page 1 of `all`) tagged `a` now
    put(store, archive_input, post(20, day(-30), tags=[("a", "A")]), post(21, day(-20)))
    put(store, archive_input, post(2, day(2), tags=[("a", "A")]))
    result = publish(store, config)
    after_pages = check_archives(store, config)
    after_files = archive_files(config.output_dir)

    post2 = next(i.entry_id for i in store.feed_items("all", 100) if i.title == "Post 2")
    for (key, fmt), pages in before_pages.items():
        for n, ids in enumerate(pages[:-1]):  # the full pages
            assert after_pages[key, fmt][n] == ids, (key, fmt, n + 1)
            rel = feed_ref(key, "").archive_path(n + 1, fmt)
            if post2 not in ids:
                assert after_files[rel] == before_files[rel], rel
                assert rel not in result.written
    # the newcomers are on the last pages; post 2 joined `a` at its end
    all_pages = after_pages["all", "atom"]
    assert [len(p) for p in all_pages] == [3, 3, 3, 1]
    tag_pages = after_pages["tag:a", "atom"]  # 1, 3, 5 | 7, then 20 and (later) 2 joined
    assert [len(p) for p in tag_pages] == [3, 3, 0]
    assert post2 in tag_pages[1]


def test_an_entry_that_leaves_a_feed_leaves_its_page(
    store: Store, archive_input: int, tmp_path: Path, store_url: str
) -> None:
    seed(store, archive_input)
    config = configure(tmp_path, store_url, entries=1)  # so `tag:a` keeps an archive below
    publish(store, config)
    # post 1 loses tag `a` (it stays in `all`); post 3 is deleted
    put(store, archive_input, post(1, day(1)))
    known = store.known_copies(archive_input, ["3.md"])
    write_batch(store, archive_input, (), [known["3.md"][0]], [known["3.md"][1]], NOW)
    publish(store, config)
    pages = check_archives(store, config)
    assert [len(p) for p in pages["all", "atom"]] == [2, 3, 2]  # a gap where post 3 was
    assert [len(p) for p in pages["tag:a", "atom"]] == [1, 1]  # 1, 3 gone from page 1


def test_pages_of_a_feed_that_is_gone_are_removed(
    store: Store, archive_input: int, tmp_path: Path, store_url: str
) -> None:
    gone = [("gone", "Gone")]
    put(store, archive_input, *(post(n, day(n), tags=gone) for n in (1, 2, 3)), post(4, day(4)))
    config = configure(tmp_path, store_url)
    publish(store, config)
    folder = config.output_dir / "archive" / "tag" / "gone"
    pages = sorted(f"{n}.{f}" for n in (1, 2) for f in FORMATS)
    assert sorted(p.name for p in folder.iterdir()) == pages
    put(store, archive_input, *(post(n, day(n)) for n in (1, 2, 3)))
    result = publish(store, config)
    assert not folder.exists()
    assert "archive/tag/gone/1.atom" in result.removed
    check_archives(store, config)


def test_a_feed_that_fits_its_document_is_complete_until_it_grows(
    store: Store, archive_input: int, tmp_path: Path, store_url: str
) -> None:
    """RFC 5005 section 2: a feed whose subscription document holds every entry says so with
    `fh:complete` and has no archive (which would only repeat it); it gets one when it grows
    past the document, and loses it when it fits again."""
    config = configure(tmp_path, store_url)  # 2 entries a document
    x = [("x", "X")]
    put(store, archive_input, post(1, day(1), tags=x), post(2, day(2), tags=x))
    publish(store, config)
    folder = config.output_dir / "archive" / "tag" / "x"
    ref = feed_ref("tag:x", "X")
    for fmt in FORMATS:
        doc = read(config.output_dir, ref.url(BASE, fmt), fmt)
        assert doc.complete and "prev-archive" not in doc.links and len(doc.ids) == 2
    assert not folder.exists()
    assert check_archives(store, config)["tag:x", "atom"] == []

    put(store, archive_input, post(3, day(3), tags=x))
    publish(store, config)
    for fmt in FORMATS:
        doc = read(config.output_dir, ref.url(BASE, fmt), fmt)
        assert not doc.complete and doc.links["prev-archive"] == ref.archive_url(BASE, 2, fmt)
    assert [len(p) for p in check_archives(store, config)["tag:x", "atom"]] == [3, 0]

    known = store.known_copies(archive_input, ["3.md"])
    write_batch(store, archive_input, (), [known["3.md"][0]], [known["3.md"][1]], NOW)
    result = publish(store, config)
    assert all(read(config.output_dir, ref.url(BASE, f), f).complete for f in FORMATS)
    assert not folder.exists() and "archive/tag/x/1.atom" in result.removed
    check_archives(store, config)


def test_places_follow_published_dates_whatever_the_batches(
    store: Store, archive_input: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entries decided in one run are placed oldest first, however many transactions the run
    took; a later run's entries come after them, whatever their dates."""
    from aggregator import sync as sync_module

    monkeypatch.setattr(sync_module, "DECIDE_BATCH", 2)
    versions = [post(n, day(10 - n)) for n in range(1, 8)]  # decided in key order: newest first
    write_copies(store, archive_input, versions, (), (), NOW)
    decide_pending(store, NOW)
    put(store, archive_input, post(30, day(-100)))
    order = [store.archive_items("all", n, n)[0].title for n in range(1, 9)]  # place by place
    assert order == [f"Post {n}" for n in range(7, 0, -1)] + ["Post 30"]


def test_a_run_stopped_between_batches_is_placed_by_the_next(
    store: Store, archive_input: int
) -> None:
    write_copies(store, archive_input, [post(1, day(1)), post(2, day(2))], (), (), NOW)
    with store.transaction() as tx:  # one batch decided, but not the last: nothing placed
        keys = tx.take_pending(10)
        versions, entries = tx.decision_state(keys)
        tx.apply(decide_entries(keys, versions, entries, NOW), NOW, place=False)
        tx.clear_pending(keys)
    assert store.archive_items("all", 1, 10) == []
    assert store.feed_states()["all"][1] == 0
    decide_pending(store, NOW)  # the next run: nothing to decide, something to place
    assert [i.title for i in store.archive_items("all", 1, 10)] == ["Post 2", "Post 1"]
    assert store.feed_states()["all"][1] == 2


def test_concurrent_writers_never_give_one_place_twice(store_url: str) -> None:
    stores = [Store.open(store_url) for _ in range(2)]
    try:
        inputs = [s.ensure_input(f"in{k}", "files", f"/srv/{k}", NOW) for k, s in enumerate(stores)]
        errors: list[BaseException] = []

        def writer(k: int) -> None:
            try:
                for n in range(12):
                    put(stores[k], inputs[k], post(100 * k + n, day(n), tags=[("t", "T")]))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(k,)) for k in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        store = stores[0]
        for key in ("all", "tag:t"):
            assert store.feed_states()[key][1] == 24
            placed = [i.entry_id for n in range(1, 25) for i in store.archive_items(key, n, n)]
            assert sorted(placed) == sorted(i.entry_id for i in store.feed_items(key, 100))
    finally:
        for s in stores:
            s.close()


def test_the_migration_places_existing_entries_oldest_first(
    store: Store, archive_input: int, store_url: str
) -> None:
    """A database from before archives (schema 0002) gets every entry placed, per feed, by
    published date then entry id."""
    put(store, archive_input, post(1, day(5), tags=[("a", "A")]), post(2, day(1)))
    put(store, archive_input, post(3, day(3), tags=[("a", "A")]), post(4, day(3)))
    cfg = migrate.alembic_config()
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0002")
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    places = {
        key: [store.archive_items(key, n, n)[0].title for n in range(1, last + 1)]
        for key, (_, last) in store.feed_states().items()
    }
    by_date = sorted(store.feed_items("all", 10), key=lambda i: (i.published, i.entry_id))
    assert places["all"] == [i.title for i in by_date]
    assert places["tag:a"] == ["Post 3", "Post 1"]
    assert places["source:联合早报"] == places["all"]


# ---- switches, links, idempotence -------------------------------------------------------------


def test_archive_page_0_publishes_no_pages_and_no_links(
    store: Store, archive_input: int, tmp_path: Path, store_url: str
) -> None:
    config = seeded_and_published(store, archive_input, tmp_path, store_url)
    assert (config.output_dir / "archive").is_dir()
    off = configure(tmp_path, store_url, archive_page=0)
    result = publish(store, off)
    assert not (config.output_dir / "archive").exists()
    assert any(rel.startswith("archive/") for rel in result.removed)
    for key, name in feed_keys(config.output_dir).items():
        for fmt in FORMATS:
            doc = read(config.output_dir, feed_ref(key, name).url(BASE, fmt), fmt)
            assert set(doc.links) == {"self"}, (key, fmt)
    assert b"_rfc5005" not in (config.output_dir / "all.json").read_bytes()


def test_by_default_only_atom_feeds_have_archives(
    store: Store, archive_input: int, tmp_path: Path, store_url: str
) -> None:
    seed(store, archive_input)
    config = config_module.parse(
        {
            "database": store_url,
            "output": str(tmp_path / "public"),
            "site": {"base_url": BASE},
            "feeds": {"entries": 2, "archive_page": 3},
        },
        base_dir=tmp_path,
    )
    publish(store, config)
    assert {Path(rel).suffix for rel in archive_files(config.output_dir)} == {".atom"}
    all_atom = read(config.output_dir, feed_ref("all", "").url(BASE, "atom"), "atom")
    assert all_atom.links["prev-archive"] == feed_ref("all", "").archive_url(BASE, 3, "atom")
    for fmt in ("rss", "json"):
        doc = read(config.output_dir, feed_ref("all", "").url(BASE, fmt), fmt)
        assert set(doc.links) == {"self"}, fmt
    assert b"_rfc5005" not in (config.output_dir / "all.json").read_bytes()
    # Asking for them in every format later publishes the RSS and JSON pages too.
    everywhere = config_module.parse(
        {
            "database": store_url,
            "output": str(tmp_path / "public"),
            "site": {"base_url": BASE},
            "feeds": {"entries": 2, "archive_page": 3, "archive_formats": list(FORMATS)},
        },
        base_dir=tmp_path,
    )
    publish(store, everywhere)
    assert {Path(rel).suffix for rel in archive_files(config.output_dir)} == {
        ".atom",
        ".rss",
        ".json",
    }


def test_a_second_publish_with_nothing_changed_writes_nothing(
    store: Store, archive_input: int, tmp_path: Path, store_url: str
) -> None:
    seed(store, archive_input)
    config = configure(tmp_path, store_url)
    first = publish(store, config)
    assert "archive/all/1.atom" in first.written and "feed.xsl" in first.written
    again = publish(store, config)
    assert again.written == [] and again.removed == [] and again.rendered == 0
    # A ninth entry fills page 3 of `all` (which gains its next-archive link) and opens page
    # 4; it is the first on page 3 of its source. No other page is written.
    put(store, archive_input, post(9, day(9)))
    third = publish(store, config)
    pages = {rel for rel in third.written if rel.startswith("archive/")}
    expected = ["all/3", "all/4", "source/联合早报/3"]
    assert pages == {f"archive/{page}.{fmt}" for page in expected for fmt in FORMATS}
    assert third.rendered == 2


def test_hub_links_only_when_configured(
    store: Store, archive_input: int, tmp_path: Path, store_url: str
) -> None:
    config = seeded_and_published(store, archive_input, tmp_path, store_url)
    feed_url = feed_ref("all", "").url(BASE, "atom")
    assert "hub" not in read(config.output_dir, feed_url, "atom").links
    hub = "https://hub.example.org/"
    with_hub = configure(tmp_path, store_url, hub=hub)
    publish(store, with_hub)
    for key, name in feed_keys(config.output_dir).items():
        for fmt in FORMATS:
            url = feed_ref(key, name).url(BASE, fmt)
            assert read(config.output_dir, url, fmt).links["hub"] == hub, (key, fmt)
    check_archives(store, with_hub)  # archive pages carry no hub link
    parsed = feedparser.parse(config.output_dir / "all.atom")
    assert {link.rel: link.href for link in parsed.feed.links}["hub"] == hub


# ---- the stylesheet and file times ------------------------------------------------------------


def test_browsers_get_a_readable_page_from_atom_and_rss(
    store: Store, archive_input: int, tmp_path: Path, store_url: str
) -> None:
    config = seeded_and_published(store, archive_input, tmp_path, store_url)
    output = config.output_dir
    xsl_bytes = (output / "feed.xsl").read_bytes()
    xsl = etree.fromstring(xsl_bytes)
    assert not xsl.xpath("//*[local-name()='script']") and b"javascript:" not in xsl_bytes
    transform = etree.XSLT(xsl)
    for rel in ("all.atom", "all.rss", "archive/all/1.atom", "archive/tag/a/1.rss"):
        data = (output / rel).read_bytes()
        assert data.splitlines()[1] == (
            f'<?xml-stylesheet type="text/xsl" href="{BASE}feed.xsl"?>'.encode()
        ), rel
        page = str(transform(etree.fromstring(data)))
        fmt = rel.rsplit(".", 1)[1]
        doc = read(output, BASE + rel, fmt)
        assert doc.titles
        for title in doc.titles:
            assert f">{title}</a>" in page, (rel, title)
        assert "Test site" in page and "<script" not in page
        if rel.startswith("archive/"):
            assert "archive page" in page
        else:
            assert f"{BASE}{rel}" in page  # the address to subscribe to
    assert b"xml-stylesheet" not in (output / "all.json").read_bytes()


def test_file_times_are_the_dates_of_their_content(
    store: Store, archive_input: int, tmp_path: Path, store_url: str
) -> None:
    config = seeded_and_published(store, archive_input, tmp_path, store_url)
    output = config.output_dir

    def mtime(rel: str) -> datetime:
        return datetime.fromtimestamp(os.stat(output / rel).st_mtime, UTC)

    assert mtime("all.atom") == day(8)  # its newest entry's updated
    assert mtime("archive/all/1.rss") == day(3)  # page 1 holds posts 1-3
    assert mtime("archive/tag/a/2.json") == day(7)
    assert mtime("index.html") == mtime("feeds.opml") == day(8)
    assert mtime("feed.xsl") == STYLESHEET_DATE
    # bytes unchanged, time wrong (a copy, an older release): the next render puts it back
    os.utime(output / "all.atom", (0, 0))
    os.utime(output / "archive/all/1.rss", (0, 0))
    result = publish(store, config, force=True)
    assert mtime("all.atom") == day(8) and mtime("archive/all/1.rss") == day(3)
    assert result.written == []


def test_pages_rendered_in_parts_are_the_bytes_of_a_fresh_render(
    store: Store, archive_input: int, tmp_path: Path, store_url: str
) -> None:
    """A page whose entries mostly did not change copies them from its old file: the result
    is what another machine rendering everything afresh from the same store writes."""
    config = seeded_and_published(store, archive_input, tmp_path, store_url)
    put(store, archive_input, post(2, day(2), text=" edited"), post(5, day(5), text=" edited"))
    put(store, archive_input, post(1, day(1), tags=[("a", "A"), ("b", "B")]))
    result = publish(store, config)
    assert "archive/all/1.atom" in result.written
    fresh = configure(tmp_path / "other", store_url)
    publish(store, fresh)
    assert archive_files(config.output_dir) == archive_files(fresh.output_dir)
    assert "Post 2 edited" in (config.output_dir / "archive/all/1.json").read_text("utf-8")


def test_entries_whose_rendered_blocks_vanished_are_rendered_where_needed(
    store: Store, archive_input: int, tmp_path: Path, store_url: str, monkeypatch: Any
) -> None:
    """Publishing renders each entry once into block files beside the output, then builds
    every document from them. Should those files go (another publisher sweeping its
    leftovers), each document renders the entries it lacks: the same bytes, no error."""
    import aggregator.publish as publishing

    real = publishing._render_blocks

    def render_then_lose(*args: Any) -> Any:
        index = real(*args)
        for path in {where[0] for where in index.values()}:
            os.unlink(path)
        return index

    seed(store, archive_input)
    config = configure(tmp_path, store_url)
    monkeypatch.setattr(publishing, "_render_blocks", render_then_lose)
    result = publish(store, config)
    monkeypatch.undo()
    assert result.written
    fresh = configure(tmp_path / "other", store_url)
    publish(store, fresh)
    assert archive_files(config.output_dir) == archive_files(fresh.output_dir)
    for rel in ("all.atom", "all.rss", "all.json", "tag/a.atom"):
        assert (config.output_dir / rel).read_bytes() == (fresh.output_dir / rel).read_bytes()
    assert not [p for p in config.output_dir.iterdir() if p.name.startswith(".tmp-")]


def test_a_publish_beside_other_threads_shares_the_work_with_fresh_workers(
    store: Store,
    archive_input: int,
    tmp_path: Path,
    store_url: str,
    monkeypatch: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The daemon publishes from a process that runs threads (server, scheduler), where
    forking is unsafe: its workers come from the fork server instead, get the first pass's
    index as an argument, and write what one process writes."""
    import aggregator.publish as publishing

    seed(store, archive_input)
    config = configure(tmp_path, store_url)
    monkeypatch.setattr(publishing, "PARALLEL_MIN_FRESH", 1)  # this small store, in workers
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        with caplog.at_level("INFO", logger="aggregator.timing"):
            result = publish(store, config, workers=2)
    finally:
        stop.set()
        other.join()
    assert result.written
    assert any("2 workers (forkserver)" in r.getMessage() for r in caplog.records)
    alone = configure(tmp_path / "alone", store_url)
    publish(store, alone, workers=1)
    assert archive_files(config.output_dir) == archive_files(alone.output_dir)
    for rel in ("all.atom", "all.rss", "all.json", "tag/a.atom", "index.html"):
        assert (config.output_dir / rel).read_bytes() == (alone.output_dir / rel).read_bytes()
    assert not [p for p in config.output_dir.iterdir() if p.name.startswith(".tmp-")]
