"""Settings: defaults, overridden by ``ALERTSVC_*`` environment variables.

Flask's ``from_prefixed_env`` loads every ``ALERTSVC_NAME`` into ``app.config["NAME"]``
(values that parse as JSON become numbers, booleans and lists). A few names are mapped on
to the keys the extensions expect, and production refuses to start with unsafe values.

Settings fail closed: without ``ALERTSVC_ENV`` the service is production, so a forgotten
setting stops start-up instead of signing links with a key anyone could know. Development
signs with a random key made once per install (``instance/secret_key``); ``make run``
selects development for itself.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import secrets
import sys
import tempfile
from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import idna
from flask import Config, Flask
from sqlalchemy import make_url

ENVIRONMENTS = ("development", "testing", "production")
# Environments that may show what production must not (the mail the file transport wrote).
LOCAL_ENVIRONMENTS = ("development", "testing")
MAIL_TRANSPORTS = ("file", "smtp", "ses")
# Seconds a web process waits for Redis (its rate limits) before counting in memory.
REDIS_TIMEOUT_SECONDS = 2
MIN_SECRET_KEY_LENGTH = 32
MIN_SECRET_KEY_CHARACTERS = 8
# Published in this project's history as the old development default: never a real key.
WELL_KNOWN_KEYS = frozenset({"dev-secret-key-not-for-production"})
DEVELOPMENT_KEY_FILE = "secret_key"
DEVELOPMENT_BASE_URL = "http://127.0.0.1:5000"
HSTS_MAX_AGE_SECONDS = 365 * 24 * 3600
KEY_ADVICE = "generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"

DEFAULTS: dict[str, Any] = {
    "ENV": None,  # None: production (see the module docstring)
    "SECRET_KEY": None,  # None: refused in production; development: instance/secret_key
    "SECRET_KEY_FALLBACKS": [],
    "DATABASE_URL": None,  # None: SQLite file under instance/
    "BASE_URL": None,  # None: DEVELOPMENT_BASE_URL outside production
    "REDIS_URL": None,
    # Prefix of this deployment's keys in Redis (the fleet's send rate), so that deployments
    # sharing one Redis (staging and production) keep separate counts.
    "REDIS_KEY_PREFIX": "alertsvc",
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
    "WORKER_CONCURRENCY": 8,
    "WORKER_POLL_SECONDS": 2.0,
    "WORKER_LEASE_SECONDS": 300,
    # Leases of a row that may run out (its worker died or hung on it) before it fails: a
    # poison message. Transient send errors (throttling) are bounded by MAX_RETRY_AGE
    # instead and do not count here.
    "WORKER_MAX_ATTEMPTS": 8,
    "WORKER_BACKOFF_BASE_SECONDS": 30,
    "WORKER_BACKOFF_MAX_SECONDS": 3600,
    # A message still failing for a reason worth retrying this long after it was queued
    # fails for good: a digest a day late is worse than none.
    "WORKER_MAX_RETRY_AGE_SECONDS": 24 * 3600,
    # ses: boto3 sesv2. SES_REGION is required; ENDPOINT_URL points at an SES-compatible
    # endpoint (moto's server, a local sink).
    "SES_REGION": None,
    "SES_CONFIGURATION_SET": None,
    "SES_ENDPOINT_URL": None,
    "SES_TIMEOUT_SECONDS": 10,
    # How long a send waits for SES's answer once the message is handed over (see
    # delivery.ses.SesTransport): longer than a network blip, as botocore's own default.
    "SES_READ_TIMEOUT_SECONDS": 60,
    # None: read MaxSendRate from SES's GetAccount; a number overrides it (tests against
    # moto, whose account reports 1/s; SES-compatible endpoints).
    "SES_MAX_SEND_RATE": None,
    # How often a worker reads MaxSendRate and SendingEnabled from SES's GetAccount.
    "SES_ACCOUNT_REFRESH_SECONDS": 300,
    # smtp: smtp://, smtp+starttls:// or smtps://user:password@host:port
    "SMTP_URL": None,
    "SMTP_TIMEOUT_SECONDS": 30,
    # None: TLS certificates are checked against the system's CA store; a path: against the
    # CA certificates in that PEM file instead (a private CA).
    "SMTP_CA_FILE": None,
    # DKIM signatures on mail sent through smtp (ses signs with Easy DKIM): all three or
    # none. SELECTOR and DOMAIN name the DNS TXT record (selector._domainkey.domain) that
    # publishes the public key; DOMAIN must be the MAIL_FROM domain or a parent of it
    # (DMARC alignment). PRIVATE_KEY_FILE: path to the RSA private key, PEM (readable by
    # the worker only; the key itself is never logged).
    "DKIM_SELECTOR": None,
    "DKIM_DOMAIN": None,
    "DKIM_PRIVATE_KEY_FILE": None,
    # Emails per second across every worker (shared through Redis when REDIS_URL is set);
    # None: no limit of ours (with ses, SES's MaxSendRate still applies).
    "SEND_RATE": None,
    # Emails that may go at once above the rate, in any one second.
    "SEND_BURST": 0,
    # The most worker processes the fleet runs: while Redis is lost each worker sends alone
    # at SEND_RATE / this (so the fleet stays within the rate). None: a worker sends
    # nothing while Redis is lost.
    "SEND_RATE_FALLBACK_WORKERS": None,
    # SNS topics whose messages /ses/events believes (a JSON list or comma-separated ARNs);
    # empty: every message is refused.
    "SNS_TOPIC_ARNS": [],
    "SNS_MAX_AGE_SECONDS": 3600,
    "SNS_CERT_TIMEOUT_SECONDS": 5,
    "SNS_CERT_MAX_BYTES": 64 * 1024,
    # Soft bounces that suppress an address when this many arrive within the window.
    "TRANSIENT_BOUNCE_LIMIT": 3,
    "TRANSIENT_BOUNCE_WINDOW_SECONDS": 7 * 24 * 3600,
    # The reputation guard: over the last WINDOW_SENDS subscription emails sent within
    # WINDOW_SECONDS, and once at least MIN_SENDS of them, a bounce or complaint rate past
    # its threshold (half of SES's review levels) pauses subscription mail.
    "REPUTATION_BOUNCE_RATE": 0.025,
    "REPUTATION_COMPLAINT_RATE": 0.0005,
    "REPUTATION_WINDOW_SENDS": 10000,
    "REPUTATION_WINDOW_SECONDS": 7 * 24 * 3600,
    "REPUTATION_MIN_SENDS": 1000,
    # How often each worker measures the rates (in a transaction of its own).
    "REPUTATION_CHECK_SECONDS": 30,
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
    # Recycle connections before servers or proxies drop idle ones, and test each one as it
    # leaves the pool (a round trip, well under a millisecond on a local network): after a
    # database restart or failover every pooled connection is dead, and without the test
    # each would fail the first request or batch that drew it.
    "SQLALCHEMY_ENGINE_OPTIONS": {"pool_recycle": 1800, "pool_pre_ping": True},
    "WTF_CSRF_TIME_LIMIT": 3600 * 6,
    "RATELIMIT_HEADERS_ENABLED": True,
    # Redis lost: each web process counts the rate limits in its own memory (the same
    # limits, per process) and goes back to Redis when it answers again; an error of the
    # limiter's storage never fails a request.
    "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
    "RATELIMIT_SWALLOW_ERRORS": True,
    # Operators (/admin): signed out after this long without a request.
    "ADMIN_SESSION_IDLE_SECONDS": 30 * 60,
    "ADMIN_SIGNIN_RATE_LIMIT_PER_IP": "10 per minute;50 per hour",
    "ADMIN_SIGNIN_RATE_LIMIT_PER_ADDRESS": "5 per 15 minutes;20 per day",
    # /metrics answers only a request bearing this token; None: it answers nobody.
    "METRICS_TOKEN": None,
    # "json" (one JSON object a line) or "text"; None: json in production, text otherwise.
    "LOG_FORMAT": None,
    # The retention purge (scheduler, daily): outbox rows and message bodies older than
    # OUTBOX_DAYS; digest run ledgers older than RUNS_DAYS (each subscriber's latest
    # position per frequency is kept); addresses of subscribers with no live subscription
    # for UNSUBSCRIBED_DAYS are blanked.
    "RETENTION_OUTBOX_DAYS": 90,
    "RETENTION_RUNS_DAYS": 90,
    "RETENTION_UNSUBSCRIBED_DAYS": 28,
    # Each of these days settings must be 1 or more (0 is refused at start-up, not read as
    # "keep forever"). The purge deletes this many rows a transaction (or ledger rows of
    # this many subscribers), and at most MAX_CHUNKS chunks a step a day: a first purge
    # of a big backlog finishes over several days rather than in one long job.
    "RETENTION_CHUNK_SIZE": 5000,
    "RETENTION_MAX_CHUNKS": 2000,
    # Origins whose pages may show the "Register For Alerts" box (/embed/register) in a
    # frame: a JSON list or comma-separated bare origins (https://www.example.org; http
    # only outside production). Empty: no page may frame it, like every other page.
    "EMBED_ORIGINS": [],
    # The box's wording, in the publisher's words.
    "EMBED_HEADING": "Register For Alerts",
    "EMBED_TEXT": (
        "Keep informed. Get the latest news about the use of technology, digital & data "
        "for the public good in your inbox"
    ),
    "EMBED_BUTTON": "Sign up",
    # The privacy notice, accessibility statement and contact page (``alertsvc.legal``).
    # None: derived at start-up, and production logs a warning naming each one derived.
    # PUBLISHER_NAME: who runs the service (None: SITE_NAME). PRIVACY_CONTROLLER: the data
    # controller named in the privacy notice (None: PUBLISHER_NAME). CONTACT_EMAIL: where
    # readers write about their data or accessibility (None: the MAIL_REPLY_TO address,
    # else the MAIL_FROM address, both of which readers already see in every email).
    "PUBLISHER_NAME": None,
    "PRIVACY_CONTROLLER": None,
    "CONTACT_EMAIL": None,
    # Optional lines shown on the contact page and in the notice (a postal address, a
    # phone number); None: left out.
    "CONTACT_ADDRESS": None,
    "CONTACT_PHONE": None,
    # Days the host keeps server logs (which hold addresses only as a keyed hash); the
    # service does not rotate them itself. None: the notice says the host's log settings
    # decide, without a number.
    "LOG_RETENTION_DAYS": None,
    # The accessibility statement's compliance status with WCAG 2.2 AA: "full", "partial"
    # or "none" (the three wordings of GOV.UK's sample statement). Automated checks alone
    # cannot show full compliance, so "partial" until a person has audited the pages.
    "ACCESSIBILITY_COMPLIANCE": "partial",
    # Folder searched for templates before the built-in templates/: a publisher's own
    # wording (web/legal/privacy_body.html …). None: instance/templates.
    "TEMPLATE_OVERRIDES_DIR": None,
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
    _wording_as_text(app.config)
    if overrides:
        app.config.update(overrides)
    config = app.config
    _check_metrics_folder()

    chosen = config["ENV"]
    if chosen is not None and chosen not in ENVIRONMENTS:
        raise ConfigurationError(
            f"ALERTSVC_ENV must be one of {', '.join(ENVIRONMENTS)}, not {chosen!r}"
        )
    config["ENV"] = chosen or "production"
    config["TESTING"] = config["ENV"] == "testing" or config.get("TESTING", False)
    if isinstance(config["SECRET_KEY_FALLBACKS"], str):
        config["SECRET_KEY_FALLBACKS"] = [
            key.strip() for key in config["SECRET_KEY_FALLBACKS"].split(",") if key.strip()
        ]
    if isinstance(config["SNS_TOPIC_ARNS"], str):
        config["SNS_TOPIC_ARNS"] = [
            arn.strip() for arn in config["SNS_TOPIC_ARNS"].split(",") if arn.strip()
        ]
    _check_topic_arns(config["SNS_TOPIC_ARNS"])
    config["EMBED_ORIGINS"] = embed_origins(
        config["EMBED_ORIGINS"], production=config["ENV"] == "production"
    )
    _check_embed_wording(config)
    if config["BASE_URL"]:
        config["BASE_URL"] = bare_origin(config["BASE_URL"])
    instance = Path(app.instance_path)
    if config["ENV"] == "production":
        _check_production(config, env_chosen=chosen is not None)
        config["SESSION_COOKIE_SECURE"] = True
    elif not config["SECRET_KEY"]:
        config["SECRET_KEY"] = (
            _development_key(instance)
            if config["ENV"] == "development"
            else secrets.token_urlsafe(48)
        )
    config["BASE_URL"] = config["BASE_URL"] or DEVELOPMENT_BASE_URL

    config.setdefault("SQLALCHEMY_DATABASE_URI", None)
    if not config["SQLALCHEMY_DATABASE_URI"]:
        config["SQLALCHEMY_DATABASE_URI"] = (
            config["DATABASE_URL"] or f"sqlite:///{instance / 'alertsvc.sqlite3'}"
        )
    if config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        config["SQLALCHEMY_ENGINE_OPTIONS"] = _named_connections(
            config["SQLALCHEMY_ENGINE_OPTIONS"], config["SQLALCHEMY_DATABASE_URI"]
        )
    if not config["MAIL_DIR"]:
        config["MAIL_DIR"] = str(instance / "mail")
    config["MAIL_FROM"] = ascii_sender(config["MAIL_FROM"])
    config.setdefault("RATELIMIT_STORAGE_URI", config["REDIS_URL"] or "memory://")
    if config["RATELIMIT_STORAGE_URI"].startswith(("redis://", "rediss://")):
        # A Redis that stops answering must not hold a signup for long: after this the
        # limiter counts in memory instead.
        config.setdefault(
            "RATELIMIT_STORAGE_OPTIONS",
            {
                "socket_connect_timeout": REDIS_TIMEOUT_SECONDS,
                "socket_timeout": REDIS_TIMEOUT_SECONDS,
            },
        )
    if not config["TEMPLATE_OVERRIDES_DIR"]:
        config["TEMPLATE_OVERRIDES_DIR"] = str(instance / "templates")
    _check_publisher(config)
    config["UNSUBSCRIBE_MAILTO"] = unsubscribe_mailto(config)
    if config["MAIL_TRANSPORT"] not in MAIL_TRANSPORTS:
        # Refuse at start-up: a web process would otherwise queue mail no worker can send.
        # This is the only check: ``make_transport`` builds what passed it.
        raise ConfigurationError(
            f"ALERTSVC_MAIL_TRANSPORT={config['MAIL_TRANSPORT']!r} is not available; "
            f"choose one of {', '.join(MAIL_TRANSPORTS)}"
        )
    _check_transport(config)
    _check_feedback(config)


COMMAND_WORD = re.compile(r"[a-z][a-z-]{0,30}")


def process_name(argv: list[str] | None = None) -> str:
    """What this process is, in a few words: ``alertsvc web`` under gunicorn, else the
    command (``alertsvc worker``, ``alertsvc digest run``), without its options or values;
    ``alertsvc`` alone for anything else.

    PostgreSQL shows it as each connection's ``application_name`` (``pg_stat_activity``),
    so an operator can tell the web's connections from a worker's or a planner's, and see
    which process holds a lock or runs a slow statement.
    """
    argv = sys.argv if argv is None else argv
    if argv and Path(argv[0]).name.startswith("gunicorn"):
        return "alertsvc web"
    words = []
    for word in argv[1:3]:
        if not COMMAND_WORD.fullmatch(word):
            break
        words.append(word)
    return " ".join(["alertsvc", *words])[:63]  # PostgreSQL keeps 63 bytes


def _named_connections(options: dict[str, Any], database_url: str) -> dict[str, Any]:
    """``options`` with this process's name as every connection's application_name (a
    copy: the defaults are shared by every app this process makes), unless the database
    URL or libpq's ``PGAPPNAME`` names them already."""
    if "application_name" in make_url(database_url).query or os.environ.get("PGAPPNAME"):
        return options
    connect_args = {"application_name": process_name(), **options.get("connect_args", {})}
    return {**options, "connect_args": connect_args}


