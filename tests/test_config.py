"""Settings from ``ALERTSVC_*`` variables; production refuses unsafe ones; response headers."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from alertsvc import create_app
from alertsvc.cli import build_cli
from alertsvc.config import DEV_SECRET_KEY, ConfigurationError
from alertsvc.extensions import db
from alertsvc.models import OutboxStatus
from alertsvc.tokens import TokenPurpose, make_token, read_token
from tests.delivery.helpers import outbox_row, queue_manage_link

PRODUCTION_KEY = "a-real-production-secret-0123456789abcdef"


@pytest.fixture
def environment(monkeypatch, database_url, mail_dir):
    """Settings only from the environment, as a deployed process gets them."""
    monkeypatch.setenv("ALERTSVC_DATABASE_URL", database_url)
    monkeypatch.setenv("ALERTSVC_MAIL_DIR", str(mail_dir))
    return monkeypatch


def production(**settings: Any) -> dict[str, Any]:
    return {"ENV": "production", "SECRET_KEY": PRODUCTION_KEY, **settings}


@pytest.mark.parametrize(
    ("settings", "complaint"),
    [
        (production(SECRET_KEY=DEV_SECRET_KEY, BASE_URL="https://a.example"), "SECRET_KEY"),
        (production(SECRET_KEY="", BASE_URL="https://a.example"), "SECRET_KEY"),
        (production(SECRET_KEY="short-but-secret", BASE_URL="https://a.example"), "32"),
        (production(), "ALERTSVC_BASE_URL must be set"),
        (production(BASE_URL="http://alerts.example.org"), "https://"),
        ({"ENV": "staging"}, "ALERTSVC_ENV must be one of development, testing, production"),
    ],
    ids=["dev-key", "empty-key", "short-key", "no-base-url", "http-base-url", "unknown-env"],
)
def test_unsafe_settings_refuse_to_start(settings, complaint):
    with pytest.raises(ConfigurationError, match=complaint):
        create_app(settings)


def test_production_refuses_from_the_environment_too(environment):
    environment.setenv("ALERTSVC_ENV", "production")
    environment.setenv("ALERTSVC_BASE_URL", "https://alerts.example.org")
    with pytest.raises(ConfigurationError, match="SECRET_KEY"):
        create_app()


def test_production_starts_with_a_real_key_and_https_base_url(environment):
    environment.setenv("ALERTSVC_ENV", "production")
    environment.setenv("ALERTSVC_SECRET_KEY", PRODUCTION_KEY)
    environment.setenv("ALERTSVC_BASE_URL", "https://alerts.example.org/")
    flask_app = create_app()
    try:
        assert flask_app.config["BASE_URL"] == "https://alerts.example.org"
        assert flask_app.config["TESTING"] is False
        assert flask_app.test_client().get("/healthz").status_code == 200
    finally:
        with flask_app.app_context():
            db.engine.dispose()


def test_settings_come_from_alertsvc_environment_variables(environment, database_url):
    environment.setenv("ALERTSVC_WORKER_BATCH_SIZE", "25")
    environment.setenv("ALERTSVC_WORKER_POLL_SECONDS", "0.5")
    environment.setenv("ALERTSVC_EMAIL_CHECK_DELIVERABILITY", "true")
    environment.setenv("ALERTSVC_SITE_NAME", "Civic Tech alerts")
    environment.setenv("ALERTSVC_MAIL_FROM", "Civic Tech <alerts@civic.example>")
    environment.setenv("ALERTSVC_BASE_URL", "https://alerts.civic.example/")
    flask_app = create_app()
    try:
        config = flask_app.config
        assert config["WORKER_BATCH_SIZE"] == 25
        assert config["WORKER_POLL_SECONDS"] == 0.5
        assert config["EMAIL_CHECK_DELIVERABILITY"] is True
        assert config["SITE_NAME"] == "Civic Tech alerts"
        assert config["UNSUBSCRIBE_MAILTO"] == "unsubscribe@civic.example"
        assert config["BASE_URL"] == "https://alerts.civic.example"
        assert config["SQLALCHEMY_DATABASE_URI"] == database_url
        assert config["SECRET_KEY"] == DEV_SECRET_KEY, "development gets a safe default"
        assert "Civic Tech alerts" in flask_app.test_client().get("/").get_data(as_text=True)
    finally:
        with flask_app.app_context():
            db.engine.dispose()


def test_secret_key_made_only_of_digits_is_still_a_key(environment):
    """A generated key can look like a number; it must not be read as one."""
    key = "12345678901234567890123456789012345678"
    environment.setenv("ALERTSVC_ENV", "production")
    environment.setenv("ALERTSVC_SECRET_KEY", key)
    environment.setenv("ALERTSVC_SECRET_KEY_FALLBACKS", "98765432109876543210987654321098")
    environment.setenv("ALERTSVC_BASE_URL", "https://alerts.example.org")
    flask_app = create_app()
    try:
        assert flask_app.config["SECRET_KEY"] == key
        assert flask_app.config["SECRET_KEY_FALLBACKS"] == ["98765432109876543210987654321098"]
        with flask_app.app_context():
            assert read_token(TokenPurpose.MANAGE, make_token(TokenPurpose.MANAGE, 7)) == 7
    finally:
        with flask_app.app_context():
            db.engine.dispose()


def test_secret_key_fallbacks_accept_a_comma_separated_list(environment):
    environment.setenv("ALERTSVC_SECRET_KEY", "the-new-key-0123456789abcdefghijklmn")
    environment.setenv(
        "ALERTSVC_SECRET_KEY_FALLBACKS",
        "the-old-key-0123456789abcdefghijklmn, an-older-key-0123456789abcdefghijk",
    )
    flask_app = create_app()
    old_app = create_app({"SECRET_KEY": "an-older-key-0123456789abcdefghijk"})
    try:
        assert flask_app.config["SECRET_KEY_FALLBACKS"] == [
            "the-old-key-0123456789abcdefghijklmn",
            "an-older-key-0123456789abcdefghijk",
        ]
        with old_app.app_context():
            emailed_before_rotation = make_token(TokenPurpose.UNSUBSCRIBE, {"s": 1})
        with flask_app.app_context():
            assert read_token(TokenPurpose.UNSUBSCRIBE, emailed_before_rotation) == {"s": 1}
    finally:
        for each in (flask_app, old_app):
            with each.app_context():
                db.engine.dispose()


def test_secret_key_fallbacks_accept_a_json_list(environment):
    environment.setenv("ALERTSVC_SECRET_KEY_FALLBACKS", '["old-one", "old-two"]')
    flask_app = create_app()
    try:
        assert flask_app.config["SECRET_KEY_FALLBACKS"] == ["old-one", "old-two"]
    finally:
        with flask_app.app_context():
            db.engine.dispose()


def test_an_unknown_mail_transport_is_refused_at_start_up(app_with, app, monkeypatch, tmp_path):
    row_id = queue_manage_link(app)
    with pytest.raises(ConfigurationError, match="'carrier-pigeon' is not available"):
        app_with(MAIL_TRANSPORT="carrier-pigeon")

    monkeypatch.setenv("ALERTSVC_MAIL_TRANSPORT", "carrier-pigeon")
    monkeypatch.setenv("ALERTSVC_DATABASE_URL", f"sqlite:///{tmp_path / 'unused.sqlite3'}")
    result = CliRunner().invoke(build_cli(), ["worker", "--burst"])
    assert result.exit_code == 1
    assert "Error: ALERTSVC_MAIL_TRANSPORT='carrier-pigeon' is not available" in result.output
    assert "choose one of file" in result.output
    assert "Traceback" not in result.output
    row = outbox_row(app, row_id)
    assert (row.status, row.attempts) == (OutboxStatus.QUEUED, 0), "nothing was claimed"


@pytest.mark.parametrize("path", ["/", "/healthz", "/no-such-page", "/dev/mail"])
def test_responses_carry_security_headers(client, path):
    response = client.get(path)
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy


def test_healthz_answers_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.is_json
    assert response.get_json()["status"] == "ok"


def test_healthz_answers_503_when_the_database_is_unreachable(app_with, tmp_path):
    broken = app_with(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'missing' / 'db.sqlite3'}")
    response = broken.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["status"] == "unavailable"
