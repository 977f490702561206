"""Stage 4: the store (owns SQLAlchemy). SQLite by default, PostgreSQL by URL; same code.

The store owns all SQL and hands back domain types (`aggregator.types`), never rows. Writes
happen in `Store.transaction()`, one per batch, so a crash at any moment leaves either the whole
batch or none of it, and the next run completes the work. On SQLite every write transaction is
`BEGIN IMMEDIATE` (deferred transactions lose to "database is locked" under concurrent writers).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Engine,
    Table,
    and_,
    create_engine,
    delete,
    event,
    func,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from aggregator.errors import StoreError
from aggregator.store import migrate
from aggregator.store.models import (
    SCHEMA_REVISION,
    CounterRow,
    EntryRow,
    EntrySourceRow,
    EntryTagRow,
    FeedStateRow,
    InputRow,
    PendingRow,
    SourceRow,
    TagRow,
    UTCDateTime,
    VersionRow,
)
from aggregator.types import EntryIntent, FeedItem, StoredEntry, StoredVersion, Tag, Version

CHUNK = 500  # identity keys per IN (...) list: far below every backend's parameter limit

versions_t = cast(Table, VersionRow.__table__)
entries_t = cast(Table, EntryRow.__table__)
entry_tags_t = cast(Table, EntryTagRow.__table__)
entry_sources_t = cast(Table, EntrySourceRow.__table__)
tags_t = cast(Table, TagRow.__table__)
sources_t = cast(Table, SourceRow.__table__)
feed_state_t = cast(Table, FeedStateRow.__table__)
counters_t = cast(Table, CounterRow.__table__)
inputs_t = cast(Table, InputRow.__table__)
pending_t = cast(Table, PendingRow.__table__)

_UTC = UTCDateTime()


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _one_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return " ".join(str(orig).split())[:300]


def describe_url(url: str) -> str:
    """The database URL without its password, for messages."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(database)"