# botocore's own check of a region name, so that a bad one is refused at start-up.
_AWS_REGION = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?")
SMTP_SCHEMES = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}


@dataclass(frozen=True)
class SmtpUrl:
    """``ALERTSVC_SMTP_URL`` taken apart: ``scheme://[user[:password]@]host[:port]``."""

    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    def __repr__(self) -> str:
        return f"SmtpUrl({self.scheme}://{self.host}:{self.port}, user={self.username!r})"


def smtp_url(value: object) -> SmtpUrl:
    """Parse ``ALERTSVC_SMTP_URL``; a URL that cannot be used is one line saying why.

    The port defaults to the scheme's (25, 587 for STARTTLS, 465 for implicit TLS); user and
    password are percent-decoded, so a password may hold ``@`` or ``:`` written as ``%40``.
    """
    text = str(value).strip()
    schemes = ", ".join(f"{scheme}://" for scheme in SMTP_SCHEMES)
    shape = "such as smtp+starttls://user:password@smtp.example.org:587"
    try:
        parts = urlsplit(text)
    except ValueError:
        raise ConfigurationError(f"ALERTSVC_SMTP_URL is not a URL {shape}") from None
    if parts.scheme not in SMTP_SCHEMES:
        raise ConfigurationError(
            f"ALERTSVC_SMTP_URL must start with {schemes} "
            f"({f'not {parts.scheme!r}' if parts.scheme else 'it has none'}), {shape}"
        )
    if not parts.hostname:
        raise ConfigurationError(f"ALERTSVC_SMTP_URL names no host; give one, {shape}")
    try:
        port = parts.port
    except ValueError:
        raise ConfigurationError(
            f"ALERTSVC_SMTP_URL: the port must be a number from 1 to 65535, {shape}"
        ) from None
    if port == 0 or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigurationError(
            f"ALERTSVC_SMTP_URL must be scheme://[user:password@]host[:port] with nothing "
            f"after the port (port 1 to 65535), {shape}"
        )
    return SmtpUrl(
        scheme=parts.scheme,
        host=parts.hostname,
        port=port or SMTP_SCHEMES[parts.scheme],
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


_UNSET_RATE = {
    "SEND_RATE": "leave it unset for no limit of ours",
    "SES_MAX_SEND_RATE": "leave it unset to use SES's MaxSendRate",
}


def positive_rate(config: dict[str, Any], name: str) -> float | None:
    """The setting ``name`` as emails per second: None when unset, else a number above 0."""
    value = config[name]
    if value is None or value == "":
        return None
    try:
        if isinstance(value, bool):
            raise ValueError
        rate = float(value)
    except (TypeError, ValueError):
        rate = 0.0
    if not 0 < rate < float("inf"):
        unset = _UNSET_RATE.get(name, "leave it unset")
        raise ConfigurationError(
            f"ALERTSVC_{name} must be a number of emails per second above 0 (such as 14), "
            f"not {value!r}; {unset}"
        )
    return rate


def burst_setting(config: dict[str, Any]) -> float:
    """``SEND_BURST``: emails any one second may hold above the rate, 0 or more."""
    value = config["SEND_BURST"]
    try:
        if isinstance(value, bool):
            raise ValueError
        burst = float(value or 0)
    except (TypeError, ValueError):
        burst = -1.0
    if not 0 <= burst < float("inf"):
        raise ConfigurationError(
            f"ALERTSVC_SEND_BURST must be a number of emails of 0 or more, not {value!r}"
        )
    return burst


def _check_transport(config: dict[str, Any]) -> None:
    """Refuse, in one line naming the setting, a transport that could not send anything.

    Checked at start-up in every process, so a web process does not queue mail that no
    worker could send and a worker does not fail each message in turn.
    """
    transport = config["MAIL_TRANSPORT"]
    if transport == "ses":
        if not config["SES_REGION"]:
            raise ConfigurationError(
                "ALERTSVC_MAIL_TRANSPORT=ses needs ALERTSVC_SES_REGION: the AWS region of "
                "your SES account, such as eu-west-2"
            )
        if not _AWS_REGION.fullmatch(str(config["SES_REGION"])):
            raise ConfigurationError(
                f"ALERTSVC_SES_REGION must be an AWS region name such as eu-west-2, "
                f"not {config['SES_REGION']!r}"
            )
        endpoint = config["SES_ENDPOINT_URL"]
        if endpoint:
            try:
                parts = urlsplit(str(endpoint))
            except ValueError:
                parts = urlsplit("")
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigurationError(
                    f"ALERTSVC_SES_ENDPOINT_URL must be an http:// or https:// URL such as "
                    f"http://127.0.0.1:5000, not {endpoint!r}; leave it unset for SES itself"
                )
    if transport == "smtp":
        if not config["SMTP_URL"]:
            raise ConfigurationError(
                "ALERTSVC_MAIL_TRANSPORT=smtp needs ALERTSVC_SMTP_URL, such as "
                "smtp+starttls://user:password@smtp.example.org:587"
            )
        smtp_url(config["SMTP_URL"])
    _check_dkim(config)
    for name in ("SEND_RATE", "SES_MAX_SEND_RATE"):
        rate = positive_rate(config, name)
        if rate is not None:
            config[name] = rate
    config["SEND_BURST"] = burst_setting(config)
    config["SEND_RATE_FALLBACK_WORKERS"] = fallback_workers_setting(config)


def fallback_workers_setting(config: dict[str, Any]) -> int | None:
    """``SEND_RATE_FALLBACK_WORKERS``: a whole number of worker processes, 1 or more."""
    value = config["SEND_RATE_FALLBACK_WORKERS"]
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise ConfigurationError(
        "ALERTSVC_SEND_RATE_FALLBACK_WORKERS must be the most worker processes the fleet "
        f"runs, a whole number of 1 or more, not {value!r}; leave it unset to stop sending "
        "while Redis is lost"
    )


# A DNS name as DKIM's s= and d= carry it: labels of letters, digits and inner hyphens.
_DNS_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DNS_NAME = re.compile(rf"{_DNS_LABEL}(?:\.{_DNS_LABEL})*")


def _check_dkim(config: dict[str, Any]) -> None:
    """Refuse, in one line, DKIM settings that would send unsigned or badly signed mail:
    some but not all of them, with a transport that does not sign, a selector or domain
    that is not a DNS name, a domain that does not align with MAIL_FROM, or a key that
    cannot be read or used."""
    from alertsvc.delivery.dkim_signing import DKIM_SETTINGS, load_dkim_key

    given = [name for name in DKIM_SETTINGS if config[name]]
    if not given:
        return
    missing = [name for name in DKIM_SETTINGS if name not in given]
    if missing:
        raise ConfigurationError(
            f"{' and '.join(f'ALERTSVC_{name}' for name in missing)} must be set too: "
            f"ALERTSVC_DKIM_SELECTOR, ALERTSVC_DKIM_DOMAIN and ALERTSVC_DKIM_PRIVATE_KEY_FILE "
            f"sign mail together; set all three, or none to send unsigned"
        )
    transport = config["MAIL_TRANSPORT"]
    if transport != "smtp":
        why = (
            "SES signs with Easy DKIM (see the README); unset ALERTSVC_DKIM_*"
            if transport == "ses"
            else "unset ALERTSVC_DKIM_* or send with smtp"
        )
        raise ConfigurationError(
            f"ALERTSVC_DKIM_* signs mail only with ALERTSVC_MAIL_TRANSPORT=smtp, "
            f"not {transport!r}: {why}"
        )
    for name in ("DKIM_SELECTOR", "DKIM_DOMAIN"):
        value = str(config[name]).strip().lower().rstrip(".")
        if not _DNS_NAME.fullmatch(value) or (name == "DKIM_DOMAIN" and "." not in value):
            example = "alerts2026" if name == "DKIM_SELECTOR" else "example.org"
            raise ConfigurationError(
                f"ALERTSVC_{name} must be a DNS name such as {example}, not {config[name]!r}"
            )
        config[name] = value
    domain, sender = config["DKIM_DOMAIN"], sender_domain(config["MAIL_FROM"]).lower()
    if sender != domain and not sender.endswith(f".{domain}"):
        raise ConfigurationError(
            f"ALERTSVC_DKIM_DOMAIN {domain!r} is neither the ALERTSVC_MAIL_FROM domain "
            f"{sender!r} nor a parent of it, so DMARC would not count the signature; "
            f"set it to {sender!r} or a parent domain"
        )
    load_dkim_key(str(config["DKIM_PRIVATE_KEY_FILE"]))


ACCESSIBILITY_COMPLIANCE = ("full", "partial", "none")
# The publisher settings a production deployment should set rather than derive.
PUBLISHER_SETTINGS = ("PUBLISHER_NAME", "PRIVACY_CONTROLLER", "CONTACT_EMAIL")


def _check_publisher(config: dict[str, Any]) -> None:
    """Fill the publisher settings left unset from the mail settings, noting which were
    derived (``DERIVED_PUBLISHER_SETTINGS``) so production can warn about each; refuse a
    compliance status or log retention the statement and notice cannot word."""
    derived = [name for name in PUBLISHER_SETTINGS if not config[name]]
    config["DERIVED_PUBLISHER_SETTINGS"] = derived
    config["PUBLISHER_NAME"] = config["PUBLISHER_NAME"] or config["SITE_NAME"]
    config["PRIVACY_CONTROLLER"] = config["PRIVACY_CONTROLLER"] or config["PUBLISHER_NAME"]
    if not config["CONTACT_EMAIL"]:
        config["CONTACT_EMAIL"] = parseaddr(str(config["MAIL_REPLY_TO"] or config["MAIL_FROM"]))[1]
    if config["ACCESSIBILITY_COMPLIANCE"] not in ACCESSIBILITY_COMPLIANCE:
        raise ConfigurationError(
            f"ALERTSVC_ACCESSIBILITY_COMPLIANCE must be one of "
            f"{', '.join(ACCESSIBILITY_COMPLIANCE)}, not {config['ACCESSIBILITY_COMPLIANCE']!r}"
        )
    days = config["LOG_RETENTION_DAYS"]
    if days is not None and days != "":
        whole = _number(days)
        if not (whole.is_integer() and 1 <= whole <= _MOST_DAYS):
            raise ConfigurationError(
                f"ALERTSVC_LOG_RETENTION_DAYS must be a whole number from 1 to {_MOST_DAYS}, "
                f"not {days!r}; leave it unset to say the host's log settings decide"
            )
        config["LOG_RETENTION_DAYS"] = int(whole)
    else:
        config["LOG_RETENTION_DAYS"] = None


# arn:partition:sns:region:account:topic (topic names: letters, digits, - and _, .fifo).
_SNS_TOPIC_ARN = re.compile(
    r"arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?"
)


def _check_topic_arns(arns: object) -> None:
    """Refuse a topic that is not an SNS topic ARN: with a typo every bounce and complaint
    would be refused (403), seen only in the log."""
    wrong = [
        arn
        for arn in (arns if isinstance(arns, list) else [arns])
        if not (isinstance(arn, str) and _SNS_TOPIC_ARN.fullmatch(arn))
    ]
    if wrong:
        raise ConfigurationError(
            "ALERTSVC_SNS_TOPIC_ARNS must be SNS topic ARNs separated by commas, such as "
            f"arn:aws:sns:eu-west-2:123456789012:ses-events; not {', '.join(map(repr, wrong))}"
        )


# Read only when a bounce arrives or the guard measures: checked at start-up instead, so a
# threshold written as a percentage cannot leave the guard silently never pausing, and a
# word where a number belongs cannot answer every SNS post with an error.
_FRACTIONS = ("REPUTATION_BOUNCE_RATE", "REPUTATION_COMPLAINT_RATE")
_WHOLE_NUMBERS = {
    "REPUTATION_WINDOW_SENDS": 1,
    "REPUTATION_WINDOW_SECONDS": 1,
    "REPUTATION_MIN_SENDS": 0,
    "REPUTATION_CHECK_SECONDS": 1,
    "TRANSIENT_BOUNCE_LIMIT": 1,
    "TRANSIENT_BOUNCE_WINDOW_SECONDS": 1,
    "SNS_MAX_AGE_SECONDS": 1,
    "SNS_CERT_MAX_BYTES": 1,
    # Read once a day by the purge: a 0 would otherwise surface only then, or purge all.
    "RETENTION_OUTBOX_DAYS": 1,
    "RETENTION_RUNS_DAYS": 1,
    "RETENTION_UNSUBSCRIBED_DAYS": 1,
    "RETENTION_CHUNK_SIZE": 1,
    "RETENTION_MAX_CHUNKS": 1,
}
# Days kept: at most a century, so a typo (3000000, 1e9) is refused here and not met by the
# purge as an OverflowError when it subtracts that many days from today.
_MOST_DAYS = 36500
_AT_MOST = {
    "RETENTION_OUTBOX_DAYS": _MOST_DAYS,
    "RETENTION_RUNS_DAYS": _MOST_DAYS,
    "RETENTION_UNSUBSCRIBED_DAYS": _MOST_DAYS,
}


def _number(value: object) -> float:
    """``value`` as a number, or NaN when it is none (a word, a flag, nothing)."""
    if isinstance(value, bool):
        return math.nan
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _check_feedback(config: dict[str, Any]) -> None:
    """Refuse, in one line, bounce, complaint and reputation guard settings that would
    fail open; store the rest as numbers."""
    for name in _FRACTIONS:
        fraction = _number(config[name])
        if not 0 < fraction <= 1:
            raise ConfigurationError(
                f"ALERTSVC_{name} must be a fraction above 0 and at most 1 (0.025 is 2.5%), "
                f"not {config[name]!r}"
            )
        config[name] = fraction
    for name, least in _WHOLE_NUMBERS.items():
        whole = _number(config[name])
        most = _AT_MOST.get(name)
        if not (whole.is_integer() and whole >= least and (most is None or whole <= most)):
            bounds = f"of at least {least}" if most is None else f"from {least} to {most}"
            raise ConfigurationError(
                f"ALERTSVC_{name} must be a whole number {bounds}, not {config[name]!r}"
            )
        config[name] = int(whole)
    timeout = _number(config["SNS_CERT_TIMEOUT_SECONDS"])
    if not 0 < timeout < math.inf:
        raise ConfigurationError(
            f"ALERTSVC_SNS_CERT_TIMEOUT_SECONDS must be a number of seconds above 0, "
            f"not {config['SNS_CERT_TIMEOUT_SECONDS']!r}"
        )
    config["SNS_CERT_TIMEOUT_SECONDS"] = timeout
    if config["REPUTATION_MIN_SENDS"] > config["REPUTATION_WINDOW_SENDS"]:
        raise ConfigurationError(
            f"ALERTSVC_REPUTATION_MIN_SENDS ({config['REPUTATION_MIN_SENDS']}) is more than "
            f"ALERTSVC_REPUTATION_WINDOW_SENDS ({config['REPUTATION_WINDOW_SENDS']}): the "
            f"window never holds enough sends for a verdict, so the reputation guard would "
            f"never pause sending"
        )


def ascii_sender(mail_from: object) -> str:
    """``MAIL_FROM`` with its domain in ASCII (IDNA) form: ``Alerts <a@bücher.de>`` becomes
    ``Alerts <a@xn--bcher-kva.de>``. The From header, Message-IDs, List-Id and the unsubscribe
    mailto are all made from it, and a header cannot carry a Unicode domain as an address.
    The display name is left as it is (the header writer encodes it)."""
    text = str(mail_from)
    domain = sender_domain(text)
    if domain.isascii():
        return text
    try:
        ascii_form = ascii_domain(domain)
    except idna.IDNAError as error:
        raise ConfigurationError(
            f"ALERTSVC_MAIL_FROM: the domain {domain!r} is not a usable domain name ({error})"
        ) from None
    head, _, tail = text.rpartition("@" + domain)
    return f"{head}@{ascii_form}{tail}"


def ascii_domain(domain: str) -> str:
    """A domain in its ASCII form (IDNA, UTS 46, as browsers and ``idna`` do: ``ß`` stays
    ``ß`` rather than becoming ``ss``); ``idna.IDNAError`` if it is no domain name. The one
    rule for every domain this service writes into a header or compares with one."""
    return domain if domain.isascii() else idna.encode(domain, uts46=True).decode("ascii")


def unsubscribe_mailto(config: dict[str, Any]) -> str:
    """``UNSUBSCRIBE_MAILTO`` (default ``unsubscribe@`` + the sender's domain) as the header
    carries it: a bare address, its domain in ASCII.

    Mail to it unsubscribes whoever's token it carries, so it may not be an address people
    write to or reply to (From, Reply-To, the contact address): a reply quoting an email
    would end the reader's subscriptions.
    """
    value = str(
        config["UNSUBSCRIBE_MAILTO"] or f"unsubscribe@{sender_domain(config['MAIL_FROM'])}"
    ).strip()
    problem = (
        "ALERTSVC_UNSUBSCRIBE_MAILTO must be a bare address with an ASCII local part, such "
        f"as unsubscribe@unsub.alerts.example.org, not {value!r}"
    )
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain or not local.isascii():
        raise ConfigurationError(problem)
    if any(character in value for character in ' <>"(),;:?&%[]\\') or "@" in local:
        raise ConfigurationError(problem)
    try:
        address = f"{local}@{ascii_domain(domain).lower()}"
    except idna.IDNAError:
        raise ConfigurationError(problem) from None
    for name in ("MAIL_FROM", "MAIL_REPLY_TO", "CONTACT_EMAIL"):
        other = parseaddr(str(config.get(name) or ""))[1]
        if other and other.casefold() == address.casefold():
            raise ConfigurationError(
                f"ALERTSVC_UNSUBSCRIBE_MAILTO is the same address as ALERTSVC_{name}: mail "
                "to it unsubscribes, so replies would end readers' subscriptions; give it an "
                "address of its own"
            )
    return address


def sender_domain(mail_from: object) -> str:
    """The domain of ``MAIL_FROM`` (``Name <alerts@example.org>`` -> ``example.org``).

    Message-IDs and the default unsubscribe mailto are on it, so they align with the sender.
    """
    return str(mail_from).rsplit("@", 1)[-1].rstrip(">").strip()


def _check_metrics_folder() -> None:
    """``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's own variable, hence no prefix): each
    process writes its counts there from its first import of ``alertsvc.metrics``, and one
    that cannot would fail on that import with a traceback."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder and not (os.path.isdir(folder) and os.access(folder, os.W_OK | os.X_OK)):
        raise ConfigurationError(
            f"PROMETHEUS_MULTIPROC_DIR is {folder!r}, which is not a folder this process can "
            "write to: create it, empty, before starting the processes, or unset it"
        )


def check_settings(instance_path: str | Path) -> Config:
    """Check the environment's settings before serving, as ``create_app`` would; the
    settings, checked.

    For process managers that should stop with one line rather than start workers that
    each fail (``gunicorn.conf.py``).
    """
    app = Flask("alertsvc", instance_path=str(instance_path))
    load_config(app)
    return app.config


def bare_origin(value: object) -> str:
    """``scheme://host[:port]``: emailed links are this plus a path, so nothing else fits."""
    text = str(value).strip()
    problem = (
        f"ALERTSVC_BASE_URL must be a bare origin such as https://alerts.example.org "
        f"(scheme, host and optional port; no path, query or fragment), not {text!r}"
    )
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        raise ConfigurationError(problem) from None
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.username is not None
        or parts.path not in ("", "/")
        or "?" in text
        or "#" in text
        or any(character.isspace() for character in text)
    ):
        raise ConfigurationError(problem)
    return f"{parts.scheme}://{parts.netloc}"


