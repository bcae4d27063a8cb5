"""Error pages when the database is out of reach: 503 with a clear page, never a traceback."""

from __future__ import annotations

import os
import socket

import pytest
from sqlalchemy import create_engine, text

from alertsvc.extensions import db

ON_POSTGRESQL = os.environ.get("ALERTSVC_TEST_DATABASE_URL", "").startswith("postgresql")


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def unreachable_databases() -> list[str]:
    """A PostgreSQL server that is not there, and an SQLite file that cannot be opened."""
    return [
        f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/alertsvc",
        "sqlite:////nonexistent-directory/alertsvc.sqlite3",
    ]


@pytest.mark.parametrize("database", unreachable_databases(), ids=["postgresql", "sqlite"])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_page_answers_503_with_a_clear_page_while_the_database_is_unreachable(
    app_with, database, method
):
    client = app_with(SQLALCHEMY_DATABASE_URI=database, WTF_CSRF_ENABLED=False).test_client()

    response = client.open("/", method=method, data={"email": "reader@example.com"})

    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) >= 10
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "Sorry, the service is unavailable at the moment" in page
    assert "Nothing you entered has been saved" in page
    assert "Traceback" not in page
    assert "psycopg" not in page and "sqlite3" not in page


@pytest.mark.parametrize("database", unreachable_databases(), ids=["postgresql", "sqlite"])
def test_the_api_answers_503_in_json_while_the_database_is_unreachable(app_with, database, caplog):
    client = app_with(SQLALCHEMY_DATABASE_URI=database).test_client()

    token = "alertsvc_" + "x" * 43  # well formed: looked up in the database
    response = client.get("/api/v1/articles", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) >= 10
    assert response.json == {
        "error": "Service Unavailable",
        "detail": "We could not reach our records just now. Nothing you entered has been "
        "saved. Wait a few seconds, then try again.",
    }
    assert "rate limit" not in caplog.text.lower(), "the limiter did not take it for its own"


def test_other_database_errors_are_still_a_500(app, app_with):
    """Only an unreachable database is a 503: a bug in a query is not "try again" (SQLite
    reports both as an ``OperationalError``)."""
    broken = app_with()

    @broken.get("/broken-query")
    def broken_query() -> str:
        db.session.execute(text("SELECT no_such_column FROM topics"))
        return "unreachable"

    response = broken.test_client().get("/broken-query")

    assert response.status_code == 500
    assert "Sorry, there is a problem with the service" in response.get_data(as_text=True)


@pytest.mark.skipif(not ON_POSTGRESQL, reason="a server that drops connections: PostgreSQL")
def test_a_request_after_the_database_dropped_its_pooled_connection_succeeds(app_with):
    """After a restart every pooled connection is dead: the pool finds out before a
    request draws one (``pool_pre_ping``), so no request fails because of it."""
    app = app_with()
    client = app.test_client()
    assert client.get("/").status_code == 200
    with app.app_context():
        pids = [row[0] for row in db.session.execute(text("SELECT pg_backend_pid()"))]
        db.session.remove()
        url = db.engine.url
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            for pid in pids:
                connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        admin.dispose()

    response = client.get("/")

    assert response.status_code == 200


@pytest.mark.skipif(not ON_POSTGRESQL, reason="a server that drops connections: PostgreSQL")
def test_a_page_served_as_the_database_went_away_is_still_served(app_with):
    """The server dropped the connection after the page's queries: the rollback at the end
    of the request fails, and must not turn the page into a 500 (nor spoil the next one)."""
    app = app_with()
    admin = create_engine(app.config["SQLALCHEMY_DATABASE_URI"], isolation_level="AUTOCOMMIT")

    @app.get("/dropped-after-reading")
    def dropped_after_reading() -> str:
        pid = db.session.execute(text("SELECT pg_backend_pid()")).scalar()
        with admin.connect() as connection:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        return "read before the database went away"

    client = app.test_client()
    try:
        response = client.get("/dropped-after-reading")
        assert response.status_code == 200
        assert response.get_data(as_text=True) == "read before the database went away"
        assert client.get("/").status_code == 200
    finally:
        admin.dispose()
