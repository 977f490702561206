"""The store on real SQLite and real PostgreSQL: the same tests, both backends (`store_url`).

Everything goes through the public API: `Store`, `Batch` and `sync.write_batch`, which stores
copies (marking their identities pending) and then decides the entries they touch.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from aggregator.decide import decide_entries
from aggregator.errors import StoreError
from aggregator.normalise import identity
from aggregator.store import Store
from aggregator.store.models import SCHEMA_REVISION
from aggregator.sync import decide_pending, write_batch, write_copies
from aggregator.types import FeedItem, Tag, Version

NOW = datetime(2024, 7, 20, 9, 30, tzinfo=UTC)
LATER = NOW + timedelta(days=3)
ZAOBAO: Tag = ("联合早报", "联合早报")
GUANCHA: Tag = ("观察者网", "观察者网")


def known_copies(store: Store, input_id: int) -> dict[str, tuple[int, str, str]]:
    """locator -> (version id, signature, identity key), from the store's two lookups."""
    signatures = store.known_signatures(input_id)
    ids = store.known_copies(input_id, list(signatures))
    return {loc: (ids[loc][0], sig, ids[loc][1]) for loc, sig in signatures.items()}


def day(n: int, hour: int = 12) -> datetime:
    return datetime(2024, 7, n, hour, tzinfo=UTC)


def version(
    locator: str,
    key: str = "url:zaobao.com/news/a",
    *,
    title: str = "标题",
    content: str = "<p>正文</p>",
    link: str | None = "https://zaobao.com/news/a",
    published: datetime | None = None,
    declared_updated: datetime | None = None,
    tags: Sequence[Tag] = (),
    source: Tag = ZAOBAO,
    mtime_ns: int = 1_000,
    signature: str | None = None,
) -> Version:
    """A normalised copy, built directly (what the normalise stage would hand the store)."""
    return Version(
        locator=locator,
        signature=signature or f"{mtime_ns}:{len(content)}",
        identity_key=key,
        title=title,
        link=link,
        published=published if published is not None else day(7),
        declared_updated=declared_updated,
        author=source[1],
        source_key=source[0],
        source_name=source[1],
        tags=tuple(tags),
        image=None,
        language="zh",
        content=content,
        summary=title,
        body_hash=identity.body_hash(title, link, content),
        mtime_ns=mtime_ns,
    )


def put(store: Store, input_id: int, *versions: Version, now: datetime = NOW) -> None:
    """Store (or replace) copies of one input, as a sync does for new or changed files."""
    known = known_copies(store, input_id)
    old_keys = {known[v.locator][2] for v in versions if v.locator in known}
    write_batch(store, input_id, versions, (), old_keys, now)


def remove(store: Store, input_id: int, *locators: str, now: datetime = NOW) -> None:
    """Delete copies of one input, as a sync does for files that are gone."""
    known = known_copies(store, input_id)
    ids = [known[loc][0] for loc in locators]
    keys = {known[loc][2] for loc in locators}
    write_batch(store, input_id, (), ids, keys, now)


def only_item(store: Store) -> FeedItem:
    items = store.feed_items("all", 100)
    assert len(items) == 1, items
    return items[0]


@pytest.fixture
def files_input(store: Store) -> int:
    return store.ensure_input("archive", "files", "/srv/archive", NOW)


@pytest.fixture
def other_input(store: Store) -> int:
    return store.ensure_input("mirror", "files", "/srv/mirror", NOW)


# ---- schema and inputs --------------------------------------------------------------------


def test_open_creates_the_schema_on_first_use(store_url: str) -> None:
    with pytest.raises(StoreError, match="aggregator db upgrade"):
        Store.open(store_url, upgrade=False)
    with Store.open(store_url) as store:
        assert store.schema_revision() == SCHEMA_REVISION
        assert store.entry_count() == 0
        assert store.revision() == 0
        assert store.feed_counts() == {}
        assert store.feed_items("all", 10) == []
    # A second open finds the schema current and does not need to upgrade.
    with Store.open(store_url, upgrade=False) as store:
        assert store.schema_revision() == SCHEMA_REVISION


