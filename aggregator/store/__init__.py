"""Stage 4: the store (owns SQLAlchemy). SQLite by default, PostgreSQL by URL; same code.

The store owns all SQL and hands back domain types (`aggregator.types`), never rows. Writes
happen in `Store.transaction()`, one per batch, so a crash at any moment leaves either the whole
batch or none of it, and the next run completes the work. On SQLite every write transaction is
`BEGIN IMMEDIATE` (deferred transactions lose to "database is locked" under concurrent writers).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple, cast

from sqlalchemy import (
    Connection,
    Engine,
    Table,
    create_engine,
    event,
    func,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import SingletonThreadPool

from aggregator.due import FetchState
from aggregator.errors import StoreError
from aggregator.store import migrate
from aggregator.store.batch import Batch, _chunks, decode_enclosures, encode_tags
from aggregator.store.models import (
    SCHEMA_REVISION,
    CounterRow,
    EntryRow,
    EntrySourceRow,
    EntryTagRow,
    FeedMemberRow,
    FeedStateRow,
    InputRow,
    OriginPageRow,
    PendingRow,
    SourceRow,
    TagRow,
    VersionRow,
)
from aggregator.types import FeedItem, OriginTarget, Version, is_mark


class KnownCopy(NamedTuple):
    """A stored copy, as far as reading its file or item again needs to know."""

    version_id: int
    identity_key: str
    shown: tuple[Any, ...]
    """What readers see of it (body hash, tags, source, dates): when reading the file again
    gives the same (`Store.shown_of`), the copy did not change, only its file's time did."""


class ItemRef(NamedTuple):
    """An entry as a document lists it, without its body."""

    pk: int
    entry_id: str
    updated: datetime
    changed: int
    """The store revision that last wrote the entry (0: before schema 0003)."""


