"""The SES transport through boto3 against moto (in-process): what SES is handed, and how
its answers and errors decide the row's fate. Errors moto cannot produce are injected through
botocore's event system, on the real client, so boto3's request, parsing and retry machinery
all run."""

from __future__ import annotations

import email
import email.policy
import io
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage

import boto3
import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from flask import Flask
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends
from sqlalchemy import select
from urllib3.response import HTTPResponse
from werkzeug import Request, Response

from alertsvc.cli import build_cli
from alertsvc.delivery.ses import SesTransport
from alertsvc.delivery.transports import SendingPausedError, make_transport
from alertsvc.models import OutboxEmail, OutboxStatus, utcnow
from tests.delivery.helpers import outbox_row, send_batch
from tests.digests.helpers import at, digest, start_subscriptions_at
from tests.factories import (
    create_article,
    create_subscriber,
    create_topic,
    queue_manage_link,
    rows,
)
from tests.mail import html_part, link_path, links, text_part

REGION = "eu-west-2"
# moto answers requests to SES's own endpoint; the tests' AWS_ENDPOINT_URL is a tripwire.
ENDPOINT = f"https://email.{REGION}.amazonaws.com"
# Nothing listens here: a test that answers for SES through botocore reaches no server.
TRIPWIRE = "http://127.0.0.1:9"
SENDER = "alerts@alerts.test"
CONFIGURATION_SET = "alerts-events"


@pytest.fixture
def ses() -> Iterator[object]:
    """moto's SES, with the sender's identity verified and a configuration set."""
    with mock_aws():
        client = boto3.client("sesv2", region_name=REGION, endpoint_url=ENDPOINT)
        client.create_email_identity(EmailIdentity=SENDER)
        client.create_configuration_set(ConfigurationSetName=CONFIGURATION_SET)
        yield client


@pytest.fixture
def ses_app(app_with, ses) -> Flask:
    return app_with(
        MAIL_TRANSPORT="ses",
        SES_REGION=REGION,
        SES_ENDPOINT_URL=ENDPOINT,
        SES_CONFIGURATION_SET=CONFIGURATION_SET,
    )


@pytest.fixture
def injected_app(app_with) -> Flask:
    """SES set up at the tripwire endpoint, where nothing answers: each test answers for SES
    through botocore's ``before-send`` event. (Not moto: botocore hands a request to every
    ``before-send`` handler, so moto would also accept the message a test says SES refused.)
    """
    return app_with(
        MAIL_TRANSPORT="ses",
        SES_REGION=REGION,
        SES_ENDPOINT_URL=TRIPWIRE,
        SES_CONFIGURATION_SET=CONFIGURATION_SET,
    )


def stored_by_moto() -> list[tuple[str, EmailMessage]]:
    """(MessageId, parsed raw message) for everything moto's SES accepted."""
    return [
        (sent.id, email.message_from_string(sent.raw_data, policy=email.policy.default))
        for sent in ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages
    ]


def ses_answer(
    calls: list[AWSPreparedRequest],
    status: int,
    body: dict[str, object] | bytes,
    error: str = "",
) -> Callable[..., AWSResponse]:
    """A ``before-send`` handler: SES's answer, as SES words it, in place of the network."""

    def handler(request: AWSPreparedRequest, **_: object) -> AWSResponse:
        calls.append(request)
        if isinstance(body, bytes):  # not from SES itself: a proxy's error page
            headers, content = {"Content-Type": "text/html"}, body
        else:
            headers, content = {"Content-Type": "application/json"}, json.dumps(body).encode()
        if error:
            headers["x-amzn-ErrorType"] = error
        raw = HTTPResponse(body=io.BytesIO(content), preload_content=False)
        return AWSResponse(request.url, status, headers, raw)

    return handler


def queue_digest(app: Flask, address: str) -> int:
    topic = create_topic(app)
    reader = create_subscriber(app, address, {topic: "daily"})
    start_subscriptions_at(app, reader, at("2026-11-24T07:00"))
    create_article(app, "Open data strategy published", [topic], at("2026-11-24T12:00"))
    assert digest(app, "daily", at("2026-11-25T07:00")).emails == 1
    [row_id] = rows(app, select(OutboxEmail.id).where(OutboxEmail.subscriber_id == reader))
    return row_id


