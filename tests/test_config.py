"""Settings from ``ALERTSVC_*`` variables; production refuses unsafe ones; response headers."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask

from alertsvc import PROJECT_ROOT, create_app
from alertsvc.cli import build_cli
from alertsvc.config import ConfigurationError, load_config, process_name
from alertsvc.extensions import db
from alertsvc.models import OutboxStatus
from alertsvc.tokens import TokenPurpose, make_token, read_token
from tests.delivery.helpers import outbox_row
from tests.factories import queue_manage_link

PRODUCTION_KEY = "a-real-production-secret-0123456789abcdef"
NOTHING_SET = (
    "Error: ALERTSVC_SECRET_KEY and ALERTSVC_BASE_URL must be set (ALERTSVC_ENV is not set, "
    "so this is production; to try the service locally run `make run` or set "
    "ALERTSVC_ENV=development)"
)


@pytest.fixture
def environment(monkeypatch, database_url, mail_dir):
    """Settings only from the environment, as a deployed process gets them (``testing``
    unless a test chooses otherwise)."""
    monkeypatch.setenv("ALERTSVC_ENV", "testing")
    monkeypatch.setenv("ALERTSVC_DATABASE_URL", database_url)
    monkeypatch.setenv("ALERTSVC_MAIL_DIR", str(mail_dir))
    return monkeypatch


def nothing_set() -> dict[str, str]:
    """This process's environment without a single ``ALERTSVC_*`` setting or a ``.env``."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("ALERTSVC_")}
    env["FLASK_SKIP_DOTENV"] = "1"
    return env


def dispose(flask_app: Flask) -> None:
    with flask_app.app_context():
        db.engine.dispose()


def production(**settings: Any) -> dict[str, Any]:
    return {"ENV": "production", "SECRET_KEY": PRODUCTION_KEY, **settings}


@pytest.mark.parametrize(
    ("settings", "complaint"),
    [
        (
            production(
                SECRET_KEY="dev-secret-key-not-for-production", BASE_URL="https://a.example"
            ),
            "ALERTSVC_SECRET_KEY is a published development key",
        ),
        (production(SECRET_KEY="", BASE_URL="https://a.example"), "SECRET_KEY must be set"),
        (production(SECRET_KEY="short-but-secret", BASE_URL="https://a.example"), "32"),
        (
            production(SECRET_KEY="x" * 64, BASE_URL="https://a.example"),
            "ALERTSVC_SECRET_KEY repeats a short pattern",
        ),
        (
            production(SECRET_KEY="0123456789" * 4, BASE_URL="https://a.example"),
            "ALERTSVC_SECRET_KEY repeats a short pattern",
        ),
        (
            production(SECRET_KEY="secret" * 7 + "se", BASE_URL="https://a.example"),
            "ALERTSVC_SECRET_KEY repeats a short pattern",
        ),
        (
            production(SECRET_KEY="ab" * 20 + "c", BASE_URL="https://a.example"),
            "ALERTSVC_SECRET_KEY uses fewer than 8 different characters",
        ),
        (
            production(
                BASE_URL="https://a.example", SECRET_KEY_FALLBACKS=[PRODUCTION_KEY, "z" * 40]
            ),
            "ALERTSVC_SECRET_KEY_FALLBACKS: key 2 repeats a short pattern",
        ),
        (production(), "ALERTSVC_BASE_URL must be set in production"),
        (production(BASE_URL="http://alerts.example.org"), "https://"),
        ({"ENV": "staging"}, "ALERTSVC_ENV must be one of development, testing, production"),
    ],
    ids=[
        "published-dev-key",
        "empty-key",
        "short-key",
        "one-repeated-character",
        "repeated-digits",
        "repeated-word",
        "few-characters",
        "weak-fallback",
        "no-base-url",
        "http-base-url",
        "unknown-env",
    ],
)
def test_unsafe_settings_refuse_to_start(settings, complaint):
    with pytest.raises(ConfigurationError, match=complaint):
        create_app(settings)


def test_production_refuses_from_the_environment_too(environment):
    environment.setenv("ALERTSVC_ENV", "production")
    environment.setenv("ALERTSVC_BASE_URL", "https://alerts.example.org")
    with pytest.raises(ConfigurationError, match="SECRET_KEY"):
        create_app()
    environment.setenv("ALERTSVC_SECRET_KEY", "=" * 48)
    with pytest.raises(ConfigurationError, match="repeats a short pattern"):
        create_app()


