"""The retention purge: old outbox rows, bodies, ledgers and runs go, each subscriber's
latest digest position stays (the next run sends exactly what is new), and the addresses
of people who left long enough ago are blanked."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import select

from alertsvc.extensions import db
from alertsvc.models import (
    AlertDelivery,
    AuditEntry,
    DigestDelivery,
    DigestRun,
    DigestRunSlot,
    EmailBody,
    OutboxEmail,
    OutboxStatus,
    Subscriber,
    Subscription,
    utcnow,
)
from alertsvc.retention.jobs import purge_expired_data
from tests.digests.helpers import at, digest, start_subscriptions_at
from tests.factories import (
    count,
    create_article,
    create_subscriber,
    queue_manage_link,
    rows,
    seed_topics,
)
from tests.mail import text_part

LATER = timedelta(days=100)  # past every default retention period


def purge(app: Flask, after: timedelta = LATER, **options):
    with app.app_context():
        return purge_expired_data(utcnow() + after, **options)


def test_the_next_run_after_a_purge_sends_exactly_the_new_articles(app: Flask, mailbox) -> None:
    topics = seed_topics(app)
    reader = create_subscriber(app, "reader@example.com", {topics["data"]: "daily"})
    start_subscriptions_at(app, reader, at("2026-01-05T07:00"))
    create_article(app, "Monday", [topics["data"]], at("2026-01-05T12:00"))
    create_article(app, "Tuesday", [topics["data"]], at("2026-01-06T12:00"))
    for day in ("06", "07", "08"):
        digest(app, "daily", at(f"2026-01-{day}T07:00"))
    assert len(mailbox.deliver()) == 2
    create_article(app, "Saturday, before the purge", [topics["data"]], at("2026-01-10T12:00"))
    assert count(app, DigestDelivery) == 3

    counts = purge(app)

    assert counts.digest_deliveries == 2
    kept = rows(app, select(DigestDelivery.window_end))
    assert kept == [at("2026-01-08T07:00")], "the latest position stays"
    assert counts.outbox_emails == 2 and count(app, OutboxEmail) == 0
    assert counts.email_bodies == 2 and count(app, EmailBody) == 0
    assert counts.digest_runs == 3 and count(app, DigestRun) == 0
    assert count(app, DigestRunSlot) == 0

    create_article(app, "Monday, after the purge", [topics["data"]], at("2026-01-12T12:00"))
    assert digest(app, "daily", at("2026-01-13T07:00")).emails == 1
    [message] = mailbox.deliver()
    text = text_part(message)
    assert "Saturday, before the purge" in text, "nothing skipped"
    assert "Monday, after the purge" in text
    assert "Tuesday" not in text and "Monday\n" not in text, "nothing twice"
    assert message["Subject"].startswith("Daily email alert: 2 new articles")


def test_unfinished_and_recent_mail_stays(app: Flask) -> None:
    queued = queue_manage_link(app, "queued@example.com")
    recent = queue_manage_link(app, "recent@example.com", status=OutboxStatus.SENT)
    old = queue_manage_link(
        app,
        "old@example.com",
        status=OutboxStatus.FAILED,
        next_attempt_at=utcnow() - timedelta(days=120),
        created_at=utcnow() - timedelta(days=120),
    )
    counts = purge(app, timedelta(0))
    assert counts.outbox_emails == 1
    assert sorted(rows(app, select(OutboxEmail.id))) == sorted([queued, recent])
    assert old not in rows(app, select(OutboxEmail.id))


def test_alert_ledger_rows_waiting_for_a_digest_stay(app: Flask) -> None:
    old = utcnow() - timedelta(days=200)
    with app.app_context():
        db.session.add_all(
            [
                AlertDelivery(subscriber_id=1, article_id=1, created_at=old),
                AlertDelivery(subscriber_id=1, article_id=2, created_at=old, carried_over=True),
                AlertDelivery(subscriber_id=1, article_id=3, created_at=utcnow()),
            ]
        )
        db.session.commit()
    assert purge(app, timedelta(0)).alert_deliveries == 1
    assert sorted(rows(app, select(AlertDelivery.article_id))) == [2, 3]


def test_addresses_of_people_who_left_long_ago_are_blanked(app: Flask) -> None:
    topics = seed_topics(app)
    long_gone = create_subscriber(app, "long.gone@example.com", {topics["data"]: "daily"})
    lately_gone = create_subscriber(app, "lately.gone@example.com", {topics["data"]: "daily"})
    staying = create_subscriber(app, "staying@example.com", {topics["data"]: "daily"})
    never_confirmed = create_subscriber(app, "never@example.com", confirmed=False)
    with app.app_context():
        for subscriber_id, days in ((long_gone, 40), (lately_gone, 10)):
            for subscription in db.session.scalars(
                select(Subscription).where(Subscription.subscriber_id == subscriber_id)
            ):
                subscription.ended_at = utcnow() - timedelta(days=days)
                subscription.ended_reason = "unsubscribed"
        for subscriber in db.session.scalars(select(Subscriber)):
            subscriber.created_at = utcnow() - timedelta(days=60)
        db.session.commit()

    assert purge(app, timedelta(0), dry_run=True).addresses_blanked == 2
    assert count(app, Subscriber, Subscriber.erased_at.is_not(None)) == 0, "dry run"

    assert purge(app, timedelta(0)).addresses_blanked == 2
    emails = dict(rows(app, select(Subscriber.id, Subscriber.email)))
    assert emails[lately_gone] == "lately.gone@example.com"
    assert emails[staying] == "staying@example.com"
    assert "@example.com" not in emails[long_gone]
    assert "@example.com" not in emails[never_confirmed]
    assert purge(app, timedelta(0)).addresses_blanked == 0, "once is enough"


def test_a_dry_run_counts_what_the_purge_then_does(app: Flask, mailbox) -> None:
    topics = seed_topics(app)
    reader = create_subscriber(app, "reader@example.com", {topics["data"]: "daily"})
    start_subscriptions_at(app, reader, at("2026-01-05T07:00"))
    create_article(app, "Monday", [topics["data"]], at("2026-01-05T12:00"))
    digest(app, "daily", at("2026-01-06T07:00"))
    digest(app, "daily", at("2026-01-07T07:00"))
    mailbox.deliver()
    before = {model: count(app, model) for model in (OutboxEmail, EmailBody, DigestRun)}

    dry = purge(app, dry_run=True)
    assert {model: count(app, model) for model in before} == before
    assert purge(app) == dry
    assert dry.outbox_emails == 1 and dry.email_bodies == 1 and dry.digest_runs == 2


def test_the_command_prints_the_counts_and_is_audited(app: Flask) -> None:
    queue_manage_link(
        app,
        "old@example.com",
        status=OutboxStatus.SENT,
        next_attempt_at=utcnow() - timedelta(days=365),
    )
    runner = app.test_cli_runner()
    dry = runner.invoke(args=["retention", "purge", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "1  outbox emails to delete" in dry.output
    assert "nothing was changed" in dry.output
    assert count(app, AuditEntry) == 0

    real = runner.invoke(args=["retention", "purge"])
    assert real.exit_code == 0, real.output
    assert "1  outbox emails deleted" in real.output
    [entry] = rows(app, select(AuditEntry))
    assert entry.action == "retention.purge"
    assert entry.actor.startswith("cli:")
    assert entry.details["outbox_emails"] == 1


@pytest.mark.parametrize("name", ["RETENTION_OUTBOX_DAYS", "RETENTION_RUNS_DAYS"])
def test_zero_days_is_refused_at_start_up(app_with, name: str) -> None:
    from alertsvc.config import ConfigurationError

    with pytest.raises(ConfigurationError, match=f"ALERTSVC_{name}"):
        app_with(**{name: 0})


def test_the_scheduler_purges_daily(app: Flask) -> None:
    from alertsvc.scheduler import build_scheduler, make_leader_lock

    jobs = {job.id: job for job in build_scheduler(app, make_leader_lock(app)).get_jobs()}
    purge_job = jobs["purge_expired_data"]
    assert purge_job.name == "purge_expired_data"
    assert str(purge_job.trigger) == "cron[hour='3', minute='37']"
