"""Unsubscribing by email through ``alertsvc inbound-smtp``: real mail, sent with smtplib
to the real aiosmtpd listener, built from the ``List-Unsubscribe`` mailto of an email the
worker really sent."""

from __future__ import annotations

import signal
import smtplib
import socket
from collections.abc import Iterator
from email.message import EmailMessage

import pytest
from flask import Flask

from alertsvc.database import transaction
from alertsvc.subscriptions import inbound_smtp
from alertsvc.subscriptions.services import erase_subscriber, load_subscriber
from alertsvc.tokens import TokenPurpose, make_token
from tests.factories import live_subscriptions, stored_state
from tests.mail import subscribed_email, unsubscribe_request
from tests.processes import alertsvc_env, exit_code, kill, output, start, wait_for

READER = "reader@example.com"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def listener(app: Flask) -> Iterator[int]:
    """The inbound SMTP listener on a free loopback port; yields the port."""
    port = _free_port()
    controller = inbound_smtp.listener(app, "127.0.0.1", port)
    controller.start()
    yield port
    controller.stop()


def _send(port: int, request: EmailMessage, to: str) -> dict:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        return client.send_message(request, to_addrs=[to])


def test_mail_to_the_mailto_ends_the_subscriptions_the_email_was_about(app, mailbox, listener):
    reader, topics, message = subscribed_email(app, mailbox)
    address, request = unsubscribe_request(message)
    assert address == "unsubscribe@alerts.test"

    assert _send(listener, request, address) == {}

    assert live_subscriptions(app, reader) == {topics["cyber-security"]: "weekly"}
    # Again: harmless, and still accepted.
    assert _send(listener, request, address) == {}
    assert live_subscriptions(app, reader) == {topics["cyber-security"]: "weekly"}


def test_a_token_in_the_body_is_enough_when_the_client_rewrote_the_subject(app, mailbox, listener):
    reader, topics, message = subscribed_email(app, mailbox)
    address, request = unsubscribe_request(message)
    token = str(request["Subject"]).removeprefix("unsubscribe ")
    del request["Subject"]
    request["Subject"] = "Unsubscribe"
    request.set_content(f"Please unsubscribe me.\n\n{token}\n")

    _send(listener, request, address)

    assert live_subscriptions(app, reader) == {topics["cyber-security"]: "weekly"}


def test_other_recipients_are_refused_and_nothing_is_relayed(app, mailbox, listener):
    reader, _, message = subscribed_email(app, mailbox)
    _, request = unsubscribe_request(message)

    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        _send(listener, request, "someone@elsewhere.example")

    [(code, _)] = refused.value.recipients.values()
    assert code == 550
    assert len(live_subscriptions(app, reader)) == 2


@pytest.mark.parametrize(
    "subject",
    [
        "unsubscribe",
        "unsubscribe not.a.token-at-all-but-shaped-like-one",
        "unsubscribe \x00\r\n",
        "unsubscribe " + "A" * 5000 + "." + "B" * 10 + "." + "C" * 30,
    ],
)
def test_mail_without_a_valid_token_is_accepted_and_changes_nothing(
    app, mailbox, listener, subject
):
    _, _, message = subscribed_email(app, mailbox)
    address, request = unsubscribe_request(message)
    del request["Subject"]
    request["Subject"] = subject.replace("\r\n", " ")
    before = stored_state(app)

    assert _send(listener, request, address) == {}

    assert stored_state(app) == before


def test_a_token_of_another_purpose_or_for_an_erased_reader_does_nothing(app, mailbox, listener):
    reader, _, message = subscribed_email(app, mailbox)
    address, request = unsubscribe_request(message)
    with app.app_context():
        manage_token = make_token(TokenPurpose.MANAGE, reader)
        confirm_token = make_token(TokenPurpose.CONFIRM, {"s": reader, "t": None})
    for token in (manage_token, confirm_token):
        del request["Subject"]
        request["Subject"] = f"unsubscribe {token}"
        _send(listener, request, address)
    assert len(live_subscriptions(app, reader)) == 2

    with app.app_context(), transaction():
        erase_subscriber(load_subscriber(reader))
    before = stored_state(app)
    _, request = unsubscribe_request(message)
    _send(listener, request, address)
    assert stored_state(app) == before