def test_without_alertsvc_env_nothing_set_refuses_to_start(environment):
    environment.delenv("ALERTSVC_ENV")
    with pytest.raises(ConfigurationError) as refused:
        create_app()
    assert f"Error: {refused.value}" == NOTHING_SET


def test_without_alertsvc_env_the_service_runs_as_production(environment):
    environment.delenv("ALERTSVC_ENV")
    environment.setenv("ALERTSVC_SECRET_KEY", PRODUCTION_KEY)
    environment.setenv("ALERTSVC_BASE_URL", "https://alerts.example.org")
    flask_app = create_app()
    try:
        assert flask_app.config["ENV"] == "production"
        client = flask_app.test_client()
        assert client.get("/dev/mail").status_code == 404, "no mailbox outside development"
        response = client.get("/", base_url="https://alerts.example.org")
        assert response.status_code == 200
        assert response.headers["Strict-Transport-Security"] == "max-age=31536000"
        assert "Secure" in response.headers["Set-Cookie"]
    finally:
        dispose(flask_app)


@pytest.mark.parametrize("env", ["development", "testing"])
def test_dev_mail_exists_only_when_development_or_testing_is_chosen(app_with, env):
    chosen = app_with(ENV=env)
    assert chosen.test_client().get("/dev/mail").status_code == 200
    response = chosen.test_client().get("/")
    assert "Strict-Transport-Security" not in response.headers
    assert "Secure" not in response.headers["Set-Cookie"], "development serves plain http"


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
        assert "Civic Tech alerts" in flask_app.test_client().get("/").get_data(as_text=True)
    finally:
        with flask_app.app_context():
            db.engine.dispose()


def test_secret_key_made_only_of_digits_is_still_a_key(environment):
    """A generated key can look like a number; it must not be read as one."""
    key = "10615357255597666474340391017082189452"
    environment.setenv("ALERTSVC_ENV", "production")
    environment.setenv("ALERTSVC_SECRET_KEY", key)
    environment.setenv("ALERTSVC_SECRET_KEY_FALLBACKS", "36143915082625362653679168507307")
    environment.setenv("ALERTSVC_BASE_URL", "https://alerts.example.org")
    flask_app = create_app()
    try:
        assert flask_app.config["SECRET_KEY"] == key
        assert flask_app.config["SECRET_KEY_FALLBACKS"] == ["36143915082625362653679168507307"]
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

    monkeypatch.setenv("ALERTSVC_ENV", "testing")
    monkeypatch.setenv("ALERTSVC_MAIL_TRANSPORT", "carrier-pigeon")
    monkeypatch.setenv("ALERTSVC_DATABASE_URL", f"sqlite:///{tmp_path / 'unused.sqlite3'}")
    result = CliRunner().invoke(build_cli(), ["worker", "--burst"])
    assert result.exit_code == 1
    assert "Error: ALERTSVC_MAIL_TRANSPORT='carrier-pigeon' is not available" in result.output
    assert "choose one of file" in result.output
    assert "Traceback" not in result.output
    row = outbox_row(app, row_id)
    assert (row.status, row.attempts) == (OutboxStatus.QUEUED, 0), "nothing was claimed"


@pytest.mark.parametrize(
    ("base_url", "stored"),
    [
        ("https://alerts.example.org", "https://alerts.example.org"),
        ("https://alerts.example.org/", "https://alerts.example.org"),
        ("https://alerts.example.org:8443", "https://alerts.example.org:8443"),
        (" https://alerts.example.org ", "https://alerts.example.org"),
    ],
)
def test_base_url_is_kept_as_a_bare_origin(app_with, base_url, stored):
    assert app_with(ENV="production", BASE_URL=base_url).config["BASE_URL"] == stored


@pytest.mark.parametrize(
    "base_url",
    [
        "https://alerts.example.org/alerts",
        "https://alerts.example.org/?ref=email",
        "https://alerts.example.org?",
        "https://alerts.example.org/#top",
        "https://user:pass@alerts.example.org",
        "https://alerts.example.org:99999",
        "https://alerts.example.org:port",
        "https://",
        "https:///alerts",
        "alerts.example.org",
        "ftp://alerts.example.org",
        "https://alerts example.org",
    ],
)
@pytest.mark.parametrize("env", ["production", "development"])
def test_base_url_other_than_a_bare_origin_refuses_to_start(env, base_url):
    with pytest.raises(ConfigurationError) as refused:
        create_app(production(ENV=env, BASE_URL=base_url))
    assert str(refused.value) == (
        "ALERTSVC_BASE_URL must be a bare origin such as https://alerts.example.org "
        "(scheme, host and optional port; no path, query or fragment), "
        f"not {base_url.strip()!r}"
    )


