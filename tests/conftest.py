"""Shared fixtures: one database switch, migrations once per session, clean tables per test.

SQLite by default; PostgreSQL when ``ALERTSVC_TEST_DATABASE_URL`` is set. Each xdist worker
gets its own database (``<name>_gw0`` …), created fresh and built by the real Alembic
migrations.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from alertsvc import create_app
from alertsvc.extensions import db, limiter
from tests.mail import Mailbox

TEST_SECRET_KEY = "test-secret-key-0123456789abcdefghijklmnop"
# Tripwires: anything that tries to reach a real mail provider fails loudly.
os.environ["AWS_ACCESS_KEY_ID"] = "tripwire"
os.environ["AWS_SECRET_ACCESS_KEY"] = "tripwire"
os.environ["AWS_ENDPOINT_URL"] = "http://127.0.0.1:9"
# A developer's .env (written by `make run`) must not choose the tests' environment.
os.environ["FLASK_SKIP_DOTENV"] = "1"
for _name in [
    n for n in os.environ if n.startswith("ALERTSVC_") and not n.startswith("ALERTSVC_TEST_")
]:
    del os.environ[_name]


def _worker_suffix() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def fresh_postgres_database(base_url: str, suffix: str) -> str:
    """Drop and create ``<database>_<suffix>`` on the server of ``base_url``; return its URL."""
    url = make_url(base_url)
    name = f"{url.database}_{suffix}"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def fresh_database_url(tmp_path_factory: pytest.TempPathFactory, suffix: str) -> str:
    base = os.environ.get("ALERTSVC_TEST_DATABASE_URL")
    if base:
        return fresh_postgres_database(base, suffix)
    return f"sqlite:///{tmp_path_factory.mktemp('db') / f'alertsvc-{suffix}.sqlite3'}"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return fresh_database_url(tmp_path_factory, _worker_suffix())


@pytest.fixture(scope="session")
def mail_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mail")


@pytest.fixture(scope="session")
def base_config(
    database_url: str, mail_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    return {
        "ENV": "testing",
        "SECRET_KEY": TEST_SECRET_KEY,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "MAIL_DIR": str(mail_dir),
        "MAIL_TRANSPORT": "file",
        "BASE_URL": "https://alerts.test",
        "MAIL_FROM": "Public Technology alerts <alerts@alerts.test>",
        "RATELIMIT_STORAGE_URI": "memory://",
        "SIGNUP_RATE_LIMIT_PER_IP": "1000 per minute",
        "SIGNUP_RATE_LIMIT_PER_ADDRESS": "1000 per minute",
        "WORKER_CONCURRENCY": 2,
        # Empty: a publisher's own wording in instance/templates (the default folder, as the
        # README shows) must not change what the tests see.
        "TEMPLATE_OVERRIDES_DIR": str(tmp_path_factory.mktemp("template-overrides")),
    }


@pytest.fixture(scope="session")
def app(base_config: dict[str, Any]) -> Iterator[Flask]:
    app = create_app(base_config)
    with app.app_context():
        upgrade()
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture(scope="session")
def make_app(base_config: dict[str, Any], app: Flask) -> Iterator[Callable[..., Flask]]:
    """Another app on the same (already migrated) test database, with settings changed.

    Its connections are closed at the end of the session; ``app_with`` closes them at the
    end of the test.
    """
    made: list[Flask] = []

    def make(**overrides: Any) -> Flask:
        made.append(create_app({**base_config, **overrides}))
        return made[-1]

    yield make
    _dispose(made)


@pytest.fixture
def app_with(make_app: Callable[..., Flask]) -> Iterator[Callable[..., Flask]]:
    """``make_app`` whose database connections are closed after the test."""
    made: list[Flask] = []

    def make(**overrides: Any) -> Flask:
        made.append(make_app(**overrides))
        return made[-1]

    yield make
    _dispose(made)


def _dispose(apps: list[Flask]) -> None:
    for flask_app in apps:
        with flask_app.app_context():
            db.engine.dispose()


def empty_tables(flask_app: Flask) -> None:
    with flask_app.app_context():
        db.session.remove()
        with db.engine.begin() as connection:
            for table in reversed(db.metadata.sorted_tables):
                connection.execute(table.delete())


@pytest.fixture(autouse=True)
def _clean_state(app: Flask, mail_dir: Path) -> Iterator[None]:
    """Every test starts from empty tables, an empty mail folder, fresh limits and the
    session app's own settings: a test that changes ``app.config`` cannot leak its change
    into whichever test the same worker runs next."""
    settings = dict(app.config)
    yield
    app.config.clear()
    app.config.update(settings)
    empty_tables(app)
    for path in mail_dir.glob("*"):
        path.unlink()
    limiter.reset()


@pytest.fixture
def app_context(app: Flask) -> Iterator[None]:
    with app.app_context():
        yield
        db.session.remove()


@pytest.fixture
def client(app: Flask):
    return app.test_client()


@pytest.fixture
def mailbox(app: Flask, mail_dir: Path) -> Mailbox:
    return Mailbox(app, mail_dir)
