"""Unsubscribing by email through SES receiving: a receipt rule publishes the mail sent to
the ``List-Unsubscribe`` mailto to SNS, which posts it to /ses/events."""

from __future__ import annotations

import json
from email.message import EmailMessage

import boto3
import pytest
import requests
from cryptography import x509
from flask import Flask
from moto import mock_aws

from alertsvc.ses_events import sns
from tests.factories import live_subscriptions, stored_state
from tests.mail import subscribed_email, unsubscribe_request
from tests.ses_events.helpers import notification, ses_received, sign

READER = "reader@example.com"
UNSUBSCRIBE_ADDRESS = "unsubscribe@alerts.test"


def _as_received(request: EmailMessage) -> bytes:
    """The request as SES's inbound servers hand it on: with their trace headers."""
    return (
        b"Return-Path: <reader@example.com>\r\n"
        b"Received: from mail.example.com by inbound-smtp.eu-west-2.amazonaws.com with SMTP "
        b"id d6iitobk75ur44p8kdnnp7g2n800 for unsubscribe@alerts.test; "
        b"Mon, 30 Nov 2026 09:00:00 +0000 (UTC)\r\n" + request.as_bytes(policy=request.policy)
    )


@pytest.fixture
def subscribed(app: Flask, mailbox):
    """A reader of Data and Cyber security, and the unsubscribe request their mail client
    builds from the "you're subscribed" email about Data."""
    reader, topics, message = subscribed_email(app, mailbox, READER)
    address, request = unsubscribe_request(message)
    assert address == UNSUBSCRIBE_ADDRESS
    return reader, topics, request


@pytest.mark.parametrize("encoding", [None, "UTF8", "BASE64"])
def test_received_mail_to_the_mailto_ends_the_subscriptions(
    app, subscribed, cached, post, encoding
):
    reader, topics, request = subscribed
    message = ses_received(
        _as_received(request), recipients=[UNSUBSCRIBE_ADDRESS], encoding=encoding
    )

    response = post(sign(notification(message), cached))

    assert response.status_code == 200, response.get_data(as_text=True)
    assert live_subscriptions(app, reader) == {topics["cyber-security"]: "weekly"}


def test_received_mail_for_another_address_is_ignored(app, subscribed, cached, post):
    reader, _, request = subscribed
    message = ses_received(_as_received(request), recipients=["press@alerts.test"])

    response = post(sign(notification(message), cached))

    assert response.status_code == 200
    assert len(live_subscriptions(app, reader)) == 2


def test_a_received_notification_not_signed_by_sns_changes_nothing(
    app, subscribed, cached, post, ca
):
    from tests.ses_events.helpers import issue

    _, _, request = subscribed
    stranger = issue(ca, "sns.amazonaws.com")  # a key SNS's certificate does not hold
    message = ses_received(_as_received(request), recipients=[UNSUBSCRIBE_ADDRESS])
    before = stored_state(app)

    response = post(sign(notification(message), stranger))

    assert response.status_code == 403
    assert stored_state(app) == before


@pytest.mark.parametrize(
    "content",
    ["not base64 at all!", "", "\ud800" * 10],
)
def test_received_content_that_is_no_email_changes_nothing(app, subscribed, cached, post, content):
    _, _, _ = subscribed
    message = ses_received(b"", recipients=[UNSUBSCRIBE_ADDRESS], encoding="BASE64")
    message["content"] = content
    before = {name: rows for name, rows in stored_state(app).items() if name != "sns_messages"}

    response = post(sign(notification(json.dumps(message)), cached))

    assert response.status_code == 200
    after = {name: rows for name, rows in stored_state(app).items() if name != "sns_messages"}
    assert after == before


def test_moto_sns_publishes_what_a_receipt_rule_sends_and_the_endpoint_acts_on_it(
    app, make_app, subscribed, httpserver, post
):
    """The receipt rule the README describes, set up through SES's API (moto), and the
    notification as moto's SNS signs and posts it to an HTTP subscriber."""
    reader, topics, request = subscribed
    httpserver.expect_request("/ses/events", method="POST").respond_with_data("ok")
    region = "eu-west-2"
    with mock_aws():
        # Explicit endpoints: the tests' tripwire sends any other AWS call nowhere.
        sns_client = boto3.client(
            "sns", region_name=region, endpoint_url=f"https://sns.{region}.amazonaws.com"
        )
        ses = boto3.client(
            "ses", region_name=region, endpoint_url=f"https://email.{region}.amazonaws.com"
        )
        topic = sns_client.create_topic(Name="alertsvc-inbound")["TopicArn"]
        ses.create_receipt_rule_set(RuleSetName="alertsvc")
        ses.create_receipt_rule(
            RuleSetName="alertsvc",
            Rule={
                "Name": "unsubscribe-by-email",
                "Enabled": True,
                "Recipients": [UNSUBSCRIBE_ADDRESS],
                "ScanEnabled": True,
                "Actions": [{"SNSAction": {"TopicArn": topic, "Encoding": "Base64"}}],
            },
        )
        ses.set_active_receipt_rule_set(RuleSetName="alertsvc")
        sns_client.subscribe(
            TopicArn=topic, Protocol="http", Endpoint=httpserver.url_for("/ses/events")
        )
        message = ses_received(
            _as_received(request), recipients=[UNSUBSCRIBE_ADDRESS], encoding="BASE64", topic=topic
        )
        sns_client.publish(TopicArn=topic, Message=json.dumps(message))
        [(posted, _)] = httpserver.log
        body = posted.get_data()
        cert_url = json.loads(body)["SigningCertURL"]
        pem = requests.get(cert_url, timeout=10).content
    sns.certificates.put(cert_url, x509.load_pem_x509_certificate(pem))

    response = post(body, app=make_app(SNS_TOPIC_ARNS=[topic]))

    assert response.status_code == 200, response.get_data(as_text=True)
    assert live_subscriptions(app, reader) == {topics["cyber-security"]: "weekly"}
