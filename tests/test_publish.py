"""The publisher: golden files for each format, parsed back with feedparser; file naming."""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import pytest

from aggregator.publish import write_if_changed
from aggregator.publish.plan import EMPTY_FEED_DATE, feed_ref, slug
from aggregator.publish.render import FeedMeta, render_atom, render_json, render_rss
from aggregator.publish.site import Listed, render_index, render_opml
from aggregator.types import FeedItem

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("AGGREGATOR_UPDATE_GOLDEN") == "1"

META = FeedMeta(
    title="联合早报 · Test site",
    description="Articles from 联合早报",
    home_url="https://feeds.example.org/",
    self_urls={
        "atom": "https://feeds.example.org/source/%E8%81%94.atom",
        "rss": "https://feeds.example.org/source/%E8%81%94.rss",
        "json": "https://feeds.example.org/source/%E8%81%94.json",
    },
    language="zh",
    stylesheet="https://feeds.example.org/feed.xsl",
    hub="https://hub.example.org/",
    prev_archive={
        "atom": "https://feeds.example.org/archive/source/%E8%81%94/4.atom",
        "rss": "https://feeds.example.org/archive/source/%E8%81%94/4.rss",
        "json": "https://feeds.example.org/archive/source/%E8%81%94/4.json",
    },
)
ITEMS = [
    FeedItem(
        entry_id="urn:uuid:77a5bb6e-d3b4-53e5-a394-4be3aed1b011",
        title="李作成与美参谋长联席会主席通话 & <更多>",
        link="https://www.zaobao.com/realtime/china/story20220707-1290628",
        published=datetime(2022, 7, 7, 15, 4, tzinfo=UTC),
        updated=datetime(2022, 7, 8, 1, 0, tzinfo=UTC),
        author="联合早报",
        source_name="联合早报",
        categories=("联合早报", "China & Asia"),
        summary="中共中央军委联合参谋部参谋长李作成星期四应约与美国参谋长联席会议主席米利视频通话。",
        content='<p>正文 <a href="https://example.org/a?x=1&amp;y=2">链接</a></p>'
        '<img src="https://static.zaobao.com/a.jpg">',
        image="https://static.zaobao.com/lead.png",
        language="zh-SG",
    ),
    FeedItem(
        entry_id="urn:uuid:d2747978-4eb1-5e54-af6d-9c11b45f22fe",
        title="No link, no image",
        link=None,
        published=datetime(2021, 9, 16, 10, 19, 20, tzinfo=UTC),
        updated=datetime(2021, 9, 16, 10, 19, 20, tzinfo=UTC),
        author=None,
        source_name="观察者网",
        categories=(),
        summary="",
        content="<p>Plain.</p>",
        image=None,
        language=None,
    ),
]


def golden(name: str, data: bytes) -> None:
    path = GOLDEN / name
    if UPDATE or not path.exists():
        if not UPDATE:
            pytest.fail(f"{path} is missing; run with AGGREGATOR_UPDATE_GOLDEN=1 and review it")
        path.write_bytes(data)
    assert data == path.read_bytes(), f"{name} differs from the golden file"


def test_atom_golden_and_parsed_back() -> None:
    data = render_atom(META, ITEMS)
    golden("source.atom", data)
    feed = feedparser.parse(data)
    assert not feed.bozo, feed.bozo_exception
    assert feed.version == "atom10"
    assert feed.feed.title == META.title
    assert feed.feed.updated == "2022-07-08T01:00:00+00:00"  # newest entry, not build time
    assert [link.rel for link in feed.feed.links] == ["self", "hub", "prev-archive", "alternate"]
    first, second = feed.entries
    assert first.id == ITEMS[0].entry_id and first.title == ITEMS[0].title
    assert first.link == ITEMS[0].link
    assert first.published == "2022-07-07T15:04:00+00:00"
    assert first.updated == "2022-07-08T01:00:00+00:00"
    assert first.author == "联合早报"
    assert [t.term for t in first.tags] == ["联合早报", "China & Asia"]
    assert first.summary == ITEMS[0].summary
    # feedparser writes <img> as <img />; the markup is otherwise what we stored
    assert first.content[0].value.replace(" />", ">") == ITEMS[0].content
    assert first.content[0].type == "text/html"
    enclosure = next(link for link in first.links if link.rel == "enclosure")
    assert (enclosure.href, enclosure.type, enclosure.length) == (
        "https://static.zaobao.com/lead.png",
        "image/png",
        "0",
    )
    assert first.media_thumbnail == [{"url": "https://static.zaobao.com/lead.png"}]
    assert second.author == "观察者网"  # no author: the source stands in
    assert not [link for link in second.get("links", []) if link.rel == "enclosure"]
    # entry language is carried on the entry
    assert b'<entry xml:lang="zh-SG">' in data


