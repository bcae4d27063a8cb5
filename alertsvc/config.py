"""Settings: defaults, overridden by ``ALERTSVC_*`` environment variables.

Flask's ``from_prefixed_env`` loads every ``ALERTSVC_NAME`` into ``app.config["NAME"]``
(values that parse as JSON become numbers, booleans and lists). A few names are mapped on
to the keys the extensions expect, and production refuses to start with unsafe values.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask import Flask

DEV_SECRET_KEY = "dev-secret-key-not-for-production"  # noqa: S105

ENVIRONMENTS = ("development", "testing", "production")
MAIL_TRANSPORTS = ("file",)

DEFAULTS: dict[str, Any] = {
    "ENV": "development",
    "SECRET_KEY": DEV_SECRET_KEY,
    "SECRET_KEY_FALLBACKS": [],
    "DATABASE_URL": None,  # None: SQLite file under instance/
    "BASE_URL": None,  # None: http://127.0.0.1:5000 outside production
    "REDIS_URL": None,
    "MAIL_TRANSPORT": "file",
    "MAIL_DIR": None,  # None: instance/mail
    "MAIL_FROM": "Public Technology alerts <alerts@alerts.example.org>",
    "MAIL_REPLY_TO": None,
    "UNSUBSCRIBE_MAILTO": None,  # None: unsubscribe@<domain of MAIL_FROM>
    "TIMEZONE": "Europe/London",
    "SITE_NAME": "Public Technology alerts",
    "CONFIRM_TOKEN_MAX_AGE": 7 * 24 * 3600,
    "MANAGE_TOKEN_MAX_AGE": 90 * 24 * 3600,
    "EMAIL_CHECK_DELIVERABILITY": False,
    "SIGNUP_RATE_LIMIT_PER_IP": "30 per hour;10 per minute",
    "SIGNUP_RATE_LIMIT_PER_ADDRESS": "5 per hour",
    # Per API token (or, without one, per address): a newsroom system sends batches.
    "API_RATE_LIMIT": "600 per minute",
    "MAX_CONTENT_LENGTH": 64 * 1024,
    "WORKER_BATCH_SIZE": 100,
    "WORKER_THREADS": 8,
    "WORKER_POLL_SECONDS": 2.0,
    "WORKER_LEASE_SECONDS": 300,
    "WORKER_MAX_ATTEMPTS": 8,
    "WORKER_BACKOFF_BASE_SECONDS": 30,
    "WORKER_BACKOFF_MAX_SECONDS": 3600,
    "SIGNUP_REQUEST_RETENTION_DAYS": 30,
    "FEEDS_POLL_INTERVAL_SECONDS": 900,
    # Feeds fetched at the same time: a slow server holds up only its own poll.
    "FEEDS_POLL_CONCURRENCY": 4,
    "FEEDS_TIMEOUT_SECONDS": 20,
    "FEEDS_MAX_BYTES": 10 * 1024 * 1024,
    "FEEDS_MAX_REDIRECTS": 5,
    "FEEDS_FAILURE_THRESHOLD": 5,
    # A failing feed is polled less and less often, down to once in this long.
    "FEEDS_MAX_BACKOFF_SECONDS": 6 * 3600,
    "FEEDS_STALE_DAYS": 14,
    "FEEDS_ALLOW_PRIVATE_ADDRESSES": False,
    "ALERT_ON_UPDATE": False,
    "API_MAX_BATCH": 500,
    "API_MAX_CONTENT_LENGTH": 8 * 1024 * 1024,
    "DIGEST_RUN_MINUTE": 2,
    "DIGEST_LOOKBACK_HOURS": 48,
    "DIGEST_CHUNK_SIZE": 20000,
    # Connections planning one run at the same time, each a range of subscribers
    # (PostgreSQL; SQLite plans through one). About the database's cores.
    "DIGEST_PLANNING_CONNECTIONS": 2,
    "ALERTS_INTERVAL_SECONDS": 60,
    "ALERTS_DAILY_CAP": 10,
    "ALERT_MAX_ARTICLE_AGE_DAYS": 3,
    # Scheduled work that fails (an article's alerts, a digest run, a feed poll) is retried
    # after BASE, doubling up to MAX, and parked after MAX_ATTEMPTS failures in a row.
    "JOB_MAX_ATTEMPTS": 5,
    "JOB_BACKOFF_BASE_SECONDS": 60,
    "JOB_BACKOFF_MAX_SECONDS": 3600,
    # Recycle connections before servers or proxies drop idle ones, rather than pinging the
    # database before every request (a round trip each time).
    "SQLALCHEMY_ENGINE_OPTIONS": {"pool_recycle": 1800},
    "WTF_CSRF_TIME_LIMIT": 3600 * 6,
    "RATELIMIT_HEADERS_ENABLED": True,
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
}


class ConfigurationError(RuntimeError):
    """The settings would make the service unsafe or unable to run."""


def load_config(app: Flask, overrides: dict[str, Any] | None = None) -> None:
    """Fill ``app.config`` from defaults, the environment and ``overrides``, then check it."""
    app.config.update(DEFAULTS)
    app.config.from_prefixed_env("ALERTSVC")
    _keys_as_text(app.config)
    if overrides:
        app.config.update(overrides)
    config = app.config

    if config["ENV"] not in ENVIRONMENTS:
        raise ConfigurationError(
            f"ALERTSVC_ENV must be one of {', '.join(ENVIRONMENTS)}, not {config['ENV']!r}"
        )
    config["TESTING"] = config["ENV"] == "testing" or config.get("TESTING", False)
    if config["ENV"] == "production":
        _check_production(config)
    config["BASE_URL"] = str(config["BASE_URL"] or "http://127.0.0.1:5000").rstrip("/")

    instance = Path(app.instance_path)
    config.setdefault("SQLALCHEMY_DATABASE_URI", None)
    if not config["SQLALCHEMY_DATABASE_URI"]:
        config["SQLALCHEMY_DATABASE_URI"] = (
            config["DATABASE_URL"] or f"sqlite:///{instance / 'alertsvc.sqlite3'}"
        )
    if not config["MAIL_DIR"]:
        config["MAIL_DIR"] = str(instance / "mail")
    if not config["UNSUBSCRIBE_MAILTO"]:
        domain = str(config["MAIL_FROM"]).rsplit("@", 1)[-1].rstrip(">").strip()
        config["UNSUBSCRIBE_MAILTO"] = f"unsubscribe@{domain}"
    config.setdefault("RATELIMIT_STORAGE_URI", config["REDIS_URL"] or "memory://")
    if config["MAIL_TRANSPORT"] not in MAIL_TRANSPORTS:
        # Refuse at start-up: a web process would otherwise queue mail no worker can send.
        raise ConfigurationError(
            f"ALERTSVC_MAIL_TRANSPORT={config['MAIL_TRANSPORT']!r} is not available; "
            f"choose one of {', '.join(MAIL_TRANSPORTS)}"
        )
    if isinstance(config["SECRET_KEY_FALLBACKS"], str):
        config["SECRET_KEY_FALLBACKS"] = [
            key.strip() for key in config["SECRET_KEY_FALLBACKS"].split(",") if key.strip()
        ]


def _keys_as_text(config: dict[str, Any]) -> None:
    """Secret keys are text even when they look like JSON numbers.

    ``from_prefixed_env`` would turn an all-digit key into an int (which cannot sign) and
    ``123e4567…`` into ``inf``; only a JSON list of fallbacks is worth parsing.
    """
    key = os.environ.get("ALERTSVC_SECRET_KEY")
    if key is not None:
        config["SECRET_KEY"] = key
    fallbacks = os.environ.get("ALERTSVC_SECRET_KEY_FALLBACKS")
    if fallbacks is not None and not fallbacks.lstrip().startswith("["):
        config["SECRET_KEY_FALLBACKS"] = fallbacks


def _check_production(config: dict[str, Any]) -> None:
    if not config["SECRET_KEY"] or config["SECRET_KEY"] == DEV_SECRET_KEY:
        raise ConfigurationError("ALERTSVC_SECRET_KEY must be set to a real secret in production")
    if len(str(config["SECRET_KEY"])) < 32:
        raise ConfigurationError("ALERTSVC_SECRET_KEY must be at least 32 characters")
    if not config["BASE_URL"]:
        raise ConfigurationError("ALERTSVC_BASE_URL must be set in production")
    if not str(config["BASE_URL"]).startswith("https://"):
        raise ConfigurationError("ALERTSVC_BASE_URL must be an https:// origin in production")
