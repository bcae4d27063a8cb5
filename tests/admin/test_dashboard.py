"""The dashboard: subscribers by topic, emails per day (chart and table), the outbox, feeds
that need attention, parked jobs and a paused-sending banner."""

from __future__ import annotations

import re
from datetime import date, timedelta

from flask import Flask
from sqlalchemy import insert, update

from alertsvc.admin.charts import line_chart
from alertsvc.delivery.pauses import pause
from alertsvc.delivery.stats import emails_per_day
from alertsvc.extensions import db
from alertsvc.models import (
    Article,
    DigestRun,
    Feed,
    OutboxEmail,
    PauseScope,
    SignupRequest,
    utcnow,
)
from tests.factories import create_article, create_feed, create_subscriber, create_topic


def _outbox(app: Flask, *rows: dict) -> None:
    with app.app_context():
        db.session.execute(insert(OutboxEmail), [{"template": "alert", **row} for row in rows])
        db.session.commit()


def _feed(app: Flask, url: str, **fields) -> int:
    feed_id = create_feed(app, url)
    with app.app_context():
        db.session.execute(update(Feed).where(Feed.id == feed_id).values(**fields))
        db.session.commit()
    return feed_id


def _table_row(page: str, header: str) -> list[str]:
    """The cells of the table row whose header cell starts with ``header``."""
    for row in re.findall(r"<tr>(.*?)</tr>", page, re.S):
        cells = [
            re.sub(r"<[^>]+>", "", cell).strip()
            for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
        ]
        if cells and cells[0].startswith(header):
            return cells
    raise AssertionError(f"no row {header!r}")


def test_subscribers_by_topic_and_frequency(app: Flask, admin_client):
    data = create_topic(app, "data", "Data")
    create_topic(app, "cyber", "Cyber")
    create_subscriber(app, "a@example.com", {data: "daily"})
    create_subscriber(app, "b@example.com", {data: "daily"})
    create_subscriber(app, "c@example.com", {data: "weekly"})
    create_subscriber(app, "gone@example.com", {data: "immediately"}, erased_at=utcnow())
    waiting = create_subscriber(app, "d@example.com", confirmed=False)
    with app.app_context():
        db.session.add(
            SignupRequest(
                subscriber_id=waiting,
                topic_ids=[data],
                frequency="weekly",
                timezone="UTC",
                daily_hour=7,
                weekly_day=0,
                weekly_hour=7,
            )
        )
        db.session.commit()

    page = admin_client.get("/admin/").get_data(as_text=True)
    # Topic, immediately, daily, weekly, confirmed, pending
    assert _table_row(page, "Data") == ["Data", "0", "2", "1", "3", "1"]
    assert _table_row(page, "Cyber") == ["Cyber", "0", "0", "0", "0", "0"]


def test_emails_per_day_as_a_chart_and_a_table(app: Flask, admin_client):
    now = utcnow()
    yesterday = now - timedelta(days=1)
    _outbox(
        app,
        {
            "created_at": yesterday,
            "next_attempt_at": yesterday,
            "status": "sent",
            "sent_at": yesterday,
        },
        {
            "created_at": yesterday,
            "next_attempt_at": yesterday,
            "status": "delivered",
            "sent_at": now,
        },
        # Failed on its last try, today: counted on the day it was queued.
        {"created_at": yesterday, "next_attempt_at": now, "status": "failed"},
        {"created_at": now, "next_attempt_at": now, "status": "suppressed"},
        {"created_at": now - timedelta(seconds=1), "next_attempt_at": now, "status": "queued"},
        {"created_at": now - timedelta(days=40), "next_attempt_at": now, "status": "queued"},
    )
    page = admin_client.get("/admin/").get_data(as_text=True)
    assert '<svg viewBox="0 0 720 260" role="img" aria-labelledby="chart-title chart-desc"' in page
    assert page.count("<polyline") == 4
    day = f"{yesterday:%a %-d %b %Y}"
    today = f"{now:%a %-d %b %Y}"
    # Day, queued, sent, failed, suppressed
    assert _table_row(page, day) == [day, "3", "1", "1", "0"]
    assert _table_row(page, today) == [today, "2", "1", "0", "1"]
    assert "queued 5, sent 2, failed 1, suppressed 1." in page
    # Outbox depth: both queued rows, the oldest 40 days old.
    assert re.search(r'<span class="figure">2</span> emails queued', page)
    assert re.search(r'<span class="figure">40 days</span> oldest queued email', page)