def test_open_refuses_a_database_from_a_newer_aggregator(store_url: str) -> None:
    """An older aggregator pointed at a database a newer one migrated gets a StoreError that
    says so (the errors module's promise: callers only ever catch aggregator errors)."""
    Store.open(store_url).close()
    engine = create_engine(store_url)
    try:
        with engine.begin() as conn:  # what a later release's migration would leave behind
            conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    finally:
        engine.dispose()
    for upgrade in (False, True):
        with pytest.raises(StoreError, match="9999"):
            Store.open(store_url, upgrade=upgrade)


def test_ensure_input_is_idempotent(store: Store) -> None:
    first = store.ensure_input("archive", "files", "/srv/archive", NOW)
    assert store.ensure_input("archive", "files", "/srv/archive", LATER) == first
    assert store.ensure_input("archive", "files", "/srv/moved", LATER) == first
    other = store.ensure_input("mirror", "files", "/srv/mirror", NOW)
    assert other != first
    assert store.ensure_input("mirror", "files", "/srv/mirror", NOW) == other


def test_fetch_state_of_live_inputs_round_trips(store: Store) -> None:
    ids = store.ensure_inputs(
        [("a", "feed", "https://a.example/feed"), ("b", "feed", "https://b.example/feed")], NOW
    )
    later = NOW + timedelta(minutes=30)
    with store.transaction() as tx:
        tx.update_inputs(
            [
                (ids["a"], {"status": "not modified", "http_status": 304, "next_due_at": later}),
                (ids["b"], {"status": "not modified", "http_status": 304, "next_due_at": LATER}),
                (ids["a"], {"etag": '"x"', "moved_to": "https://a2.example/feed"}),
            ]
        )
    states = store.fetch_states(list(ids.values()))
    a, b = states[ids["a"]], states[ids["b"]]
    assert (a.etag, a.moved_to, a.next_due_at) == ('"x"', "https://a2.example/feed", later)
    assert b.next_due_at == LATER and b.etag is None
    assert not a.due(NOW) and a.due(later)
    # a changed location starts afresh
    assert store.ensure_inputs([("a", "feed", "https://new.example/feed")], LATER) == {
        "a": ids["a"]
    }
    fresh = store.fetch_states([ids["a"]])[ids["a"]]
    assert (fresh.location, fresh.etag, fresh.moved_to) == ("https://new.example/feed", None, None)


# ---- copies (versions) --------------------------------------------------------------------


def test_put_versions_replaces_a_copy_by_input_and_locator(
    store: Store, files_input: int, other_input: int
) -> None:
    with store.transaction() as tx:
        tx.put_versions(files_input, [version("a.md", signature="1:10")], NOW)
        tx.put_versions(other_input, [version("a.md", signature="9:90")], NOW)
    (vid, sig, key) = known_copies(store, files_input)["a.md"]
    assert (sig, key) == ("1:10", "url:zaobao.com/news/a")

    with store.transaction() as tx:
        tx.put_versions(files_input, [version("a.md", "url:x.com/b", signature="2:20")], LATER)
    assert known_copies(store, files_input) == {"a.md": (vid, "2:20", "url:x.com/b")}
    # The other input's copy at the same locator is a different copy, untouched.
    assert known_copies(store, other_input)["a.md"][1:] == ("9:90", "url:zaobao.com/news/a")


def test_known_files_lists_every_copy_of_an_input(store: Store, files_input: int) -> None:
    assert known_copies(store, files_input) == {}
    put(
        store,
        files_input,
        version("2024/a.md", "url:x.com/a", signature="11:1"),
        version("2024/b.md", "url:x.com/b", signature="22:2"),
    )
    known = known_copies(store, files_input)
    assert {loc: (sig, key) for loc, (_, sig, key) in known.items()} == {
        "2024/a.md": ("11:1", "url:x.com/a"),
        "2024/b.md": ("22:2", "url:x.com/b"),
    }
    assert len({vid for vid, _, _ in known.values()}) == 2


# ---- entries ------------------------------------------------------------------------------


