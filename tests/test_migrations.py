"""Alembic's `upgrade head` builds exactly the schema the models describe, on both backends."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    inspect,
    text,
)

from aggregator.store import migrate
from aggregator.store.models import SCHEMA_REVISION, Base, UTCDateTime


def schema_diff(url: str, metadata: MetaData = Base.metadata) -> list[Any]:
    """Migrate the empty database at `url` to head, then list how it differs from `metadata`."""
    engine = create_engine(url)
    try:
        migrate.upgrade(engine)
        with engine.connect() as conn:
            # compare_type=True (Alembic's default since 1.12, spelled out because the test depends
            # on it). No custom comparator is needed for the `UTCDateTime` TypeDecorator: Alembic
            # compares its impl, `DateTime(timezone=True)`, with the reflected column, so it
            # reports no spurious difference, yet still flags timestamptz vs timestamp on
            # PostgreSQL (see test_the_comparison_catches_real_differences).
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def test_head_revision_is_the_one_the_store_expects() -> None:
    assert migrate.head_revision() == SCHEMA_REVISION


def test_upgrade_head_matches_the_models(store_url: str) -> None:
    assert schema_diff(store_url) == []


def _models_with(change: Callable[[Table], object]) -> MetaData:
    """A copy of the models with one change made to the `inputs` table."""
    metadata = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.tables.values():
        table.to_metadata(metadata)
    change(metadata.tables["inputs"])
    return metadata


REAL_DIFFERENCES: dict[str, Callable[[Table], object]] = {
    "new column": lambda t: t.append_column(Column("extra", Integer)),
    "shorter string": lambda t: setattr(t.c.name, "type", String(100)),
    "text instead of timestamp": lambda t: setattr(t.c.created_at, "type", Text()),
    "timestamp instead of text": lambda t: setattr(t.c.location, "type", UTCDateTime()),
    "nullable": lambda t: setattr(t.c.location, "nullable", True),
}


def test_the_comparison_catches_real_differences(store_url: str) -> None:
    """The empty diff above means something: models that differ from the migration fail."""
    for name, change in REAL_DIFFERENCES.items():
        assert schema_diff(store_url, _models_with(change)) != [], name
    naive = _models_with(lambda t: setattr(t.c.created_at, "type", DateTime(timezone=False)))
    if store_url.startswith("postgresql"):  # SQLite has no time zone flag to compare
        assert schema_diff(store_url, naive) != []


def test_upgrade_records_the_head_revision_and_is_repeatable(store_url: str) -> None:
    engine = create_engine(store_url)
    try:
        migrate.upgrade(engine)
        migrate.upgrade(engine)  # already at head: nothing to do, no error
        with engine.connect() as conn:
            revisions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars()
            assert list(revisions) == [SCHEMA_REVISION]
            tables = set(inspect(conn).get_table_names())
    finally:
        engine.dispose()
    assert tables == set(Base.metadata.tables) | {"alembic_version"}


def test_a_new_database_is_built_from_the_models_and_alembic_knows_it_is_at_head(
    store_url: str,
) -> None:
    """The first run creates the schema from the models and records Alembic's head, without
    replaying the revisions: the same schema, and later upgrades start from there."""
    from aggregator.store import Store

    Store.open(store_url).close()
    engine = create_engine(store_url)
    try:
        with engine.connect() as conn:
            revisions = list(
                conn.execute(text("SELECT version_num FROM alembic_version")).scalars()
            )
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = list(compare_metadata(context, Base.metadata))
            tables = set(inspect(conn).get_table_names())
            [version_column] = inspect(conn).get_columns("alembic_version")
        migrate.upgrade(engine)  # Alembic reads its own table: at head, nothing to do
        with engine.connect() as conn:
            again = list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
    finally:
        engine.dispose()
    assert revisions == again == [SCHEMA_REVISION]
    assert diff == []
    assert tables == set(Base.metadata.tables) | {"alembic_version"}
    assert version_column["name"] == "version_num" and not version_column["nullable"]


_SQLITE_SCHEMA = (
    "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
)
_PG_SCHEMA = {
    "columns": "SELECT table_name, ordinal_position, column_name, data_type, is_nullable, "
    "column_default, character_maximum_length FROM information_schema.columns "
    "WHERE table_schema = 'public'",
    "constraints": "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
    "FROM pg_constraint WHERE connamespace = 'public'::regnamespace",
    "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'",
}


def _schema(url: str) -> dict[str, list[Any]]:
    """Everything a database's catalogue says about its schema, comparable across databases
    (SQLite: each object's SQL, whitespace collapsed and its lines sorted, since the two
    builders order constraints differently: split at parentheses and commas, and sorted)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                rows = conn.execute(text(_SQLITE_SCHEMA)).all()
                return {
                    "sqlite": sorted(
                        (kind, name, table, sorted(filter(None, (" ".join(p.split()) for p in
                                                                 re.split(r"[(),]", sql or "")))))
                        for kind, name, table, sql in rows
                    )
                }  # fmt: skip
            return {
                k: sorted(map(tuple, conn.execute(text(q)).all())) for k, q in _PG_SCHEMA.items()
            }
    finally:
        engine.dispose()


def test_a_new_database_has_exactly_the_schema_alembic_builds(
    store_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """What the models build (`migrate.create`) is what replaying the revisions builds, down
    to what the comparison of models above overlooks: WITHOUT ROWID, defaults, constraint
    and index definitions. A revision that drifts from the models fails here."""
    from aggregator.store import Store, _make_engine

    if store_url.startswith("sqlite"):
        replayed = f"sqlite:///{tmp_path}/replayed.db"
    else:
        replayed = request.getfixturevalue("postgres_url")  # a second empty database
    Store.open(store_url).close()
    engine = _make_engine(replayed)  # the store's own connection settings
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()
    assert _schema(store_url) == _schema(replayed)


def test_a_database_with_tables_but_no_revision_is_not_built_over(tmp_path: Path) -> None:
    """Only an empty database is created from the models: one holding other tables goes
    through Alembic, as before (and fails there if they clash)."""
    from aggregator.store import Store

    url = f"sqlite:///{tmp_path}/other.db"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"))
    engine.dispose()
    assert migrate.create(create_engine(url)) is False
    Store.open(url).close()  # upgraded by Alembic beside the table it found
    engine = create_engine(url)
    with engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
    engine.dispose()
    assert tables == set(Base.metadata.tables) | {"alembic_version", "notes"}


@pytest.mark.postgres
def test_timestamps_are_timestamptz_on_postgresql(postgres_url: str) -> None:
    """Every model timestamp is `timestamp with time zone` in PostgreSQL, so a value written
    with any offset is one instant, whatever the session's TimeZone setting."""
    engine = create_engine(postgres_url)
    try:
        migrate.upgrade(engine)
        with engine.connect() as conn:
            found = {
                (table, column): data_type
                for table, column, data_type in conn.execute(
                    text(
                        "SELECT table_name, column_name, data_type FROM information_schema.columns"
                        " WHERE table_schema = 'public' AND data_type LIKE 'timestamp%'"
                    )
                )
            }
    finally:
        engine.dispose()
    expected = {
        (table.name, column.name): "timestamp with time zone"
        for table in Base.metadata.tables.values()
        for column in table.columns
        if isinstance(column.type, UTCDateTime)
    }
    assert expected
    assert found == expected
