"""The outbox worker: claiming, sending through the file transport, retries, leases."""

from __future__ import annotations

import itertools
import re
import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

from flask_migrate import upgrade
from sqlalchemy import select

from alertsvc.database import transaction
from alertsvc.delivery.outbox import queue_email
from alertsvc.delivery.transports import (
    FileTransport,
    PermanentSendError,
    SendError,
    TransientSendError,
)
from alertsvc.delivery.worker import Worker, WorkerTotals, claim_outbox_batch, retry_delay
from alertsvc.extensions import db
from alertsvc.models import OutboxEmail, OutboxStatus, utcnow
from tests.delivery.helpers import expire_lease, make_due, outbox_row, send_batch, statuses
from tests.digests.helpers import at, digest, start_subscriptions_at
from tests.factories import (
    create_article,
    create_subscriber,
    create_topic,
    queue_manage_link,
    queue_manage_links,
    rows,
)
from tests.mail import links, read_message, text_part
from tests.processes import alertsvc_env, exit_code, kill, output, start, wait_for


class ScriptedTransport:
    """The real file transport, except that chosen addresses get the error given for them."""

    def __init__(self, directory: Path, errors: dict[str, SendError]) -> None:
        self.file = FileTransport(directory)
        self.errors = errors
        self.attempts: list[str] = []
        self.lock = threading.Lock()

    def send(self, message: EmailMessage) -> str:
        with self.lock:
            self.attempts.append(str(message["To"]))
        error = self.errors.get(str(message["To"]))
        if error is not None:
            raise error
        return self.file.send(message)


def delivered_to(mail_dir: Path) -> list[str]:
    return sorted(str(read_message(path)["To"]) for path in mail_dir.glob("*.eml"))


def test_burst_sends_everything_due_then_stops(app_with, mail_dir):
    app = app_with(WORKER_BATCH_SIZE=2)
    due = [queue_manage_link(app, f"reader{n}@example.com") for n in range(3)]
    later = queue_manage_link(
        app, "later@example.com", next_attempt_at=utcnow() + timedelta(hours=1)
    )
    started = utcnow()

    totals = Worker(app, burst=True).run()

    assert (totals.sent, totals.retried, totals.failed) == (3, 0, 0)
    assert totals.batches == 2, "three rows in batches of two; the empty poll is no batch"
    assert delivered_to(mail_dir) == [f"reader{n}@example.com" for n in range(3)]
    for row_id in due:
        row = outbox_row(app, row_id)
        assert row.status == OutboxStatus.SENT
        assert started <= row.sent_at <= utcnow()
        assert row.attempts == 1
        assert row.lease_expires_at is None and row.last_error is None
        assert (mail_dir / row.provider_message_id).is_file()
        assert read_message(mail_dir / row.provider_message_id)["Message-ID"] == row.message_id
    waiting = outbox_row(app, later)
    assert (waiting.status, waiting.attempts, waiting.sent_at) == (OutboxStatus.QUEUED, 0, None)


def test_burst_with_nothing_due_sends_nothing(app, mail_dir):
    totals = Worker(app, burst=True).run()
    assert (totals.sent, totals.retried, totals.failed, totals.batches) == (0, 0, 0, 0)
    assert list(mail_dir.iterdir()) == []


def test_sent_email_is_the_one_the_subscriber_should_get(app, mailbox):
    queue_manage_link(app, "reader@example.com")
    [message] = mailbox.deliver()
    assert message["To"] == "reader@example.com"
    assert message["From"] == "Public Technology alerts <alerts@alerts.test>"
    assert message["Subject"] == "Manage your email alerts"
    [manage] = [url for url in links(message) if "/manage/" in url]
    assert manage.startswith("https://alerts.test/manage/")
    assert "Manage your email alerts" in text_part(message)