def test_write_batch_creates_one_entry_per_identity_key(store: Store, files_input: int) -> None:
    keys = ["url:x.com/1", "url:x.com/2", "fp:0123abcd"]
    put(store, files_input, *(version(f"{n}.md", k, title=f"t{n}") for n, k in enumerate(keys)))
    assert store.entry_count() == 3
    assert {(i.entry_id, i.title) for i in store.feed_items("all", 10)} == {
        (identity.entry_id(k), f"t{n}") for n, k in enumerate(keys)
    }


WINNER_CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # name: (winner's fields, loser's fields); the loser beats the winner on every later rule
    "latest declared updated": (
        {"declared_updated": day(9), "published": day(1), "mtime_ns": 1},
        {"declared_updated": day(8), "published": day(5), "mtime_ns": 9},
    ),
    "later published": (
        {"published": day(6), "mtime_ns": 1},
        {"published": day(5), "mtime_ns": 9},
    ),
    "larger mtime": (
        {"published": day(5), "mtime_ns": 9},
        {"published": day(5), "mtime_ns": 1},
    ),
}


@pytest.mark.parametrize("case", WINNER_CASES)
@pytest.mark.parametrize("winner_first", [True, False], ids=["winner-first", "winner-last"])
def test_copies_of_one_article_make_one_entry_with_the_right_winner(
    store: Store, files_input: int, other_input: int, case: str, winner_first: bool
) -> None:
    win_fields, lose_fields = WINNER_CASES[case]
    winner = version(
        "w.md", title="Winner", tags=[("b", "B"), ("a", "A")], source=ZAOBAO, **win_fields
    )
    loser = version(
        "l.md", title="Loser", tags=[("c", "C"), ("a", "A")], source=GUANCHA, **lose_fields
    )
    steps = [(files_input, winner), (other_input, loser)]
    for input_id, copy in steps if winner_first else reversed(steps):
        put(store, input_id, copy)

    item = only_item(store)
    assert item.title == "Winner"
    assert item.entry_id == identity.entry_id("url:zaobao.com/news/a")
    assert item.source_name == "联合早报"
    assert item.categories == ("B", "A", "C")  # union, the winner's first
    # Both provenances stay.
    assert set(known_copies(store, files_input)) == {"w.md"}
    assert set(known_copies(store, other_input)) == {"l.md"}
    # The entry is in both sources' feeds.
    assert [i.title for i in store.feed_items("source:观察者网", 10)] == ["Winner"]


def test_deleting_the_winning_copy_makes_the_other_win(
    store: Store, files_input: int, other_input: int
) -> None:
    put(store, files_input, version("w.md", title="Winner", published=day(9), tags=[("a", "A")]))
    put(store, other_input, version("l.md", title="Runner-up", published=day(8)))
    before = only_item(store)
    assert before.title == "Winner"

    remove(store, files_input, "w.md")
    after = only_item(store)
    assert after.title == "Runner-up"
    assert after.entry_id == before.entry_id
    assert after.published == day(8)
    assert after.categories == ()
    assert store.feed_items("tag:a", 10) == []


def test_deleting_every_copy_removes_the_entry_and_its_links(
    store: Store, files_input: int, other_input: int
) -> None:
    put(store, files_input, version("a.md", tags=[("covid", "COVID")]))
    put(store, other_input, version("a-copy.md", tags=[("asia", "Asia")], source=GUANCHA))
    put(store, files_input, version("keep.md", "url:x.com/keep", tags=[("asia", "Asia")]))
    assert store.feed_counts()["tag:covid"] == ("COVID", 1)

    remove(store, files_input, "a.md")
    assert store.entry_count() == 2  # the other copy still holds the article
    remove(store, other_input, "a-copy.md")

    assert store.entry_count() == 1
    assert [i.entry_id for i in store.feed_items("all", 10)] == [
        identity.entry_id("url:x.com/keep")
    ]
    assert store.feed_items("tag:covid", 10) == []
    assert store.feed_items("source:观察者网", 10) == []
    assert store.feed_counts() == {
        "all": ("", 1),
        "source:联合早报": ("联合早报", 1),
        "tag:asia": ("Asia", 1),
    }


