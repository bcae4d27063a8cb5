"""alertsvc: email alert subscriptions for a public-sector technology news site."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import Flask, Response, session
from jinja2 import ChoiceLoader, FileSystemLoader, TemplateSyntaxError
from sqlalchemy import event
from sqlalchemy.engine import Engine
from werkzeug.middleware.proxy_fix import ProxyFix

from alertsvc.config import (
    HSTS_MAX_AGE_SECONDS,
    LOCAL_ENVIRONMENTS,
    ConfigurationError,
    load_config,
)
from alertsvc.extensions import csrf, db, limiter, migrate
from alertsvc.headers import allows_framing, content_security_policy

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """The app factory: settings from ``ALERTSVC_*`` variables, then ``config`` on top."""
    app = Flask(
        __name__,
        instance_path=str(PROJECT_ROOT / "instance"),
        template_folder=str(PROJECT_ROOT / "templates"),
    )
    load_config(app, config)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    register_logging(app)
    register_extensions(app)
    register_input_checks(app)
    register_converters(app)
    register_blueprints(app)
    register_error_handlers(app)
    register_security_headers(app)
    register_template_filters(app)
    register_template_overrides(app)
    register_commands(app)
    if app.config.get("PROXY_COUNT"):
        count = int(app.config["PROXY_COUNT"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=count)  # type: ignore[method-assign]
    return app


def register_logging(app: Flask) -> None:
    """JSON lines or text, with request ids and no address in clear (``alertsvc.logs``)."""
    from alertsvc.logs import configure_logging, register_request_ids

    configure_logging(app.config)
    register_request_ids(app)


def register_extensions(app: Flask) -> None:
    db.init_app(app)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"))
    csrf.init_app(app)
    limiter.init_app(app)


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    """SQLite shared by web, worker and scheduler: WAL, a busy timeout, foreign keys on."""
    if type(dbapi_connection).__module__ != "sqlite3":
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def register_input_checks(app: Flask) -> None:
    """No page takes a NUL or other control character (``alertsvc.characters``)."""
    from alertsvc import characters

    characters.register(app)


def register_converters(app: Flask) -> None:
    """``<int:…>`` in every route is an id that fits our id columns (``alertsvc.ids``);
    before any blueprint registers, so each of their rules is built with it."""
    from alertsvc.ids import IdConverter

    app.url_map.converters["int"] = IdConverter


def register_blueprints(app: Flask) -> None:
    from alertsvc import ops
    from alertsvc.delivery import dev_routes
    from alertsvc.legal.routes import bp as legal_bp
    from alertsvc.ses_events.routes import bp as ses_events_bp
    from alertsvc.subscriptions.embed import bp as embed_bp
    from alertsvc.subscriptions.routes import bp as subscriptions_bp

    app.register_blueprint(subscriptions_bp)
    app.register_blueprint(embed_bp)
    app.register_blueprint(ses_events_bp)
    app.register_blueprint(legal_bp)
    app.register_blueprint(ops.bp)
    if app.config["ENV"] in LOCAL_ENVIRONMENTS and app.config["MAIL_TRANSPORT"] == "file":
        app.register_blueprint(dev_routes.bp)
    from alertsvc.admin import init_admin
    from alertsvc.api import init_api

    init_admin(app)
    init_api(app)


def register_error_handlers(app: Flask) -> None:
    from alertsvc import errors

    errors.register(app)


def register_security_headers(app: Flask) -> None:
    """Headers on every response, error pages included (``after_request`` runs for those too).

    Every page refuses to be framed (``frame-ancestors 'none'`` and ``X-Frame-Options:
    DENY``) unless it sets a policy naming who may frame it, as ``/embed/register`` does
    for ``EMBED_ORIGINS``. HSTS only in production, the one environment whose ``BASE_URL``
    must be https; development serves plain http on 127.0.0.1.
    """
    hsts = f"max-age={HSTS_MAX_AGE_SECONDS}" if app.config["ENV"] == "production" else None

    @app.after_request
    def _headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        # Signed tokens live in URLs: never leak them to another site in a Referer. Our own
        # pages do get one: over https Flask-WTF refuses a form posted without a
        # same-origin Referer (WTF_CSRF_SSL_STRICT), so no-referrer broke every form.
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("Content-Security-Policy", content_security_policy())
        if not allows_framing(headers["Content-Security-Policy"]):
            headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Cache-Control", "no-store")
        if response.cache_control.public:
            # A response shared caches may keep carries nothing of the reader's session:
            # no Set-Cookie, whatever touched the session (a flash waiting for its page,
            # Flask-Login's session protection marking an operator's session not fresh).
            session.modified = False
        if hsts:
            headers.setdefault("Strict-Transport-Security", hsts)
        return response


FREQUENCY_PHRASES = {
    "immediately": "an email as soon as we publish",
    "daily": "a daily email",
    "weekly": "a weekly email",
}


def register_template_filters(app: Flask) -> None:
    from alertsvc.legal.services import duration

    app.add_template_filter(lambda value: FREQUENCY_PHRASES.get(value, value), "frequency_phrase")
    app.add_template_filter(duration, "duration")


def _check_overrides(app: Flask, overrides: FileSystemLoader) -> None:
    """Compile each override at start-up: a template that cannot be read or parsed stops the
    service with one line, rather than leave the privacy notice a 500 until someone looks.
    (Mistakes only running shows, such as a misspelt variable, still show then.)"""
    for name in overrides.list_templates():
        if not name.endswith((".html", ".txt")):
            continue
        try:
            app.jinja_env.get_template(name)
        except TemplateSyntaxError as error:
            raise ConfigurationError(
                f"ALERTSVC_TEMPLATE_OVERRIDES_DIR: {name}, line {error.lineno}: {error.message}"
            ) from None
        except UnicodeDecodeError:
            raise ConfigurationError(
                f"ALERTSVC_TEMPLATE_OVERRIDES_DIR: {name} is not UTF-8 text"
            ) from None


def register_template_overrides(app: Flask) -> None:
    """A publisher's templates (``TEMPLATE_OVERRIDES_DIR``) come before the built-in ones, so
    dropping ``web/legal/privacy_body.html`` there replaces that wording without a fork.

    Production warns once at start-up about each publisher setting left to its derived
    default, so placeholder wording is never shipped without anyone being told.
    """
    overrides = FileSystemLoader(app.config["TEMPLATE_OVERRIDES_DIR"])
    app.jinja_loader = ChoiceLoader([overrides, app.jinja_loader])  # type: ignore[assignment,list-item]
    _check_overrides(app, overrides)
    if app.config["ENV"] == "production":
        for name in app.config["DERIVED_PUBLISHER_SETTINGS"]:
            logging.getLogger(__name__).warning(
                "ALERTSVC_%s is not set: the privacy notice and contact page show %r",
                name,
                app.config[name],
            )


def register_commands(app: Flask) -> None:
    """Each capability's ``cli`` module lists its top-level commands in ``COMMANDS``."""
    from alertsvc import scheduler
    from alertsvc.admin import cli as admin_cli
    from alertsvc.api import cli as api_cli
    from alertsvc.articles import cli as articles_cli
    from alertsvc.delivery import cli as delivery_cli
    from alertsvc.digests import cli as digests_cli
    from alertsvc.retention import cli as retention_cli
    from alertsvc.subscriptions import cli as subscriptions_cli
    from alertsvc.topics import cli as topics_cli

    modules = (
        topics_cli,
        articles_cli,
        digests_cli,
        delivery_cli,
        api_cli,
        admin_cli,
        retention_cli,
        subscriptions_cli,
    )
    for module in modules:
        for command in module.COMMANDS:
            app.cli.add_command(command)
    app.cli.add_command(scheduler.scheduler_command)
