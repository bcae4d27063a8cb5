"""Suppressed addresses are never mailed; pauses hold mail back and resuming releases it;
SES pausing the account mid-batch stops every worker and keeps the mail queued."""

from __future__ import annotations

import logging
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from pathlib import Path

from alertsvc.addresses import address_hash
from alertsvc.database import transaction
from alertsvc.delivery.pauses import pause
from alertsvc.delivery.transports import FileTransport, SendingPausedError
from alertsvc.delivery.worker import Worker, send_outbox_batch
from alertsvc.extensions import db
from alertsvc.models import (
    OutboxStatus,
    PauseScope,
    SuppressionReason,
    utcnow,
)
from tests.delivery.helpers import (
    delivered_to,
    outbox_row,
    pauses,
    queue_digest_and_alert,
    statuses,
    suppress,
)
from tests.factories import (
    queue_manage_link,
    queue_manage_links,
)
from tests.mail import read_message
from tests.processes import alertsvc_env, exit_code, kill, output, start, wait_for
from tests.subscriptions.helpers import post_signup


def test_suppressed_addresses_are_never_sent_to_and_end_suppressed(app, mail_dir):
    digest_row, alert_row = queue_digest_and_alert(app)
    bounced = queue_manage_link(app, "bounced@example.com")
    fine = queue_manage_link(app, "fine@example.com")
    suppress(app, "bounced@example.com")
    suppress(app, "digest@example.com", SuppressionReason.COMPLAINT)

    totals = Worker(app, burst=True).run()

    assert (totals.sent, totals.suppressed, totals.failed) == (2, 2, 0)
    assert delivered_to(mail_dir) == ["alert@example.com", "fine@example.com"]
    row = outbox_row(app, bounced)
    assert (row.status, row.last_error) == (OutboxStatus.SUPPRESSED, "address suppressed: bounce")
    assert (row.attempts, row.sent_at, row.lease_expires_at) == (0, None, None)
    row = outbox_row(app, digest_row)
    assert row.status == OutboxStatus.SUPPRESSED, "the digest's address came from the subscriber"
    assert row.to_address == "digest@example.com"
    assert row.last_error == "address suppressed: complaint"
    assert outbox_row(app, alert_row).status == OutboxStatus.SENT
    assert outbox_row(app, fine).status == OutboxStatus.SENT
    assert Worker(app, burst=True).run().batches == 0, "a suppressed email is not tried again"


def test_a_suppressed_idn_address_is_not_sent_to_a_subscriber_stored_in_unicode(app, mail_dir):
    """Subscriber rows written before addresses were stored in ASCII keep a Unicode domain;
    the worker sends to its ASCII form, so the suppression (stored in ASCII) must stop it."""
    digest_row, _ = queue_digest_and_alert(app)
    legacy = queue_manage_link(app, "idn@bücher.de")
    result = app.test_cli_runner().invoke(args=["suppressions", "add", "IDN@Bücher.de"])
    assert result.output == "Suppressed idn@xn--bcher-kva.de\n"

    totals = Worker(app, burst=True).run()

    assert "idn@xn--bcher-kva.de" not in delivered_to(mail_dir)
    row = outbox_row(app, legacy)
    assert (row.status, row.last_error) == (OutboxStatus.SUPPRESSED, "address suppressed: operator")
    assert outbox_row(app, digest_row).status == OutboxStatus.SENT
    assert totals.suppressed == 1


def test_worker_summary_counts_suppressed_emails(app, database_url, tmp_path):
    queue_manage_link(app, "bounced@example.com")
    queue_manage_link(app, "fine@example.com")
    suppress(app, "bounced@example.com")
    mail, log = tmp_path / "mail", tmp_path / "worker.log"
    process = start(["worker", "--burst"], alertsvc_env(database_url, mail), log)
    try:
        assert exit_code(process, 120, log) == 0, output(log)
    finally:
        kill(process)
    assert "Worker stopped: 1 sent, 0 to retry, 0 failed, 1 suppressed, in 1 batch" in output(log)
    assert delivered_to(mail) == ["fine@example.com"]


