from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask

from alertsvc.ses_events import sns
from tests.ses_events.helpers import CERT_URL, TOPIC, Signer, issue, make_ca


@pytest.fixture(scope="session")
def ca() -> Signer:
    return make_ca()


@pytest.fixture(scope="session")
def signer(ca: Signer) -> Signer:
    """SNS's signing certificate, as far as these tests are concerned."""
    return issue(ca, "sns.amazonaws.com")


@pytest.fixture(scope="session")
def sns_app(make_app: Callable[..., Flask]) -> Flask:
    """The app with our topic allowed (the base test app allows none)."""
    return make_app(SNS_TOPIC_ARNS=[TOPIC])


@pytest.fixture(autouse=True)
def _certificates() -> Iterator[None]:
    sns.certificates.clear()
    yield
    sns.certificates.clear()


@pytest.fixture
def cached(signer: Signer) -> Signer:
    """The signing certificate is in the verifier's cache under ``CERT_URL``."""
    sns.certificates.put(CERT_URL, signer.certificate)
    return signer


@pytest.fixture
def post(sns_app: Flask) -> Callable[..., Any]:
    """POST a body to /ses/events as SNS does (text/plain JSON); returns the response."""
    client = sns_app.test_client()

    def send(body: dict[str, Any] | bytes | str, *, app: Flask | None = None, **kwargs: Any):
        data = json.dumps(body) if isinstance(body, dict) else body
        message_type = body.get("Type", "") if isinstance(body, dict) else ""
        return (app.test_client() if app else client).post(
            "/ses/events",
            data=data,
            headers={
                "Content-Type": "text/plain; charset=UTF-8",
                "x-amz-sns-message-type": message_type,
            },
            **kwargs,
        )

    return send