versions_t = cast(Table, VersionRow.__table__)
entries_t = cast(Table, EntryRow.__table__)
entry_tags_t = cast(Table, EntryTagRow.__table__)
entry_sources_t = cast(Table, EntrySourceRow.__table__)
tags_t = cast(Table, TagRow.__table__)
sources_t = cast(Table, SourceRow.__table__)
feed_state_t = cast(Table, FeedStateRow.__table__)
feed_members_t = cast(Table, FeedMemberRow.__table__)
counters_t = cast(Table, CounterRow.__table__)
inputs_t = cast(Table, InputRow.__table__)
pending_t = cast(Table, PendingRow.__table__)
origin_pages_t = cast(Table, OriginPageRow.__table__)


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
        self.placeholder = "?" if self.dialect == "sqlite" else "%s"
        """The driver's parameter marker, for the plain-SQL paths."""

    # Datetimes as the driver takes and gives them, for the plain-SQL paths (see `Batch`); the
    # same conversions `UTCDateTime` does for SQLAlchemy statements, in SQLAlchemy's SQLite text
    # format, so both paths read and sort each other's values.
    def to_db_time(self, value: datetime | None) -> Any:
        if value is None:
            return None
        value = value.astimezone(UTC)
        if self.dialect == "sqlite":
            return value.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
        return value

    def from_db_time(self, value: Any) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    # ---- opening ------------------------------------------------------------------------

    @classmethod
    def open(cls, url: str, *, upgrade: bool = True) -> Store:
        """Connect, and create or upgrade the schema when `upgrade` (the default)."""
        try:
            engine = _make_engine(url)
        except (NoSuchModuleError, ImportError, ValueError, SQLAlchemyError) as exc:
            raise StoreError(f"{describe_url(url)}: not a usable database URL ({exc})") from None
        store = cls(engine)
        try:
            current = store.schema_revision()
            if current not in (None, SCHEMA_REVISION) and current not in migrate.known():
                raise StoreError(
                    f"{describe_url(url)}: database schema {current} is newer than this "
                    f"aggregator knows ({SCHEMA_REVISION}); upgrade aggregator"
                )
            if current != SCHEMA_REVISION:
                if not upgrade:
                    raise StoreError(
                        f"{describe_url(url)}: database schema is {current or 'empty'}, "
                        f"expected {SCHEMA_REVISION}; run `aggregator db upgrade`"
                    )
                if current is not None or not migrate.create(engine):
                    migrate.upgrade(engine)
        except DBAPIError as exc:
            engine.dispose()
            raise StoreError(
                f"{describe_url(url)}: database unreachable ({_one_line(exc)})"
            ) from None
        except StoreError:
            engine.dispose()
            raise
        return store

    @property
    def shared_across_threads(self) -> bool:
        """Whether every thread sees the same database. Not so for an in-memory SQLite
        database (`sqlite://`): SQLAlchemy gives each thread a connection, hence a database, of
        its own, so everything must be done from one thread."""
        return not isinstance(self.engine.pool, SingletonThreadPool)

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

    # ---- inputs -------------------------------------------------------------------------

    def ensure_input(self, name: str, kind: str, location: str, now: datetime) -> int:
        """The id of the input called `name`, created (or its location updated) as needed."""
        return self.ensure_inputs([(name, kind, location)], now)[name]

    def ensure_inputs(self, specs: Sequence[tuple[str, str, str]], now: datetime) -> dict[str, int]:
        """Ids of the inputs (name, kind, location), created as needed, in one transaction.

        An input whose configured location changed starts afresh: its moved URL, validators,
        errors and retirement belonged to the old location.
        """
        out: dict[str, int] = {}
        with self.transaction() as tx:
            rows = {
                r.name: r
                for r in tx.conn.execute(
                    select(inputs_t.c.id, inputs_t.c.name, inputs_t.c.kind, inputs_t.c.location)
                )
            }
            for name, kind, location in specs:
                row = rows.get(name)
                if row is None:
                    out[name] = int(
                        tx.conn.execute(
                            inputs_t.insert()
                            .values(
                                name=name,
                                kind=kind,
                                location=location,
                                created_at=now,
                                error_count=0,
                            )
                            .returning(inputs_t.c.id)
                        ).scalar_one()
                    )
                    continue
                out[name] = int(row.id)
                if (row.kind, row.location) != (kind, location):
                    tx.conn.execute(
                        update(inputs_t)
                        .where(inputs_t.c.id == row.id)
                        .values(
                            kind=kind,
                            location=location,
                            url=None,
                            etag=None,
                            last_modified=None,
                            error_count=0,
                            last_error=None,
                            next_due_at=None,
                            moved_to=None,
                            moved_since=None,
                            moved_count=None,
                            retired_at=None,
                        )
                    )
        return out

    def fetch_states(self, input_ids: Sequence[int]) -> dict[int, FetchState]:
        """The stored fetch state of these inputs."""
        i = inputs_t
        out: dict[int, FetchState] = {}
        with self.reading() as conn:
            for chunk in _chunks(list(input_ids)):
                for r in conn.execute(select(i).where(i.c.id.in_(chunk))):
                    out[r.id] = FetchState(
                        input_id=r.id,
                        location=r.location,
                        url=r.url,
                        etag=r.etag,
                        last_modified=r.last_modified,
                        error_count=r.error_count or 0,
                        next_due_at=r.next_due_at,
                        moved_to=r.moved_to,
                        moved_since=r.moved_since,
                        moved_count=r.moved_count or 0,
                        retired_at=r.retired_at,
                        last_error=r.last_error,
                        read_settings=r.read_settings,
                    )
        return out

    def origin_targets(self, now: datetime, limit: int) -> list[OriginTarget]:
        """Entries with an original URL whose page is due for a check, newest first."""
        ph = self.placeholder
        sql = (
            "SELECT e.identity_key, v.link, e.published, e.updated, e.source_key, "
            "e.source_name, v.title, v.content, v.locator, i.kind, i.location, "
            "o.etag, o.last_modified, o.error_count, o.removed_at, v.declared_updated "
            "FROM entries e JOIN versions v ON v.id = e.version_id "
            "JOIN inputs i ON i.id = v.input_id "
            "LEFT JOIN origin_pages o ON o.url = v.link "
            f"WHERE v.link IS NOT NULL AND (o.url IS NULL OR o.next_check_at <= {ph}) "
            f"ORDER BY e.published DESC, e.entry_id LIMIT {ph}"
        )
        f = self.from_db_time
        with self.reading() as conn:
            rows = conn.exec_driver_sql(sql, (self.to_db_time(now), limit)).all()
        return [
            OriginTarget(
                identity_key=r[0],
                url=r[1],
                published=cast(datetime, f(r[2])),
                updated=cast(datetime, f(r[3])),
                source_key=r[4],
                source_name=r[5],
                title=r[6],
                content=r[7],
                body_path=str(Path(r[10]) / r[8]) if r[9] == "files" else None,
                winner_kind=r[9],
                etag=r[11],
                last_modified=r[12],
                error_count=r[13] or 0,
                removed_at=f(r[14]),
                declared_updated=f(r[15]),
            )
            for r in rows
        ]

    def input_rows(self) -> list[dict[str, Any]]:
        """Every stored input with its state, for `aggregator inputs`."""
        with self.reading() as conn:
            rows = conn.execute(select(inputs_t).order_by(inputs_t.c.name)).mappings().all()
        return [dict(r) for r in rows]

    def record_run(
        self,
        input_id: int,
        *,
        now: datetime,
        ok: bool,
        error: str | None = None,
        next_due: datetime | None = None,
        read_settings: str | None = None,
    ) -> None:
        """Remember the outcome of running an input (its state lives here, not in memory);
        `read_settings`, when given, is what its copies are now read under."""
        values: dict[str, Any] = {
            "last_attempt_at": now,
            "status": "ok" if ok else "error",
            "next_due_at": next_due,
        }
        if read_settings is not None:
            values["read_settings"] = read_settings
        if ok:
            values.update(last_success_at=now, error_count=0, last_error=None)
        else:
            values.update(error_count=inputs_t.c.error_count + 1, last_error=error)
        with self.transaction() as tx:
            tx.conn.execute(update(inputs_t).where(inputs_t.c.id == input_id).values(**values))

    # ---- leases: which process runs an input now -----------------------------------------

    def claim(
        self,
        input_ids: Sequence[int],
        owner: str,
        now: datetime,
        until: datetime,
        *,
        stale_owner: str | None = None,
    ) -> set[int]:
        """Claim these inputs for `owner` until `until`; returns the ids now held by `owner`.

        An input is free when nobody holds it, its holder's lease ran out (a process that died
        frees its inputs this way) or its holder is `stale_owner`. Claims are conditional
        UPDATEs (one per few hundred inputs, returning the rows they changed), which both SQLite
        and PostgreSQL apply atomically, row by row: of two processes claiming one input,
        exactly one wins.
        """
        i = inputs_t
        free = (i.c.lease_owner.is_(None)) | (i.c.lease_until < now) | (i.c.lease_owner == owner)
        if stale_owner is not None:
            free = free | (i.c.lease_owner == stale_owner)
        held: set[int] = set()
        with self.transaction() as tx:
            # in id order, as every claimer does: PostgreSQL locks the rows of one statement in
            # the order it finds them, and two claimers locking in different orders deadlock
            for chunk in _chunks(sorted(set(input_ids))):
                claimed = tx.conn.execute(
                    update(i)
                    .where(i.c.id.in_(chunk), free)
                    .values(lease_owner=owner, lease_until=until)
                    .returning(i.c.id)
                )
                held.update(claimed.scalars())
        return held

    def renew(self, input_ids: Sequence[int], owner: str, until: datetime) -> None:
        """Extend the leases `owner` still holds on these inputs."""
        self._own_leases(input_ids, owner, lease_until=until)

    def release(self, input_ids: Sequence[int], owner: str) -> None:
        """Give up `owner`'s leases on these inputs."""
        self._own_leases(input_ids, owner, lease_owner=None, lease_until=None)

    def _own_leases(self, input_ids: Sequence[int], owner: str, **values: Any) -> None:
        """Change the leases `owner` holds on these inputs (others' are left alone)."""
        i = inputs_t
        with self.transaction() as tx:
            for chunk in _chunks(list(input_ids)):
                tx.conn.execute(
                    update(i).where(i.c.id.in_(chunk), i.c.lease_owner == owner).values(**values)
                )

    def lease_holders(self, input_ids: Sequence[int], now: datetime) -> dict[int, str]:
        """id -> owner of those inputs someone holds a live lease on."""
        i = inputs_t
        out: dict[int, str] = {}
        with self.reading() as conn:
            for chunk in _chunks(list(input_ids)):
                for r in conn.execute(
                    select(i.c.id, i.c.lease_owner).where(
                        i.c.id.in_(chunk), i.c.lease_owner.is_not(None), i.c.lease_until >= now
                    )
                ):
                    out[r.id] = r.lease_owner
        return out

    def input_copies(self) -> dict[int, int]:
        """input id -> how many copies it has in the store."""
        with self.reading() as conn:
            rows = conn.exec_driver_sql("SELECT input_id, COUNT(*) FROM versions GROUP BY input_id")
            return {int(i): int(n) for i, n in rows}

    def remove_inputs(self, input_ids: Sequence[int], now: datetime) -> list[int]:
        """Forget these inputs and their copies, in one transaction, but for those another
        process holds a live lease on (`leases.live_holder`); the entries the copies belonged
        to are pending (to be decided again: removed when no copy is left). Returns the ids
        removed.

        The input's row is locked first (SQLite: the whole database, from BEGIN IMMEDIATE),
        so no process can claim it between the lease check and the deletion."""
        from aggregator.leases import live_holder  # leases is built on this module

        ph = self.placeholder
        lock = " FOR UPDATE" if self.dialect == "postgresql" else ""
        removed: list[int] = []
        with self.transaction() as tx:
            for input_id in input_ids:
                row = tx.conn.exec_driver_sql(
                    f"SELECT lease_owner, lease_until FROM inputs WHERE id = {ph}{lock}",
                    (input_id,),
                ).first()
                if row is None:
                    continue
                if live_holder(row[0], self.from_db_time(row[1]), now) is not None:
                    continue
                rows = tx.conn.exec_driver_sql(
                    f"SELECT id, identity_key FROM versions WHERE input_id = {ph}", (input_id,)
                ).all()
                tx.delete_versions([r[0] for r in rows])
                tx.mark_pending({r[1] for r in rows})
                tx.conn.exec_driver_sql(f"DELETE FROM inputs WHERE id = {ph}", (input_id,))
                removed.append(input_id)
        return removed

    def known_signatures(self, input_id: int) -> dict[str, str]:
        """locator -> signature of every stored copy of an input (to find what changed)."""
        ph = self.placeholder
        with self.reading() as conn:
            return dict(
                conn.exec_driver_sql(
                    f"SELECT locator, signature FROM versions WHERE input_id = {ph}", (input_id,)
                ).all()
            )

    def read_settings(self, input_id: int) -> str | None:
        """What the input's copies were read under (see `record_run`); None when unknown."""
        with self.reading() as conn:
            value = conn.execute(
                select(inputs_t.c.read_settings).where(inputs_t.c.id == input_id)
            ).scalar_one_or_none()
        return None if value is None else str(value)

    def set_read_settings(self, input_id: int, key: str) -> None:
        """Record what the input's copies are read under from now on (see `record_run`)."""
        with self.transaction() as tx:
            tx.conn.execute(
                update(inputs_t).where(inputs_t.c.id == input_id).values(read_settings=key)
            )

    def recheck_origin_pages(self, now: datetime) -> int:
        """Make every original page due now and fetched whole (no validators): what was read
        from them under other settings is read again. Returns how many pages that is."""
        p = origin_pages_t
        with self.transaction() as tx:
            done = tx.conn.execute(
                update(p).values(etag=None, last_modified=None, next_check_at=now)
            )
        return int(done.rowcount or 0)

    def known_copies(self, input_id: int, locators: Sequence[str]) -> dict[str, KnownCopy]:
        """locator -> what is stored of these copies of an input (see `KnownCopy`)."""
        ph = self.placeholder
        out: dict[str, KnownCopy] = {}
        with self.reading() as conn:
            for chunk in _chunks(list(locators)):
                marks = ", ".join([ph] * len(chunk))
                for loc, vid, key, *shown in conn.exec_driver_sql(
                    "SELECT locator, id, identity_key, body_hash, tags, source_name, published, "
                    f"declared_updated FROM versions "
                    f"WHERE input_id = {ph} AND locator IN ({marks})",
                    (input_id, *chunk),
                ):
                    out[loc] = KnownCopy(vid, key, tuple(shown))
        return out

    def linked_copies(self, input_id: int) -> list[tuple[int, str, str, str]]:
        """(version id, locator, identity key, link) of an input's copies that have a link."""
        ph = self.placeholder
        with self.reading() as conn:
            rows = conn.exec_driver_sql(
                "SELECT id, locator, identity_key, link FROM versions "
                f"WHERE input_id = {ph} AND link IS NOT NULL",
                (input_id,),
            ).all()
        return [(int(r[0]), r[1], r[2], r[3]) for r in rows]

    def shown_of(self, v: Version) -> tuple[Any, ...]:
        """What `KnownCopy.shown` would hold for this copy once stored."""
        t = self.to_db_time
        return (
            v.body_hash,
            encode_tags(v.tags),
            v.source_name,
            t(v.published),
            t(v.declared_updated),
        )

    # ---- publishing reads ---------------------------------------------------------------

    def feed_revisions(self) -> dict[str, int]:
        with self.reading() as conn:
            return dict(
                conn.execute(select(feed_state_t.c.feed_key, feed_state_t.c.revision)).all()
            )

    def feed_states(self) -> dict[str, tuple[int, int]]:
        """feed key -> (revision of its last change, last place given in its archive)."""
        f = feed_state_t
        with self.reading() as conn:
            rows = conn.execute(select(f.c.feed_key, f.c.revision, f.c.last_seq)).all()
        return {key: (int(rev), int(last or 0)) for key, rev, last in rows}

    def revision(self) -> int:
        with self.reading() as conn:
            value = conn.execute(
                select(counters_t.c.value).where(counters_t.c.name == "revision")
            ).scalar()
            return int(value or 0)

    def feed_counts(self) -> dict[str, tuple[str, int]]:
        """feed key -> (display name, number of entries) for every non-empty feed (marks
        among the tags have no feed)."""
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
                    if prefix == "tag:" and is_mark(k):
                        continue
                    out[prefix + k] = (display, int(count))
        return out

    def feed_items(self, feed_key: str, limit: int) -> list[FeedItem]:
        """The newest `limit` entries of a feed (published desc, then id), ready to render."""
        return self._ready(self.feed_refs(feed_key, limit))

    def feed_refs(self, feed_key: str, limit: int) -> list[ItemRef]:
        """What `feed_items` lists, without reading the entries' bodies."""
        return self._refs(*self._newest_sql(_REF_COLUMNS, feed_key, limit))

    def archive_refs(self, feed_key: str, first: int, last: int) -> list[ItemRef]:
        """The entries placed `first`..`last` in a feed's archive (published desc, then id),
        without their bodies."""
        ph = self.placeholder
        sql = (
            f"SELECT {_REF_COLUMNS} FROM feed_members m JOIN entries e ON e.id = m.entry_pk "
            f"WHERE m.feed_key = {ph} AND m.seq >= {ph} AND m.seq <= {ph} "
            "ORDER BY e.published DESC, e.entry_id"
        )
        return self._refs(sql, (feed_key, first, last))

    def archive_items(self, feed_key: str, first: int, last: int) -> list[FeedItem]:
        """What `archive_refs` lists, ready to render."""
        return self._ready(self.archive_refs(feed_key, first, last))

    def items_by_pk(self, pks: Sequence[int]) -> dict[int, FeedItem]:
        """entry pk -> the entry, ready to render, for those of `pks` that exist."""
        out: dict[int, FeedItem] = {}
        for chunk in _chunks(list(pks)):
            out.update(self._item_rows(self._item_query().where(entries_t.c.id.in_(chunk))))
        return out

    def present_entries(self, pks: Sequence[int]) -> set[int]:
        """Those of these entry pks that are in the store."""
        found: set[int] = set()
        with self.reading() as conn:
            for chunk in _chunks(sorted(set(pks))):
                found.update(
                    pk
                    for (pk,) in conn.execute(
                        select(entries_t.c.id).where(entries_t.c.id.in_(chunk))
                    )
                )
        return found

    def places_of(self, pks: Sequence[int]) -> list[tuple[str, int]]:
        """(feed key, place in its archive) of every feed these entries are in."""
        out: list[tuple[str, int]] = []
        with self.reading() as conn:
            for chunk in _chunks(list(pks)):
                marks = ", ".join([self.placeholder] * len(chunk))
                out.extend(
                    (str(k), int(seq))
                    for k, seq in conn.exec_driver_sql(
                        f"SELECT feed_key, seq FROM feed_members WHERE entry_pk IN ({marks})",
                        tuple(chunk),
                    )
                )
        return out

    def entries_changed_since(self, revision: int | None) -> list[int]:
        """Pks of the entries written at a store revision after `revision` (None: all)."""
        query = select(entries_t.c.id)
        if revision is not None:
            query = query.where(func.coalesce(entries_t.c.changed_revision, 0) > revision)
        with self.reading() as conn:
            return [pk for (pk,) in conn.execute(query)]

    def _ready(self, refs: list[ItemRef]) -> list[FeedItem]:
        items = self.items_by_pk([r.pk for r in refs])
        return [items[r.pk] for r in refs if r.pk in items]

    # Plain SQL: publishing runs these for every document it renders, and building and
    # caching SQLAlchemy statements cost more than the queries (0.8 ms against 0.2 ms a call).
    def _refs(self, sql: str, params: tuple[Any, ...]) -> list[ItemRef]:
        t = self.from_db_time
        with self.reading() as conn:
            return [
                ItemRef(pk, eid, t(updated), int(rev))  # type: ignore[arg-type]
                for pk, eid, updated, rev in conn.exec_driver_sql(sql, params)
            ]

    def _newest_sql(self, columns: str, feed_key: str, limit: int) -> tuple[str, tuple[Any, ...]]:
        """A query of `columns` (over entries `e`) for a feed's newest `limit` entries,
        published desc, then id."""
        ph = self.placeholder
        if feed_key == "all":
            order = "ORDER BY e.published DESC, e.entry_id"
            return f"SELECT {columns} FROM entries e {order} LIMIT {ph}", (limit,)
        kind, _, key = feed_key.partition(":")
        table, col = ("entry_tags", "tag_key") if kind == "tag" else ("entry_sources", "source_key")
        sql = (
            f"SELECT {columns} FROM {table} l JOIN entries e ON e.id = l.entry_pk "
            f"WHERE l.{col} = {ph} ORDER BY l.published DESC, e.entry_id LIMIT {ph}"
        )
        return sql, (key, limit)

    def archive_digests(self, feed_key: str, page_size: int) -> dict[int, str]:
        """page number -> a summary of which entries hold that archive page's places, for
        every page that holds an entry (page n holds places (n-1)*page_size+1 .. n*page_size).

        Computed by the database from the feed's places alone: how many are taken, and the
        sums of the places and of the entries' pks (places are never reused, so an entry
        leaving or joining changes them). Changes to the entries themselves are told by
        `pages_written_since`.
        """
        size = int(page_size)  # a literal: PostgreSQL groups by the same expression only
        sql = (
            f"SELECT (seq - 1) / {size} + 1, COUNT(*), SUM(seq), SUM(entry_pk) FROM feed_members "
            f"WHERE feed_key = {self.placeholder} GROUP BY (seq - 1) / {size}"
        )
        with self.reading() as conn:
            rows = conn.exec_driver_sql(sql, (feed_key,)).all()
        return {int(page): ":".join(str(int(v)) for v in rest) for page, *rest in rows}

    def pages_written_since(self, revision: int, page_size: int) -> set[tuple[str, int]]:
        """(feed key, archive page) of every page holding an entry written at a store revision
        after `revision` (every write of an entry, whatever changed in it, gives it the
        store's next revision)."""
        # the few entries first, then their places (by the index on entry_pk)
        sql = (
            f"SELECT DISTINCT feed_key, (seq - 1) / {int(page_size)} + 1 FROM feed_members "
            "WHERE entry_pk IN (SELECT id FROM entries "
            f"WHERE COALESCE(changed_revision, 0) > {self.placeholder})"
        )
        with self.reading() as conn:
            return {(k, int(n)) for k, n in conn.exec_driver_sql(sql, (revision,))}

    def _item_query(self) -> Any:
        e, v, i = entries_t, versions_t, inputs_t
        return (
            select(
                e.c.id,
                e.c.entry_id,
                e.c.published,
                e.c.updated,
                e.c.source_name,
                v.c.title,
                v.c.link,
                v.c.author,
                v.c.summary,
                v.c.content,
                v.c.image,
                v.c.language,
                v.c.locator,
                v.c.enclosures,
                i.c.kind,
                i.c.location,
            )
            .join(v, v.c.id == e.c.version_id)
            .join(i, i.c.id == v.c.input_id)
        )

    def _item_rows(self, query: Any) -> list[tuple[int, FeedItem]]:
        """(entry pk, entry) for each row of `query` (an `_item_query`), in its order."""
        with self.reading() as conn:
            rows = conn.execute(query).all()
            cats: dict[int, list[str]] = defaultdict(list)
            pks = [r.id for r in rows]
            for chunk in _chunks(pks):
                for pk, display in conn.execute(
                    select(entry_tags_t.c.entry_pk, tags_t.c.display)
                    .join(tags_t, tags_t.c.key == entry_tags_t.c.tag_key)
                    .where(entry_tags_t.c.entry_pk.in_(chunk))
                    .order_by(entry_tags_t.c.entry_pk, entry_tags_t.c.position)
                ):
                    cats[pk].append(display)
        return [
            (
                r.id,
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
                    body_path=(
                        str(Path(r.location) / r.locator)
                        if r.content is None and r.kind == "files"
                        else None
                    ),
                    enclosures=decode_enclosures(r.enclosures),
                ),
            )
            for r in rows
        ]

    def feed_fingerprint(self, feed_key: str, limit: int) -> tuple[str, list[int]]:
        """A hash of what decides a feed's bytes besides bodies: its newest entries' ids,
        dates, sources and content hashes (a cheap query: no bodies are read); and those
        entries' pks."""
        columns = "e.id, e.entry_id, e.published, e.updated, e.content_hash, e.source_name"
        sql, params = self._newest_sql(columns, feed_key, limit)
        digest = hashlib.blake2b(digest_size=16)
        pks: list[int] = []
        with self.reading() as conn:
            for pk, entry_id, published, updated, chash, source in conn.exec_driver_sql(
                sql, params
            ):
                # dates as aware UTC, so every backend (and every daemon) gives the same hash
                dates = (self.from_db_time(published), self.from_db_time(updated))
                row = (entry_id, *(d.isoformat() if d else "" for d in dates), chash, source)
                digest.update("\x1f".join(row).encode("utf-8") + b"\x1e")
                pks.append(pk)
        return digest.hexdigest(), pks

    def pending_count(self) -> int:
        with self.reading() as conn:
            return int(conn.execute(select(func.count()).select_from(pending_t)).scalar_one())

    def entry_count(self) -> int:
        with self.reading() as conn:
            return int(conn.execute(select(func.count()).select_from(entries_t)).scalar_one())