def test_removing_an_input_removes_its_copies_and_the_entries_only_it_carried(
    store: Store, files_input: int, other_input: int
) -> None:
    put(store, files_input, version("a.md", tags=[("covid", "COVID")]))
    put(store, other_input, version("a-copy.md", tags=[("asia", "Asia")], source=GUANCHA))
    put(store, files_input, version("only.md", "url:x.com/only"))
    assert store.input_copies() == {files_input: 2, other_input: 1}

    # the mirror is being refreshed by a live process: kept; then one that died: removable
    owner = "serve on elsewhere (pid 1)"
    assert store.claim([other_input], owner, NOW, NOW + timedelta(minutes=5)) == {other_input}
    assert store.remove_inputs([files_input, other_input], NOW) == [files_input]
    decide_pending(store, NOW)

    assert store.input_copies() == {other_input: 1}
    assert [r["name"] for r in store.input_rows()] == ["mirror"]
    item = only_item(store)  # the shared article stays, now as the mirror has it
    assert item.entry_id == identity.entry_id("url:zaobao.com/news/a")
    assert item.categories == ("Asia",)
    assert store.feed_counts() == {
        "all": ("", 1),
        "source:观察者网": ("观察者网", 1),
        "tag:asia": ("Asia", 1),
    }
    # a process of this machine that is gone holds it now: its lease does not count
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead = f"sync on {socket.gethostname()} (pid {gone.pid})"
    assert store.claim([other_input], dead, NOW, NOW + timedelta(minutes=5), stale_owner=owner)
    assert store.remove_inputs([other_input], NOW) == [other_input]
    decide_pending(store, NOW)
    assert store.entry_count() == 0 and store.input_copies() == {}


def test_updated_moves_only_when_the_content_changes(store: Store, files_input: int) -> None:
    put(store, files_input, version("a.md", published=day(7)))
    first = only_item(store)
    assert first.updated == day(7)  # a new entry is as fresh as its own dates, not the sync time

    # The same content again (the file was touched, or copied elsewhere): nothing moves.
    revision = store.revision()
    put(store, files_input, version("a.md", mtime_ns=5_000), now=LATER)
    assert only_item(store) == first
    assert store.revision() == revision

    # The body really changed: `updated` becomes the time of the change.
    put(store, files_input, version("a.md", content="<p>更正</p>", mtime_ns=6_000), now=LATER)
    changed = only_item(store)
    assert changed.updated == LATER
    assert changed.content == "<p>更正</p>"
    assert changed.published == day(7)


def test_updated_takes_a_newer_declared_date_when_content_changes(
    store: Store, files_input: int
) -> None:
    put(store, files_input, version("a.md", published=day(7)))
    declared = day(7) + timedelta(hours=5)
    put(store, files_input, version("a.md", title="新标题", declared_updated=declared), now=LATER)
    item = only_item(store)
    assert (item.title, item.updated) == ("新标题", declared)


def test_entry_ids_survive_dropping_the_database(
    store_url: str, wipe_database: Callable[[str], None]
) -> None:
    copies = [
        version("a.md", "url:x.com/a", published=day(3), tags=[("t", "T")]),
        version("b.md", "url:x.com/b", published=day(4)),
        version("c.md", "fp:5f3e", published=day(4), source=GUANCHA),
    ]

    def sync_all(order: Sequence[Version], now: datetime) -> list[FeedItem]:
        with Store.open(store_url) as store:
            input_id = store.ensure_input("archive", "files", "/srv/archive", now)
            for copy in order:
                put(store, input_id, copy, now=now)
            return store.feed_items("all", 10)

    before = sync_all(copies, NOW)
    wipe_database(store_url)
    with pytest.raises(StoreError, match="schema is empty"):
        Store.open(store_url, upgrade=False)  # really gone
    after = sync_all(list(reversed(copies)), LATER)  # another day, another order

    newest_first = ["fp:5f3e", "url:x.com/b", "url:x.com/a"]
    if identity.entry_id("url:x.com/b") < identity.entry_id("fp:5f3e"):
        newest_first[:2] = reversed(newest_first[:2])  # same day: by entry id
    assert [i.entry_id for i in before] == [identity.entry_id(k) for k in newest_first]
    assert after == before  # ids, dates, everything a reader sees


