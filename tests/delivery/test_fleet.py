"""Four ``alertsvc worker --burst`` processes drain 5,000 emails into SES (moto's server) on
one PostgreSQL: every email is sent, and SES is handed each Message-ID exactly once.

PostgreSQL only: on SQLite one writer at a time already serialises the workers' claims.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import boto3
import pytest
from sqlalchemy import func, select, text

from alertsvc.delivery.messages import MANAGE_PLACEHOLDER, UNSUBSCRIBE_PLACEHOLDER
from alertsvc.extensions import db
from alertsvc.models import OutboxEmail, OutboxStatus, utcnow
from tests.factories import rows
from tests.processes import alertsvc_env, exit_code, kill, output, start, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.environ.get("ALERTSVC_TEST_DATABASE_URL", "").startswith("postgresql"),
        reason="PostgreSQL only: SQLite's single writer already serialises the workers",
    ),
]

EMAILS = 5000
WORKERS = 4
REGION = "eu-west-2"
SENDER = "alerts@alerts.test"
_MESSAGE_ID = re.compile(r"^Message-ID:\s*(\S+)\s*$", re.IGNORECASE | re.MULTILINE)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _listening(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def moto_server(tmp_path: Path) -> Iterator[str]:
    """moto's server mode as a process of its own, as SES for several worker processes."""
    port = free_port()
    log = tmp_path / "moto.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("moto_server")), "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            lambda: _listening(url), 30, "moto_server to listen", processes=[process], logs=[log]
        )
        yield url
    finally:
        kill(process)


def _queue(app) -> None:
    """Subscribers and their queued emails, set-based: odd rows are ordinary emails (their
    own subject and Message-ID), even rows digest rows on one shared body (address, subject
    and Message-ID taken when first claimed)."""
    now = utcnow() - timedelta(seconds=1)
    text_body = f"Open data strategy published\n\nManage: {MANAGE_PLACEHOLDER}\n"
    html_body = (
        f'<p>Open data strategy published</p><p><a href="{MANAGE_PLACEHOLDER}">Manage</a> '
        f'<a href="{UNSUBSCRIBE_PLACEHOLDER}">Unsubscribe</a></p>'
    )
    with app.app_context():
        session = db.session
        session.execute(
            text(
                "INSERT INTO subscribers (email, created_at, confirmed_at, timezone, daily_hour,"
                "                         weekly_day, weekly_hour)"
                " SELECT 'reader' || n || '@example.com', :now, :now, 'Europe/London', 7, 0, 7"
                " FROM generate_series(1, :count) AS n"
            ),
            {"now": now, "count": EMAILS},
        )
        body_id = session.execute(
            text(
                "INSERT INTO email_bodies (content_key, subject, html, text, created_at)"
                " VALUES ('fleet', 'Daily email alert: 1 new article on Data', :html, :text,"
                "         :now) RETURNING id"
            ),
            {"html": html_body, "text": text_body, "now": now},
        ).scalar_one()
        session.execute(
            text(
                "INSERT INTO outbox (created_at, template, to_address, subject, context,"
                "                    subscriber_id, unsubscribe_topic_ids, body_id, message_id,"
                "                    status, attempts, next_attempt_at)"
                " SELECT :now, CASE WHEN s.id % 2 = 1 THEN 'manage_link' ELSE 'digest' END,"
                "        CASE WHEN s.id % 2 = 1 THEN s.email END,"
                "        CASE WHEN s.id % 2 = 1 THEN 'Manage your email alerts' END,"
                "        CAST('{}' AS json), s.id,"
                "        CASE WHEN s.id % 2 = 0 THEN CAST('[1]' AS json) END,"
                "        CASE WHEN s.id % 2 = 0 THEN :body END,"
                "        CASE WHEN s.id % 2 = 1 THEN '<fleet.' || s.id || '@alerts.test>' END,"
                "        :queued, 0, :now"
                " FROM subscribers s"
            ),
            {"now": now, "body": body_id, "queued": OutboxStatus.QUEUED.value},
        )
        session.commit()


def test_four_workers_send_five_thousand_emails_each_exactly_once(
    app, database_url, moto_server, tmp_path
):
    ses = boto3.client("sesv2", region_name=REGION, endpoint_url=moto_server)
    ses.create_email_identity(EmailIdentity=SENDER)
    identity = ses.get_email_identity(EmailIdentity=SENDER)
    assert identity["VerificationStatus"] == "SUCCESS"
    _queue(app)

    env = alertsvc_env(
        database_url,
        tmp_path / "mail",
        MAIL_TRANSPORT="ses",
        SES_REGION=REGION,
        SES_ENDPOINT_URL=moto_server,
        SES_MAX_SEND_RATE="100000",
        WORKER_BATCH_SIZE="100",
    )
    logs = [tmp_path / f"worker{n}.log" for n in range(WORKERS)]
    workers = [start(["worker", "--burst"], env, log) for log in logs]
    try:
        for worker, log in zip(workers, logs, strict=True):
            assert exit_code(worker, 180, log) == 0, output(log)
    finally:
        for worker in workers:
            kill(worker)

    sent_by = [
        int(re.search(r"Worker stopped: (\d+) sent", output(log)).group(1))  # type: ignore[union-attr]
        for log in logs
    ]
    assert sum(sent_by) == EMAILS
    assert sum(1 for count in sent_by if count) >= 2, f"the workers shared the work: {sent_by}"
    by_status = dict(
        rows(app, select(OutboxEmail.status, func.count()).group_by(OutboxEmail.status))
    )
    assert by_status == {OutboxStatus.SENT: EMAILS}
    ours = dict(rows(app, select(OutboxEmail.message_id, OutboxEmail.provider_message_id)))
    assert len(ours) == EMAILS, "every row has a Message-ID of its own"

    with urllib.request.urlopen(f"{moto_server}/moto-api/data.json", timeout=60) as response:
        stored = json.load(response)["ses"]["RawMessage"]
    handed_over = Counter(_MESSAGE_ID.search(raw["raw_data"]).group(1) for raw in stored)  # type: ignore[union-attr]
    twice = {message_id: n for message_id, n in handed_over.items() if n > 1}
    assert twice == {}, "no email was sent twice"
    assert set(handed_over) == set(ours), "every email was sent"
    assert {raw["id"] for raw in stored} == set(ours.values()), "SES's MessageId kept per row"