def test_rss_golden_and_parsed_back() -> None:
    data = render_rss(META, ITEMS)
    golden("source.rss", data)
    feed = feedparser.parse(data)
    assert not feed.bozo, feed.bozo_exception
    assert feed.version == "rss20"
    assert feed.feed.link == "https://feeds.example.org/"  # the alternate link, not self
    assert b"<lastBuildDate>Fri, 08 Jul 2022 01:00:00 +0000</lastBuildDate>" in data
    first = feed.entries[0]
    assert first.id == ITEMS[0].entry_id
    assert first.guidislink is False
    assert first.link == ITEMS[0].link
    assert first.content[0].value.replace(" />", ">") == ITEMS[0].content
    assert first.enclosures[0].href == "https://static.zaobao.com/lead.png"
    assert first.enclosures[0].type == "image/png"
    assert [e.title for e in feed.entries] == [i.title for i in ITEMS]
    assert [e.author for e in feed.entries] == ["联合早报", "观察者网"]


def test_json_feed_golden() -> None:
    data = render_json(META, ITEMS)
    golden("source.json", data)
    doc = json.loads(data)
    assert doc["version"] == "https://jsonfeed.org/version/1.1"
    assert doc["feed_url"] == META.self_urls["json"]
    first, second = doc["items"]
    assert first["date_published"] == "2022-07-07T15:04:00Z"
    assert first["tags"] == ["联合早报", "China & Asia"]
    assert first["image"] == ITEMS[0].image
    assert "url" not in second and second["authors"] == [{"name": "观察者网"}]


def test_rendering_is_deterministic_and_never_uses_the_clock() -> None:
    for render in (render_atom, render_rss, render_json):
        assert render(META, ITEMS) == render(META, list(ITEMS))
    empty = render_atom(META, [])
    assert b"<updated>1970-01-01T00:00:00+00:00</updated>" in empty
    assert not feedparser.parse(empty).bozo


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("联合早报", "联合早报"),
        ("covid-19", "covid-19"),
        ("tiktok", "tiktok"),
        ("mark milley", None),  # a space: hashed
        ("a/b", None),
        ("..", None),
        ("x" * 200, None),
    ],
)
def test_slugs_are_safe_and_stable(key: str, expected: str | None) -> None:
    value = slug(key)
    if expected is not None:
        assert value == expected
    else:
        assert re.fullmatch(r"[^/\\\s%?#<>:\"|*]+-[0-9a-f]{6}|[0-9a-f]{6}", value), value
    assert value == slug(key)
    assert len(value.encode("utf-8")) <= 200
    assert not value.startswith(".")


def test_distinct_names_never_share_a_file() -> None:
    keys = ["a b", "a-b", "a/b", "a\\b", "a  b", "a?b", "ab", "a%20b"]
    assert len({slug(k) for k in keys}) == len(keys)


def test_feed_urls_percent_encode_utf8() -> None:
    ref = feed_ref("tag:联合早报", "联合早报")
    assert ref.path("atom") == "tag/联合早报.atom"
    assert ref.url("https://x.org/", "atom") == (
        "https://x.org/tag/%E8%81%94%E5%90%88%E6%97%A9%E6%8A%A5.atom"
    )