# A host name as a browser sends it in an Origin: letters, digits and hyphens between dots
# (an international name in its xn-- form), or an IPv4 address. Nothing that could end the
# CSP source or add a directive (space, ';', ',', quotes) can pass.
_ORIGIN_HOST = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*")


def embed_origins(value: object, *, production: bool) -> list[str]:
    """``EMBED_ORIGINS`` as a list of bare origins (``https://www.example.org``), each at
    most once; refused in one line if any is not one. http is refused in production: a
    page served over http can be changed on the way to say anything around our box."""
    items = (
        value
        if isinstance(value, list)
        else [item.strip() for item in str(value or "").split(",") if item.strip()]
    )
    schemes = ("https",) if production else ("https", "http")
    origins: list[str] = []
    for item in items:
        text = str(item).strip() if isinstance(item, str) else ""
        try:
            parts = urlsplit(text)
            port = parts.port
        except ValueError:
            parts, port = urlsplit(""), None
        host = parts.hostname or ""
        if (
            parts.scheme.lower() not in schemes
            or not _ORIGIN_HOST.fullmatch(host)
            or parts.username is not None
            or parts.password is not None
            or parts.path not in ("", "/")
            or "?" in text
            or "#" in text
            or any(character.isspace() for character in text)
            or port == 0
        ):
            kinds = "https" if production else "https (or, outside production, http)"
            raise ConfigurationError(
                f"ALERTSVC_EMBED_ORIGINS must list bare {kinds} origins such as "
                f"https://www.example.org, separated by commas (scheme, host and optional "
                f"port; no path), not {item!r}"
            )
        origin = f"{parts.scheme.lower()}://{host}" + (f":{port}" if port else "")
        if origin not in origins:
            origins.append(origin)
    return origins


