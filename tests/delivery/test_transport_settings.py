"""A transport setting that could not work stops every process at start, in one line."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from alertsvc.cli import build_cli
from alertsvc.config import ConfigurationError, SmtpUrl, smtp_url
from alertsvc.models import OutboxStatus
from tests.delivery.helpers import outbox_row
from tests.factories import queue_manage_link

SMTP_SHAPE = "such as smtp+starttls://user:password@smtp.example.org:587"

REFUSED = [
    (
        {"MAIL_TRANSPORT": "ses"},
        "ALERTSVC_MAIL_TRANSPORT=ses needs ALERTSVC_SES_REGION: the AWS region of your SES "
        "account, such as eu-west-2",
    ),
    (
        {"MAIL_TRANSPORT": "ses", "SES_REGION": "eu west 2"},
        "ALERTSVC_SES_REGION must be an AWS region name such as eu-west-2, not 'eu west 2'",
    ),
    (
        {"MAIL_TRANSPORT": "ses", "SES_REGION": "eu-west-2", "SES_ENDPOINT_URL": "127.0.0.1:5000"},
        "ALERTSVC_SES_ENDPOINT_URL must be an http:// or https:// URL such as "
        "http://127.0.0.1:5000, not '127.0.0.1:5000'; leave it unset for SES itself",
    ),
    (
        {"MAIL_TRANSPORT": "smtp"},
        "ALERTSVC_MAIL_TRANSPORT=smtp needs ALERTSVC_SMTP_URL, such as "
        "smtp+starttls://user:password@smtp.example.org:587",
    ),
    (
        {"MAIL_TRANSPORT": "smtp", "SMTP_URL": "smtp.example.org"},
        "ALERTSVC_SMTP_URL must start with smtp://, smtp+starttls://, smtps:// "
        f"(it has none), {SMTP_SHAPE}",
    ),
    (
        {"MAIL_TRANSPORT": "smtp", "SMTP_URL": "smtp+tls://smtp.example.org"},
        "ALERTSVC_SMTP_URL must start with smtp://, smtp+starttls://, smtps:// "
        f"(not 'smtp+tls'), {SMTP_SHAPE}",
    ),
    (
        {"MAIL_TRANSPORT": "smtp", "SMTP_URL": "smtps://user:pw@:465"},
        f"ALERTSVC_SMTP_URL names no host; give one, {SMTP_SHAPE}",
    ),
    (
        {"MAIL_TRANSPORT": "smtp", "SMTP_URL": "smtp://smtp.example.org:submission"},
        f"ALERTSVC_SMTP_URL: the port must be a number from 1 to 65535, {SMTP_SHAPE}",
    ),
    (
        {"MAIL_TRANSPORT": "smtp", "SMTP_URL": "smtp://smtp.example.org:70000"},
        f"ALERTSVC_SMTP_URL: the port must be a number from 1 to 65535, {SMTP_SHAPE}",
    ),
    (
        {"MAIL_TRANSPORT": "smtp", "SMTP_URL": "smtp://smtp.example.org/relay"},
        "ALERTSVC_SMTP_URL must be scheme://[user:password@]host[:port] with nothing after "
        f"the port (port 1 to 65535), {SMTP_SHAPE}",
    ),
    (
        {"SEND_RATE": 0},
        "ALERTSVC_SEND_RATE must be a number of emails per second above 0 (such as 14), "
        "not 0; leave it unset for no limit of ours",
    ),
    (
        {"SEND_RATE": "fast"},
        "ALERTSVC_SEND_RATE must be a number of emails per second above 0 (such as 14), "
        "not 'fast'; leave it unset for no limit of ours",
    ),
    (
        {"MAIL_TRANSPORT": "ses", "SES_REGION": "eu-west-2", "SES_MAX_SEND_RATE": -14},
        "ALERTSVC_SES_MAX_SEND_RATE must be a number of emails per second above 0 (such as "
        "14), not -14; leave it unset to use SES's MaxSendRate",
    ),
    (
        {"SES_MAX_SEND_RATE": True},
        "ALERTSVC_SES_MAX_SEND_RATE must be a number of emails per second above 0 (such as "
        "14), not True; leave it unset to use SES's MaxSendRate",
    ),
]


@pytest.mark.parametrize(("settings", "message"), REFUSED)
def test_a_transport_that_cannot_work_is_refused_at_start_up(app_with, settings, message):
    with pytest.raises(ConfigurationError) as refused:
        app_with(**settings)
    assert str(refused.value) == message


def test_the_worker_command_stops_with_the_one_line(app, monkeypatch, database_url):
    row_id = queue_manage_link(app)
    monkeypatch.setenv("ALERTSVC_ENV", "testing")
    monkeypatch.setenv("ALERTSVC_DATABASE_URL", database_url)
    monkeypatch.setenv("ALERTSVC_MAIL_TRANSPORT", "smtp")
    monkeypatch.setenv("ALERTSVC_SMTP_URL", "smtp+tls://smtp.example.org")

    result = CliRunner().invoke(build_cli(), ["worker", "--burst"])

    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: ALERTSVC_SMTP_URL must start with smtp://, smtp+starttls://, smtps:// "
        f"(not 'smtp+tls'), {SMTP_SHAPE}"
    ]
    row = outbox_row(app, row_id)
    assert (row.status, row.attempts) == (OutboxStatus.QUEUED, 0), "nothing was claimed"


@pytest.mark.parametrize(
    ("url", "parsed"),
    [
        ("smtp://relay.internal", SmtpUrl("smtp", "relay.internal", 25)),
        (
            "smtp+starttls://AKIA%2Fx:s3cr%40t%3A@email-smtp.eu-west-2.amazonaws.com",
            SmtpUrl(
                "smtp+starttls", "email-smtp.eu-west-2.amazonaws.com", 587, "AKIA/x", "s3cr@t:"
            ),
        ),
        ("smtps://user:@mail.example.org", SmtpUrl("smtps", "mail.example.org", 465, "user", "")),
        ("smtp://127.0.0.1:2525/", SmtpUrl("smtp", "127.0.0.1", 2525)),
    ],
)
def test_smtp_urls_are_read_with_default_ports_and_decoded_credentials(url, parsed):
    assert smtp_url(url) == parsed


def test_rates_from_the_environment_are_numbers(app_with):
    app = app_with(SEND_RATE="50", SES_MAX_SEND_RATE=14)
    assert (app.config["SEND_RATE"], app.config["SES_MAX_SEND_RATE"]) == (50.0, 14.0)


def test_the_password_is_not_shown_when_the_url_is_printed():
    assert "s3cret" not in repr(smtp_url("smtps://user:s3cret@mail.example.org"))