def test_datetimes_come_back_aware_utc(store: Store, files_input: int) -> None:
    singapore = timezone(timedelta(hours=8))
    published = datetime(2022, 7, 7, 15, 4, tzinfo=singapore)
    put(store, files_input, version("a.md", published=published, declared_updated=published))
    item = only_item(store)
    for value in (item.published, item.updated):
        assert value.utcoffset() == timedelta(0)
        assert (value.year, value.month, value.day, value.hour, value.minute) == (
            2022, 7, 7, 7, 4,
        )  # fmt: skip
    assert item.published == published
    with store.transaction() as tx:  # the stored copy reads back the same way
        versions, _ = tx.decision_state(["url:zaobao.com/news/a"])
    (stored,) = versions["url:zaobao.com/news/a"]
    for value in (stored.published, stored.declared_updated):
        assert value is not None
        assert value.utcoffset() == timedelta(0)
        assert (value.hour, value.minute) == (7, 4)


# ---- feeds --------------------------------------------------------------------------------


def _feed_fixture(store: Store, input_id: int) -> dict[str, str]:
    """Five entries over two sources and two tags; returns title -> entry_id."""
    specs = [
        ("oldest", day(1), ZAOBAO, [("asia", "Asia")]),
        ("tie-1", day(5), GUANCHA, [("zeta", "Zeta"), ("asia", "Asia")]),
        ("tie-2", day(5), ZAOBAO, [("asia", "Asia"), ("zeta", "Zeta")]),
        ("newest", day(9), ZAOBAO, []),
        ("middle", day(3), GUANCHA, [("asia", "Asia")]),
    ]
    put(
        store,
        input_id,
        *(
            version(f"{t}.md", f"url:x.com/{t}", title=t, published=p, source=s, tags=tags)
            for t, p, s, tags in specs
        ),
    )
    return {t: identity.entry_id(f"url:x.com/{t}") for t, *_ in specs}


def test_feed_items_are_newest_first_then_by_id(store: Store, files_input: int) -> None:
    ids = _feed_fixture(store, files_input)
    ties = sorted(["tie-1", "tie-2"], key=ids.__getitem__)  # same date: ordered by entry id

    def titles(feed: str, limit: int = 10) -> list[str]:
        return [i.title for i in store.feed_items(feed, limit)]

    assert titles("all") == ["newest", *ties, "middle", "oldest"]
    assert titles("all", 2) == ["newest", ties[0]]
    assert titles("tag:asia") == [*ties, "middle", "oldest"]
    assert titles("tag:asia", 3) == [*ties, "middle"]
    assert titles("tag:zeta") == ties
    assert titles("source:联合早报") == ["newest", "tie-2", "oldest"]
    assert titles("source:联合早报", 1) == ["newest"]
    assert titles("source:观察者网") == ["tie-1", "middle"]
    assert titles("tag:unknown") == []
    assert titles("source:unknown") == []


def test_feed_order_follows_a_changed_published_date(store: Store, files_input: int) -> None:
    tags = [("asia", "Asia")]
    put(
        store,
        files_input,
        version("a.md", "url:x.com/a", title="a", published=day(5), tags=tags),
        version("b.md", "url:x.com/b", title="b", published=day(6), tags=tags),
    )
    updated_before = {i.title: i.updated for i in store.feed_items("all", 10)}
    # Same title, link and content, a corrected date: a reader sees the entry move.
    put(store, files_input, version("a.md", "url:x.com/a", title="a", published=day(7), tags=tags))
    for feed in ("all", "tag:asia", "source:联合早报"):
        items = store.feed_items(feed, 10)
        assert [(i.title, i.published) for i in items] == [("a", day(7)), ("b", day(6))], feed
        assert {i.title: i.updated for i in items} == updated_before, feed


def test_feed_items_carry_categories_in_the_winners_order(store: Store, files_input: int) -> None:
    _feed_fixture(store, files_input)
    by_title = {i.title: i for i in store.feed_items("all", 10)}
    assert by_title["tie-1"].categories == ("Zeta", "Asia")
    assert by_title["tie-2"].categories == ("Asia", "Zeta")
    assert by_title["newest"].categories == ()
    # The same order whichever feed the entry is read through.
    assert {i.title: i.categories for i in store.feed_items("tag:zeta", 10)} == {
        "tie-1": ("Zeta", "Asia"),
        "tie-2": ("Asia", "Zeta"),
    }


