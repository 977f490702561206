"""Write operations of one store transaction (see `Store.transaction`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection

from aggregator.decide import feeds_of
from aggregator.types import Enclosure, EntryIntent, StoredEntry, StoredVersion, Tag, Version

if TYPE_CHECKING:
    from aggregator.store import Store

CHUNK = 500  # identity keys per IN (...) list: far below every backend's parameter limit


# A copy's tags in one column: `key<US>display` pairs joined by <RS>. Normalised names never
# hold these control characters (they are stripped with the others XML forbids), and this
# reads back several times faster than JSON when a whole archive is decided.
_US, _RS = "\x1f", "\x1e"


def encode_tags(tags: Sequence[Tag]) -> str:
    return _RS.join(f"{k}{_US}{d}" for k, d in tags)


def decode_tags(text: str) -> tuple[Tag, ...]:
    if not text:
        return ()
    return tuple(tuple(pair.split(_US, 1)) for pair in text.split(_RS))  # type: ignore[misc]


def encode_enclosures(enclosures: Sequence[Enclosure]) -> str | None:
    if not enclosures:
        return None
    return _RS.join(f"{u}{_US}{k}{_US}{'' if n is None else n}" for u, k, n in enclosures)


def decode_enclosures(text: str | None) -> tuple[Enclosure, ...]:
    if not text:
        return ()
    out: list[Enclosure] = []
    for part in text.split(_RS):
        url, kind, length = part.split(_US, 2)
        out.append((url, kind, int(length) if length else None))
    return tuple(out)


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class Batch:
    """The operations of one write transaction (see `Store.transaction`).

    The operations that run once per post or per entry are written as plain SQL executed with
    the driver's `executemany`: SQLAlchemy's per-row parameter processing cost more than the
    database itself on a 100,000-post archive. The SQL is the same on SQLite and PostgreSQL
    (`INSERT … ON CONFLICT` works on both); only the placeholder differs.
    """

    def __init__(self, store: Store, conn: Connection):
        self.store = store
        self.conn = conn
        self.ph = store.placeholder

    def _many(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        if rows:
            self.conn.exec_driver_sql(sql.replace("?", self.ph), list(rows))

    def _query(self, sql: str, params: Sequence[Any]) -> list[Any]:
        return list(self.conn.exec_driver_sql(sql.replace("?", self.ph), tuple(params)).all())

    def _run(self, sql: str, params: Sequence[Any]) -> None:
        self.conn.exec_driver_sql(sql.replace("?", self.ph), tuple(params))

    def _in(self, n: int) -> str:
        return ", ".join("?" * n)

    def put_versions(self, input_id: int, versions: Sequence[Version], now: datetime) -> None:
        """Insert or replace copies, keyed by (input, locator)."""
        t = self.store.to_db_time
        seen = t(now)
        rows = [
            (
                input_id, v.locator, v.signature, v.identity_key, v.title, v.link,
                t(v.published), t(v.declared_updated), v.author, v.source_key, v.source_name,
                encode_tags(v.tags), v.image, v.language, v.content,
                v.summary, v.body_hash, v.mtime_ns, seen, encode_enclosures(v.enclosures),
            )
            for v in versions
        ]  # fmt: skip
        columns = (
            "input_id, locator, signature, identity_key, title, link, published, "
            "declared_updated, author, source_key, source_name, tags, image, language, content, "
            "summary, body_hash, mtime_ns, seen_at, enclosures"
        )
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns.replace(" ", "").split(",")[2:])
        self._many(
            f"INSERT INTO versions ({columns}) VALUES ({self._in(20)}) "
            f"ON CONFLICT (input_id, locator) DO UPDATE SET {updates}",
            rows,
        )

    def update_inputs(self, changes: Sequence[tuple[int, dict[str, Any]]]) -> None:
        """Write inputs' fetch state (see `due.after_fetch`)."""
        from sqlalchemy import bindparam

        from aggregator.store import inputs_t

        # Inputs changing the same columns (every 304, say) are written in one executemany.
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        for input_id, values in changes:
            if values:
                row = {f"v_{k}": v for k, v in values.items()}
                groups[tuple(sorted(values))].append({"input_pk": input_id, **row})
        for columns, rows in groups.items():
            statement = (
                inputs_t.update()
                .where(inputs_t.c.id == bindparam("input_pk"))
                .values({c: bindparam(f"v_{c}") for c in columns})
            )
            self.conn.execute(statement, rows)

    def put_origin_pages(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert or update origin pages' fetch state (one dict of columns per page)."""
        from aggregator.store import origin_pages_t

        for row in rows:
            values = {k: v for k, v in row.items() if k != "url"}
            done = self.conn.execute(
                origin_pages_t.update().where(origin_pages_t.c.url == row["url"]).values(**values)
            )
            if not done.rowcount:
                self.conn.execute(origin_pages_t.insert().values({"error_count": 0, **row}))

    def delete_versions(self, version_ids: Sequence[int]) -> None:
        for chunk in _chunks(list(version_ids)):
            self._run(f"DELETE FROM versions WHERE id IN ({self._in(len(chunk))})", chunk)

    def mark_pending(self, keys: Iterable[str]) -> None:
        """Remember that the entries of these identity keys must be decided again."""
        # DO UPDATE, not DO NOTHING: it waits for a daemon that is deciding this key right now
        # (which holds the row locked) and then re-inserts the mark that daemon removes, so a
        # copy committed during someone else's decision is decided in the next round.
        self._many(
            "INSERT INTO pending (identity_key) VALUES (?) "
            "ON CONFLICT (identity_key) DO UPDATE SET identity_key = excluded.identity_key",
            [(k,) for k in sorted(set(keys))],
        )

    def take_pending(self, limit: int) -> list[str]:
        """Up to `limit` pending keys, in key order (locked against other writers on PostgreSQL,
        which skip them)."""
        lock = " FOR UPDATE SKIP LOCKED" if self.store.dialect == "postgresql" else ""
        rows = self._query(
            f"SELECT identity_key FROM pending ORDER BY identity_key LIMIT ?{lock}", (limit,)
        )
        return [r[0] for r in rows]

    def clear_pending(self, keys: Sequence[str]) -> None:
        for chunk in _chunks(list(keys)):
            self._run(f"DELETE FROM pending WHERE identity_key IN ({self._in(len(chunk))})", chunk)

    def decision_state(
        self, keys: Iterable[str]
    ) -> tuple[dict[str, list[StoredVersion]], dict[str, StoredEntry]]:
        """Every stored copy and the stored entry of each identity key, for `decide`."""
        keys = sorted(set(keys))
        f = self.store.from_db_time
        versions: dict[str, list[StoredVersion]] = defaultdict(list)
        entries: dict[str, StoredEntry] = {}
        for chunk in _chunks(keys):
            marks = self._in(len(chunk))
            for r in self._query(
                "SELECT v.id, v.identity_key, v.published, v.declared_updated, v.mtime_ns, "
                "v.locator, v.body_hash, v.source_key, v.source_name, v.tags, i.kind "
                "FROM versions v JOIN inputs i ON i.id = v.input_id "
                f"WHERE v.identity_key IN ({marks})",
                chunk,
            ):
                versions[r[1]].append(
                    StoredVersion(
                        version_id=r[0],
                        identity_key=r[1],
                        published=f(r[2]),
                        declared_updated=f(r[3]),
                        mtime_ns=r[4],
                        locator=r[5],
                        body_hash=r[6],
                        source_key=r[7],
                        source_name=r[8],
                        tags=decode_tags(r[9]),
                        from_origin=r[10] == "origin",
                    )
                )
            rows = self._query(
                "SELECT id, identity_key, version_id, content_hash, published, updated, "
                f"source_key FROM entries WHERE identity_key IN ({marks})",
                chunk,
            )
            if not rows:
                continue
            pks = [r[0] for r in rows]
            pk_marks = self._in(len(pks))
            tag_keys: dict[int, set[str]] = defaultdict(set)
            source_keys: dict[int, set[str]] = defaultdict(set)
            for pk, key in self._query(
                f"SELECT entry_pk, tag_key FROM entry_tags WHERE entry_pk IN ({pk_marks})", pks
            ):
                tag_keys[pk].add(key)
            for pk, key in self._query(
                f"SELECT entry_pk, source_key FROM entry_sources WHERE entry_pk IN ({pk_marks})",
                pks,
            ):
                source_keys[pk].add(key)
            for pk, key, version_id, chash, published, updated, source_key in rows:
                entries[key] = StoredEntry(
                    entry_pk=pk,
                    identity_key=key,
                    version_id=version_id,
                    content_hash=chash,
                    published=cast(datetime, f(published)),
                    updated=cast(datetime, f(updated)),
                    source_key=source_key,
                    tag_keys=frozenset(tag_keys[pk]),
                    source_keys=frozenset(source_keys[pk]),
                )
        return dict(versions), entries

    def apply(
        self, intents: Sequence[EntryIntent], now: datetime, *, place: bool = True
    ) -> int | None:
        """Write decided entries; returns the new store revision, or None when nothing changed.

        Entries that join a feed wait for their place in its archive; with `place` (the last
        batch of a run) everything waiting is placed in this transaction (`place_joined`).
        """
        changing = [i for i in intents if i.action != "unchanged"]
        if not changing:
            return None
        revision = self._bump_revision()
        removed = [i.identity_key for i in changing if i.action == "removed"]
        for chunk in _chunks(removed):
            pks = [r[0] for r in self._query(
                f"SELECT id FROM entries WHERE identity_key IN ({self._in(len(chunk))})", chunk
            )]  # fmt: skip
            self._unlink(pks)
            self._leave_all(pks)
            self._run(f"DELETE FROM entries WHERE identity_key IN ({self._in(len(chunk))})", chunk)
        upserts = [i for i in changing if i.action != "removed"]
        if upserts:
            self._join(upserts, self._upsert_entries(upserts, now, revision))
        self._many(
            "INSERT INTO feed_state (feed_key, revision) VALUES (?, ?) "
            "ON CONFLICT (feed_key) DO UPDATE SET revision = excluded.revision",
            [(f, revision) for f in sorted({f for i in changing for f in i.feeds})],
        )
        if place:
            self.place_joined(revision)
        return revision

    def place_joined(self, revision: int | None = None) -> int:
        """Give every entry waiting to join a feed its place at the end of the feed's archive,
        oldest published first, then by entry id; returns how many were placed.

        Called within `apply` (pass its revision) or alone, after a run that stopped between
        batches (a new revision is taken when there is anything to place). The revision bump
        comes first: on PostgreSQL it locks out every other writer until commit, so the
        places read and given here are never given twice.
        """
        if revision is None:
            if not self._query("SELECT 1 FROM feed_joins LIMIT 1", ()):
                return 0
            revision = self._bump_revision()
        counts = dict(
            self._query("SELECT feed_key, COUNT(*) FROM feed_joins GROUP BY feed_key", ())
        )
        if not counts:
            return 0
        self._run(
            "INSERT INTO feed_members (feed_key, seq, entry_pk) "
            "SELECT j.feed_key, COALESCE(s.last_seq, 0) + ROW_NUMBER() OVER "
            "(PARTITION BY j.feed_key ORDER BY e.published, e.entry_id), j.entry_pk "
            "FROM feed_joins j JOIN entries e ON e.id = j.entry_pk "
            "LEFT JOIN feed_state s ON s.feed_key = j.feed_key",
            (),
        )
        last: dict[str, int] = {}
        keys = sorted(counts)
        for chunk in _chunks(keys):
            last.update(
                self._query(
                    "SELECT feed_key, last_seq FROM feed_state "
                    f"WHERE feed_key IN ({self._in(len(chunk))})",
                    chunk,
                )
            )
        self._many(
            "INSERT INTO feed_state (feed_key, revision, last_seq) VALUES (?, ?, ?) "
            "ON CONFLICT (feed_key) DO UPDATE SET revision = excluded.revision, "
            "last_seq = excluded.last_seq",
            [(k, revision, (last.get(k) or 0) + int(counts[k])) for k in keys],
        )
        self._run("DELETE FROM feed_joins", ())
        return sum(int(n) for n in counts.values())

    def _bump_revision(self) -> int:
        rows = self._query(
            "INSERT INTO counters (name, value) VALUES ('revision', 1) "
            "ON CONFLICT (name) DO UPDATE SET value = counters.value + 1 RETURNING value",
            (),
        )
        return int(rows[0][0])

    def _unlink(self, pks: Sequence[int]) -> None:
        """Remove entries' tag and source links (before writing new ones or deleting them)."""
        for chunk in _chunks(list(pks)):
            marks = self._in(len(chunk))
            self._run(f"DELETE FROM entry_tags WHERE entry_pk IN ({marks})", chunk)
            self._run(f"DELETE FROM entry_sources WHERE entry_pk IN ({marks})", chunk)

    def _leave_all(self, pks: Sequence[int]) -> None:
        """Remove entries from every feed's archive (before deleting them)."""
        for chunk in _chunks(list(pks)):
            marks = self._in(len(chunk))
            self._run(f"DELETE FROM feed_members WHERE entry_pk IN ({marks})", chunk)
            self._run(f"DELETE FROM feed_joins WHERE entry_pk IN ({marks})", chunk)

    def _join(self, upserts: Sequence[EntryIntent], pk_of: dict[str, int]) -> None:
        """Bring entries' archive memberships in line with their feeds: a feed they left
        frees their place; a feed they joined queues them for a place (`place_joined`)."""
        # a new entry's intent already lists its feeds; another's adds those it was in
        want = {
            pk_of[i.identity_key]: i.feeds
            if i.action == "new"
            else frozenset(feeds_of((k for k, _ in i.sources), (k for k, _ in i.tags)))
            for i in upserts
        }
        have: dict[int, set[str]] = defaultdict(set)
        known = sorted(pk_of[i.identity_key] for i in upserts if i.action != "new")
        for chunk in _chunks(known):
            marks = self._in(len(chunk))
            for table in ("feed_members", "feed_joins"):
                for pk, feed in self._query(
                    f"SELECT entry_pk, feed_key FROM {table} WHERE entry_pk IN ({marks})", chunk
                ):
                    have[pk].add(feed)
        left = sorted((pk, f) for pk, feeds in have.items() for f in feeds - want[pk])
        for table in ("feed_members", "feed_joins"):
            self._many(f"DELETE FROM {table} WHERE entry_pk = ? AND feed_key = ?", left)
        self._many(
            "INSERT INTO feed_joins (feed_key, entry_pk) VALUES (?, ?)",
            sorted((f, pk) for pk, feeds in want.items() for f in feeds - have[pk]),
        )

    def _upsert_entries(
        self, upserts: Sequence[EntryIntent], now: datetime, revision: int
    ) -> dict[str, int]:
        """Write entries and their tag and source links; returns identity key -> entry pk."""
        t = self.store.to_db_time
        first_seen = t(now)
        self._many(
            "INSERT INTO entries (identity_key, entry_id, version_id, source_key, source_name, "
            "published, updated, content_hash, first_seen_at, changed_revision) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (identity_key) DO UPDATE SET version_id = excluded.version_id, "
            "source_key = excluded.source_key, source_name = excluded.source_name, "
            "published = excluded.published, updated = excluded.updated, "
            "content_hash = excluded.content_hash, changed_revision = excluded.changed_revision",
            [
                (
                    i.identity_key, i.entry_id, i.version_id, i.source_key, i.source_name,
                    t(i.published), t(i.updated), i.content_hash, first_seen, revision,
                )
                for i in upserts
            ],
        )  # fmt: skip
        pk_of: dict[str, int] = {}
        keys = [i.identity_key for i in upserts]
        for chunk in _chunks(keys):
            pk_of.update(
                (key, pk)
                for pk, key in self._query(
                    f"SELECT id, identity_key FROM entries WHERE identity_key IN "
                    f"({self._in(len(chunk))})",
                    chunk,
                )
            )
        self._unlink([pk_of[i.identity_key] for i in upserts if i.action != "new"])
        tag_rows: list[tuple[Any, ...]] = []
        source_rows: list[tuple[Any, ...]] = []
        for i in upserts:
            pk, published = pk_of[i.identity_key], t(i.published)
            tag_rows.extend((k, pk, n, published) for n, (k, _) in enumerate(i.tags))
            source_rows.extend((k, pk, published) for k, _ in i.sources)
        self._many(
            "INSERT INTO entry_tags (tag_key, entry_pk, position, published) VALUES (?, ?, ?, ?)",
            tag_rows,
        )
        self._many(
            "INSERT INTO entry_sources (source_key, entry_pk, published) VALUES (?, ?, ?)",
            source_rows,
        )
        self._names("tags", (tag for i in upserts for tag in i.tags))
        self._names("sources", (src for i in upserts for src in i.sources))
        return pk_of

    def _names(self, table: str, pairs: Iterable[Tag]) -> None:
        """Record display names; the first spelling seen of a key is kept."""
        first: dict[str, str] = {}
        for key, display in pairs:
            first.setdefault(key, display)
        self._many(
            f"INSERT INTO {table} (key, display) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
            list(first.items()),
        )
