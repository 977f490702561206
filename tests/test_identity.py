"""Which article a copy is, and whether it changed: `normalise.identity`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from datetime import UTC, datetime

import pytest

from aggregator.normalise.identity import (
    body_hash,
    content_hash,
    entry_id,
    identity_key,
    title_key,
)

PUBLISHED = datetime(2022, 7, 7, 15, 4, tzinfo=UTC)
URN = re.compile(r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def test_url_key_is_the_identity_when_known() -> None:
    key = identity_key("www.zaobao.com/realtime/china/story", "联合早报", "标题", PUBLISHED)
    assert key == "url:www.zaobao.com/realtime/china/story"
    # Title, source and date do not matter once the URL is known.
    assert key == identity_key("www.zaobao.com/realtime/china/story", "other", "改过的标题", None)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        pytest.param(("联合早报", "标题", PUBLISHED), ("联合早报", "标题", PUBLISHED), id="same"),
        pytest.param(
            ("联合早报", "Trade Talks", PUBLISHED),
            ("联合早报", "  trade   TALKS ", PUBLISHED),
            id="title-space-and-case",
        ),
        pytest.param(
            ("联合早报", "标题", PUBLISHED),
            ("联合早报", "标题", PUBLISHED.replace(hour=23, minute=59)),
            id="same-day-other-time",
        ),
    ],
)
def test_fingerprint_same_article(a: tuple, b: tuple) -> None:
    assert identity_key(None, *a) == identity_key(None, *b)
    assert identity_key(None, *a).startswith("fp:")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        pytest.param(("联合早报", "标题", PUBLISHED), ("观察者网", "标题", PUBLISHED), id="source"),
        pytest.param(
            ("联合早报", "标题", PUBLISHED), ("联合早报", "标题二", PUBLISHED), id="title"
        ),
        pytest.param(
            ("联合早报", "标题", PUBLISHED),
            ("联合早报", "标题", PUBLISHED.replace(day=8)),
            id="day",
        ),
        pytest.param(("联合早报", "标题", PUBLISHED), ("联合早报", "标题", None), id="no-date"),
        # The separator between fields must keep them apart.
        pytest.param(("ab", "c", PUBLISHED), ("a", "bc", PUBLISHED), id="field-boundary"),
    ],
)
def test_fingerprint_different_articles(a: tuple, b: tuple) -> None:
    assert identity_key(None, *a) != identity_key(None, *b)


def test_title_key() -> None:
    assert title_key("  Trade\tTalks  Resume ") == "trade talks resume"
    assert title_key("李作成与美参谋长") == "李作成与美参谋长"


def test_entry_id_is_a_version_5_urn_uuid() -> None:
    eid = entry_id("url:www.zaobao.com/realtime/china/story20220707-1290628")
    assert URN.fullmatch(eid), eid
    assert uuid.UUID(eid.removeprefix("urn:uuid:")).version == 5


def test_entry_ids_are_deterministic_and_distinct() -> None:
    keys = [f"url:example.com/{i}" for i in range(200)] + ["fp:0", "fp:1"]
    first = [entry_id(k) for k in keys]
    assert first == [entry_id(k) for k in keys]
    assert len(set(first)) == len(keys)


def test_entry_id_is_the_same_in_another_process() -> None:
    """Deleting the database and syncing again gives the same ids: nothing random goes in."""
    key = "url:www.zaobao.com/realtime/china/story20220707-1290628"
    code = f"from aggregator.normalise.identity import entry_id; print(entry_id({key!r}))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    ).stdout.strip()
    assert out == entry_id(key)


def test_body_hash_changes_with_each_part() -> None:
    base = body_hash("标题", "https://e.com/a", "<p>x</p>")
    assert base == body_hash("标题", "https://e.com/a", "<p>x</p>")
    assert base != body_hash("标题2", "https://e.com/a", "<p>x</p>")
    assert base != body_hash("标题", "https://e.com/b", "<p>x</p>")
    assert base != body_hash("标题", None, "<p>x</p>")
    assert base != body_hash("标题", "https://e.com/a", "<p>y</p>")
    # Fields cannot bleed into each other.
    assert body_hash("ab", None, "c") != body_hash("a", None, "bc")


def test_content_hash_follows_tags_but_not_their_order() -> None:
    base = content_hash("b1", ["新闻", "国际"])
    assert base == content_hash("b1", ["国际", "新闻"])
    assert base == content_hash("b1", iter(["国际", "新闻"]))
    assert base != content_hash("b1", ["新闻"])
    assert base != content_hash("b1", ["新闻", "国际", "评论"])
    assert base != content_hash("b2", ["新闻", "国际"])