def test_subscription_email_carries_one_click_unsubscribe_headers(app_with, mail_dir):
    app = app_with(MAIL_REPLY_TO="Editors <editors@alerts.test>")
    topic_id = create_topic(app)
    subscriber_id = create_subscriber(app, "reader@example.com", {topic_id: "daily"})
    with app.app_context(), transaction():
        queue_email(
            template="subscribed",
            to_address="reader@example.com",
            subject="You're subscribed: Data\r\nBcc: victim@example.com",
            context={"topic_names": ["Data"], "frequency": "daily"},
            subscriber_id=subscriber_id,
            unsubscribe_topic_ids=[topic_id],
        )

    Worker(app, burst=True).run()

    [path] = mail_dir.glob("*.eml")
    message = read_message(path)
    assert message["Subject"] == "You're subscribed: Data Bcc: victim@example.com"
    assert message["Bcc"] is None
    assert message["Reply-To"] == "Editors <editors@alerts.test>"
    https_link, mailto_link = (part.strip(" <>") for part in message["List-Unsubscribe"].split(","))
    assert https_link.startswith("https://alerts.test/unsubscribe/")
    token = https_link.rsplit("/", 1)[1]
    assert mailto_link == f"mailto:unsubscribe@alerts.test?subject=unsubscribe%20{token}"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert https_link in links(message), "the footer offers the same link"
    # Mailbox providers read these headers raw (RFC 2369): no RFC 2047 encoded words.
    raw_headers = path.read_bytes().split(b"\r\n\r\n", 1)[0].decode("ascii")
    unfolded = re.sub(r"\r\n[ \t]+", " ", raw_headers)
    assert f"\r\nList-Unsubscribe: <{https_link}>, <{mailto_link}>\r\n" in unfolded
    assert "\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in unfolded


def test_transient_error_puts_the_row_back_for_later_with_backoff(app, mail_dir):
    throttled = queue_manage_link(app, "throttled@example.com")
    fine = queue_manage_link(app, "fine@example.com")
    transport = ScriptedTransport(
        mail_dir, {"throttled@example.com": TransientSendError("Maximum sending rate exceeded")}
    )
    before = utcnow()

    result = send_batch(app, transport)

    after = utcnow()
    assert (result.sent, result.retried, result.failed) == (1, 1, 0)
    row = outbox_row(app, throttled)
    assert row.status == OutboxStatus.QUEUED
    assert row.attempts == 1
    assert row.last_error == "Maximum sending rate exceeded"
    assert row.sent_at is None and row.lease_expires_at is None
    # First retry: base 30 s with jitter, between half the base and the base.
    assert before + timedelta(seconds=15) <= row.next_attempt_at <= after + timedelta(seconds=30)
    assert outbox_row(app, fine).status == OutboxStatus.SENT
    assert delivered_to(mail_dir) == ["fine@example.com"]

    assert send_batch(app, transport).claimed == 0, "not retried before its time"


def test_transient_errors_retry_until_the_email_is_too_old_then_fail(app_with, mail_dir):
    app = app_with(WORKER_MAX_RETRY_AGE_SECONDS=3600, WORKER_MAX_ATTEMPTS=2)
    row_id = queue_manage_link(app, "flaky@example.com")
    transport = ScriptedTransport(
        mail_dir, {"flaky@example.com": TransientSendError("Connection timed out")}
    )

    outcomes = []
    for _ in range(4):
        result = send_batch(app, transport)
        outcomes.append((result.retried, result.failed))
        make_due(app, row_id)
    row = outbox_row(app, row_id)
    assert outcomes == [(1, 0)] * 4, "more attempts than WORKER_MAX_ATTEMPTS: age decides"
    assert (row.status, row.attempts) == (OutboxStatus.QUEUED, 4)
    assert row.last_error == "Connection timed out"

    # Queued a little over an hour ago: the next transient failure is the last.
    with app.app_context(), transaction() as session:
        session.get(OutboxEmail, row_id).created_at = utcnow() - timedelta(minutes=61)
    result = send_batch(app, transport)

    assert (result.retried, result.failed) == (0, 1)
    row = outbox_row(app, row_id)
    assert row.status == OutboxStatus.FAILED
    assert row.attempts == 5
    assert row.last_error == "gave up after 5 attempts over 1.0 hours: Connection timed out"
    assert row.sent_at is None and row.lease_expires_at is None
    assert transport.attempts == ["flaky@example.com"] * 5
    make_due(app, row_id)
    assert send_batch(app, transport).claimed == 0, "a failed email is not tried again"
    assert delivered_to(mail_dir) == []


