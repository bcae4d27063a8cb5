"""/metrics: Prometheus text behind a bearer token, whose counts move when mail goes out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from alertsvc.articles.jobs import poll_feeds
from alertsvc.config import ConfigurationError
from alertsvc.database import transaction
from alertsvc.delivery.outbox import queue_email
from alertsvc.delivery.worker import Worker
from alertsvc.models import utcnow
from tests.delivery.helpers import suppress
from tests.digests.helpers import alerts, at, digest, start_subscriptions_at
from tests.factories import (
    create_article,
    create_feed,
    create_subscriber,
    queue_manage_link,
    queue_manage_links,
    seed_topics,
)

TOKEN = "metrics-token-0123456789-abcdefghijklmnop"


def scrape(app: Flask) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The page's samples as {(name, labels): value}."""
    response = app.test_client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/plain"
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for sample in family.samples
    }


@pytest.fixture
def metrics_app(app_with: Callable[..., Flask]) -> Flask:
    return app_with(METRICS_TOKEN=TOKEN)


def test_without_a_token_setting_the_page_does_not_exist(app: Flask) -> None:
    response = app.test_client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 404


@pytest.mark.parametrize(
    "header", [None, "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer "]
)
def test_a_wrong_or_missing_token_is_refused(metrics_app: Flask, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    response = metrics_app.test_client().get("/metrics", headers=headers)
    assert response.status_code == 401
    assert "alertsvc_" not in response.get_data(as_text=True)


def test_counters_move_when_mail_is_sent(metrics_app: Flask) -> None:
    before = scrape(metrics_app)
    sent_before = before.get(("alertsvc_emails_total", (("result", "sent"),)), 0.0)
    latency_before = before.get(("alertsvc_send_seconds_count", ()), 0.0)
    queue_manage_links(metrics_app, 3)

    queued = scrape(metrics_app)
    assert queued[("alertsvc_outbox_emails", (("status", "queued"),))] == 3
    assert queued[("alertsvc_outbox_depth", ())] == 3

    totals = Worker(metrics_app, burst=True).run()
    assert totals.sent == 3

    after = scrape(metrics_app)
    assert after[("alertsvc_emails_total", (("result", "sent"),))] == sent_before + 3
    assert after[("alertsvc_send_seconds_count", ())] == latency_before + 3
    assert after[("alertsvc_outbox_depth", ())] == 0
    assert after[("alertsvc_outbox_oldest_queued_age_seconds", ())] == 0


def queued(samples: dict, kind: str) -> float:
    return samples.get(("alertsvc_emails_queued_total", (("kind", kind),)), 0.0)


def test_emails_queued_are_counted_by_kind_when_they_commit(metrics_app: Flask) -> None:
    """Emails queued one by one (a manage link), by a digest run and by immediate alerts
    each count once their transaction commits; a rolled-back one never does."""
    app = metrics_app
    before = scrape(app)
    queue_manage_links(app, 2)
    with app.app_context(), pytest.raises(RuntimeError), transaction():
        queue_email(template="manage_link", to_address="gone@example.com", subject="Manage")
        raise RuntimeError("rolled back")

    topics = seed_topics(app)
    daily = create_subscriber(app, "daily@example.com", {topics["data"]: "daily"})
    now = create_subscriber(app, "now@example.com", {topics["data"]: "immediately"})
    for subscriber in (daily, now):
        start_subscriptions_at(app, subscriber, at("2026-11-25T07:00"))
    create_article(app, "Open data", [topics["data"]], at("2026-11-25T09:00"), alerted=False)
    assert alerts(app, at("2026-11-25T09:01")).emails == 1
    assert digest(app, "daily", at("2026-11-26T07:00"), dry_run=True).emails == 1
    assert digest(app, "daily", at("2026-11-26T07:00")).emails == 1

    after = scrape(app)
    assert queued(after, "manage_link") == queued(before, "manage_link") + 2
    assert queued(after, "alert") == queued(before, "alert") + 1
    assert queued(after, "digest") == queued(before, "digest") + 1, "the dry run counts nothing"


def test_suppressed_emails_and_feed_poll_errors_are_counted(
    app_with: Callable[..., Flask], httpserver
) -> None:
    app = app_with(METRICS_TOKEN=TOKEN, FEEDS_ALLOW_PRIVATE_ADDRESSES=True)
    before = scrape(app)
    queue_manage_links(app, 2, domain="example.org")
    suppress(app, "reader0@example.org")
    assert Worker(app, burst=True).run().suppressed == 1
    httpserver.expect_request("/gone").respond_with_data("nope", status=503)
    create_feed(app, httpserver.url_for("/gone"))
    with app.app_context():
        [result] = poll_feeds()
    assert result.error and result.error.startswith("HTTP 503")

    after = scrape(app)
    for name, labels in (
        ("alertsvc_emails_total", (("result", "suppressed"),)),
        ("alertsvc_emails_total", (("result", "sent"),)),
        ("alertsvc_feed_poll_errors_total", ()),
    ):
        assert after[(name, labels)] == before.get((name, labels), 0.0) + 1, name


def test_gauges_read_the_database(metrics_app: Flask) -> None:
    queue_manage_links(metrics_app, 1)
    create_feed(metrics_app, "https://feeds.example/parked.xml", parked_at=utcnow())
    samples = scrape(metrics_app)
    assert samples[("alertsvc_parked_jobs", (("kind", "feeds"),))] == 1
    assert samples[("alertsvc_parked_jobs", (("kind", "runs"),))] == 0
    assert samples[("alertsvc_sending_paused", (("scope", "all"),))] == 0
    assert 0 <= samples[("alertsvc_outbox_oldest_queued_age_seconds", ())] < 60


def test_oldest_queued_age(metrics_app: Flask) -> None:
    queue_manage_link(metrics_app, created_at=utcnow() - timedelta(hours=2))
    age = scrape(metrics_app)[("alertsvc_outbox_oldest_queued_age_seconds", ())]
    assert 7190 < age < 7300


def test_production_refuses_a_weak_metrics_token(
    base_config: dict, make_app: Callable[..., Flask]
) -> None:
    with pytest.raises(ConfigurationError, match="ALERTSVC_METRICS_TOKEN"):
        make_app(ENV="production", METRICS_TOKEN="secret")


def test_multiprocess_mode_adds_up_every_process(tmp_path: Path) -> None:
    """Two processes count into one PROMETHEUS_MULTIPROC_DIR; a scrape sees both."""
    count = "from alertsvc.metrics import count_emails; count_emails(sent=2, failed=1)"
    read = (
        "from prometheus_client import CollectorRegistry, generate_latest\n"
        "from prometheus_client.multiprocess import MultiProcessCollector\n"
        "registry = CollectorRegistry(); MultiProcessCollector(registry)\n"
        "print(generate_latest(registry).decode())"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", count], env=env, check=True)
    text = subprocess.run(
        [sys.executable, "-c", read], env=env, check=True, capture_output=True, text=True
    ).stdout
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert samples[("alertsvc_emails_total", (("result", "sent"),))] == 4
    assert samples[("alertsvc_emails_total", (("result", "failed"),))] == 2


@pytest.mark.parametrize("kind", ["missing", "a file"])
def test_a_multiprocess_folder_that_cannot_be_used_is_one_line(tmp_path: Path, kind: str) -> None:
    """Every process counts into the folder from its first import of the metrics: one
    that is not there stops a command with a line saying so, not a traceback."""
    folder = tmp_path / "prometheus"
    if kind == "a file":
        folder.write_text("")
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(folder),
        "ALERTSVC_ENV": "testing",
        "ALERTSVC_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
    }
    result = subprocess.run(
        [sys.executable, "-c", "from alertsvc.cli import main; main()", "routes"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "PROMETHEUS_MULTIPROC_DIR" in result.stderr
    assert str(folder) in result.stderr


WEB_SCRAPE = """
import json, os, sys
from alertsvc import create_app
app = create_app(json.loads(os.environ["TEST_APP_CONFIG"]))
response = app.test_client().get("/metrics", headers={"Authorization": "Bearer " + sys.argv[1]})
assert response.status_code == 200, response.status_code
print(response.get_data(as_text=True))
"""


def test_the_page_adds_up_a_worker_process_in_multiprocess_mode(
    tmp_path: Path, base_config: dict, app: Flask
) -> None:
    """The route, served by one process, shows what another (a worker) counted, and the
    database's gauges beside it."""
    queue_manage_links(app, 2)
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        "TEST_APP_CONFIG": json.dumps({**base_config, "METRICS_TOKEN": TOKEN}),
    }
    worker = "from alertsvc.metrics import count_emails; count_emails(sent=5, suppressed=1)"
    subprocess.run([sys.executable, "-c", worker], env=env, check=True)
    page = subprocess.run(
        [sys.executable, "-c", WEB_SCRAPE, TOKEN],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(page)
        for sample in family.samples
    }
    assert samples[("alertsvc_emails_total", (("result", "sent"),))] == 5
    assert samples[("alertsvc_emails_total", (("result", "suppressed"),))] == 1
    assert samples[("alertsvc_outbox_depth", ())] == 2
