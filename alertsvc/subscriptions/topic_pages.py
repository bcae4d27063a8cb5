"""Public topic pages: ``/topics``, ``/topics/<slug>`` and its Atom feed.

They show readers what a topic would send them before they sign up. The pages are the same
for every reader, so shared caches may keep them (``Cache-Control: public``) and readers'
browsers revalidate them with an ``ETag``. Nothing on them may come from one reader's
session: the signup form here is a GET form to the signup page (``/?email=…&topic=…``),
which prefills the full form, so its CSRF token and consent stay on that page; and the
pages neither show nor consume flashed messages.

The routes register on the subscriptions blueprint (``routes.py`` imports this module).
They live here, not in ``alertsvc.topics``, because they use the signup pieces and
subscriptions already imports topics.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from flask import Response, abort, current_app, redirect, render_template, request, url_for
from jinja2 import BaseLoader, TemplateNotFound
from sqlalchemy import func, select
from wtforms import Form, StringField

from alertsvc.extensions import db
from alertsvc.models import Article, Topic, article_topics
from alertsvc.subscriptions.routes import bp
from alertsvc.topics.keywords import QueryError, describe_query
from alertsvc.topics.services import active_topics

PAGE_ARTICLES = 10
FEED_ARTICLES = 20
CACHE_CONTROL = "public, max-age=300"
ATOM_CONTENT_TYPE = "application/atom+xml; charset=utf-8"
TOPICS_TEMPLATE = "web/topics.html"
TOPIC_TEMPLATE = "web/topic.html"
FEED_TEMPLATE = "web/topic_feed.xml"
# Settings these pages show: changing one changes their ETag, like a changed template does.
# Settings the pages show (the footer's publisher and contact line among them).
PAGE_SETTINGS = (
    "SITE_NAME",
    "BASE_URL",
    "TIMEZONE",
    "PUBLISHER_NAME",
    "PRIVACY_CONTROLLER",
    "CONTACT_EMAIL",
    "CONTACT_PHONE",
    "CONTACT_ADDRESS",
)
# Characters XML 1.0 does not allow, even escaped (C0 controls but tab, CR and LF; U+FFFE/F).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
# An absolute IRI (RFC 3987): a scheme, then no space and none of the characters it excludes.
_IRI = re.compile(r'^[a-zA-Z][a-zA-Z0-9+.-]*:[^\s<>"{}|\\^`]+$')


class TopicSignupForm(Form):
    """The topic page's address box: a GET to the signup page, so no CSRF token."""

    email = StringField("Email address")


@dataclass(frozen=True)
class TopicState:
    """A topic readers can follow, and what its page and feed are built from."""

    topic: Topic
    article_count: int
    newest_article_id: int | None
    last_change: datetime | None


@dataclass(frozen=True)
class ArticleLink:
    """An article as a topic page and feed show it: plain text, web links only."""

    id: str
    title: str
    url: str
    summary_html: str
    author: str
    published: datetime
    updated: datetime


def _changed_at() -> object:
    """When an article last changed: stamped on edits and major updates, else its arrival."""
    return func.coalesce(Article.changed_at, Article.created_at)


def topic_state(slug: str) -> TopicState | None:
    """A topic readers can follow (not retired) with its articles' count, newest id and
    latest change, in one query: enough for the page's validator without loading articles."""
    row = db.session.execute(
        select(
            Topic,
            func.count(Article.id),
            func.max(Article.id),
            func.max(_changed_at()),
        )
        .outerjoin(article_topics, article_topics.c.topic_id == Topic.id)
        .outerjoin(Article, Article.id == article_topics.c.article_id)
        .where(Topic.slug == slug, Topic.retired_at.is_(None))
        .group_by(Topic.id)
    ).one_or_none()
    if row is None:
        return None
    topic, count, newest, changed = row
    return TopicState(topic, count, newest, changed)


def recent_articles(topic_id: int, limit: int) -> list[Article]:
    """The topic's ``limit`` most recently published articles, newest first."""
    return list(
        db.session.scalars(
            select(Article)
            .join(article_topics, article_topics.c.article_id == Article.id)
            .where(article_topics.c.topic_id == topic_id)
            .order_by(Article.published_at.desc(), Article.id.desc())
            .limit(limit)
        )
    )


def xml_text(value: str) -> str:
    """``value`` without the characters no XML document may hold (escaping cannot help)."""
    return _NOT_XML.sub("", value)


def _web_url(url: str) -> str:
    """Only web links: a ``javascript:`` or ``data:`` URL from a feed never reaches an href."""
    return url if url.lower().startswith(("https://", "http://")) else ""


def article_link(article: Article) -> ArticleLink:
    published = article.published_at
    updated = max(d for d in (published, article.updated_at, article.changed_at) if d)
    # An Atom id must be an IRI; a feed's GUID is often just a number or a string.
    guid = article.guid if _IRI.match(article.guid) else ""
    host = urlsplit(current_app.config["BASE_URL"]).hostname
    return ArticleLink(
        id=xml_text(guid or f"tag:{host},{article.created_at:%Y-%m-%d}:article:{article.id}"),
        title=xml_text(" ".join(article.title.split())),
        url=xml_text(_web_url(article.url)),
        summary_html=xml_text(article.summary or ""),
        author=xml_text(article.author or ""),
        published=published,
        updated=updated,
    )