def test_permanent_error_fails_at_once(app, mail_dir):
    rejected = queue_manage_link(app, "rejected@example.com")
    fine = queue_manage_link(app, "fine@example.com")
    transport = ScriptedTransport(
        mail_dir, {"rejected@example.com": PermanentSendError("Address is on the suppression list")}
    )

    result = send_batch(app, transport)

    assert (result.sent, result.retried, result.failed) == (1, 0, 1)
    row = outbox_row(app, rejected)
    assert (row.status, row.attempts) == (OutboxStatus.FAILED, 1)
    assert row.last_error == "Address is on the suppression list"
    assert row.lease_expires_at is None
    assert send_batch(app, transport).claimed == 0
    assert transport.attempts.count("rejected@example.com") == 1
    assert outbox_row(app, fine).status == OutboxStatus.SENT


def test_unexpected_transport_exception_fails_the_row_not_the_worker(app, mail_dir):
    class BrokenTransport:
        def send(self, message: EmailMessage) -> str:
            raise ValueError("boom")

    row_id = queue_manage_link(app)
    result = send_batch(app, BrokenTransport())
    assert result.failed == 1
    row = outbox_row(app, row_id)
    assert row.status == OutboxStatus.FAILED
    assert row.last_error == "ValueError: boom"


def test_row_of_a_worker_that_died_is_sent_again_a_live_lease_is_left_alone(app, mail_dir):
    now = utcnow()
    abandoned = queue_manage_link(
        app,
        "abandoned@example.com",
        status=OutboxStatus.SENDING,
        attempts=1,
        lease_expires_at=now - timedelta(minutes=1),
    )
    in_hand = queue_manage_link(
        app,
        "in-hand@example.com",
        status=OutboxStatus.SENDING,
        attempts=1,
        lease_expires_at=now + timedelta(minutes=5),
    )

    totals = Worker(app, burst=True).run()

    assert totals.sent == 1
    row = outbox_row(app, abandoned)
    assert (row.status, row.attempts) == (OutboxStatus.SENT, 2)
    other = outbox_row(app, in_hand)
    assert (other.status, other.attempts) == (OutboxStatus.SENDING, 1)
    assert delivered_to(mail_dir) == ["abandoned@example.com"]


def test_message_that_cannot_be_built_fails_and_the_batch_goes_on(app, mail_dir):
    first = queue_manage_link(app, "first@example.com")
    broken = queue_manage_link(app, "broken@example.com", template="no_such_template")
    last = queue_manage_link(app, "last@example.com")

    totals = Worker(app, burst=True).run()

    assert (totals.sent, totals.failed) == (2, 1)
    row = outbox_row(app, broken)
    assert row.status == OutboxStatus.FAILED
    assert "could not build message" in row.last_error
    assert "no_such_template" in row.last_error
    assert {outbox_row(app, first).status, outbox_row(app, last).status} == {OutboxStatus.SENT}
    assert delivered_to(mail_dir) == ["first@example.com", "last@example.com"]


def test_retry_delay_backs_off_with_jitter_within_bounds():
    for attempts in range(1, 15):
        delays = [retry_delay(attempts, 30, 3600).total_seconds() for _ in range(200)]
        ceiling = min(3600, 30 * 2 ** (attempts - 1))
        assert all(15 <= delay <= ceiling for delay in delays), attempts
        assert len(set(delays)) > 100, "jittered, so a burst of failures does not retry in step"
    assert max(retry_delay(6, 30, 3600).total_seconds() for _ in range(200)) > 480
    assert max(retry_delay(40, 30, 3600).total_seconds() for _ in range(200)) <= 3600
    # The schedule grows until the cap: each attempt's average wait (over many samples)
    # is longer than the one before, then stays near the middle of [15 s, 3600 s].
    means = [
        sum(retry_delay(attempts, 30, 3600).total_seconds() for _ in range(2000)) / 2000
        for attempts in range(1, 12)
    ]
    growing = means[:8]  # ceilings 30, 60, ... 3600
    assert all(later > earlier for earlier, later in itertools.pairwise(growing)), means
    assert all(1600 < mean < 2000 for mean in means[8:]), "capped: uniform(15, 3600)"