def test_a_message_larger_than_any_unsubscribe_request_is_refused(app, mailbox, listener):
    reader, _, message = subscribed_email(app, mailbox)
    address, request = unsubscribe_request(message)
    request.set_content("x" * (inbound_smtp.MAX_MESSAGE_BYTES + 1000))

    with pytest.raises(smtplib.SMTPException) as refused:
        _send(listener, request, address)

    assert "552" in str(refused.value) or getattr(refused.value, "smtp_code", None) == 552
    assert len(live_subscriptions(app, reader)) == 2


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.mark.slow
def test_the_inbound_smtp_command_unsubscribes_until_sigterm(
    app, mailbox, database_url, mail_dir, tmp_path
):
    reader, topics, message = subscribed_email(app, mailbox)
    address, request = unsubscribe_request(message)
    port = _free_port()
    log = tmp_path / "inbound.log"
    process = start(
        ["inbound-smtp", "--port", str(port)], alertsvc_env(database_url, mail_dir), log
    )
    try:
        wait_for(lambda: _listening(port), 30, "the listener", [process], [log])

        _send(port, request, address)

        assert live_subscriptions(app, reader) == {topics["cyber-security"]: "weekly"}
        process.send_signal(signal.SIGTERM)
        assert exit_code(process, 20, log) == 0
    finally:
        if process.poll() is None:
            kill(process)
    assert "Receiving mail for unsubscribe@alerts.test" in output(log)
    assert "Stopped receiving mail" in output(log)


def test_a_port_in_use_is_one_line_and_exit_1(app, database_url, mail_dir, tmp_path):
    from click.testing import CliRunner

    from alertsvc.cli import build_cli

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            build_cli(),
            ["inbound-smtp", "--port", str(port)],
            env=alertsvc_env(database_url, mail_dir),
        )

    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == (
        f"Error: cannot listen on 127.0.0.1:{port}: Address already in use"
    )
    assert "Traceback" not in result.output


def test_a_database_that_cannot_be_reached_is_a_451_so_the_sender_retries(app, mailbox, app_with):
    reader, _, message = subscribed_email(app, mailbox)
    address, request = unsubscribe_request(message)
    unreachable = app_with(
        SQLALCHEMY_DATABASE_URI="postgresql+psycopg://postgres@127.0.0.1:1/nowhere"
    )
    port = _free_port()
    controller = inbound_smtp.listener(unreachable, "127.0.0.1", port)
    controller.start()
    try:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            _send(port, request, address)
    finally:
        controller.stop()

    assert refused.value.smtp_code == 451
    assert len(live_subscriptions(app, reader)) == 2


def test_an_automatic_reply_quoting_the_email_changes_nothing(app, mailbox, listener):
    """An out-of-office quoting the email carries its unsubscribe link; nobody asked."""
    reader, _, message = subscribed_email(app, mailbox)
    address, request = unsubscribe_request(message)
    request["Auto-Submitted"] = "auto-replied"

    assert _send(listener, request, address) == {}

    assert len(live_subscriptions(app, reader)) == 2


def test_an_unexpected_error_is_a_451_that_tells_the_sender_nothing(
    app, mailbox, listener, monkeypatch
):
    _, _, message = subscribed_email(app, mailbox)
    address, request = unsubscribe_request(message)

    def broken(raw):
        raise OverflowError("Python int too large to convert to SQLite INTEGER")

    monkeypatch.setattr(inbound_smtp, "unsubscribe_by_mail", broken)
    with pytest.raises(smtplib.SMTPDataError) as refused:
        _send(listener, request, address)

    assert refused.value.smtp_code == 451
    assert b"SQLite" not in refused.value.smtp_error
