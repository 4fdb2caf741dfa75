"""Models and Alembic migrations must describe the same schema."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from app.core.db import include_object
from app.core.extensions import db


def test_models_and_migrations_agree(app):
    with app.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={"compare_type": True, "render_as_batch": True, "include_object": include_object},
        )
        differences = compare_metadata(context, db.metadata)
    assert differences == [], f"run 'missive db migrate': {differences}"


def test_migrations_downgrade_and_upgrade_again(tmp_path):
    from flask_migrate import downgrade, upgrade
    from sqlalchemy import inspect

    from tests.conftest import make_app

    application = make_app("sqlite", tmp_path)
    with application.app_context():
        downgrade(revision="base")
        assert inspect(db.engine).get_table_names() == ["alembic_version"]
        upgrade()
        assert "user_account" in inspect(db.engine).get_table_names()