def test_sending_the_same_row_twice_leaves_one_file(app, mail_dir):
    row_id = queue_manage_link(app, "reader@example.com")
    Worker(app, burst=True).run()
    # The worker died after the send but before recording it: the lease runs out.
    with app.app_context(), transaction() as session:
        row = session.get(OutboxEmail, row_id)
        row.status = OutboxStatus.SENDING
        row.lease_expires_at = utcnow() - timedelta(seconds=1)

    assert Worker(app, burst=True).run().sent == 1

    row = outbox_row(app, row_id)
    assert (row.status, row.attempts) == (OutboxStatus.SENT, 2)
    [path] = mail_dir.iterdir()
    assert path.name == row.provider_message_id and path.suffix == ".eml"
    assert read_message(path)["Message-ID"] == row.message_id


def test_file_transport_writes_whole_files_named_by_message_id(tmp_path):
    transport = FileTransport(tmp_path / "new" / "mail")
    message = EmailMessage()
    message["To"] = "reader@example.com"
    message["Subject"] = "Hello"
    message["Message-ID"] = "<abc/../def@alerts.test>"
    message.set_content("Hello")

    name = transport.send(message)
    again = transport.send(message)

    assert name == again
    assert [path.name for path in (tmp_path / "new" / "mail").iterdir()] == [name]
    assert "/" not in name and name.endswith(".eml")
    assert read_message(tmp_path / "new" / "mail" / name)["Subject"] == "Hello"


def _claim(app, limit: int) -> list[int]:
    with app.app_context():
        with transaction():
            claimed = [row.id for row in claim_outbox_batch(limit, 300, utcnow())]
        db.session.remove()
    return claimed


def test_workers_claiming_at_once_never_share_a_row(app):
    queued = queue_manage_links(app, 40)
    start = threading.Barrier(4)

    def drain() -> list[int]:
        start.wait(timeout=10)
        mine: list[int] = []
        while batch := _claim(app, 3):
            mine.extend(batch)
        return mine

    with ThreadPoolExecutor(4) as pool:
        claims = [future.result(timeout=60) for future in [pool.submit(drain) for _ in range(4)]]

    everything = [row_id for claim in claims for row_id in claim]
    assert sorted(everything) == sorted(queued), "each row claimed exactly once"
    assert set(statuses(app).values()) == {OutboxStatus.SENDING}
    assert set(rows(app, select(OutboxEmail.attempts))) == {1}


def test_claim_held_open_by_one_worker_is_skipped_by_another(app):
    """PostgreSQL: the second worker neither waits for nor takes the first one's rows
    (FOR UPDATE SKIP LOCKED). SQLite has one writer at a time, so the claims serialise."""
    queued = queue_manage_links(app, 10)
    with app.app_context():
        concurrent_writers = db.engine.dialect.name == "postgresql"
    first_claimed = threading.Event()
    second_done = threading.Event()
    claimed: dict[str, list[int]] = {}
    second_finished_while_first_open: list[bool] = []

    def first() -> None:
        with app.app_context():
            with transaction():
                claimed["first"] = [r.id for r in claim_outbox_batch(5, 300, utcnow())]
                first_claimed.set()
                if concurrent_writers:
                    second_done.wait(timeout=10)
                    second_finished_while_first_open.append(second_done.is_set())
            db.session.remove()

    def second() -> None:
        assert first_claimed.wait(timeout=10)
        claimed["second"] = _claim(app, 5)
        second_done.set()

    with ThreadPoolExecutor(2) as pool:
        for future in [pool.submit(first), pool.submit(second)]:
            future.result(timeout=60)

    assert len(claimed["first"]) == len(claimed["second"]) == 5
    assert sorted(claimed["first"] + claimed["second"]) == sorted(queued)
    if concurrent_writers:
        assert second_finished_while_first_open == [True]


