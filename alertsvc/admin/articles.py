"""Articles pages: search (title, id or address), one article with its topics and the
emails it produced, and marking a major update (its subscribers are alerted again)."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from alertsvc.admin import stats
from alertsvc.admin.blueprint import bp
from alertsvc.admin.forms import ConfirmForm
from alertsvc.articles import services
from alertsvc.audit import record_audit
from alertsvc.database import transaction
from alertsvc.extensions import db
from alertsvc.ids import query_id
from alertsvc.models import Article, OutboxStatus, Topic

PAGE_SIZE = 50


@bp.get("/articles")
def articles() -> ResponseReturnValue:
    text = request.args.get("q", "")
    before = query_id("before")
    problem = None
    if len(text) > services.SEARCH_MAX:
        problem = f"Search for at most {services.SEARCH_MAX} characters"
    found = [] if problem else services.search_articles(text, before_id=before, limit=PAGE_SIZE + 1)
    more = len(found) > PAGE_SIZE
    found = found[:PAGE_SIZE]
    return render_template(
        "web/admin/articles.html",
        articles=found,
        text=text if not problem else "",
        problem=problem,
        next_before=found[-1].id if more else None,
        paged=before is not None,
    ), 400 if problem else 200


@bp.get("/articles/<int:article_id>")
def articles_view(article_id: int) -> ResponseReturnValue:
    article = db.session.get(Article, article_id)
    if article is None:
        abort(404)
    emails = stats.article_emails(article.id)
    names = {topic.id: topic.name for topic in article.topics}
    extra = set(emails.by_topic) - set(names)
    if extra:
        for topic in db.session.scalars(select(Topic).where(Topic.id.in_(extra))):
            names[topic.id] = topic.name
    return render_template(
        "web/admin/article.html",
        article=article,
        emails=emails,
        topic_names=names,
        statuses=[status.value for status in OutboxStatus],
    )


@bp.post("/articles/<int:article_id>/major-update")
def articles_major_update(article_id: int) -> ResponseReturnValue:
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        with transaction():
            article = services.mark_major_update(article_id)
            record_audit(
                "article.major_update", f"article {article.id}", {"revision": article.revision}
            )
    except services.UnknownArticle:
        abort(404)
    flash(
        "Marked as a major update: subscribers who get immediate alerts for its topics are "
        "alerted again."
    )
    return redirect(url_for("admin.articles_view", article_id=article_id), 303)
