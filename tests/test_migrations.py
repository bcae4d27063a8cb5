"""The migrations are the only way the schema changes: they must build what the models say."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from flask_migrate import downgrade, upgrade
from sqlalchemy import CheckConstraint, create_engine, inspect, text
from sqlalchemy.engine import make_url

from alertsvc import create_app
from alertsvc.extensions import db
from tests.conftest import fresh_postgres_database


@pytest.fixture
def empty_database_app(base_config: dict[str, Any], tmp_path, worker_id: str) -> Iterator[Flask]:
    """An app on a brand-new, empty database of the kind under test."""
    base = os.environ.get("ALERTSVC_TEST_DATABASE_URL")
    if base:
        url = fresh_postgres_database(base, f"{worker_id}_migrations")
    else:
        url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    flask_app = create_app({**base_config, "SQLALCHEMY_DATABASE_URI": url})
    yield flask_app
    with flask_app.app_context():
        db.engine.dispose()
    if base:
        admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            name = make_url(url).database
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def table_names() -> set[str]:
    return set(inspect(db.engine).get_table_names())


def schema_differences() -> list[Any]:
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, db.metadata)


def test_upgrade_downgrade_upgrade_on_an_empty_database(empty_database_app):
    with empty_database_app.app_context():
        assert table_names() == set()

        upgrade()
        model_tables = {table.name for table in db.metadata.sorted_tables}
        assert table_names() == model_tables | {"alembic_version"}

        downgrade(revision="base")
        assert table_names() == {"alembic_version"}
        with db.engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 0

        upgrade()
        assert table_names() == model_tables | {"alembic_version"}


def test_models_match_the_migrated_schema(empty_database_app):
    with empty_database_app.app_context():
        upgrade()
        assert schema_differences() == []


def test_check_constraints_are_the_ones_the_migrations_wrote(base_config, tmp_path):
    """Alembic's comparison ignores CHECK constraints, so compare their text here.

    The models build each allowed-values constraint from its enum; renaming or adding a value
    must come with a migration, or the database would refuse (or allow) what the code does
    not. Always on SQLite, which keeps the text as the migration wrote it (PostgreSQL rewrites
    it as ``= ANY (ARRAY[…])``); the text in the migrations is the same for both.
    """
    url = f"sqlite:///{tmp_path / 'checks.sqlite3'}"
    flask_app = create_app({**base_config, "SQLALCHEMY_DATABASE_URI": url})
    with flask_app.app_context():
        upgrade()
        inspector = inspect(db.engine)
        migrated = {
            (table.name, check["name"]): check["sqltext"]
            for table in db.metadata.sorted_tables
            for check in inspector.get_check_constraints(table.name)
        }
        modelled = {
            (table.name, constraint.name): str(constraint.sqltext)
            for table in db.metadata.sorted_tables
            for constraint in table.constraints
            if isinstance(constraint, CheckConstraint)
        }
        db.engine.dispose()
    assert ("subscriptions", "ck_subscriptions_ended_reason") in modelled
    assert modelled == migrated