def test_dev_mailbox_lists_emails_and_shows_one_with_clickable_links(app, client, mailbox):
    assert "No emails yet" in client.get("/dev/mail").get_data(as_text=True)
    queue_manage_link(app, "reader@example.com")
    [message] = mailbox.deliver()

    listing = client.get("/dev/mail")
    assert listing.status_code == 200
    html = listing.get_data(as_text=True)
    assert "reader@example.com" in html and "Manage your email alerts" in html
    [path] = re.findall(r'href="(/dev/mail/[^"]+\.eml)"', html)

    shown = client.get(path)
    assert shown.status_code == 200
    page = shown.get_data(as_text=True)
    [manage] = [url for url in links(message) if "/manage/" in url]
    assert f'<a href="{manage}">{manage}</a>' in page
    assert "&lt;" + message["Message-ID"].strip("<>") + "&gt;" in page

    html_part = client.get(f"{path}/html")
    assert html_part.status_code == 200
    assert html_part.mimetype == "text/html"
    assert html_part.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert f'href="{manage}"' in html_part.get_data(as_text=True)


def test_dev_mailbox_refuses_path_tricks(app_with, tmp_path):
    mail = tmp_path / "mail"
    mail.mkdir()
    (tmp_path / "secret.eml").write_text("Subject: secret\n\nthe secret\n")
    (mail / "notes.txt").write_text("not an email")
    client = app_with(MAIL_DIR=str(mail)).test_client()

    for path in [
        "/dev/mail/..%2Fsecret.eml",
        "/dev/mail/%2E%2E%2Fsecret.eml",
        "/dev/mail/..%2Fsecret.eml/html",
        f"/dev/mail/{str(tmp_path / 'secret.eml').replace('/', '%2F')}",
        "/dev/mail/../secret.eml",
        "/dev/mail/notes.txt",
        "/dev/mail/missing.eml",
        "/dev/mail/missing.eml/html",
    ]:
        response = client.get(path)
        assert response.status_code == 404, path
        assert "the secret" not in response.get_data(as_text=True)


def test_dev_mailbox_does_not_exist_in_production(app_with, app, mailbox, mail_dir):
    queue_manage_link(app, "reader@example.com")
    mailbox.deliver()
    [path] = mail_dir.glob("*.eml")
    production = app_with(
        ENV="production",
        SECRET_KEY="a-real-production-secret-0123456789abcdef",
        BASE_URL="https://alerts.example.org",
    )
    client = production.test_client()
    assert client.get("/dev/mail").status_code == 404
    assert client.get(f"/dev/mail/{path.name}").status_code == 404
    assert app.test_client().get(f"/dev/mail/{path.name}").status_code == 200


def test_worker_burst_as_a_process_sends_and_exits_0(app, database_url, tmp_path):
    queue_manage_link(app, "first@example.com")
    queue_manage_link(app, "second@example.com")
    mail = tmp_path / "mail"
    log = tmp_path / "worker.log"
    process = start(["worker", "--burst"], alertsvc_env(database_url, mail), log)
    try:
        assert exit_code(process, 120, log) == 0, output(log)
    finally:
        kill(process)
    assert "Worker stopped: 2 sent, 0 to retry, 0 failed, 0 suppressed, in 1 batch" in output(log)
    assert delivered_to(mail) == ["first@example.com", "second@example.com"]
    assert set(statuses(app).values()) == {OutboxStatus.SENT}


def test_a_worker_started_before_its_database_waits_for_it(app_with, tmp_path):
    """Started while the database cannot be reached (an outage, a machine booting), the
    worker waits for it and then works, rather than exiting: nobody has to start it again."""
    later = tmp_path / "not-yet"
    url = f"sqlite:///{later / 'alertsvc.sqlite3'}"
    log = tmp_path / "worker.log"
    process = start(["worker", "--burst"], alertsvc_env(url, tmp_path / "mail"), log)
    try:
        wait_for(
            lambda: "database unavailable at start" in output(log),
            timeout=120,
            what="the worker to say it waits for the database",
            processes=[process],
            logs=[log],
        )
        time.sleep(1.5)
        assert process.poll() is None, output(log)
        # The database appears whole, as a server coming back does: made beside, then
        # moved into place in one step (the worker tries again every few seconds).
        ready = tmp_path / "ready"
        ready.mkdir()
        flask_app = app_with(SQLALCHEMY_DATABASE_URI=f"sqlite:///{ready / 'alertsvc.sqlite3'}")
        with flask_app.app_context():
            upgrade()
        queue_manage_link(flask_app, "patient@example.com")
        ready.rename(later)
        assert exit_code(process, 120, log) == 0, output(log)
    finally:
        kill(process)
    assert output(log).count("database unavailable at start") == 1
    assert "Worker stopped: 1 sent" in output(log)
    assert delivered_to(tmp_path / "mail") == ["patient@example.com"]


