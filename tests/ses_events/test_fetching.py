"""The signing certificate fetched over https, and SubscriptionConfirmation confirmed, against
a local https server (pytest-httpserver with the tests' own CA). ``sns.route_sns_to`` sends
requests for SNS's hosts there, as a hosts-file entry would; the URLs are checked as sent."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import select
from werkzeug import Request, Response

from alertsvc.models import SnsMessage
from alertsvc.ses_events import sns
from tests.factories import rows, stored_state
from tests.ses_events.helpers import (
    CERT_URL,
    OTHER_TOPIC,
    client_context,
    confirmation,
    issue,
    notification,
    server_context,
    ses_delivery,
    sign,
    subscribe_url,
)

CERT_PATH = "/SimpleNotificationService-0123456789abcdef.pem"


@pytest.fixture(scope="module")
def https_server(ca, tmp_path_factory) -> Iterator[HTTPServer]:
    certificate = issue(ca, "127.0.0.1", ip="127.0.0.1")
    context = server_context(certificate, tmp_path_factory.mktemp("tls"))
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=context, threaded=True)
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


@pytest.fixture
def sns_server(https_server, ca) -> Iterator[HTTPServer]:
    """The local https server standing in for sns.<region>.amazonaws.com."""
    https_server.clear()
    with sns.route_sns_to(f"https://127.0.0.1:{https_server.port}", client_context(ca)):
        yield https_server
    https_server.clear()


def _hits(server: HTTPServer, path: str) -> int:
    return sum(1 for request, _ in server.log if request.path == path)


def test_the_certificate_is_fetched_over_https_once_and_cached(sns_app, signer, sns_server, post):
    sns_server.expect_request(CERT_PATH).respond_with_data(signer.pem)

    first = post(sign(notification(ses_delivery("a@example.com"), message_id="m1"), signer))
    second = post(sign(notification(ses_delivery("b@example.com"), message_id="m2"), signer))

    assert (first.status_code, second.status_code) == (200, 200)
    assert _hits(sns_server, CERT_PATH) == 1
    assert rows(sns_app, select(SnsMessage.message_id).order_by(SnsMessage.message_id)) == [
        "m1",
        "m2",
    ]


def test_a_redirect_is_not_followed(sns_app, signer, sns_server, post):
    sns_server.expect_request(CERT_PATH).respond_with_data(
        "", status=302, headers={"Location": "/elsewhere.pem"}
    )
    sns_server.expect_request("/elsewhere.pem").respond_with_data(signer.pem)
    before = stored_state(sns_app)

    response = post(sign(notification(ses_delivery("a@example.com")), signer))

    assert response.status_code == 403
    assert stored_state(sns_app) == before
    assert _hits(sns_server, "/elsewhere.pem") == 0


def test_a_certificate_larger_than_the_cap_is_refused(app_with, signer, sns_server, post):
    small = app_with(SNS_TOPIC_ARNS=[notification("")["TopicArn"]], SNS_CERT_MAX_BYTES=1000)
    sns_server.expect_request(CERT_PATH).respond_with_data(signer.pem + b"\n" * 1_000_000)
    before = stored_state(small)

    response = post(sign(notification(ses_delivery("a@example.com")), signer), app=small)

    assert response.status_code == 403
    assert stored_state(small) == before


def test_a_server_too_slow_to_answer_is_refused(app_with, signer, sns_server, post):
    impatient = app_with(
        SNS_TOPIC_ARNS=[notification("")["TopicArn"]], SNS_CERT_TIMEOUT_SECONDS=0.2
    )

    answered = threading.Event()

    def slow(request: Request) -> Response:
        time.sleep(1)
        answered.set()
        return Response(signer.pem)

    sns_server.expect_request(CERT_PATH).respond_with_handler(slow)
    before = stored_state(impatient)

    response = post(sign(notification(ses_delivery("a@example.com")), signer), app=impatient)

    assert response.status_code == 403
    assert stored_state(impatient) == before
    # Let the server finish, so its late answer is not logged during another test.
    assert answered.wait(10)
    for _ in range(100):
        if _hits(sns_server, CERT_PATH):
            break
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("status", "body"), [(200, b"not a certificate"), (404, b"no such file"), (500, b"")]
)
def test_what_is_not_a_certificate_is_refused(status, body, sns_app, signer, sns_server, post):
    sns_server.expect_request(CERT_PATH).respond_with_data(body, status=status)
    before = stored_state(sns_app)

    response = post(sign(notification(ses_delivery("a@example.com")), signer))

    assert response.status_code == 403
    assert stored_state(sns_app) == before
    assert sns.certificates.get(CERT_URL) is None


def test_a_subscription_to_our_topic_is_confirmed(sns_app, cached, sns_server, post):
    sns_server.expect_request("/").respond_with_data("<ConfirmSubscriptionResponse/>")

    response = post(sign(confirmation(subscribe_url()), cached, "2"))

    assert response.status_code == 200
    [(request, _)] = sns_server.log
    assert request.args["Action"] == "ConfirmSubscription"
    assert request.args["Token"] == "2336412f37fb687f5d51e6e2425ba1f30c1a2b3c4d5e6f"
    assert rows(sns_app, select(SnsMessage.message_type)) == ["SubscriptionConfirmation"]


def test_a_subscription_to_another_topic_is_refused_and_not_visited(
    sns_app, cached, sns_server, post
):
    before = stored_state(sns_app)

    response = post(sign(confirmation(subscribe_url(OTHER_TOPIC), topic=OTHER_TOPIC), cached))

    assert response.status_code == 403
    assert sns_server.log == []
    assert stored_state(sns_app) == before


@pytest.mark.parametrize(
    "url",
    [
        "http://sns.eu-west-2.amazonaws.com/?Action=ConfirmSubscription",
        "https://sns.eu-west-2.amazonaws.com.evil.example/?Action=ConfirmSubscription",
        "https://evil.example/?Action=ConfirmSubscription&sns.eu-west-2.amazonaws.com",
        "https://user@sns.eu-west-2.amazonaws.com/?Action=ConfirmSubscription",
        "https://sns.eu-west-2.amazonaws.com:8443/?Action=ConfirmSubscription",
        "https://127.0.0.1/?Action=ConfirmSubscription",
    ],
)
def test_a_subscribe_url_that_is_not_sns_is_not_visited(url, sns_app, cached, sns_server, post):
    before = stored_state(sns_app)

    response = post(sign(confirmation(url), cached))

    assert response.status_code == 403
    assert sns_server.log == []
    assert stored_state(sns_app) == before


def test_a_confirmation_sns_does_not_take_is_not_recorded_so_it_can_come_again(
    sns_app, cached, sns_server, post
):
    sns_server.expect_oneshot_request("/").respond_with_data("busy", status=503)
    sns_server.expect_oneshot_request("/").respond_with_data("<ConfirmSubscriptionResponse/>")
    body = sign(confirmation(subscribe_url()), cached)

    assert post(body).status_code == 502
    assert rows(sns_app, select(SnsMessage.message_id)) == []
    assert post(body).status_code == 200
    assert len(sns_server.log) == 2


def test_an_unsubscribe_confirmation_is_recorded_and_logged(
    sns_app, cached, sns_server, post, caplog
):
    body = confirmation(subscribe_url(), message_type="UnsubscribeConfirmation")

    response = post(sign(body, cached))

    assert response.status_code == 200
    assert sns_server.log == []
    assert rows(sns_app, select(SnsMessage.message_type)) == ["UnsubscribeConfirmation"]
    assert "this endpoint was unsubscribed from" in caplog.text


def test_the_testing_route_is_ignored_outside_testing(app_with, ca):
    """Production (or development) can never be pointed at a local address."""
    url = "https://sns.eu-west-2.amazonaws.com/SimpleNotificationService-0123456789abcdef.pem"
    development = app_with(ENV="development", TESTING=False)
    with sns.route_sns_to("https://127.0.0.1:9", client_context(ca)):
        with development.app_context():
            assert sns.destination(url) == (url, True)
        with app_with().app_context():
            assert sns.destination(url)[0] == (
                "https://127.0.0.1:9/SimpleNotificationService-0123456789abcdef.pem"
            )