def test_development_signs_with_a_random_key_kept_under_instance(tmp_path):
    def development_key(instance: Path) -> str:
        flask_app = Flask("alertsvc", instance_path=str(instance))
        load_config(flask_app, {"ENV": "development"})
        return flask_app.config["SECRET_KEY"]

    instance = tmp_path / "instance"
    with ThreadPoolExecutor(8) as pool:
        # web, worker and scheduler start at once and must all sign with the same key
        keys = set(pool.map(development_key, [instance] * 8))
    assert len(keys) == 1
    key = keys.pop()
    stored = instance / "secret_key"
    assert stored.read_text().strip() == key
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert sorted(path.name for path in instance.iterdir()) == ["secret_key"]
    assert development_key(instance) == key, "kept across restarts"
    assert len(key) >= 32 and key != "dev-secret-key-not-for-production"
    assert development_key(tmp_path / "another-install") != key


def test_testing_without_a_key_gets_a_random_one(app_with):
    first, second = app_with(SECRET_KEY=None), app_with(SECRET_KEY=None)
    assert len(first.config["SECRET_KEY"]) >= 32
    assert first.config["SECRET_KEY"] != second.config["SECRET_KEY"]


def test_a_forgotten_setting_stops_the_cli_with_one_line(tmp_path):
    """The installed ``alertsvc`` command, run where there is no ``.env``, with nothing set."""
    alertsvc = Path(sys.executable).parent / "alertsvc"
    for args in (["topics", "list"], ["db", "upgrade"], ["run"]):
        result = subprocess.run(
            [alertsvc, *args], cwd=tmp_path, env=nothing_set(), capture_output=True, text=True
        )
        assert (result.returncode, result.stdout) == (1, ""), args
        assert result.stderr.splitlines() == [NOTHING_SET], args
    result = subprocess.run(
        [alertsvc, "--help"], cwd=tmp_path, env=nothing_set(), capture_output=True, text=True
    )
    assert result.stderr.splitlines() == [NOTHING_SET]
    assert "Traceback" not in result.stdout and "topics" not in result.stdout