def test_running_worker_finishes_its_batch_and_exits_0_on_sigterm(app, database_url, tmp_path):
    queued = queue_manage_links(app, 300)
    mail = tmp_path / "mail"
    log = tmp_path / "worker.log"
    env = alertsvc_env(database_url, mail, WORKER_BATCH_SIZE="100", WORKER_CONCURRENCY="1")
    process = start(["worker"], env, log)
    try:
        wait_for(
            lambda: set(statuses(app).values()) != {OutboxStatus.QUEUED},
            timeout=120,
            what="the worker to claim its first batch",
            processes=[process],
            logs=[log],
        )
        process.send_signal(signal.SIGTERM)
        assert exit_code(process, 60, log) == 0, output(log)
    finally:
        kill(process)

    by_status = Counter(statuses(app).values())
    assert by_status[OutboxStatus.SENDING] == 0, "the batch in hand was finished and recorded"
    sent = by_status[OutboxStatus.SENT]
    assert sent > 0 and sent % 100 == 0, by_status
    assert by_status[OutboxStatus.QUEUED] == len(queued) - sent
    assert by_status[OutboxStatus.QUEUED] > 0, "stopped after its batch, not after the outbox"
    assert f"Worker stopped: {sent} sent, 0 to retry, 0 failed, 0 suppressed" in output(log)
    assert len(list(mail.glob("*.eml"))) == sent


def test_second_sigterm_stops_the_worker_at_once_leaving_its_rows_to_the_lease(
    app, database_url, tmp_path
):
    queued = queue_manage_links(app, 1000)
    log = tmp_path / "worker.log"
    env = alertsvc_env(
        database_url, tmp_path / "mail", WORKER_BATCH_SIZE="1000", WORKER_CONCURRENCY="1"
    )
    process = start(["worker"], env, log)
    try:
        wait_for(
            lambda: OutboxStatus.SENDING in statuses(app).values(),
            timeout=120,
            what="the worker to claim its batch",
            processes=[process],
            logs=[log],
        )
        process.send_signal(signal.SIGTERM)
        wait_for(
            lambda: "signal again to stop now" in output(log),
            timeout=10,
            what="the worker to say it will stop after the batch",
            processes=[process],
            logs=[log],
        )
        process.send_signal(signal.SIGTERM)
        assert exit_code(process, 60, log) == 1, output(log)
    finally:
        kill(process)

    by_status = Counter(statuses(app).values())
    assert by_status[OutboxStatus.SENDING] == len(queued), "nothing half-recorded, nothing failed"
    assert "Worker stopped" not in output(log)


def test_a_worker_whose_lease_ran_out_does_not_overwrite_the_one_that_took_over(app, mail_dir):
    row_id = queue_manage_link(app, "reader@example.com")

    class OvertakenTransport:
        """Sends so slowly that the lease runs out and another worker sends the row, then
        fails: the slow worker's failure must not be recorded over the other's success."""

        def send(self, message: EmailMessage) -> str:
            with app.app_context(), transaction() as session:
                session.get(OutboxEmail, row_id).lease_expires_at = utcnow() - timedelta(seconds=1)
            assert Worker(app, burst=True).run().sent == 1
            raise PermanentSendError("too late")

    result = send_batch(app, OvertakenTransport())

    assert result.failed == 1, "the slow worker saw its own send fail"
    row = outbox_row(app, row_id)
    assert (row.status, row.attempts, row.last_error) == (OutboxStatus.SENT, 2, None)
    assert row.lease_expires_at is None
    assert delivered_to(mail_dir) == ["reader@example.com"]