_REF_COLUMNS = "e.id, e.entry_id, e.updated, COALESCE(e.changed_revision, 0)"
"""The columns of an `ItemRef`, for the plain-SQL paths."""


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and not path.startswith(":memory:"):
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"{path}: cannot create the database's folder ({exc.strerror})"
                ) from None
        # A pooled connection stays open between transactions: closing the last connection to a
        # WAL database checkpoints the whole log and fsyncs, which cost ~70 ms per batch.
        engine = create_engine(url, pool_size=2, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
            cur = dbapi_conn.cursor()
            # Pages of 16 KB, not 4 KB, for a new database (an existing one keeps its size):
            # copies hold whole articles, and SQLite writes, logs and checkpoints them a page
            # per system call. 25,000 copies of 15 KB: 2.2-3.2 s to store with 4 KB pages,
            # 1.4-1.9 s with 16 KB (system time 1.5-2.3 -> 0.6-1.1 s).
            cur.execute("PRAGMA page_size=16384")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            # Checkpoint the log every 64 MB instead of every 4 MB: each checkpoint fsyncs,
            # and a cold sync writes hundreds of MB (alternating runs: storing 500 feeds
            # 8.9 -> 8.2 s, deciding 100k posts 11.6 -> 10.7 s). After a checkpoint the log
            # file is cut back to 8 MB, so a daemon does not keep 64 MB of it on disk.
            cur.execute("PRAGMA wal_autocheckpoint=16384")
            cur.execute("PRAGMA journal_size_limit=8388608")
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