def test_feed_counts(store: Store, files_input: int) -> None:
    _feed_fixture(store, files_input)
    # A later spelling of a known tag does not rename it: display names are as first seen.
    put(store, files_input, version("x.md", "url:x.com/x", tags=[("asia", "ASIA")]))
    assert store.feed_counts() == {
        "all": ("", 6),
        "source:联合早报": ("联合早报", 4),
        "source:观察者网": ("观察者网", 2),
        "tag:asia": ("Asia", 5),
        "tag:zeta": ("Zeta", 2),
    }


def test_batches_larger_than_one_query_chunk(store: Store, files_input: int) -> None:
    """Over a thousand copies of 550 articles in one batch: more keys than one IN (...) list."""
    copies = [
        version(f"{n}.md", f"url:x.com/{n // 2}", title=f"t{n // 2}", tags=[(f"k{n % 7}", "K")])
        for n in range(1100)
    ]
    put(store, files_input, *copies)
    assert store.entry_count() == 550
    assert store.revision() == 1
    assert len(known_copies(store, files_input)) == 1100
    counts = store.feed_counts()
    # Each entry carries the tags of both its copies, k(2m % 7) and k((2m + 1) % 7).
    assert sum(count for key, (_, count) in counts.items() if key.startswith("tag:")) == 1100
    remove(store, files_input, *(c.locator for c in copies))
    assert store.entry_count() == 0
    assert store.feed_counts() == {}
    assert store.revision() == 2


# ---- revisions ----------------------------------------------------------------------------


def test_revision_counts_changing_transactions(store: Store, files_input: int) -> None:
    assert store.revision() == 0
    put(store, files_input, version("a.md", "url:x.com/a"), version("b.md", "url:x.com/b"))
    assert store.revision() == 1  # one transaction, two new entries: one step

    put(store, files_input, version("a.md", "url:x.com/a"), version("b.md", "url:x.com/b"))
    assert store.revision() == 1  # nothing changed
    write_batch(store, files_input, (), (), (), NOW)
    assert store.revision() == 1
    store.record_run(files_input, now=NOW, ok=True)
    assert store.revision() == 1  # bookkeeping of inputs is not a change of entries

    put(store, files_input, version("a.md", "url:x.com/a", title="changed"))
    assert store.revision() == 2
    remove(store, files_input, "a.md", "b.md")
    assert store.revision() == 3
    assert store.entry_count() == 0


def test_feed_revisions_bump_only_the_feeds_touched(
    store: Store, files_input: int, other_input: int
) -> None:
    put(store, files_input, version("a.md", "url:x.com/a", tags=[("t1", "T1")]))
    assert store.feed_revisions() == {"all": 1, "source:联合早报": 1, "tag:t1": 1}

    put(store, other_input, version("b.md", "url:x.com/b", tags=[("t2", "T2")], source=GUANCHA))
    assert store.feed_revisions() == {
        "all": 2,
        "source:联合早报": 1,
        "source:观察者网": 2,
        "tag:t1": 1,
        "tag:t2": 2,
    }

    # Re-tagging a copy touches the feeds of its old and its new tags, and no others.
    put(store, files_input, version("a.md", "url:x.com/a", tags=[("t3", "T3")]))
    assert store.feed_revisions() == {
        "all": 3,
        "source:联合早报": 3,
        "source:观察者网": 2,
        "tag:t1": 3,
        "tag:t2": 2,
        "tag:t3": 3,
    }
    assert store.feed_items("tag:t1", 10) == []

    # A no-op batch touches nothing.
    put(store, files_input, version("a.md", "url:x.com/a", tags=[("t3", "T3")]))
    assert store.revision() == 3
    assert store.feed_revisions()["all"] == 3


# ---- consistency --------------------------------------------------------------------------


class Crash(Exception):
    pass