def test_subscription_pause_holds_digests_and_alerts_but_confirmation_goes(app, client, mail_dir):
    digest_row, alert_row = queue_digest_and_alert(app)
    runner = app.test_cli_runner()
    paused = runner.invoke(args=["sending", "pause", "--reason", "checking a bounce spike"])
    assert paused.exit_code == 0, paused.output
    post_signup(client, "new@example.com")

    totals = Worker(app, burst=True).run()

    assert totals.sent == 1
    assert totals.paused == {PauseScope.SUBSCRIPTIONS}
    [path] = mail_dir.glob("*.eml")
    confirmation = read_message(path)
    assert confirmation["To"] == "new@example.com"
    assert confirmation["Subject"].startswith("Confirm your email alerts")
    for row_id in (digest_row, alert_row):
        row = outbox_row(app, row_id)
        assert (row.status, row.attempts, row.last_error) == (OutboxStatus.QUEUED, 0, None)

    resumed = runner.invoke(args=["sending", "resume"])
    assert resumed.exit_code == 0, resumed.output
    assert Worker(app, burst=True).run().sent == 2

    assert delivered_to(mail_dir) == ["alert@example.com", "digest@example.com", "new@example.com"]
    assert set(statuses(app).values()) == {OutboxStatus.SENT}


def test_all_pause_holds_everything_until_resumed(app, client, mail_dir):
    digest_row, _ = queue_digest_and_alert(app)
    manage = queue_manage_link(app, "reader@example.com")
    runner = app.test_cli_runner()
    paused = runner.invoke(args=["sending", "pause", "--all", "--reason", "moving to a new domain"])
    assert paused.exit_code == 0, paused.output
    post_signup(client, "new@example.com")

    totals = Worker(app, burst=True).run()

    assert (totals.batches, totals.sent) == (0, 0)
    assert totals.paused == {PauseScope.ALL}
    assert list(mail_dir.glob("*.eml")) == []
    assert set(statuses(app).values()) == {OutboxStatus.QUEUED}
    assert outbox_row(app, manage).attempts == outbox_row(app, digest_row).attempts == 0

    assert runner.invoke(args=["sending", "resume", "--all"]).exit_code == 0
    assert Worker(app, burst=True).run().sent == 4
    assert set(statuses(app).values()) == {OutboxStatus.SENT}


class PausedOnThirdSend:
    """The real file transport, except that the third message sent is refused as SES
    refuses every message once it has paused the account. A test seam: the classification
    of SES's real error is the SES transport's own test."""

    def __init__(self, directory: Path) -> None:
        self.file = FileTransport(directory)
        self.calls = 0
        self.lock = threading.Lock()

    def send(self, message: EmailMessage) -> str:
        with self.lock:
            self.calls += 1
            call = self.calls
        if call == 3:
            raise SendingPausedError("Sending paused for this account. For more information…")
        return self.file.send(message)


