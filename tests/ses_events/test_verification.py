"""What /ses/events refuses: anything SNS did not sign for our topic, recently. Each
refusal answers 403 (or 400/413 for what is not an SNS message) and changes nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from alertsvc.config import ConfigurationError
from alertsvc.ses_events import sns
from tests.factories import create_subscriber, seed_topics, stored_state
from tests.ses_events.helpers import (
    CERT_URL,
    OTHER_TOPIC,
    TOPIC,
    issue,
    make_ca,
    notification,
    ses_bounce,
    sign,
)

READER = "reader@example.com"


@pytest.fixture
def reader(sns_app) -> int:
    topics = seed_topics(sns_app)
    return create_subscriber(sns_app, READER, {topics["data"]: "daily"})


def _bounce(**fields) -> dict[str, str]:
    return notification(ses_bounce(READER), **fields)


def _assert_refused(response, sns_app, before, status=403):
    assert response.status_code == status, response.get_data(as_text=True)
    assert "error" in response.json
    assert stored_state(sns_app) == before


def test_the_genuine_message_is_accepted(sns_app, reader, cached, post):
    """The control for every refusal below: the same message, untouched, changes things."""
    before = stored_state(sns_app)

    assert post(sign(_bounce(), cached)).status_code == 200
    assert stored_state(sns_app) != before


def test_a_forged_signature(sns_app, reader, cached, post, caplog):
    impostor = issue(make_ca(), "sns.amazonaws.com")
    before = stored_state(sns_app)

    response = post(sign(_bounce(), impostor, "2"))

    _assert_refused(response, sns_app, before)
    assert "the signature does not match the message" in caplog.text


@pytest.mark.parametrize("field", ["Message", "MessageId", "Timestamp", "Type", "Subject"])
def test_a_field_changed_after_signing(field, sns_app, reader, cached, post):
    body = sign(_bounce(subject="Bounce"), cached)
    changed = {
        "Message": json.dumps(ses_bounce("someone-else@example.com")),
        "MessageId": "d1d2c3a4-0000-4000-8000-000000000999",
        "Timestamp": body["Timestamp"].replace("Z", "1Z"),
        "Type": "SubscriptionConfirmation",
        "Subject": "Not a bounce",
    }
    before = stored_state(sns_app)

    response = post({**body, field: changed[field]})

    _assert_refused(response, sns_app, before, 400 if field == "Type" else 403)


def test_a_subject_added_after_signing(sns_app, reader, cached, post):
    before = stored_state(sns_app)

    _assert_refused(post({**sign(_bounce(), cached), "Subject": "x"}), sns_app, before)


@pytest.mark.parametrize(
    "cert_url",
    [
        # Lookalike hosts and paths: each is put in the cache too, so only the URL check
        # can be what refuses it.
        "https://sns.us-east-1.amazonaws.com.evil.example/SimpleNotificationService-abc.pem",
        "https://s3.amazonaws.com/sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://sns.us-east-1.amazonaws.com/evil/SimpleNotificationService-abc.pem",
        "https://sns.us-east-1.amazonaws.com@evil.example/SimpleNotificationService-abc.pem",
        "https://evil.example/sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://sqs.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://sns.us-east-1.amazonaws.com:8443/SimpleNotificationService-abc.pem",
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem?x=.pem",
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem\n",
        "https://SNS.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-xyz.pem",
        "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
    ],
)
def test_a_certificate_url_that_is_not_sns(cert_url, sns_app, reader, signer, post, caplog):
    sns.certificates.put(cert_url, signer.certificate)
    before = stored_state(sns_app)

    response = post(sign(_bounce(cert_url=cert_url), signer))

    _assert_refused(response, sns_app, before)
    assert "SigningCertURL is not an SNS certificate URL" in caplog.text


def test_a_topic_we_did_not_subscribe(sns_app, reader, cached, post):
    before = stored_state(sns_app)

    _assert_refused(post(sign(_bounce(topic=OTHER_TOPIC), cached)), sns_app, before)


def test_with_no_topics_set_every_message_is_refused(app, sns_app, reader, cached, post):
    assert app.config["SNS_TOPIC_ARNS"] == []
    before = stored_state(sns_app)

    _assert_refused(post(sign(_bounce(), cached), app=app), sns_app, before)


@pytest.mark.parametrize(
    "age", [timedelta(hours=1, seconds=1), timedelta(days=3), timedelta(minutes=-6)]
)
def test_a_stale_or_future_timestamp(age, sns_app, reader, cached, post):
    before = stored_state(sns_app)
    stamped = datetime.now(UTC) - age

    _assert_refused(post(sign(_bounce(timestamp=stamped), cached)), sns_app, before)


@pytest.mark.parametrize("version", ["3", "", "1 ", "SHA1"])
def test_an_unknown_signature_version(version, sns_app, reader, cached, post):
    body = sign(_bounce(), cached, "1")
    before = stored_state(sns_app)

    _assert_refused(post({**body, "SignatureVersion": version}), sns_app, before)


def test_a_signature_that_is_not_base64(sns_app, reader, cached, post):
    body = sign(_bounce(), cached)
    before = stored_state(sns_app)

    _assert_refused(post({**body, "Signature": "not base64!"}), sns_app, before)


def test_a_v1_signature_declared_as_v2(sns_app, reader, cached, post):
    before = stored_state(sns_app)

    response = post({**sign(_bounce(), cached, "1"), "SignatureVersion": "2"})

    _assert_refused(response, sns_app, before)


def test_an_expired_signing_certificate(sns_app, reader, ca, post):
    now = datetime.now(UTC)
    expired = issue(ca, "sns", valid_from=now - timedelta(days=60), valid_until=now - timedelta(1))
    sns.certificates.put(CERT_URL, expired.certificate)
    before = stored_state(sns_app)

    _assert_refused(post(sign(_bounce(), expired)), sns_app, before)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'"Notification"',
        b"{" * 1,
        b"[" * 100_000,
        b'{"Type": "Notification"}',
        b'{"Type": "Telegram", "MessageId": "x"}',
        b'{"Type": {"Notification": 1}}',
        b'{"Type": ["Notification"]}',
    ],
    ids=[
        "empty",
        "text",
        "array",
        "string",
        "brace",
        "deep",
        "missing",
        "type",
        "type-object",  # was a 500: a dict cannot be looked up in a dict
        "type-array",
    ],
)
def test_what_is_not_an_sns_message_is_400(body, sns_app, reader, post):
    before = stored_state(sns_app)

    _assert_refused(post(body), sns_app, before, 400)


def test_a_field_of_the_wrong_kind_is_400(sns_app, reader, cached, post):
    body = sign(_bounce(), cached)
    before = stored_state(sns_app)

    _assert_refused(post({**body, "Message": {"nested": [1, 2]}}), sns_app, before, 400)
    _assert_refused(post({**body, "Timestamp": "yesterday"}), sns_app, before, 400)
    _assert_refused(post({**body, "MessageId": "x" * 101}), sns_app, before, 400)


def test_a_huge_body_is_413(sns_app, reader, cached, post):
    body = sign(_bounce(), cached)
    before = stored_state(sns_app)

    response = post({**body, "UnsubscribeURL": "x" * (600 * 1024)})

    _assert_refused(response, sns_app, before, 413)


def test_the_body_is_read_as_json_whatever_its_content_type(sns_app, reader, cached):
    response = sns_app.test_client().post(
        "/ses/events", data=json.dumps(sign(_bounce(), cached)), content_type="application/json"
    )

    assert response.status_code == 200


def test_comma_separated_topics_from_the_environment(make_app, monkeypatch):
    monkeypatch.setenv("ALERTSVC_SNS_TOPIC_ARNS", f" {TOPIC}, {OTHER_TOPIC} ,")

    assert make_app().config["SNS_TOPIC_ARNS"] == [TOPIC, OTHER_TOPIC]


@pytest.mark.parametrize(
    "value",
    [
        "garbage",
        f"{TOPIC},x",
        "arn:aws:sns:eu-west-2:123456789012",
        "arn:aws:s3:::alertsvc-ses-events",
        f"https://sns.eu-west-2.amazonaws.com/{TOPIC}",
    ],
)
def test_a_topic_that_is_not_an_sns_topic_arn_refuses_to_start(make_app, monkeypatch, value):
    """A typo would otherwise refuse every bounce and complaint, seen only as 403s in a log."""
    monkeypatch.setenv("ALERTSVC_SNS_TOPIC_ARNS", value)

    with pytest.raises(ConfigurationError) as refused:
        make_app()

    assert str(refused.value).startswith(
        "ALERTSVC_SNS_TOPIC_ARNS must be SNS topic ARNs separated by commas, such as "
        "arn:aws:sns:eu-west-2:123456789012:ses-events; not "
    )