def test_a_row_whose_worker_keeps_dying_fails_with_the_reason_after_max_attempts(
    app_with, mail_dir
):
    app = app_with(WORKER_MAX_ATTEMPTS=3)
    row_id = queue_manage_link(app, "poison@example.com")

    for attempt in (1, 2, 3):
        # A worker claims the row and dies (or hangs) on it: its lease runs out.
        assert _claim(app, 10) == [row_id]
        row = outbox_row(app, row_id)
        assert (row.status, row.attempts) == (OutboxStatus.SENDING, attempt)
        if attempt > 1:
            assert row.last_error == "lease ran out: the worker sending it died or hung"
        expire_lease(app, row_id)

    totals = Worker(app, burst=True).run()

    assert (totals.sent, totals.retried, totals.failed) == (0, 0, 1)
    row = outbox_row(app, row_id)
    assert (row.status, row.attempts) == (OutboxStatus.FAILED, 3)
    assert row.last_error == (
        "gave up after 3 attempts; on the last one the lease ran out: "
        "the worker sending it died or hung"
    )
    assert row.lease_expires_at is None and row.sent_at is None
    assert delivered_to(mail_dir) == []
    assert Worker(app, burst=True).run().batches == 0, "a failed email is not tried again"


def test_throttled_sends_do_not_use_up_the_leases_a_row_may_lose(app_with, mail_dir):
    """WORKER_MAX_ATTEMPTS is for a message that kills or hangs its worker: it counts the
    leases that ran out. A row SES throttled again and again (bounded by the retry age
    instead) is still taken over, and sent, when the worker sending it then dies."""
    app = app_with(WORKER_MAX_ATTEMPTS=2)
    row_id = queue_manage_link(app, "reader@example.com")
    throttled = ScriptedTransport(
        mail_dir,
        {
            "reader@example.com": TransientSendError(
                "SES TooManyRequestsException: Maximum sending rate exceeded."
            )
        },
    )
    for _ in range(3):
        assert send_batch(app, throttled).retried == 1
        make_due(app, row_id)
    # The next worker to claim it dies (a deploy's SIGKILL, the OOM killer): the lease runs
    # out, once.
    assert _claim(app, 10) == [row_id]
    expire_lease(app, row_id)

    totals = Worker(app, burst=True).run()

    assert (totals.sent, totals.failed) == (1, 0)
    row = outbox_row(app, row_id)
    assert (row.status, row.attempts, row.last_error) == (OutboxStatus.SENT, 5, None)
    assert delivered_to(mail_dir) == ["reader@example.com"]


def test_a_row_taken_over_after_its_lease_ran_out_is_sent_and_forgets_the_lease(app, mail_dir):
    row_id = queue_manage_link(app, "reader@example.com")
    assert _claim(app, 10) == [row_id]
    expire_lease(app, row_id)

    assert Worker(app, burst=True).run().sent == 1

    row = outbox_row(app, row_id)
    assert (row.status, row.attempts, row.last_error) == (OutboxStatus.SENT, 2, None)
    assert delivered_to(mail_dir) == ["reader@example.com"]


def test_message_id_given_at_the_first_claim_is_stored_and_sent_on_every_attempt(app, mail_dir):
    # Digest and alert rows are queued without a Message-ID; the first claim gives one.
    row_id = queue_manage_link(app, "reader@example.com", message_id=None)
    attempts: list[tuple[str, str | None]] = []

    class FlakyTransport:
        """Records each attempt's Message-ID and what the row stored meanwhile; the first
        attempt times out."""

        def send(self, message: EmailMessage) -> str:
            attempts.append((str(message["Message-ID"]), outbox_row(app, row_id).message_id))
            if len(attempts) == 1:
                raise TransientSendError("Connection timed out")
            return FileTransport(mail_dir).send(message)

    assert send_batch(app, FlakyTransport()).retried == 1
    make_due(app, row_id)
    assert send_batch(app, FlakyTransport()).sent == 1

    [(first, stored_then), (second, _)] = attempts
    assert re.fullmatch(rf"<\d{{20}}\.{row_id}@alerts\.test>", first)
    assert stored_then == first, "stored when first claimed, while the email was in flight"
    assert second == first
    [path] = mail_dir.glob("*.eml")
    assert read_message(path)["Message-ID"] == first == outbox_row(app, row_id).message_id


