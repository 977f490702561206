"""Deciding what an entry is from all its stored copies: `decide`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.decide import decide_entries, decide_entry, winner
from aggregator.normalise.identity import content_hash, entry_id
from aggregator.types import MARK, EntryIntent, StoredEntry, StoredVersion, Tag

KEY = "url:www.zaobao.com/realtime/china/story20220707-1290628"
T0 = datetime(2022, 7, 7, 15, 4, tzinfo=UTC)
DAY = timedelta(days=1)
NOW = datetime(2024, 1, 1, tzinfo=UTC)
LATER = NOW + DAY


def version(
    vid: int,
    *,
    locator: str | None = None,
    published: datetime | None = T0,
    updated: datetime | None = None,
    mtime_ns: int = 1_000,
    body: str = "body-1",
    source: Tag = ("联合早报", "联合早报"),
    tags: tuple[Tag, ...] = (("新闻", "新闻"),),
) -> StoredVersion:
    return StoredVersion(
        version_id=vid,
        identity_key=KEY,
        published=published,
        declared_updated=updated,
        mtime_ns=mtime_ns,
        locator=locator or f"post{vid}.md",
        body_hash=body,
        source_key=source[0],
        source_name=source[1],
        tags=tags,
    )


def stored_from(intent: EntryIntent) -> StoredEntry:
    """What the store holds after applying an intent (the fields decide reads back)."""
    assert intent.published is not None and intent.updated is not None
    return StoredEntry(
        entry_pk=1,
        identity_key=intent.identity_key,
        version_id=intent.version_id,
        content_hash=intent.content_hash,
        published=intent.published,
        updated=intent.updated,
        source_key=intent.source_key,
        tag_keys=frozenset(k for k, _ in intent.tags),
        source_keys=frozenset(k for k, _ in intent.sources),
    )


# ---- the winning copy ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("versions", "expected"),
    [
        pytest.param(
            [
                version(1, updated=T0 + DAY, published=T0 + 5 * DAY, mtime_ns=9_000),
                version(2, updated=T0 + 2 * DAY, published=T0, mtime_ns=1_000),
            ],
            2,
            id="latest-declared-updated",
        ),
        pytest.param(
            [version(1, updated=T0 + DAY), version(2, published=T0, mtime_ns=9_000)],
            1,
            id="declared-updated-beats-none",
        ),
        pytest.param(
            [
                version(1, published=T0 + DAY, mtime_ns=1_000),
                version(2, published=T0, mtime_ns=9_000),
            ],
            1,
            id="later-published",
        ),
        pytest.param(
            [version(1, published=None, mtime_ns=9_000), version(2, published=T0, mtime_ns=1)],
            2,
            id="published-beats-none",
        ),
        pytest.param(
            [version(1, mtime_ns=1_000), version(2, mtime_ns=2_000), version(3, mtime_ns=1_500)],
            2,
            id="newest-file",
        ),
        pytest.param(
            [version(1, locator="b.md"), version(2, locator="a.md"), version(3, locator="c.md")],
            2,
            id="tie-smallest-locator",
        ),
    ],
)
def test_winner(versions: list[StoredVersion], expected: int) -> None:
    assert winner(versions).version_id == expected
    assert winner(list(reversed(versions))).version_id == expected


def test_winner_of_copies_with_the_same_path_in_two_inputs_does_not_depend_on_order() -> None:
    """Two folders holding the same relative path (a backup beside the archive, say)."""
    a = version(1, locator="2022/07/story.md", body="from-archive")
    b = version(2, locator="2022/07/story.md", body="from-backup")
    assert winner([a, b]) == winner([b, a])
    assert decide_entry(KEY, [a, b], None, NOW) == decide_entry(KEY, [b, a], None, NOW)


# ---- a new entry ---------------------------------------------------------------------------------


def test_new_entry() -> None:
    a = version(1, published=T0, tags=(("新闻", "新闻"), ("python", "Python")))
    b = version(
        2,
        published=T0 - DAY,
        tags=(("python", "PYTHON"), ("国际", "国际")),
        source=("zaobao.com", "zaobao.com"),
    )
    intent = decide_entry(KEY, [b, a], None, NOW)

    assert intent.action == "new"
    assert intent.entry_id == entry_id(KEY)
    assert intent.entry_id.startswith("urn:uuid:")
    assert intent.version_id == 1
    assert intent.published == T0
    assert intent.updated == T0  # never the time of the sync
    # Tags are the union, displayed as the winning copy spells them.
    assert intent.tags == (("新闻", "新闻"), ("python", "Python"), ("国际", "国际"))
    assert intent.sources == (("联合早报", "联合早报"), ("zaobao.com", "zaobao.com"))
    assert intent.source_key == "联合早报"
    assert intent.content_hash == content_hash("body-1", ["新闻", "python", "国际"])
    assert intent.feeds == {
        "all",
        "source:联合早报",
        "source:zaobao.com",
        "tag:新闻",
        "tag:python",
        "tag:国际",
    }


def test_new_entry_updated_is_the_declared_date() -> None:
    intent = decide_entry(KEY, [version(1, published=T0, updated=T0 + DAY)], None, NOW)
    assert intent.published == T0
    assert intent.updated == T0 + DAY


def test_new_entry_without_any_date_is_dated_now() -> None:
    intent = decide_entry(KEY, [version(1, published=None)], None, NOW)
    assert intent.published == NOW
    assert intent.updated == NOW


# ---- when `updated` moves ------------------------------------------------------------------------


def first_sync(*versions: StoredVersion) -> StoredEntry:
    return stored_from(decide_entry(KEY, list(versions), None, NOW))


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param(lambda v: v._replace(mtime_ns=v.mtime_ns + 10**12), id="touched"),
        pytest.param(lambda v: v._replace(tags=tuple(reversed(v.tags))), id="tag-order"),
    ],
)
def test_updated_stays_when_nothing_a_reader_sees_changed(changed) -> None:
    before = version(1, tags=(("新闻", "新闻"), ("国际", "国际")))
    stored = first_sync(before)

    intent = decide_entry(KEY, [changed(before)], stored, LATER)

    assert intent.action in ("unchanged", "relinked")
    assert intent.updated == stored.updated
    assert intent.published == stored.published
    assert intent.content_hash == stored.content_hash


def test_a_newer_identical_copy_does_not_move_updated() -> None:
    """A second file with the same article, just written later: relinked at most."""
    stored = first_sync(version(1))
    intent = decide_entry(KEY, [version(1), version(2, mtime_ns=10**15)], stored, LATER)
    assert intent.action == "relinked"
    assert intent.version_id == 2
    assert intent.updated == stored.updated
    assert intent.published == stored.published


def test_nothing_changed_is_unchanged_and_republishes_nothing() -> None:
    stored = first_sync(version(1))
    intent = decide_entry(KEY, [version(1)], stored, LATER)
    assert intent.action == "unchanged"
    assert intent.updated == stored.updated
    assert intent.feeds == frozenset()


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param(lambda v: v._replace(body_hash="body-2"), id="title-content-or-link"),
        pytest.param(lambda v: v._replace(tags=(*v.tags, ("评论", "评论"))), id="tag-added"),
        pytest.param(lambda v: v._replace(tags=()), id="tags-removed"),
    ],
)
def test_updated_moves_when_the_entry_changes(changed) -> None:
    before = version(1)
    stored = first_sync(before)

    intent = decide_entry(KEY, [changed(before)], stored, LATER)

    assert intent.action == "updated"
    assert intent.updated == LATER  # no declared date: the time of the change
    assert intent.published == stored.published
    assert intent.content_hash != stored.content_hash
    assert "all" in intent.feeds


def test_updated_takes_a_newer_declared_date() -> None:
    stored = first_sync(version(1))
    edited = version(1, body="body-2", updated=T0 + 3 * DAY)
    intent = decide_entry(KEY, [edited], stored, LATER)
    assert intent.action == "updated"
    assert intent.updated == T0 + 3 * DAY


def test_a_copy_from_another_file_adding_a_tag_updates_the_entry() -> None:
    stored = first_sync(version(1))
    other = version(2, mtime_ns=1, tags=(("国际", "国际"),))
    intent = decide_entry(KEY, [version(1), other], stored, LATER)
    assert intent.action == "updated"
    assert {k for k, _ in intent.tags} == {"新闻", "国际"}
    assert "tag:国际" in intent.feeds


def test_removing_a_tag_republishes_the_tag_feed_it_left() -> None:
    stored = first_sync(version(1, tags=(("新闻", "新闻"), ("国际", "国际"))))
    intent = decide_entry(KEY, [version(1, tags=(("新闻", "新闻"),))], stored, LATER)
    assert intent.action == "updated"
    assert "tag:国际" in intent.feeds


def test_a_mark_is_among_the_tags_but_has_no_feed() -> None:
    stored = first_sync(version(1))
    mark = (MARK + "removed at origin 2024-01-02", "removed at origin 2024-01-02")
    marked = version(2, locator="removed:x", published=None, mtime_ns=-1, tags=(mark,))
    intent = decide_entry(KEY, [version(1), marked], stored, LATER)
    assert intent.action == "updated" and intent.updated == LATER
    assert mark in intent.tags
    assert intent.feeds == {"all", "source:联合早报", "tag:新闻"}


# ---- removal -------------------------------------------------------------------------------------


def test_an_entry_with_no_copies_left_is_removed() -> None:
    stored = first_sync(version(1, tags=(("新闻", "新闻"), ("国际", "国际"))))
    intent = decide_entry(KEY, [], stored, LATER)
    assert intent.action == "removed"
    assert intent.identity_key == KEY
    assert intent.feeds == {"all", "source:联合早报", "tag:新闻", "tag:国际"}


def test_no_copies_and_nothing_stored_is_nothing_to_do() -> None:
    assert decide_entry(KEY, [], None, NOW).action not in ("new", "updated", "removed")


def test_decide_entries_covers_every_key_in_a_stable_order() -> None:
    other = "url:example.com/other"
    stored = {other: first_sync(version(9))}
    intents = decide_entries([KEY, other, KEY], {KEY: [version(1)]}, stored, LATER)
    assert [(i.identity_key, i.action) for i in intents] == sorted(
        [(KEY, "new"), (other, "removed")]
    )


# ---- property: the order copies come in does not matter ------------------------------------------

DATES = st.sampled_from([None, T0, T0 + DAY, T0 + 2 * DAY])
TAGS = st.lists(
    st.sampled_from(
        [("新闻", "新闻"), ("python", "Python"), ("python", "PYTHON"), ("国际", "国际")]
    ),
    max_size=3,
    unique_by=lambda t: t[0],
).map(tuple)


@st.composite
def copies(draw) -> list[StoredVersion]:
    count = draw(st.integers(min_value=1, max_value=5))
    return [
        version(
            vid,
            locator=draw(st.sampled_from(["a.md", "b.md", "2022/c.md", "2022/d.md"])),
            published=draw(DATES),
            updated=draw(DATES),
            mtime_ns=draw(st.sampled_from([1, 2, 3])),
            body=draw(st.sampled_from(["body-1", "body-2"])),
            source=draw(
                st.sampled_from([("联合早报", "联合早报"), ("联合早报", "联合早报 "), ("a", "A")])
            ),
            tags=draw(TAGS),
        )
        for vid in range(1, count + 1)
    ]


@settings(max_examples=150, deadline=None)
@given(versions=copies(), data=st.data(), with_stored=st.booleans())
def test_decision_does_not_depend_on_the_order_of_copies(
    versions: list[StoredVersion], data: st.DataObject, with_stored: bool
) -> None:
    stored = None
    if with_stored:
        earlier = data.draw(copies(), label="earlier copies")
        stored = stored_from(decide_entry(KEY, earlier, None, NOW))
    shuffled = data.draw(st.permutations(versions), label="shuffled")

    assert decide_entry(KEY, shuffled, stored, LATER) == decide_entry(KEY, versions, stored, LATER)
