"""Feeds pages: health of every feed, add, edit, disable and enable, un-park, poll now."""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import IntegrityError

from alertsvc.admin.blueprint import bp
from alertsvc.admin.content_forms import EditFeedForm, FeedForm
from alertsvc.admin.forms import ConfirmForm
from alertsvc.articles import feeds as feed_services
from alertsvc.articles import jobs
from alertsvc.articles.feeds import HealthRules, PollStatus
from alertsvc.articles.fetching import FeedError
from alertsvc.audit import record_audit, record_changes
from alertsvc.database import transaction
from alertsvc.extensions import db
from alertsvc.models import Feed, utcnow
from alertsvc.text import sentence
from alertsvc.topics.services import list_topics


def _feed(feed_id: int) -> Feed:
    feed = db.session.get(Feed, feed_id)
    if feed is None:
        abort(404)
    return feed


def _topic_choices(feed: Feed | None = None) -> list[tuple[str, str]]:
    """Topics a feed can put articles in: those not retired, and any retired one the feed
    already has (shown so it can be taken off)."""
    current = {topic.id for topic in feed.topics} if feed else set()
    return [
        (topic.slug, topic.name + (" (retired)" if topic.retired_at else ""))
        for topic in list_topics()
        if topic.retired_at is None or topic.id in current
    ]


def _require_confirm() -> None:
    if not ConfirmForm().validate_on_submit():
        abort(400)


@bp.get("/feeds")
def feeds() -> ResponseReturnValue:
    return render_template(
        "web/admin/feeds.html",
        feeds=feed_services.list_feeds(),
        rules=HealthRules.from_config(current_app.config),
        now=utcnow(),
    )


@bp.route("/feeds/new", methods=["GET", "POST"])
def feeds_new() -> ResponseReturnValue:
    form = FeedForm()
    form.topics.choices = _topic_choices()
    if form.validate_on_submit():
        try:
            with transaction():
                feed = feed_services.add_feed(
                    form.url.data, form.topics.data or [], form.title.data or ""
                )
                record_audit(
                    "feed.create",
                    f"feed {feed.id}",
                    {"url": feed.url, "topics": sorted(topic.slug for topic in feed.topics)},
                )
        except FeedError as error:
            message = str(error)
            field = form.topics if message.startswith("no such topic") else form.url
            field.errors = [*field.errors, sentence(message)]
        except IntegrityError:
            form.url.errors = ["This feed is already added"]
        else:
            flash(f"Feed {feed.url} added. It is polled at the scheduler's next round.")
            return redirect(url_for("admin.feeds_edit", feed_id=feed.id), 303)
    status = 400 if form.errors else 200
    return render_template("web/admin/feed_form.html", form=form, feed=None), status


@bp.route("/feeds/<int:feed_id>", methods=["GET", "POST"])
def feeds_edit(feed_id: int) -> ResponseReturnValue:
    feed = _feed(feed_id)
    if request.method == "POST":
        form = EditFeedForm()
    else:
        form = EditFeedForm(
            formdata=None, title=feed.title, topics=sorted(topic.slug for topic in feed.topics)
        )
    form.topics.choices = _topic_choices(feed)
    if form.validate_on_submit():
        before = {"title": feed.title, "topics": sorted(topic.slug for topic in feed.topics)}
        try:
            with transaction():
                feed_services.update_feed(feed, form.title.data or "", form.topics.data or [])
                after = {"title": feed.title, "topics": sorted(topic.slug for topic in feed.topics)}
                changed = record_changes("feed.update", f"feed {feed.id}", before, after)
        except FeedError as error:
            form.topics.errors = [*form.topics.errors, sentence(str(error))]
        else:
            flash("Your changes have been saved." if changed else "Nothing was changed.")
            return redirect(url_for("admin.feeds_edit", feed_id=feed.id), 303)
    status = 400 if form.errors else 200
    return render_template(
        "web/admin/feed_form.html",
        form=form,
        feed=feed,
        rules=HealthRules.from_config(current_app.config),
        now=utcnow(),
    ), status


@bp.post("/feeds/<int:feed_id>/disable")
def feeds_disable(feed_id: int) -> ResponseReturnValue:
    _require_confirm()
    feed = _feed(feed_id)
    with transaction():
        changed = feed_services.disable_feed(feed, utcnow())
        if changed:
            record_audit("feed.disable", f"feed {feed.id}")
    flash(
        "The feed is disabled: it is not polled until enabled."
        if changed
        else "The feed was already disabled."
    )
    return redirect(url_for("admin.feeds_edit", feed_id=feed.id), 303)


@bp.post("/feeds/<int:feed_id>/enable")
def feeds_enable(feed_id: int) -> ResponseReturnValue:
    _require_confirm()
    feed = _feed(feed_id)
    with transaction():
        changed = feed_services.enable_feed(feed)
        if changed:
            record_audit("feed.enable", f"feed {feed.id}")
    flash(
        "The feed is enabled: it is polled at the scheduler's next round."
        if changed
        else "The feed was not disabled."
    )
    return redirect(url_for("admin.feeds_edit", feed_id=feed.id), 303)


@bp.post("/feeds/<int:feed_id>/unpark")
def feeds_unpark(feed_id: int) -> ResponseReturnValue:
    _require_confirm()
    feed = _feed(feed_id)
    was_parked = feed.parked_at is not None
    with transaction():
        feed_services.release_feed_for_retry(feed.id)
        record_audit("feed.unpark", f"feed {feed.id}", {"was_parked": was_parked})
    flash("The feed's failures are forgotten: it is polled at the scheduler's next round.")
    return redirect(url_for("admin.feeds_edit", feed_id=feed.id), 303)


@bp.post("/feeds/<int:feed_id>/poll")
def feeds_poll(feed_id: int) -> ResponseReturnValue:
    """Poll the feed now, in this request, as the scheduler would (same function, same
    lease, bounded by ``FEEDS_TIMEOUT_SECONDS``), disabled or parked or not due."""
    _require_confirm()
    _feed(feed_id)
    [result] = jobs.poll_feeds([feed_id], due_only=False)
    outcome = result.describe()
    with transaction():
        # The poll committed its own work; this records who asked for it and what happened.
        record_audit("feed.poll", f"feed {feed_id}", {"outcome": outcome[:500]})
    if result.status == PollStatus.FAILED:
        flash(f"The poll failed: {result.error}")
    elif result.status == PollStatus.BUSY:
        flash("The feed is being polled by the scheduler right now: try again in a minute.")
    else:
        flash(f"Polled: {outcome}.")
    return redirect(url_for("admin.feeds_edit", feed_id=feed_id), 303)