def test_a_forgotten_setting_stops_gunicorn_with_one_line():
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:0", "wsgi:app"],
        cwd=PROJECT_ROOT,
        env=nothing_set(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert (result.stdout + result.stderr).splitlines() == [NOTHING_SET]


def test_cli_in_a_checkout_with_env_file_runs_as_development(tmp_path, database_url, mail_dir):
    """``make run`` writes ``.env``; ``alertsvc`` run there afterwards reads it."""
    (tmp_path / ".env").write_text("ALERTSVC_ENV=development\n")
    env = nothing_set()
    del env["FLASK_SKIP_DOTENV"]
    env.update(
        ALERTSVC_DATABASE_URL=database_url,
        ALERTSVC_MAIL_DIR=str(mail_dir),
        ALERTSVC_SECRET_KEY=PRODUCTION_KEY,  # else the checkout's instance/secret_key is made
    )
    alertsvc = Path(sys.executable).parent / "alertsvc"
    listed = subprocess.run(
        [alertsvc, "routes"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert listed.returncode == 0, listed.stderr
    assert "/dev/mail" in listed.stdout, "development: the mailbox is there"

    env["ALERTSVC_ENV"] = "production"
    refused = subprocess.run(
        [alertsvc, "routes"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert refused.returncode == 1, ".env never overrides what the environment says"
    assert refused.stderr.strip() == "Error: ALERTSVC_BASE_URL must be set in production"


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


FEEDBACK_REFUSED = [
    (
        {"REPUTATION_BOUNCE_RATE": "2.5%"},
        "ALERTSVC_REPUTATION_BOUNCE_RATE must be a fraction above 0 and at most 1 "
        "(0.025 is 2.5%), not '2.5%'",
    ),
    (
        {"REPUTATION_BOUNCE_RATE": 5},
        "ALERTSVC_REPUTATION_BOUNCE_RATE must be a fraction above 0 and at most 1 "
        "(0.025 is 2.5%), not 5",
    ),
    (
        {"REPUTATION_COMPLAINT_RATE": float("nan")},
        "ALERTSVC_REPUTATION_COMPLAINT_RATE must be a fraction above 0 and at most 1 "
        "(0.025 is 2.5%), not nan",
    ),
    (
        {"REPUTATION_WINDOW_SENDS": "many"},
        "ALERTSVC_REPUTATION_WINDOW_SENDS must be a whole number of at least 1, not 'many'",
    ),
    (
        {"REPUTATION_CHECK_SECONDS": 0},
        "ALERTSVC_REPUTATION_CHECK_SECONDS must be a whole number of at least 1, not 0",
    ),
    (
        {"REPUTATION_MIN_SENDS": 1000, "REPUTATION_WINDOW_SENDS": 500},
        "ALERTSVC_REPUTATION_MIN_SENDS (1000) is more than ALERTSVC_REPUTATION_WINDOW_SENDS "
        "(500): the window never holds enough sends for a verdict, so the reputation guard "
        "would never pause sending",
    ),
    (
        {"TRANSIENT_BOUNCE_LIMIT": 0},
        "ALERTSVC_TRANSIENT_BOUNCE_LIMIT must be a whole number of at least 1, not 0",
    ),
    (
        {"TRANSIENT_BOUNCE_WINDOW_SECONDS": "a week"},
        "ALERTSVC_TRANSIENT_BOUNCE_WINDOW_SECONDS must be a whole number of at least 1, "
        "not 'a week'",
    ),
    (
        {"SNS_MAX_AGE_SECONDS": "abc"},
        "ALERTSVC_SNS_MAX_AGE_SECONDS must be a whole number of at least 1, not 'abc'",
    ),
    (
        {"SNS_CERT_MAX_BYTES": True},
        "ALERTSVC_SNS_CERT_MAX_BYTES must be a whole number of at least 1, not True",
    ),
    (
        {"SNS_CERT_TIMEOUT_SECONDS": -5},
        "ALERTSVC_SNS_CERT_TIMEOUT_SECONDS must be a number of seconds above 0, not -5",
    ),
]


@pytest.mark.parametrize(("settings", "message"), FEEDBACK_REFUSED)
def test_bounce_complaint_and_guard_settings_that_would_fail_open_refuse_to_start(
    app_with, settings, message
):
    """Unchecked, a threshold given as a percentage (5 for 5%) or a word made the reputation
    guard never pause, and a bad SNS or soft-bounce setting answered every SNS post with 500."""
    with pytest.raises(ConfigurationError) as refused:
        app_with(**settings)
    assert str(refused.value) == message


def test_the_worker_refuses_a_guard_threshold_it_cannot_read(app, environment):
    row_id = queue_manage_link(app)
    environment.setenv("ALERTSVC_REPUTATION_BOUNCE_RATE", "2.5%")

    result = CliRunner().invoke(build_cli(), ["worker", "--burst"])

    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: ALERTSVC_REPUTATION_BOUNCE_RATE must be a fraction above 0 and at most 1 "
        "(0.025 is 2.5%), not '2.5%'"
    ]
    assert outbox_row(app, row_id).status == OutboxStatus.QUEUED


def test_feedback_settings_from_the_environment_are_numbers(app_with):
    app = app_with(REPUTATION_BOUNCE_RATE="0.05", SNS_MAX_AGE_SECONDS="600")
    assert (app.config["REPUTATION_BOUNCE_RATE"], app.config["SNS_MAX_AGE_SECONDS"]) == (0.05, 600)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RETENTION_OUTBOX_DAYS", "3000000"),
        ("RETENTION_OUTBOX_DAYS", "1e9"),
        ("RETENTION_RUNS_DAYS", "99999999999999999999"),
        ("RETENTION_UNSUBSCRIBED_DAYS", "1000000000"),
    ],
)
def test_retention_days_beyond_a_century_refuse_to_start(environment, name, value):
    """Accepted, they crashed the purge with an OverflowError traceback."""
    environment.setenv(f"ALERTSVC_{name}", value)

    result = CliRunner().invoke(build_cli(), ["retention", "purge", "--dry-run"])

    assert result.exit_code == 1
    [line] = result.output.strip().splitlines()
    assert line.startswith(f"Error: ALERTSVC_{name} must be a whole number from 1 to 36500, not ")


def test_retention_days_of_a_century_are_accepted(app_with):
    app = app_with(RETENTION_OUTBOX_DAYS="36500")
    assert app.config["RETENTION_OUTBOX_DAYS"] == 36500


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({}, "unsubscribe@alerts.test"),
        ({"UNSUBSCRIBE_MAILTO": " Leave@Unsub.Alerts.Test "}, "Leave@unsub.alerts.test"),
        ({"UNSUBSCRIBE_MAILTO": "unsubscribe@Bücher.de"}, "unsubscribe@xn--bcher-kva.de"),
        # UTS 46, as the sender's domain: ß stays ß (xn--fa-hia), never "ss".
        ({"MAIL_FROM": "Alerts <alerts@faß.de>"}, "unsubscribe@xn--fa-hia.de"),
    ],
)
def test_the_unsubscribe_mailto_is_a_bare_ascii_address(app_with, settings, expected):
    from alertsvc.subscriptions.mail_unsubscribe import is_unsubscribe_address

    mailto = app_with(**settings).config["UNSUBSCRIBE_MAILTO"]

    assert mailto == expected
    unicode_form = expected.replace("xn--bcher-kva", "bücher").replace("xn--fa-hia", "faß")
    local, _, domain = unicode_form.partition("@")
    assert is_unsubscribe_address(f"<{local.upper()}@{domain}>", mailto)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"UNSUBSCRIBE_MAILTO": "nonsense"}, "must be a bare address"),
        ({"UNSUBSCRIBE_MAILTO": "Leave <leave@alerts.test>"}, "must be a bare address"),
        ({"UNSUBSCRIBE_MAILTO": "müller@alerts.test"}, "must be a bare address"),
        ({"UNSUBSCRIBE_MAILTO": "leave@exa mple.test"}, "must be a bare address"),
        ({"UNSUBSCRIBE_MAILTO": "alerts@alerts.test"}, "same address as ALERTSVC_MAIL_FROM"),
        (
            {"UNSUBSCRIBE_MAILTO": "desk@alerts.test", "MAIL_REPLY_TO": "Desk <DESK@alerts.test>"},
            "same address as ALERTSVC_MAIL_REPLY_TO",
        ),
        (
            {"UNSUBSCRIBE_MAILTO": "privacy@alerts.test", "CONTACT_EMAIL": "privacy@alerts.test"},
            "same address as ALERTSVC_CONTACT_EMAIL",
        ),
    ],
)
def test_an_unsubscribe_mailto_that_cannot_work_stops_start_up(app_with, settings, message):
    """Mail to it unsubscribes: an address readers reply to would end subscriptions."""
    with pytest.raises(ConfigurationError, match=message):
        app_with(**settings)


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["/srv/alertsvc/.venv/bin/gunicorn", "wsgi:app", "-w", "4"], "alertsvc web"),
        (["/srv/alertsvc/.venv/bin/alertsvc", "worker", "--concurrency", "16"], "alertsvc worker"),
        (
            ["alertsvc", "digest", "run", "daily", "--at", "2026-12-01T07:00Z"],
            "alertsvc digest run",
        ),
        (["-c", "scheduler"], "alertsvc scheduler"),
        (["alertsvc", "operators", "create", "ops@example.com"], "alertsvc operators create"),
        (["/usr/bin/pytest", "-p", "no:xdist", "tests/test_config.py"], "alertsvc"),
        (["alertsvc", "wörker"], "alertsvc"),
        ([], "alertsvc"),
    ],
)
def test_the_process_name_postgresql_shows_is_the_command_without_its_values(argv, name):
    assert process_name(argv) == name


@pytest.mark.parametrize(
    ("url", "pgappname", "name"),
    [
        ("postgresql+psycopg://db.internal/alertsvc", None, process_name()),
        ("postgresql+psycopg://db.internal/alertsvc?application_name=web-7", None, None),
        ("postgresql+psycopg://db.internal/alertsvc", "web-7", None),
        ("sqlite:////tmp/alertsvc.sqlite3", None, None),
    ],
)
def test_connections_are_named_unless_the_database_url_or_pgappname_names_them(
    tmp_path, monkeypatch, url, pgappname, name
):
    if pgappname:
        monkeypatch.setenv("PGAPPNAME", pgappname)
    else:
        monkeypatch.delenv("PGAPPNAME", raising=False)
    flask_app = Flask("alertsvc", instance_path=str(tmp_path))
    load_config(flask_app, {"ENV": "development", "DATABASE_URL": url})
    options = flask_app.config["SQLALCHEMY_ENGINE_OPTIONS"]
    assert options.get("connect_args", {}).get("application_name") == name
    assert options["pool_pre_ping"] is True
