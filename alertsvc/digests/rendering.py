"""Rendering digest and alert bodies once, to be shared by every subscriber who gets them.

Bodies carry placeholder links; the worker puts each subscriber's signed manage and
unsubscribe links in at send time (``alertsvc.delivery.messages``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime
from zoneinfo import ZoneInfo

import css_inline
from flask import current_app, render_template
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.engine import Connection

from alertsvc.database import insert_skipping_existing
from alertsvc.delivery.messages import MANAGE_PLACEHOLDER, UNSUBSCRIBE_PLACEHOLDER
from alertsvc.delivery.outbox import clean_header
from alertsvc.html import clean_html, html_to_text_with_links
from alertsvc.models import Article, EmailBody, utcnow
from alertsvc.text import plural

_inliner = css_inline.CSSInliner(keep_style_tags=False, load_remote_stylesheets=False)


@dataclass(frozen=True)
class ArticleView:
    """What an email shows of an article; built once per run."""

    id: int
    title: str
    url: str
    summary_html: Markup
    summary_text: str
    published: str
    # The article's entry in a digest, rendered once per run rather than once per digest.
    html_block: Markup | None = None
    text_block: str | None = None


@dataclass(frozen=True)
class RenderedBody:
    content_key: str
    subject: str
    html: str
    text: str


def article_view(article: Article, zone: ZoneInfo) -> ArticleView:
    summary = article.summary or ""
    # Summaries were sanitised on the way in; cleaning again costs little and means a
    # row written by any other path still cannot put markup in an email.
    safe_html = clean_html(summary)
    published: datetime = article.published_at
    return ArticleView(
        id=article.id,
        title=" ".join(article.title.split()),
        # Only web links: a javascript: or data: URL from a feed never reaches an href.
        url=article.url if article.url.lower().startswith(("https://", "http://")) else "",
        summary_html=Markup(safe_html),  # noqa: S704 - sanitised by clean_html just above
        summary_text=html_to_text_with_links(safe_html),
        published=f"{published.astimezone(zone):%-d %B %Y}",
    )


def digest_entry(view: ArticleView) -> ArticleView:
    """``view`` with its digest entry rendered, for a run that puts it in many digests."""
    return replace(
        view,
        # Rendered by an autoescaping template from the fields above: safe to embed as is.
        html_block=Markup(render_template("email/_digest_article.html", article=view)),  # noqa: S704
        text_block=render_template("email/_digest_article.txt", article=view),
    )


def _render(template: str, content_key: str, subject: str, **context: object) -> RenderedBody:
    context.update(
        site_name=current_app.config["SITE_NAME"],
        base_url=current_app.config["BASE_URL"],
        manage_url=MANAGE_PLACEHOLDER,
        unsubscribe_url=UNSUBSCRIBE_PLACEHOLDER,
    )
    return RenderedBody(
        content_key=content_key,
        subject=clean_header(subject)[:300],
        html=_inliner.inline(render_template(f"email/{template}.html", **context)),
        text=render_template(f"email/{template}.txt", **context),
    )


def _key(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:40]


def render_digest(
    run_id: int,
    frequency: str,
    sections: tuple[tuple[str, tuple[ArticleView, ...]], ...],
    carried_over: tuple[ArticleView, ...],
) -> RenderedBody:
    """One digest body: articles grouped by topic, each article once."""
    count = sum(len(articles) for _, articles in sections) + len(carried_over)
    label = "Daily" if frequency == "daily" else "Weekly"
    topic_names = [name for name, _ in sections]
    about = ", ".join(topic_names) if topic_names else "your topics"
    if len(about) > 120:
        about = about[:117] + "..."
    return _render(
        "digest",
        "digest:"
        + _key(
            run_id,
            [(name, [a.id for a in articles]) for name, articles in sections],
            [a.id for a in carried_over],
        ),
        f"{label} email alert: {plural(count, 'new article')} on {about}",
        frequency=frequency,
        sections=sections,
        carried_over=carried_over,
        article_count=count,
    )


def render_alert(
    article: ArticleView, revision: int, topic_names: tuple[str, ...], cap_reached: bool, cap: int
) -> RenderedBody:
    """One immediate alert body; ``cap_reached`` adds that later articles wait for the digest."""
    return _render(
        "alert",
        "alert:" + _key(article.id, revision, topic_names, cap_reached, cap),
        ("Updated: " if revision else "") + article.title,
        article=article,
        updated=bool(revision),
        topic_names=topic_names,
        cap_reached=cap_reached,
        cap=cap,
    )


def store_bodies(connection: Connection, rendered: list[RenderedBody]) -> dict[str, int]:
    """Store rendered bodies, reusing any already stored; content key -> body id.

    One multi-row insert that skips existing keys (a resumed or raced run, an alert queued
    again), then one query per thousand keys for the ids. The rows go in key order: two
    transactions inserting overlapping keys in different orders can each wait for the
    other's (a deadlock on PostgreSQL); in the same order, one simply waits its turn.
    """
    if not rendered:
        return {}
    now = utcnow()
    connection.execute(
        insert_skipping_existing(EmailBody, ["content_key"], connection),
        [
            {
                "content_key": r.content_key,
                "subject": r.subject,
                "html": r.html,
                "text": r.text,
                "created_at": now,
            }
            for r in sorted(rendered, key=lambda r: r.content_key)
        ],
    )
    keys = [r.content_key for r in rendered]
    ids: dict[str, int] = {}
    for start in range(0, len(keys), 1000):
        ids.update(
            (key, body_id)
            for body_id, key in connection.execute(
                select(EmailBody.id, EmailBody.content_key).where(
                    EmailBody.content_key.in_(keys[start : start + 1000])
                )
            )
        )
    return ids