def test_a_slow_send_keeps_its_lease_and_a_second_worker_does_not_send_it_again(app_with, mail_dir):
    app = app_with(WORKER_LEASE_SECONDS=2)
    row_id = queue_manage_link(app, "reader@example.com")
    second_worker: list[WorkerTotals] = []

    class SlowTransport:
        """Takes longer than the lease, and meanwhile another worker looks for work."""

        def send(self, message: EmailMessage) -> str:
            leased_until = outbox_row(app, row_id).lease_expires_at
            while utcnow() <= leased_until + timedelta(milliseconds=200):
                time.sleep(0.05)
            second_worker.append(Worker(app, burst=True).run())
            return FileTransport(mail_dir).send(message)

    result = send_batch(app, SlowTransport())

    assert result.sent == 1
    assert second_worker[0].batches == 0, "the row's lease was kept alive while it was sent"
    assert delivered_to(mail_dir) == ["reader@example.com"]
    row = outbox_row(app, row_id)
    assert (row.status, row.attempts, row.lease_expires_at) == (OutboxStatus.SENT, 1, None)


def test_no_database_connection_is_held_while_the_transport_sends(app, mail_dir):
    topic = create_topic(app)
    reader = create_subscriber(app, "reader@example.com", {topic: "daily"})
    start_subscriptions_at(app, reader, at("2026-11-24T07:00"))
    create_article(app, "Open data strategy published", [topic], at("2026-11-24T12:00"))
    assert digest(app, "daily", at("2026-11-25T07:00")).emails == 1
    with app.app_context():
        pool = db.engine.pool
    held: list[int] = []

    class WatchingTransport:
        def send(self, message: EmailMessage) -> str:
            held.append(pool.checkedout())
            return FileTransport(mail_dir).send(message)

    assert send_batch(app, WatchingTransport()).sent == 1
    assert held == [0], "claiming and loading the shared body ended before sending began"
    assert "Open data strategy published" in text_part(read_message(next(mail_dir.glob("*.eml"))))


UNREACHABLE_DATABASE = "sqlite:////nonexistent-directory/alertsvc.sqlite3"


def test_a_worker_that_cannot_reach_the_database_waits_and_goes_on(app_with, caplog):
    """A database restart must not end the worker: it says so once, retries with a short
    backoff, and stops normally when asked."""
    worker = Worker(app_with(SQLALCHEMY_DATABASE_URI=UNREACHABLE_DATABASE))
    raised: list[BaseException] = []

    def run() -> None:
        try:
            worker.run()
        except BaseException as error:
            raised.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: "lost the database" in caplog.text, 30, "the worker to lose the database")
        thread.join(timeout=3)  # a few tries at the database
        assert thread.is_alive(), f"the worker stopped: {raised}"
    finally:
        worker.stop.event.set()
        thread.join(timeout=30)
    assert not raised, raised
    assert not thread.is_alive(), "stopped when asked"
    assert caplog.text.count("lost the database") == 1, "said once per outage, not per try"


def test_results_of_a_sent_batch_are_recorded_once_the_database_is_back(app, mail_dir):
    """The batch was sent: losing its results would send it a second time once the lease
    ran out, so recording is tried again while the database is unreachable."""
    from sqlalchemy.exc import OperationalError

    from alertsvc.delivery.worker import record_despite_outage

    row_id = queue_manage_link(app)
    calls: list[int] = []

    def record() -> None:
        calls.append(1)
        db.session.execute(
            OutboxEmail.__table__.update()
            .where(OutboxEmail.__table__.c.id == row_id)
            .values(status=OutboxStatus.SENT)
        )
        if len(calls) == 1:
            raise OperationalError("UPDATE outbox", {}, Exception("server closed the connection"))

    with app.app_context():
        record_despite_outage(record, within_seconds=30)
    assert len(calls) == 2
    assert statuses(app)[row_id] == OutboxStatus.SENT
