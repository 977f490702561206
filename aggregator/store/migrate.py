"""Schema migrations: Alembic over `migrations/` (shipped as `aggregator.migrations`)."""

from __future__ import annotations

from importlib.resources import files

from sqlalchemy import Column, Engine, MetaData, PrimaryKeyConstraint, String, Table, inspect


def alembic_config():  # -> alembic.config.Config (imported lazily: Alembic is slow to import)
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(files("aggregator.migrations")))
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def known() -> set[str]:
    """Every revision in `migrations/`."""
    from alembic.script import ScriptDirectory

    return {rev.revision for rev in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


def upgrade(engine: Engine) -> None:
    """Bring the database at `engine` to the newest schema, in one transaction."""
    from alembic import command

    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


# Alembic's own table, as Alembic creates it, for `create`.
_VERSION = Table(
    "alembic_version",
    MetaData(),
    Column("version_num", String(32), nullable=False),
    PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
)


def create(engine: Engine) -> bool:
    """Build the newest schema in an empty database straight from the models, recorded as
    Alembic's head (Alembic's recipe for a new database: `create_all`, then stamp), in one
    transaction; False when the database holds tables already (it is upgraded instead).

    A test keeps `upgrade head` equal to the models; creating from them skips importing
    Alembic and replaying every revision, which was most of the first run's start (0.12 s).
    """
    from aggregator.store.models import SCHEMA_REVISION, Base

    with engine.begin() as conn:
        if inspect(conn).get_table_names():
            return False
        Base.metadata.create_all(conn)
        _VERSION.create(conn)
        conn.execute(_VERSION.insert().values(version_num=SCHEMA_REVISION))
    return True
