"""Topics pages: list with live subscriber counts, create, edit, retire and un-retire, and a
preview of what a keyword query matches."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import IntegrityError

from alertsvc.admin import stats
from alertsvc.admin.blueprint import bp
from alertsvc.admin.content_forms import EditTopicForm, TopicForm
from alertsvc.admin.forms import ConfirmForm
from alertsvc.audit import record_audit, record_changes
from alertsvc.database import transaction
from alertsvc.extensions import db
from alertsvc.models import Topic, utcnow
from alertsvc.subscriptions.stats import confirmed_subscription_counts
from alertsvc.text import sentence
from alertsvc.topics import services
from alertsvc.topics.keywords import QueryError

PREVIEW_DAYS = 30
PREVIEW_LIMIT = 20


def _topic(topic_id: int) -> Topic:
    topic = db.session.get(Topic, topic_id)
    if topic is None:
        abort(404)
    return topic


def _field_for(message: str) -> str:
    """Which field a service's refusal is about (its messages name the field first)."""
    for prefix, name in (
        ("slug", "slug"),
        ("a topic with slug", "slug"),
        ("name", "name"),
        ("description", "description"),
    ):
        if message.startswith(prefix):
            return name
    return "query"


def _refuse(form: TopicForm, error: Exception) -> None:
    name = _field_for(str(error))
    field = getattr(form, name, None) or form.name
    field.errors = [*field.errors, sentence(str(error))]


def _preview(query: str) -> tuple[list[Any] | None, str | None]:
    """Matching recent articles, or why the query cannot be used."""
    try:
        return services.preview_query(query, days=PREVIEW_DAYS, limit=PREVIEW_LIMIT), None
    except QueryError as error:
        return None, sentence(str(error))


def _preview_form_query(form: TopicForm, query: str) -> list[Any] | None:
    """The "Preview matching articles" button: the articles, or None with the reason on
    the form's query field."""
    if not query:
        form.query.errors = ["Enter a query to preview"]
        return None
    preview, problem = _preview(query)
    if problem:
        form.query.errors = [problem]
    return preview


@bp.get("/topics")
def topics() -> ResponseReturnValue:
    counts = confirmed_subscription_counts()
    return render_template(
        "web/admin/topics.html",
        topics=services.list_topics(),
        counts=counts,
        frequencies=stats.FREQUENCIES,
    )


@bp.route("/topics/new", methods=["GET", "POST"])
def topics_new() -> ResponseReturnValue:
    form = TopicForm()
    preview = None
    if form.validate_on_submit():
        query = (form.query.data or "").strip()
        if request.form.get("action") == "preview":
            preview = _preview_form_query(form, query)
        else:
            try:
                with transaction():
                    topic = services.add_topic(
                        form.slug.data.strip(),
                        form.name.data,
                        form.description.data or "",
                        query=query or None,
                    )
                    db.session.flush()
                    record_audit(
                        "topic.create",
                        f"topic {topic.slug}",
                        {"name": topic.name, "query": topic.query},
                    )
            except services.TopicError as error:
                _refuse(form, error)
            except IntegrityError:
                form.slug.errors = ["A topic with this slug already exists"]
            else:
                flash(f"Topic {topic.name} added.")
                return redirect(url_for("admin.topics_edit", topic_id=topic.id), 303)
    status = 400 if form.errors else 200
    return render_template(
        "web/admin/topic_form.html",
        form=form,
        topic=None,
        preview=preview,
        preview_query=form.query.data,
        preview_days=PREVIEW_DAYS,
    ), status


@bp.route("/topics/<int:topic_id>", methods=["GET", "POST"])
def topics_edit(topic_id: int) -> ResponseReturnValue:
    topic = _topic(topic_id)
    form = EditTopicForm(obj=topic if request.method != "POST" else None)
    preview = None
    preview_query = topic.query
    if request.method == "GET" and topic.query and request.args.get("preview"):
        preview, problem = _preview(topic.query)
        if problem:
            flash(f"The saved query cannot be used: {problem}")
    if form.validate_on_submit():
        query = (form.query.data or "").strip()
        if request.form.get("action") == "preview":
            preview_query = query
            if not topic.query:
                form.query.errors = ["Only a keyword topic has a query to preview"]
            else:
                preview = _preview_form_query(form, query)
        else:
            before = {"name": topic.name, "description": topic.description, "query": topic.query}
            try:
                with transaction():
                    services.update_topic(
                        topic, form.name.data, form.description.data or "", query or None
                    )
                    after = {
                        "name": topic.name,
                        "description": topic.description,
                        "query": topic.query,
                    }
                    changed = record_changes("topic.update", f"topic {topic.slug}", before, after)
            except services.TopicError as error:
                db.session.expire(topic)
                _refuse(form, error)
            else:
                flash("Your changes have been saved." if changed else "Nothing was changed.")
                return redirect(url_for("admin.topics_edit", topic_id=topic.id), 303)
    status = 400 if form.errors else 200
    return render_template(
        "web/admin/topic_form.html",
        form=form,
        topic=topic,
        counts=confirmed_subscription_counts().get(topic.id, {}),
        frequencies=stats.FREQUENCIES,
        preview=preview,
        preview_query=preview_query,
        preview_days=PREVIEW_DAYS,
    ), status


def _retirement(topic_id: int, retire: bool) -> ResponseReturnValue:
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400)
    topic = _topic(topic_id)
    with transaction():
        changed = (
            services.retire_topic(topic, utcnow()) if retire else services.unretire_topic(topic)
        )
        if changed:
            record_audit("topic.retire" if retire else "topic.unretire", f"topic {topic.slug}")
    if retire:
        flash(
            f"Topic {topic.name} is retired: readers can no longer choose it and no new "
            "article joins it."
            if changed
            else f"Topic {topic.name} was already retired."
        )
    else:
        flash(
            f"Topic {topic.name} is offered to readers again."
            if changed
            else f"Topic {topic.name} was not retired."
        )
    return redirect(url_for("admin.topics_edit", topic_id=topic.id), 303)


@bp.post("/topics/<int:topic_id>/retire")
def topics_retire(topic_id: int) -> ResponseReturnValue:
    return _retirement(topic_id, retire=True)


@bp.post("/topics/<int:topic_id>/unretire")
def topics_unretire(topic_id: int) -> ResponseReturnValue:
    return _retirement(topic_id, retire=False)