def test_a_failed_transaction_leaves_nothing_behind(store: Store, files_input: int) -> None:
    put(store, files_input, version("old.md", "url:x.com/old"))
    before = (known_copies(store, files_input), store.feed_items("all", 10), store.feed_revisions())

    copies = [version("a.md", "url:x.com/a"), version("old.md", "url:x.com/old", title="new")]
    keys = {"url:x.com/a", "url:x.com/old"}
    with pytest.raises(Crash), store.transaction() as tx:
        tx.put_versions(files_input, copies, LATER)
        versions, entries = tx.decision_state(keys)
        tx.apply(decide_entries(keys, versions, entries, LATER), LATER)
        raise Crash("killed between writing and committing")

    assert known_copies(store, files_input) == before[0]
    assert store.feed_items("all", 10) == before[1]
    assert store.feed_revisions() == before[2]
    assert store.revision() == 1

    # The next run completes the work.
    put(store, files_input, *copies, now=LATER)
    assert sorted(i.title for i in store.feed_items("all", 10)) == ["new", "标题"]
    assert store.revision() == 2


def test_a_copy_written_while_another_store_decides_is_not_lost(store_url: str) -> None:
    """Two daemons on one database: one decides pending entries while the other stores a new
    copy of the same article. Whatever the interleaving, the next decide must see that copy.
    """
    key = "url:zaobao.com/news/a"
    with Store.open(store_url) as decider, Store.open(store_url) as writer:
        first = decider.ensure_input("archive", "files", "/srv/archive", NOW)
        second = writer.ensure_input("mirror", "files", "/srv/mirror", NOW)
        write_copies(
            decider, first, [version("a.md", title="old copy", published=day(5))], (), (), NOW
        )
        newer = version("b.md", title="newer copy", published=day(6))

        with ThreadPoolExecutor(1) as pool, decider.transaction() as tx:
            keys = tx.take_pending(100)
            assert keys == [key]
            versions, entries = tx.decision_state(keys)
            # Meanwhile the other daemon stores a better copy of the same article (on SQLite it
            # waits for this transaction to end; on PostgreSQL it may commit at once).
            stored = pool.submit(write_copies, writer, second, [newer], (), (), NOW)
            wait([stored], timeout=0.5)
            tx.apply(decide_entries(keys, versions, entries, NOW), NOW)
            tx.clear_pending(keys)
        stored.result()  # re-raises the writer's error, if any

        decide_pending(writer, NOW)  # the next run
        assert [i.title for i in writer.feed_items("all", 10)] == ["newer copy"]
        assert writer.pending_count() == 0


def test_concurrent_writers_on_one_sqlite_file(tmp_path: Path) -> None:
    """Two stores (as two processes would) write copies of the same articles in interleaved
    transactions, with no "database is locked" error and a consistent result.

    Half the rounds read inside the transaction before writing, the pattern that fails at once
    with "database is locked" under SQLite's deferred BEGIN; the store's BEGIN IMMEDIATE makes
    writers queue instead. The other half go through `write_batch`.
    """
    url = f"sqlite:///{tmp_path}/shared.db"
    Store.open(url).close()
    rounds = 16
    start = threading.Barrier(2)

    def writer(name: str, mtime_ns: int) -> None:
        with Store.open(url) as store:
            input_id = store.ensure_input(name, "files", f"/srv/{name}", NOW)
            start.wait()
            for n in range(rounds):
                key = f"url:x.com/{n}"
                copy = version(f"{n}.md", key, title=f"{name} {n}", mtime_ns=mtime_ns)
                if n % 2:
                    write_batch(store, input_id, [copy], (), (), NOW)
                    continue
                with store.transaction() as tx:
                    tx.decision_state([key])  # read first…
                    time.sleep(0.003)  # …and hold the transaction open a moment
                    tx.put_versions(input_id, [copy], NOW)
                    versions, entries = tx.decision_state([key])
                    tx.apply(decide_entries([key], versions, entries, NOW), NOW)

    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(writer, "alpha", 1), pool.submit(writer, "beta", 2)]
        for future in futures:
            future.result()  # re-raises a writer's error here

    with Store.open(url) as store:
        # One entry per article, each won by beta's copy (larger mtime) whatever the order.
        assert sorted(i.title for i in store.feed_items("all", 100)) == sorted(
            f"beta {n}" for n in range(rounds)
        )
        for name in ("alpha", "beta"):
            input_id = store.ensure_input(name, "files", f"/srv/{name}", NOW)
            assert len(known_copies(store, input_id)) == rounds
