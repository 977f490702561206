"""Schema migrations: Alembic over `migrations/` (shipped as `aggregator.migrations`)."""

from __future__ import annotations

from importlib.resources import files

from sqlalchemy import Engine


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