def plain_query(topic: Topic) -> str | None:
    """A keyword topic's query in words for readers, or None for other topics."""
    if not topic.query:
        return None
    try:
        return describe_query(topic.query)
    except QueryError:  # stored queries were parsed on the way in; say nothing rather than fail
        return None


@functools.cache
def _template_digest(loader: BaseLoader) -> str:
    """The version of the public templates (every ``web/`` one but the admin's): whatever
    a page includes or extends, a deploy that changes it changes the pages' ETags."""
    env = current_app.jinja_env
    digest = hashlib.sha256()
    # Sorted: the loader lists a set, whose order changes with each process's hash seed.
    for name in sorted(loader.list_templates()):
        if name.startswith("web/") and name.endswith(".html") and not name.startswith("web/admin/"):
            try:
                source = loader.get_source(env, name)[0]
            except (UnicodeDecodeError, TemplateNotFound):
                continue  # not a template a page could render (an editor's backup file)
            digest.update(name.encode() + b"\0" + source.encode())
    return digest.hexdigest()


def _etag(*parts: object) -> str:
    """A validator from what a page is made of: templates, the settings it shows, data."""
    loader = current_app.jinja_env.loader
    assert loader is not None
    settings = [current_app.config[name] for name in PAGE_SETTINGS]
    seed = (_template_digest(loader), settings, *parts)
    return hashlib.sha256(repr(seed).encode()).hexdigest()[:32]


def _topic_parts(topic: Topic) -> tuple[object, ...]:
    return (topic.id, topic.slug, topic.name, topic.description, topic.query)


def _cacheable(etag: str, build: Callable[[], Response]) -> Response:
    """``build``'s response with the validator, or a 304 without building it when the
    reader's copy (``If-None-Match``) is still the current one."""
    # Only If-None-Match decides (werkzeug's is_resource_modified also answered 304 to an
    # If-Match that did not match).
    if request.if_none_match.contains_weak(etag) or request.if_none_match.star_tag:
        response = Response(status=304)
    else:
        response = build()
    response.set_etag(etag)
    response.headers["Cache-Control"] = CACHE_CONTROL
    return response


def _render_page(template: str, **context: object) -> Response:
    """A page with nothing from the reader's session in it, and no cookie set by it.

    ``get_flashed_messages`` is overridden: base.html would otherwise read (and empty) the
    reader's session, putting their message in a page shared caches keep. The session is
    never saved on a public response (``register_security_headers``): no ``Set-Cookie``.
    (Flask still sends ``Vary: Cookie``, as Flask-Login reads the session after every
    request: caches then share the page among readers without a cookie, most of them.)
    """
    return Response(render_template(template, get_flashed_messages=lambda: [], **context))


@bp.get("/topics")
def topic_list() -> Response:
    topics = active_topics()
    etag = _etag(TOPICS_TEMPLATE, [_topic_parts(t) for t in topics])
    return _cacheable(
        etag,
        lambda: _render_page(
            TOPICS_TEMPLATE, topics=[(topic, plain_query(topic)) for topic in topics]
        ),
    )


@bp.get("/topics/")
def topic_list_with_slash() -> Response:
    """``/topics/`` as typed or linked is the list, at its one address."""
    return redirect(url_for(".topic_list"), 308)


def _state_or_404(slug: str) -> TopicState:
    state = topic_state(slug)
    if state is None:
        abort(404)
    return state


def _state_parts(state: TopicState) -> tuple[object, ...]:
    return (
        *_topic_parts(state.topic),
        state.article_count,
        state.newest_article_id,
        str(state.last_change),
    )


@bp.get("/topics/<slug>")
def topic_page(slug: str) -> Response:
    state = _state_or_404(slug)
    topic = state.topic

    def build() -> Response:
        zone = ZoneInfo(current_app.config["TIMEZONE"])
        articles = [
            (link, link.published.astimezone(zone))
            for link in map(article_link, recent_articles(topic.id, PAGE_ARTICLES))
        ]
        return _render_page(
            TOPIC_TEMPLATE,
            topic=topic,
            query_words=plain_query(topic),
            articles=articles,
            form=TopicSignupForm(formdata=None),
        )

    return _cacheable(_etag(TOPIC_TEMPLATE, *_state_parts(state)), build)


def _atom_time(value: datetime) -> str:
    """RFC 3339, as Atom wants it, in UTC."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@bp.get("/topics/<slug>.atom")
def topic_feed(slug: str) -> Response:
    """Atom 1.0 (RFC 4287) of the topic's recent articles."""
    state = _state_or_404(slug)
    topic = state.topic

    def build() -> Response:
        entries = [article_link(a) for a in recent_articles(topic.id, FEED_ARTICLES)]
        base = current_app.config["BASE_URL"]
        page_url = base + url_for(".topic_page", slug=topic.slug)
        updated = max((e.updated for e in entries), default=topic.created_at)
        body = render_template(
            FEED_TEMPLATE,
            topic=topic,
            title=xml_text(topic.name),
            subtitle=xml_text(topic.description or ""),
            site_name=xml_text(current_app.config["SITE_NAME"]),
            entries=entries,
            page_url=page_url,
            feed_url=base + url_for(".topic_feed", slug=topic.slug),
            updated=updated,
            atom_time=_atom_time,
        )
        return Response(body, content_type=ATOM_CONTENT_TYPE)

    return _cacheable(_etag(FEED_TEMPLATE, *_state_parts(state)), build)