def test_the_message_goes_to_ses_raw_exactly_as_built(ses_app, client):
    manage_id = queue_manage_link(ses_app, "manage@example.com")
    digest_id = queue_digest(ses_app, "reader@example.com")
    transport = make_transport(ses_app, 2)
    requests: list[AWSPreparedRequest] = []
    transport.client.meta.events.register(
        "before-send.sesv2.SendEmail", lambda request, **_: requests.append(request)
    )

    result = send_batch(ses_app, transport)

    assert (result.sent, result.retried, result.failed) == (2, 0, 0)
    stored = {str(message["To"]): (ses_id, message) for ses_id, message in stored_by_moto()}
    assert sorted(stored) == ["manage@example.com", "reader@example.com"]

    ses_id, manage = stored["manage@example.com"]
    row = outbox_row(ses_app, manage_id)
    assert (row.status, row.provider_message_id) == (OutboxStatus.SENT, ses_id)
    assert manage["From"] == f"Public Technology alerts <{SENDER}>"
    assert manage["Subject"] == "Manage your email alerts"
    assert manage["Message-ID"] == row.message_id
    assert manage["List-Unsubscribe"] is None, "not a subscription email"
    assert "Manage your email alerts" in text_part(manage)
    assert client.get(link_path(manage, "/manage/")).status_code == 200

    ses_id, reader = stored["reader@example.com"]
    row = outbox_row(ses_app, digest_id)
    assert (row.status, row.provider_message_id, row.attempts) == (OutboxStatus.SENT, ses_id, 1)
    assert reader["Message-ID"] == row.message_id
    assert reader["Subject"] == "Daily email alert: 1 new article on Data"
    assert "Open data strategy published" in text_part(reader)
    assert "Open data strategy published" in html_part(reader)
    assert "placeholder" not in text_part(reader) + html_part(reader)
    assert reader["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    https_link, mailto_link = (part.strip(" <>") for part in reader["List-Unsubscribe"].split(","))
    assert https_link in links(reader), "the footer offers the same link"
    assert mailto_link.startswith("mailto:unsubscribe@alerts.test?subject=unsubscribe%20")
    # The header went through SES as written: raw, never refolded into RFC 2047 words.
    raw = next(
        sent.raw_data
        for sent in ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages
        if sent.id == ses_id
    )
    unfolded = re.sub(r"\r?\n[ \t]+", " ", raw.split("\r\n\r\n", 1)[0])
    assert f"List-Unsubscribe: <{https_link}>, <{mailto_link}>" in unfolded
    assert client.get(link_path(reader, "/manage/")).status_code == 200
    unsubscribe = link_path(reader, "/unsubscribe/")
    assert client.post(unsubscribe, data={"List-Unsubscribe": "One-Click"}).status_code == 200

    sent_requests = [json.loads(request.body) for request in requests]
    assert len(sent_requests) == 2
    for request in sent_requests:
        assert request["ConfigurationSetName"] == CONFIGURATION_SET
        assert request["FromEmailAddress"] == SENDER
        assert request["Destination"]["ToAddresses"] in (
            ["manage@example.com"],
            ["reader@example.com"],
        )


def test_without_a_configuration_set_none_is_named(app_with, ses):
    app = app_with(MAIL_TRANSPORT="ses", SES_REGION=REGION, SES_ENDPOINT_URL=ENDPOINT)
    queue_manage_link(app)
    transport = make_transport(app, 2)
    requests: list[AWSPreparedRequest] = []
    transport.client.meta.events.register(
        "before-send.sesv2.SendEmail", lambda request, **_: requests.append(request)
    )

    assert send_batch(app, transport).sent == 1

    [request] = requests
    assert "ConfigurationSetName" not in json.loads(request.body)
    assert len(stored_by_moto()) == 1


@pytest.mark.parametrize(
    ("status", "code", "message"),
    [
        (429, "TooManyRequestsException", "Maximum sending rate exceeded."),
        (400, "Throttling", "Rate exceeded"),
        (400, "LimitExceededException", "Daily message quota exceeded."),
        (500, "InternalFailure", "We encountered an internal error. Please try again."),
        (503, "ServiceUnavailable", "Service is unable to handle request."),
        (403, "ExpiredTokenException", "The security token included in the request is expired"),
    ],
)
def test_throttling_and_server_errors_put_the_row_back_for_later(
    injected_app, status, code, message
):
    row_id = queue_manage_link(injected_app)
    transport = make_transport(injected_app, 2)
    calls: list[AWSPreparedRequest] = []
    transport.client.meta.events.register(
        "before-send.sesv2.SendEmail", ses_answer(calls, status, {"message": message}, code)
    )
    before = utcnow()

    result = send_batch(injected_app, transport)

    assert (result.sent, result.retried, result.failed) == (0, 1, 0)
    assert len(calls) == 1, "botocore did not retry: the worker's policy is the only one"
    row = outbox_row(injected_app, row_id)
    assert row.status == OutboxStatus.QUEUED
    assert row.attempts == 1
    assert row.next_attempt_at > before
    assert row.last_error == f"SES {code}: {message}"


def test_a_gateway_error_in_front_of_ses_is_worth_retrying(injected_app):
    row_id = queue_manage_link(injected_app)
    transport = make_transport(injected_app, 2)
    calls: list[AWSPreparedRequest] = []
    page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
    transport.client.meta.events.register(
        "before-send.sesv2.SendEmail", ses_answer(calls, 502, page)
    )

    assert send_batch(injected_app, transport).retried == 1

    assert len(calls) == 1
    row = outbox_row(injected_app, row_id)
    assert (row.status, row.last_error) == (OutboxStatus.QUEUED, "SES 502: Bad Gateway")


@pytest.mark.parametrize(
    ("status", "code", "message"),
    [
        (400, "MailFromDomainNotVerifiedException", "MAIL FROM domain is not verified"),
        (400, "BadRequestException", "Missing final '@domain'"),
        (404, "NotFoundException", "Configuration set <alerts-events> does not exist."),
    ],
)
def test_permanent_errors_fail_the_row_at_once(injected_app, status, code, message):
    row_id = queue_manage_link(injected_app)
    transport = make_transport(injected_app, 2)
    calls: list[AWSPreparedRequest] = []
    transport.client.meta.events.register(
        "before-send.sesv2.SendEmail", ses_answer(calls, status, {"message": message}, code)
    )

    result = send_batch(injected_app, transport)

    assert (result.sent, result.retried, result.failed) == (0, 0, 1)
    assert len(calls) == 1
    row = outbox_row(injected_app, row_id)
    assert (row.status, row.attempts) == (OutboxStatus.FAILED, 1)
    assert row.last_error == f"SES {code}: {message}"


def test_message_rejected_by_ses_fails_the_row_with_its_reason(app_with, ses):
    app = app_with(
        MAIL_TRANSPORT="ses",
        SES_REGION=REGION,
        SES_ENDPOINT_URL=ENDPOINT,
        MAIL_FROM="Public Technology alerts <unverified@alerts.test>",
    )
    row_id = queue_manage_link(app)

    result = send_batch(app, make_transport(app, 2))

    assert (result.sent, result.retried, result.failed) == (0, 0, 1)
    row = outbox_row(app, row_id)
    assert (row.status, row.attempts) == (OutboxStatus.FAILED, 1)
    assert row.last_error == (
        "SES MessageRejected: Did not have authority to send from email unverified@alerts.test"
    )
    assert stored_by_moto() == []


def test_an_unreachable_endpoint_is_worth_retrying(app_with):
    app = app_with(MAIL_TRANSPORT="ses", SES_REGION=REGION, SES_ENDPOINT_URL="http://127.0.0.1:9")
    row_id = queue_manage_link(app)

    result = send_batch(app, make_transport(app, 2))

    assert (result.sent, result.retried, result.failed) == (0, 1, 0)
    row = outbox_row(app, row_id)
    assert row.status == OutboxStatus.QUEUED
    assert row.last_error.startswith(
        'SES EndpointConnectionError: Could not connect to the endpoint URL: "http://127.0.0.1:9/'
    )


def test_an_answer_slower_than_the_connect_timeout_is_waited_for_not_sent_again(
    app_with, httpserver
):
    # SES took the message but answers late (a slow call, or a network down for a while):
    # giving up at the connect timeout would retry an email SES has already accepted.
    def slow_answer(request: Request) -> Response:
        time.sleep(1.5)
        return Response(
            json.dumps({"MessageId": "ses-late-1"}), 200, {"Content-Type": "application/json"}
        )

    httpserver.expect_request("/v2/email/outbound-emails", method="POST").respond_with_handler(
        slow_answer
    )
    app = app_with(
        MAIL_TRANSPORT="ses",
        SES_REGION=REGION,
        SES_ENDPOINT_URL=httpserver.url_for(""),
        SES_TIMEOUT_SECONDS=0.5,
        SES_READ_TIMEOUT_SECONDS=30,
    )
    row_id = queue_manage_link(app)

    result = send_batch(app, make_transport(app, 2))

    assert (result.sent, result.retried, result.failed) == (1, 0, 0)
    row = outbox_row(app, row_id)
    assert (row.status, row.provider_message_id) == (OutboxStatus.SENT, "ses-late-1")
    assert len(httpserver.log) == 1


@pytest.mark.parametrize("code", ["SendingPausedException", "AccountSuspendedException"])
def test_paused_sending_is_its_own_error_and_keeps_the_mail(injected_app, code):
    row_id = queue_manage_link(injected_app)
    transport = make_transport(injected_app, 2)
    calls: list[AWSPreparedRequest] = []
    message = "Email sending is disabled for this account."
    transport.client.meta.events.register(
        "before-send.sesv2.SendEmail", ses_answer(calls, 400, {"message": message}, code)
    )
    probe = EmailMessage()
    probe["From"], probe["To"], probe["Subject"] = SENDER, "probe@example.com", "probe"
    probe.set_content("probe")

    with pytest.raises(SendingPausedError, match=f"^SES {code}: {message}$"):
        transport.send(probe)
    result = send_batch(injected_app, transport)

    assert result.failed == 0
    row = outbox_row(injected_app, row_id)
    assert row.status == OutboxStatus.QUEUED, "still queued, to go once sending resumes"
    assert len(calls) == 2


GET_ACCOUNT = {
    "DedicatedIpAutoWarmupEnabled": False,
    "EnforcementStatus": "HEALTHY",
    "ProductionAccessEnabled": True,
    "SendQuota": {"Max24HourSend": 50000.0, "MaxSendRate": 14.0, "SentLast24Hours": 1234.0},
    "SendingEnabled": True,
}


def test_max_send_rate_is_read_from_get_account_and_kept_for_a_while():
    transport = SesTransport(region=REGION, endpoint_url=TRIPWIRE, account_refresh_seconds=300)
    calls: list[AWSPreparedRequest] = []
    # moto 5.2 does not implement sesv2 GetAccount (see the test below): SES's documented
    # answer is given through botocore instead.
    transport.client.meta.events.register(
        "before-send.sesv2.GetAccount", ses_answer(calls, 200, GET_ACCOUNT)
    )

    assert transport.max_send_rate() == 14.0
    assert transport.max_send_rate() == 14.0
    assert len(calls) == 1, "read once per SES_ACCOUNT_REFRESH_SECONDS"
    status = transport.account_status()
    assert status is not None
    assert (status.max_24_hour_send, status.sent_last_24_hours) == (50000.0, 1234.0)
    assert (status.sending_enabled, status.enforcement_status) == (True, "HEALTHY")


def test_max_send_rate_setting_overrides_get_account(app_with, ses):
    app = app_with(
        MAIL_TRANSPORT="ses",
        SES_REGION=REGION,
        SES_ENDPOINT_URL=ENDPOINT,
        SES_MAX_SEND_RATE="250",
    )
    transport = make_transport(app, 2)
    calls: list[AWSPreparedRequest] = []
    transport.client.meta.events.register(
        "before-send.sesv2.GetAccount", ses_answer(calls, 200, GET_ACCOUNT)
    )

    assert transport.max_send_rate() == 250.0
    assert calls == [], "SES is not asked"


def test_an_account_that_cannot_be_read_is_logged_not_fatal(caplog):
    transport = SesTransport(region=REGION, endpoint_url=TRIPWIRE, account_refresh_seconds=0)
    calls: list[AWSPreparedRequest] = []
    transport.client.meta.events.register(
        "before-send.sesv2.GetAccount",
        ses_answer(calls, 403, {"message": "not allowed: ses:GetAccount"}, "AccessDeniedException"),
    )

    with caplog.at_level(logging.WARNING, logger="alertsvc.delivery.ses"):
        assert transport.max_send_rate() is None
        assert transport.account_status() is None

    assert len(calls) == 2
    assert (
        "could not read the SES account (GetAccount): "
        "SES AccessDeniedException: not allowed: ses:GetAccount"
    ) in caplog.text


def test_moto_without_get_account_leaves_the_rate_unknown(ses, caplog):
    transport = SesTransport(region=REGION, endpoint_url=ENDPOINT)

    with caplog.at_level(logging.WARNING, logger="alertsvc.delivery.ses"):
        assert transport.max_send_rate() is None

    assert "GetAccount): NotImplementedError" in caplog.text


@pytest.mark.parametrize(
    ("answer", "settings", "line"),
    [
        (
            GET_ACCOUNT,
            {},
            "SES account: sending enabled, HEALTHY; at most 14 emails a second; "
            "1234 of 50000 sent in the last 24 hours",
        ),
        (
            {**GET_ACCOUNT, "SendingEnabled": False, "EnforcementStatus": "SHUTDOWN"},
            {"SES_MAX_SEND_RATE": 50},
            "SES account: SENDING DISABLED by SES: mail stays queued, SHUTDOWN; at most 14 "
            "emails a second (ALERTSVC_SES_MAX_SEND_RATE=50 is used instead); "
            "1234 of 50000 sent in the last 24 hours",
        ),
    ],
)
def test_sending_status_shows_the_ses_account(app_with, httpserver, answer, settings, line):
    # An SES-compatible endpoint answering GetAccount as SES does.
    httpserver.expect_request("/v2/email/account", method="GET").respond_with_json(answer)
    app = app_with(
        MAIL_TRANSPORT="ses", SES_REGION=REGION, SES_ENDPOINT_URL=httpserver.url_for(""), **settings
    )

    result = app.test_cli_runner().invoke(args=["sending", "status"])

    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[:2] == ["Sending: running", line]


def test_sending_status_says_when_ses_cannot_be_asked(app_with):
    app = app_with(
        MAIL_TRANSPORT="ses", SES_REGION=REGION, SES_ENDPOINT_URL=TRIPWIRE, SES_MAX_SEND_RATE=50
    )

    result = app.test_cli_runner().invoke(args=["sending", "status"])

    assert result.exit_code == 0, result.output
    assert (
        "SES account: could not be read (GetAccount): SES EndpointConnectionError: Could not "
        'connect to the endpoint URL: "http://127.0.0.1:9/v2/email/account"'
    ) in result.output.splitlines()
    assert "Outbox: 0 queued" in result.output


@pytest.mark.parametrize(
    ("topics", "warned"), [([], True), (["arn:aws:sns:eu-west-2:123456789012:ses-events"], False)]
)
def test_a_worker_sending_through_ses_without_sns_topics_says_bounces_go_unheard(
    ses, app_with, caplog, topics, warned
):
    flask_app = app_with(
        MAIL_TRANSPORT="ses",
        SES_REGION=REGION,
        SES_ENDPOINT_URL=ENDPOINT,
        SES_MAX_SEND_RATE=1000,
        SNS_TOPIC_ARNS=topics,
    )
    with caplog.at_level(logging.WARNING, logger="alertsvc.delivery.cli"):
        result = flask_app.test_cli_runner().invoke(build_cli(), ["worker", "--burst"])

    assert result.exit_code == 0, result.output
    assert ("ALERTSVC_SNS_TOPIC_ARNS empty" in caplog.text) is warned