def test_index_and_opml_golden() -> None:
    listed = [
        Listed(feed_ref("all", "Site"), "Site", 2, datetime(2022, 7, 8, tzinfo=UTC)),
        Listed(feed_ref("source:联合早报", "联合早报"), "联合早报 · Site", 1, ITEMS[0].updated),
        Listed(feed_ref("tag:china & asia", "China & Asia"), "#China & Asia · Site", 1,
               ITEMS[0].updated),
    ]  # fmt: skip
    index = render_index("Site", "All the news", "https://x.org/", ["atom", "rss"], listed)
    golden("index.html", index)
    text = index.decode()
    assert text.count('rel="alternate"') == 6
    assert "China &amp; Asia" in text and "#China &amp; Asia · Site (Atom)" in text
    opml = render_opml("Site", "https://x.org/", ["atom", "rss"], listed)
    golden("feeds.opml", opml)
    assert opml.count(b'type="rss"') == 3


def test_write_if_changed_keeps_unchanged_files_untouched(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "feed.atom"
    assert write_if_changed(target, b"one") is True
    first = target.stat()
    assert write_if_changed(target, b"one") is False
    assert target.stat().st_mtime_ns == first.st_mtime_ns
    assert target.stat().st_ino == first.st_ino
    assert write_if_changed(target, b"two") is True
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["feed.atom"]  # no temporary left


def test_a_write_interrupted_by_a_kill_leaves_nothing_behind_after_the_next_publish(
    tmp_path: Path,
) -> None:
    from aggregator import config as config_module
    from aggregator.publish import TEMP_PREFIX, publish
    from aggregator.store import Store

    config = config_module.parse({"inputs": []}, base_dir=tmp_path)
    leftover = tmp_path / "public" / "tag" / f"{TEMP_PREFIX}x1y2.atom"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"")  # what a killed write_if_changed leaves
    with Store.open(f"sqlite:///{tmp_path}/s.db") as store:
        publish(store, config)
    assert not leftover.exists()
    assert (tmp_path / "public" / "all.atom").is_file()


@pytest.mark.parametrize("fmt", ["atom", "rss", "json"])
@pytest.mark.parametrize("archive_page", [False, True])
def test_a_document_assembled_from_entries_rendered_elsewhere_is_the_document_rendered_whole(
    fmt: str, archive_page: bool
) -> None:
    """The publisher renders each entry once, in a throwaway document, and builds every
    subscription document and archive page from those blocks."""
    from dataclasses import replace

    from aggregator.publish.render import RENDERERS, assemble, render_blocks

    third = replace(ITEMS[1], entry_id="urn:uuid:3", title="Third", language="en")
    items = [ITEMS[0], third, ITEMS[1]]
    meta = replace(META, current=META.self_urls, hub=None) if archive_page else META
    meta = replace(meta, updated_at=max(i.updated for i in items))
    blocks = render_blocks(fmt, list(reversed(items)))  # rendered in another order
    assert assemble(fmt, meta, [blocks[i.entry_id] for i in items]) == RENDERERS[fmt](meta, items)
    empty = replace(meta, updated_at=EMPTY_FEED_DATE)
    assert assemble(fmt, empty, []) == RENDERERS[fmt](empty, [])


@pytest.mark.parametrize("fmt", ["atom", "rss", "json"])
def test_a_page_rendered_in_parts_is_the_page_rendered_whole(fmt: str) -> None:
    """An archive page copies its unchanged entries from its old file (rendered with another
    frame, in another order) and renders the others: the bytes of a whole render."""
    from dataclasses import replace

    from aggregator.publish.render import RENDERERS, assemble, entry_blocks, render_blocks

    third = replace(ITEMS[1], entry_id="urn:uuid:3", title="Third", language="en")
    items = [ITEMS[0], third, ITEMS[1]]
    meta = replace(META, current=META.self_urls, stylesheet="https://x.org/feed.xsl")
    meta = replace(meta, updated_at=meta.updated(items))
    whole = RENDERERS[fmt](meta, items)
    old = RENDERERS[fmt](replace(META, title="old"), [ITEMS[1], ITEMS[0]])
    kept = entry_blocks(fmt, old)
    assert set(kept) == {ITEMS[0].entry_id, ITEMS[1].entry_id}
    blocks = {**render_blocks(fmt, [third]), **kept}
    assert assemble(fmt, meta, [blocks[i.entry_id] for i in items]) == whole
    assert entry_blocks(fmt, b"not a feed") == {}