def test_ses_pausing_the_account_mid_batch_stops_all_sending_and_keeps_mail_queued(
    app, mail_dir, caplog
):
    queued = queue_manage_links(app, 6)
    transport = PausedOnThirdSend(mail_dir)

    # One sending thread, so "the rest of the batch" is a fixed set of rows.
    with caplog.at_level(logging.ERROR), app.app_context(), ThreadPoolExecutor(1) as pool:
        result = send_outbox_batch(transport, pool)
        db.session.remove()

    assert (result.sent, result.held, result.failed, result.retried) == (2, 4, 0, 0)
    assert transport.calls == 3, "nothing was submitted after SES said it had paused"
    assert delivered_to(mail_dir) == ["reader0@example.com", "reader1@example.com"]
    for row_id in queued[2:]:
        row = outbox_row(app, row_id)
        assert (row.status, row.attempts, row.last_error) == (OutboxStatus.QUEUED, 0, None)
        assert row.lease_expires_at is None
        assert row.next_attempt_at <= utcnow(), "due again as soon as sending resumes"
    assert pauses(app) == [
        ("all", "ses", "Sending paused for this account. For more information…", True)
    ]
    [logged] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "SES HAS PAUSED SENDING FOR THIS ACCOUNT" in logged.getMessage()
    assert "All sending stopped; mail stays queued" in logged.getMessage()
    assert "Run `alertsvc sending resume` once SES has re-enabled the account" in (
        logged.getMessage()
    )

    runner = app.test_cli_runner()
    status = runner.invoke(args=["sending", "status"])
    assert status.exit_code == 0, status.output
    assert "Sending: all sending paused since " in status.output
    assert "by ses: Sending paused for this account" in status.output
    assert "SES has paused sending for this account: mail stays queued" in status.output
    assert "Outbox: 4 queued" in status.output

    assert Worker(app, burst=True).run().batches == 0, "every worker obeys the pause"
    assert len(delivered_to(mail_dir)) == 2

    resumed = runner.invoke(args=["sending", "resume"])
    assert resumed.exit_code == 0
    assert "Resumed all sending paused since" in resumed.output
    assert Worker(app, burst=True).run().sent == 4
    assert delivered_to(mail_dir) == [f"reader{n}@example.com" for n in range(6)]
    assert {outbox_row(app, row_id).attempts for row_id in queued} == {1}


def test_a_worker_waits_out_a_pause_of_all_sending_and_burst_mode_exits_saying_so(
    app, database_url, tmp_path
):
    with app.app_context(), transaction():
        pause(PauseScope.ALL, "Sending paused for this account.", "ses", utcnow())
    row_id = queue_manage_link(app, "reader@example.com")
    mail = tmp_path / "mail"

    burst_log = tmp_path / "burst.log"
    burst = start(["worker", "--burst"], alertsvc_env(database_url, mail), burst_log)
    try:
        assert exit_code(burst, 120, burst_log) == 0, output(burst_log)
    finally:
        kill(burst)
    assert "Worker stopped: 0 sent, 0 to retry, 0 failed, 0 suppressed, in 0 batches" in output(
        burst_log
    )
    assert "Paused: all sending paused since " in output(burst_log)
    assert "by ses: Sending paused for this account." in output(burst_log)
    assert "Nothing more is sent until `alertsvc sending resume`." in output(burst_log)

    log = tmp_path / "worker.log"
    worker = start(["worker"], alertsvc_env(database_url, mail, WORKER_POLL_SECONDS="0.2"), log)
    try:
        wait_for(
            lambda: "all sending is paused: waiting for `alertsvc sending resume`" in output(log),
            timeout=120,
            what="the worker to notice the pause",
            processes=[worker],
            logs=[log],
        )
        assert outbox_row(app, row_id).status == OutboxStatus.QUEUED
        assert app.test_cli_runner().invoke(args=["sending", "resume"]).exit_code == 0
        wait_for(
            lambda: outbox_row(app, row_id).status == OutboxStatus.SENT,
            timeout=60,
            what="the idle worker to send once sending resumed",
            processes=[worker],
            logs=[log],
        )
        worker.send_signal(signal.SIGTERM)
        assert exit_code(worker, 60, log) == 0, output(log)
    finally:
        kill(worker)
    assert "sending resumed" in output(log)
    assert delivered_to(mail) == ["reader@example.com"]


def test_a_suppression_kept_as_a_hash_still_stops_mail_to_the_address(app, mail_dir):
    """Erasing a subscriber keeps their suppression only as a hash of the address; a new
    signup with that address must still not be mailed."""
    bounced = queue_manage_link(app, "bounced@example.com")
    fine = queue_manage_link(app, "fine@example.com")
    suppress(app, address_hash("bounced@example.com"))

    totals = Worker(app, burst=True).run()

    assert (totals.sent, totals.suppressed) == (1, 1)
    assert delivered_to(mail_dir) == ["fine@example.com"]
    row = outbox_row(app, bounced)
    assert (row.status, row.last_error) == (OutboxStatus.SUPPRESSED, "address suppressed: bounce")
    assert outbox_row(app, fine).status == OutboxStatus.SENT