class Store:
    """A database holding inputs, copies (versions), entries, tags and feed revisions."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.dialect = engine.dialect.name

    # ---- opening ------------------------------------------------------------------------

    @classmethod
    def open(cls, url: str, *, upgrade: bool = True) -> Store:
        """Connect, and create or upgrade the schema when `upgrade` (the default)."""
        try:
            engine = _make_engine(url)
        except (NoSuchModuleError, ValueError, SQLAlchemyError) as exc:
            raise StoreError(f"{describe_url(url)}: not a usable database URL ({exc})") from None
        store = cls(engine)
        try:
            current = store.schema_revision()
            if current != SCHEMA_REVISION:
                if not upgrade:
                    raise StoreError(
                        f"{describe_url(url)}: database schema is {current or 'empty'}, "
                        f"expected {SCHEMA_REVISION}; run `aggregator db upgrade`"
                    )
                migrate.upgrade(engine)
        except DBAPIError as exc:
            engine.dispose()
            raise StoreError(
                f"{describe_url(url)}: database unreachable ({_one_line(exc)})"
            ) from None
        return store

    def schema_revision(self) -> str | None:
        with self.engine.connect() as conn:
            try:
                row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
            except DBAPIError:
                conn.rollback()
                return None
            return row[0] if row else None

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- transactions -------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Batch]:
        """One write transaction: everything inside commits together or not at all."""
        try:
            with self.engine.begin() as conn:
                yield Batch(self, conn)
        except DBAPIError as exc:
            raise StoreError(f"database error ({_one_line(exc)})") from None

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        try:
            with self.engine.connect().execution_options(readonly=True) as conn:
                yield conn
        except DBAPIError as exc:
            raise StoreError(f"database error ({_one_line(exc)})") from None

    def insert(self, table: Any) -> Any:
        """A dialect-specific INSERT supporting ON CONFLICT (SQLite and PostgreSQL share it)."""
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table)
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)

    # ---- inputs -------------------------------------------------------------------------

    def ensure_input(self, name: str, kind: str, location: str, now: datetime) -> int:
        """The id of the input called `name`, created (or its location updated) as needed."""
        with self.transaction() as tx:
            row = tx.conn.execute(
                select(inputs_t.c.id, inputs_t.c.kind, inputs_t.c.location).where(
                    inputs_t.c.name == name
                )
            ).first()
            if row is None:
                return int(
                    tx.conn.execute(
                        inputs_t.insert()
                        .values(
                            name=name, kind=kind, location=location, created_at=now, error_count=0
                        )
                        .returning(inputs_t.c.id)
                    ).scalar_one()
                )
            if (row.kind, row.location) != (kind, location):
                tx.conn.execute(
                    update(inputs_t)
                    .where(inputs_t.c.id == row.id)
                    .values(kind=kind, location=location)
                )
            return int(row.id)

    def record_run(
        self, input_id: int, *, now: datetime, ok: bool, error: str | None = None
    ) -> None:
        """Remember the outcome of running an input (its state lives here, not in memory)."""
        values: dict[str, Any] = {"last_attempt_at": now, "status": "ok" if ok else "error"}
        if ok:
            values.update(last_success_at=now, error_count=0, last_error=None)
        else:
            values.update(error_count=inputs_t.c.error_count + 1, last_error=error)
        with self.transaction() as tx:
            tx.conn.execute(update(inputs_t).where(inputs_t.c.id == input_id).values(**values))

    def known_files(self, input_id: int) -> dict[str, tuple[int, str, str]]:
        """locator -> (version id, signature, identity key) for every stored copy of an input."""
        with self.reading() as conn:
            rows = conn.execute(
                select(
                    versions_t.c.locator,
                    versions_t.c.id,
                    versions_t.c.signature,
                    versions_t.c.identity_key,
                ).where(versions_t.c.input_id == input_id)
            )
            return {r[0]: (r[1], r[2], r[3]) for r in rows}

    # ---- publishing reads ---------------------------------------------------------------

    def feed_revisions(self) -> dict[str, int]:
        with self.reading() as conn:
            return dict(
                conn.execute(select(feed_state_t.c.feed_key, feed_state_t.c.revision)).all()
            )

    def revision(self) -> int:
        with self.reading() as conn:
            value = conn.execute(
                select(counters_t.c.value).where(counters_t.c.name == "revision")
            ).scalar()
            return int(value or 0)

    def feed_counts(self) -> dict[str, tuple[str, int]]:
        """feed key -> (display name, number of entries) for every non-empty feed."""
        out: dict[str, tuple[str, int]] = {}
        with self.reading() as conn:
            total = conn.execute(select(func.count()).select_from(entries_t)).scalar_one()
            if total:
                out["all"] = ("", int(total))
            for prefix, link_t, names_t, col in (
                ("source:", entry_sources_t, sources_t, "source_key"),
                ("tag:", entry_tags_t, tags_t, "tag_key"),
            ):
                key = link_t.c[col]
                rows = conn.execute(
                    select(key, names_t.c.display, func.count())
                    .join(names_t, names_t.c.key == key)
                    .group_by(key, names_t.c.display)
                )
                for k, display, count in rows:
                    out[prefix + k] = (display, int(count))
        return out

    def feed_items(self, feed_key: str, limit: int) -> list[FeedItem]:
        """The newest `limit` entries of a feed (published desc, then id), ready to render."""
        e, v = entries_t, versions_t
        query = select(
            e.c.id, e.c.entry_id, e.c.published, e.c.updated, e.c.source_name,
            v.c.title, v.c.link, v.c.author, v.c.summary, v.c.content, v.c.image, v.c.language,
        ).join(v, v.c.id == e.c.version_id)  # fmt: skip
        if feed_key.startswith("tag:"):
            link_t, col = entry_tags_t, entry_tags_t.c.tag_key
        elif feed_key.startswith("source:"):
            link_t, col = entry_sources_t, entry_sources_t.c.source_key
        else:
            link_t = None
        if link_t is not None:
            key = feed_key.split(":", 1)[1]
            query = query.join(link_t, and_(link_t.c.entry_pk == e.c.id, col == key)).order_by(
                link_t.c.published.desc(), e.c.entry_id
            )
        else:
            query = query.order_by(e.c.published.desc(), e.c.entry_id)
        with self.reading() as conn:
            rows = conn.execute(query.limit(limit)).all()
            cats: dict[int, list[str]] = defaultdict(list)
            pks = [r.id for r in rows]
            if pks:
                for pk, display in conn.execute(
                    select(entry_tags_t.c.entry_pk, tags_t.c.display)
                    .join(tags_t, tags_t.c.key == entry_tags_t.c.tag_key)
                    .where(entry_tags_t.c.entry_pk.in_(pks))
                    .order_by(entry_tags_t.c.entry_pk, entry_tags_t.c.position)
                ):
                    cats[pk].append(display)
        return [
            FeedItem(
                entry_id=r.entry_id,
                title=r.title,
                link=r.link,
                published=r.published,
                updated=r.updated,
                author=r.author,
                source_name=r.source_name,
                categories=tuple(cats[r.id]),
                summary=r.summary,
                content=r.content,
                image=r.image,
                language=r.language,
            )
            for r in rows
        ]

    def pending_count(self) -> int:
        with self.reading() as conn:
            return int(conn.execute(select(func.count()).select_from(pending_t)).scalar_one())

    def entry_count(self) -> int:
        with self.reading() as conn:
            return int(conn.execute(select(func.count()).select_from(entries_t)).scalar_one())


class Batch:
    """The operations of one write transaction (see `Store.transaction`)."""

    def __init__(self, store: Store, conn: Connection):
        self.store = store
        self.conn = conn

    def put_versions(self, input_id: int, versions: Sequence[Version], now: datetime) -> None:
        """Insert or replace copies, keyed by (input, locator)."""
        if not versions:
            return
        rows = [
            {
                "input_id": input_id,
                "locator": v.locator,
                "signature": v.signature,
                "identity_key": v.identity_key,
                "title": v.title,
                "link": v.link,
                "published": v.published,
                "declared_updated": v.declared_updated,
                "author": v.author,
                "source_key": v.source_key,
                "source_name": v.source_name,
                "tags": json.dumps(v.tags, ensure_ascii=False),
                "image": v.image,
                "language": v.language,
                "content": v.content,
                "summary": v.summary,
                "body_hash": v.body_hash,
                "mtime_ns": v.mtime_ns,
                "seen_at": now,
            }
            for v in versions
        ]
        stmt = self.store.insert(versions_t)
        stmt = stmt.on_conflict_do_update(
            index_elements=["input_id", "locator"],
            set_={c: stmt.excluded[c] for c in rows[0] if c not in ("input_id", "locator")},
        )
        self.conn.execute(stmt, rows)

    def delete_versions(self, version_ids: Sequence[int]) -> None:
        for chunk in _chunks(list(version_ids)):
            self.conn.execute(delete(versions_t).where(versions_t.c.id.in_(chunk)))

    def mark_pending(self, keys: Iterable[str]) -> None:
        """Remember that the entries of these identity keys must be decided again."""
        rows = [{"identity_key": k} for k in sorted(set(keys))]
        if rows:
            stmt = self.store.insert(pending_t).on_conflict_do_nothing(
                index_elements=["identity_key"]
            )
            self.conn.execute(stmt, rows)

    def take_pending(self, limit: int) -> list[str]:
        """Up to `limit` pending keys, in key order (locked against other writers on PostgreSQL,
        which skip them)."""
        query = select(pending_t.c.identity_key).order_by(pending_t.c.identity_key).limit(limit)
        if self.store.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        return list(self.conn.execute(query).scalars())

    def clear_pending(self, keys: Sequence[str]) -> None:
        for chunk in _chunks(list(keys)):
            self.conn.execute(delete(pending_t).where(pending_t.c.identity_key.in_(chunk)))

    def decision_state(
        self, keys: Iterable[str]
    ) -> tuple[dict[str, list[StoredVersion]], dict[str, StoredEntry]]:
        """Every stored copy and the stored entry of each identity key, for `decide`."""
        keys = sorted(set(keys))
        versions: dict[str, list[StoredVersion]] = defaultdict(list)
        entries: dict[str, StoredEntry] = {}
        v = versions_t
        for chunk in _chunks(keys):
            for r in self.conn.execute(
                select(
                    v.c.id, v.c.identity_key, v.c.published, v.c.declared_updated, v.c.mtime_ns,
                    v.c.locator, v.c.body_hash, v.c.source_key, v.c.source_name, v.c.tags,
                ).where(v.c.identity_key.in_(chunk))
            ):  # fmt: skip
                versions[r.identity_key].append(
                    StoredVersion(
                        version_id=r.id,
                        identity_key=r.identity_key,
                        published=r.published,
                        declared_updated=r.declared_updated,
                        mtime_ns=r.mtime_ns,
                        locator=r.locator,
                        body_hash=r.body_hash,
                        source_key=r.source_key,
                        source_name=r.source_name,
                        tags=tuple((k, d) for k, d in json.loads(r.tags)),
                    )
                )
            rows = self.conn.execute(
                select(
                    entries_t.c.id, entries_t.c.identity_key, entries_t.c.version_id,
                    entries_t.c.content_hash, entries_t.c.published, entries_t.c.updated,
                    entries_t.c.source_key,
                ).where(entries_t.c.identity_key.in_(chunk))
            ).all()  # fmt: skip
            if not rows:
                continue
            pks = [r.id for r in rows]
            tag_keys: dict[int, set[str]] = defaultdict(set)
            source_keys: dict[int, set[str]] = defaultdict(set)
            for pk, key in self.conn.execute(
                select(entry_tags_t.c.entry_pk, entry_tags_t.c.tag_key).where(
                    entry_tags_t.c.entry_pk.in_(pks)
                )
            ):
                tag_keys[pk].add(key)
            for pk, key in self.conn.execute(
                select(entry_sources_t.c.entry_pk, entry_sources_t.c.source_key).where(
                    entry_sources_t.c.entry_pk.in_(pks)
                )
            ):
                source_keys[pk].add(key)
            for e in rows:
                entries[e.identity_key] = StoredEntry(
                    entry_pk=e.id,
                    identity_key=e.identity_key,
                    version_id=e.version_id,
                    content_hash=e.content_hash,
                    published=e.published,
                    updated=e.updated,
                    source_key=e.source_key,
                    tag_keys=frozenset(tag_keys[e.id]),
                    source_keys=frozenset(source_keys[e.id]),
                )
        return dict(versions), entries

    def apply(self, intents: Sequence[EntryIntent], now: datetime) -> int | None:
        """Write decided entries; returns the new store revision, or None when nothing changed."""
        changing = [i for i in intents if i.action != "unchanged"]
        if not changing:
            return None
        revision = self._bump_revision()
        removed = [i.identity_key for i in changing if i.action == "removed"]
        upserts = [i for i in changing if i.action != "removed"]
        for chunk in _chunks(removed):
            pks = select(entries_t.c.id).where(entries_t.c.identity_key.in_(chunk))
            self.conn.execute(delete(entry_tags_t).where(entry_tags_t.c.entry_pk.in_(pks)))
            self.conn.execute(delete(entry_sources_t).where(entry_sources_t.c.entry_pk.in_(pks)))
            self.conn.execute(delete(entries_t).where(entries_t.c.identity_key.in_(chunk)))
        if upserts:
            self._upsert_entries(upserts, now)
        feeds = sorted({f for i in changing for f in i.feeds})
        if feeds:
            stmt = self.store.insert(feed_state_t)
            self.conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["feed_key"], set_={"revision": stmt.excluded.revision}
                ),
                [{"feed_key": f, "revision": revision} for f in feeds],
            )
        return revision

    def _bump_revision(self) -> int:
        stmt = self.store.insert(counters_t)
        stmt = stmt.on_conflict_do_update(
            index_elements=["name"], set_={"value": counters_t.c.value + 1}
        ).returning(counters_t.c.value)
        return int(self.conn.execute(stmt, {"name": "revision", "value": 1}).scalar_one())

    def _upsert_entries(self, upserts: Sequence[EntryIntent], now: datetime) -> None:
        stmt = self.store.insert(entries_t)
        stmt = stmt.on_conflict_do_update(
            index_elements=["identity_key"],
            set_={
                c: stmt.excluded[c]
                for c in (
                    "version_id",
                    "source_key",
                    "source_name",
                    "published",
                    "updated",
                    "content_hash",
                )
            },
        ).returning(entries_t.c.id, entries_t.c.identity_key)
        pk_of: dict[str, int] = {}
        for chunk in _chunks(upserts):
            result = self.conn.execute(
                stmt,
                [
                    {
                        "identity_key": i.identity_key,
                        "entry_id": i.entry_id,
                        "version_id": i.version_id,
                        "source_key": i.source_key,
                        "source_name": i.source_name,
                        "published": i.published,
                        "updated": i.updated,
                        "content_hash": i.content_hash,
                        "first_seen_at": now,
                    }
                    for i in chunk
                ],
            )
            pk_of.update((key, pk) for pk, key in result)
        old = [pk_of[i.identity_key] for i in upserts if i.action != "new"]
        for chunk in _chunks(old):
            self.conn.execute(delete(entry_tags_t).where(entry_tags_t.c.entry_pk.in_(chunk)))
            self.conn.execute(delete(entry_sources_t).where(entry_sources_t.c.entry_pk.in_(chunk)))
        tag_rows = [
            {
                "tag_key": k,
                "entry_pk": pk_of[i.identity_key],
                "position": n,
                "published": i.published,
            }
            for i in upserts
            for n, (k, _) in enumerate(i.tags)
        ]
        source_rows = [
            {"source_key": k, "entry_pk": pk_of[i.identity_key], "published": i.published}
            for i in upserts
            for k, _ in i.sources
        ]
        if tag_rows:
            self.conn.execute(entry_tags_t.insert(), tag_rows)
        if source_rows:
            self.conn.execute(entry_sources_t.insert(), source_rows)
        self._names(tags_t, (t for i in upserts for t in i.tags))
        self._names(sources_t, (s for i in upserts for s in i.sources))

    def _names(self, table: Any, pairs: Iterable[Tag]) -> None:
        """Record display names; the first spelling seen of a key is kept."""
        first: dict[str, str] = {}
        for key, display in pairs:
            first.setdefault(key, display)
        if first:
            stmt = self.store.insert(table).on_conflict_do_nothing(index_elements=["key"])
            self.conn.execute(stmt, [{"key": k, "display": d} for k, d in first.items()])


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and not path.startswith(":memory:"):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, poolclass=NullPool, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            readonly = conn.get_execution_options().get("readonly")
            conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

        return engine
    if url.startswith(("postgresql", "postgres")):
        if url.startswith("postgres://"):
            url = "postgresql://" + url[len("postgres://") :]
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://") :]
        return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 10})
    return create_engine(url)
