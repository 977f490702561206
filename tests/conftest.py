"""Shared fixtures: real databases for the store tests.

- `postgres_server` (session): one real PostgreSQL server started for the run (see
  `pg_server.py`). When its binaries are missing the tests that need it FAIL, unless
  AGGREGATOR_SKIP_POSTGRES=1 is set, so a CI without a server cannot look green.
- `postgres_url`: a fresh, empty PostgreSQL database per test.
- `store_url`: one URL per backend (`sqlite`, `postgresql`); tests using it run on both.
- `store`: `Store.open(store_url)`, closed after the test.
- `wipe_database`: empties the database at a URL as if the operator deleted it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pg_server import PostgresServer, PostgresUnavailable, find_bindir

from aggregator.store import Store

SKIP_ENV = "AGGREGATOR_SKIP_POSTGRES"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        server = PostgresServer(find_bindir())
    except PostgresUnavailable as exc:
        missing = str(exc)
    else:
        try:
            server.start()
            yield server
            return
        except PostgresUnavailable as exc:  # e.g. root without a `postgres` user
            missing = str(exc)
        finally:
            server.stop()
    if os.environ.get(SKIP_ENV) == "1":
        pytest.skip(f"{SKIP_ENV}=1 and {missing}")
    pytest.fail(
        f"{missing}. Install PostgreSQL 15 (apt-get install postgresql-15), or set "
        f"{SKIP_ENV}=1 to skip the PostgreSQL tests knowingly.",
        pytrace=False,
    )


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The SQLAlchemy URL of a new, empty database on the session's server."""
    name = postgres_server.create_database()
    yield postgres_server.url(name)
    postgres_server.drop_database(name)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on each backend in turn (SQLite: a real file, in WAL mode)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/store.db"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = Store.open(store_url)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def wipe_database(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """A function that deletes everything at a database URL (close its Store first)."""

    def wipe(url: str) -> None:
        if url.startswith("sqlite:///"):
            path = Path(url.split("///", 1)[1])
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            return
        server: PostgresServer = request.getfixturevalue("postgres_server")
        server.recreate_database(url.rsplit("/", 1)[1])

    return wipe


@pytest.fixture(params=["fast", "feedparser"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test through both feed parsers: the fast path (feedparser-rs, installed on
    CPython 3.11 only) and the feedparser fallback it gives way to."""
    from aggregator.adapters import feed

    if request.param == "feedparser":
        monkeypatch.setattr(feed, "_fast_parse", lambda data, bases: None)
    else:
        pytest.importorskip("feedparser_rs")
    return str(request.param)