def test_emails_per_day_covers_thirty_utc_days_with_zeros(app: Flask):
    with app.app_context():
        days = emails_per_day(utcnow().date())
    assert len(days) == 30
    assert days[-1].day == utcnow().date()
    assert all(d.queued == d.sent == d.failed == d.suppressed == 0 for d in days)


def test_failing_stale_and_parked_work_is_listed(app: Flask, admin_client):
    now = utcnow()
    _feed(app, "https://feeds.example/ok", newest_item_at=now, title="Healthy feed")
    _feed(
        app,
        "https://feeds.example/bad",
        consecutive_failures=3,
        last_error="HTTP 502 Bad Gateway",
        title="Broken feed",
        newest_item_at=now,
    )
    _feed(
        app,
        "https://feeds.example/parked",
        consecutive_failures=8,
        parked_at=now,
        title="Parked feed",
        newest_item_at=now,
    )
    _feed(
        app, "https://feeds.example/old", newest_item_at=now - timedelta(days=30), title="Old feed"
    )
    _feed(
        app,
        "https://feeds.example/off",
        newest_item_at=now - timedelta(days=30),
        disabled_at=now,
        title="Switched off",
    )
    article = create_article(app, "Budget story", [], now)
    with app.app_context():
        db.session.get(Article, article).alert_parked_at = now
        db.session.get(Article, article).alert_last_error = "template exploded"
        db.session.add(
            DigestRun(
                frequency="daily",
                window_start=now - timedelta(days=1),
                window_end=now,
                status="planning",
                parked_at=now,
                last_error="disk full",
            )
        )
        db.session.commit()

    page = admin_client.get("/admin/").get_data(as_text=True)
    failing = page.split("<h2>Failing feeds</h2>")[1].split("<h2>")[0]
    assert "Broken feed" in failing and "HTTP 502 Bad Gateway" in failing
    assert "Parked feed" in failing and "Healthy feed" not in failing
    stale = page.split("<h2>Stale feeds</h2>")[1].split("<h2>")[0]
    assert "Old feed" in stale
    assert "Switched off" not in stale and "Healthy feed" not in stale
    parked = page.split("<h2>Parked jobs</h2>")[1]
    assert "1 article alert, 1 digest run and 1 feed were parked" in parked
    assert "Budget story" in parked and "template exploded" in parked and "disk full" in parked


def test_a_banner_says_sending_is_paused(app: Flask, admin_client):
    assert "Sending is paused" not in admin_client.get("/admin/").get_data(as_text=True)
    with app.app_context():
        pause(PauseScope.ALL, "bounce rate 6% over 5%", "guard", utcnow())
        db.session.commit()
    page = admin_client.get("/admin/").get_data(as_text=True)
    assert "Sending is paused" in page
    assert "all sending paused since" in page and "bounce rate 6% over 5%" in page


def test_a_viewer_sees_the_dashboard(viewer_client):
    response = viewer_client.get("/admin/")
    assert response.status_code == 200
    assert "Emails in the last 30 days" in response.get_data(as_text=True)


def test_the_chart_axis_has_round_steps_and_the_lines_span_it():
    days = [date(2026, 11, 2) + timedelta(days=n) for n in range(30)]
    chart = line_chart(days, [("Sent", "sent", [0] * 29 + [37])])
    assert [tick.label for tick in chart.y_ticks] == ["0", "10", "20", "30", "40", "50"]
    points = [tuple(map(float, p.split(","))) for p in chart.series[0].points.split()]
    assert len(points) == 30
    assert points[0] == (chart.left, chart.bottom)
    top = chart.bottom - (chart.bottom - chart.top) * 37 / 50
    assert points[-1] == (chart.right, round(top, 1))
    assert [tick.label for tick in chart.x_ticks] == [
        "3 Nov",
        "10 Nov",
        "17 Nov",
        "24 Nov",
        "1 Dec",
    ]


def test_the_dashboard_shows_the_reputation_guard(app, admin_client):
    """Issue 14: the guard from the delivery issue is visible on the dashboard."""
    from alertsvc.database import transaction
    from alertsvc.delivery.pauses import pause
    from alertsvc.delivery.reputation import PAUSED_BY
    from alertsvc.models import PauseScope, utcnow

    page = " ".join(admin_client.get("/admin/").get_data(as_text=True).split())
    assert "<h2>Reputation</h2>" in page
    assert "Too few sends for a verdict" in page
    assert "2.50%" in page and "0.050%" in page
    with app.app_context(), transaction():
        pause(PauseScope.SUBSCRIPTIONS, "bounce rate 4%", PAUSED_BY, utcnow())
    assert "Paused by the guard" in admin_client.get("/admin/").get_data(as_text=True)