def weak_key_problem(key: str) -> str | None:
    """Why ``key`` is guessable, or None. Length alone lets ``"a" * 40`` through."""
    if len(key) < MIN_SECRET_KEY_LENGTH:
        return f"is shorter than {MIN_SECRET_KEY_LENGTH} characters"
    if key in WELL_KNOWN_KEYS:
        return "is a published development key"
    if _repeats(key):
        return "repeats a short pattern"
    if len(set(key)) < MIN_SECRET_KEY_CHARACTERS:
        return f"uses fewer than {MIN_SECRET_KEY_CHARACTERS} different characters"
    return None


def _repeats(key: str) -> bool:
    """True if ``key`` is some shorter text written out at least twice (``abcabcab``)."""
    length = len(key)
    return any(
        key == (key[:size] * (length // size + 1))[:length] for size in range(1, length // 2 + 1)
    )


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


# The Register For Alerts box's words (``EMBED_*``): text as the publisher wrote it.
EMBED_WORDING = ("EMBED_HEADING", "EMBED_TEXT", "EMBED_BUTTON")


def _wording_as_text(config: dict[str, Any]) -> None:
    """The box's words are text as written: ``from_prefixed_env`` reads JSON, which made
    the button ``true`` say "True" and a heading ``["Alerts"]`` a list."""
    for name in EMBED_WORDING:
        value = os.environ.get(f"ALERTSVC_{name}")
        if value is not None:
            config[name] = value


def _check_embed_wording(config: dict[str, Any]) -> None:
    """The box's heading and button need words: a button with none has no name a screen
    reader can say (WCAG 4.1.2), an empty heading is no heading."""
    for name in ("EMBED_HEADING", "EMBED_BUTTON"):
        if not str(config[name] or "").strip():
            raise ConfigurationError(f"ALERTSVC_{name} must not be blank: it is the box's words")


def _check_production(config: dict[str, Any], *, env_chosen: bool) -> None:
    """Refuse, in one line that says what to set, to run production on guessable settings."""
    missing = [f"ALERTSVC_{name}" for name in ("SECRET_KEY", "BASE_URL") if not config[name]]
    if missing:
        why = (
            "in production"
            if env_chosen
            else "(ALERTSVC_ENV is not set, so this is production; "
            "to try the service locally run `make run` or set ALERTSVC_ENV=development)"
        )
        raise ConfigurationError(f"{' and '.join(missing)} must be set {why}")
    problem = weak_key_problem(str(config["SECRET_KEY"]))
    if problem:
        raise ConfigurationError(f"ALERTSVC_SECRET_KEY {problem}; {KEY_ADVICE}")
    for position, fallback in enumerate(config["SECRET_KEY_FALLBACKS"], start=1):
        # A fallback verifies links as surely as the key signs them.
        problem = weak_key_problem(str(fallback))
        if problem:
            raise ConfigurationError(
                f"ALERTSVC_SECRET_KEY_FALLBACKS: key {position} {problem}; drop it"
            )
    if not str(config["BASE_URL"]).startswith("https://"):
        raise ConfigurationError("ALERTSVC_BASE_URL must be an https:// origin in production")
    problem = weak_key_problem(str(config["METRICS_TOKEN"])) if config["METRICS_TOKEN"] else None
    if problem:
        raise ConfigurationError(f"ALERTSVC_METRICS_TOKEN {problem}; {KEY_ADVICE}")


def _development_key(instance: Path) -> str:
    """Development's signing key: random, made by the first process to start, kept (0600).

    Web, worker and scheduler start together and must agree on it, so the key is written to
    a private temporary file and linked into place: the link is atomic and fails if another
    process got there first, and nobody ever reads a half-written key.
    """
    path = instance / DEVELOPMENT_KEY_FILE
    if not path.exists():
        instance.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=instance, prefix=f".{DEVELOPMENT_KEY_FILE}-")
        try:
            with os.fdopen(descriptor, "w") as file:
                file.write(secrets.token_urlsafe(48) + "\n")
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
    key = path.read_text().strip()
    if not key:
        raise ConfigurationError(f"{path} is empty: delete it and a new key will be made")
    return key
