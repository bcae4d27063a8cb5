"""Schemathesis drives the API from the OpenAPI document it serves: valid and invalid
requests alike get no 5xx, and every answer is as documented (status, content type, body),
and the documented bearer auth is enforced.

Schemathesis's pytest plugin does not run under pytest 9 (``from_fixture`` reads
``Function._nodeid``), so its Hypothesis strategy is used directly.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from alertsvc.models import Article
from tests.factories import count, create_token, seed_topics

CONFIG = schemathesis.Config.from_dict(
    {
        "checks": {
            # The document cannot say which topic slugs exist, so a valid-looking article
            # naming a random topic is rightly a 422.
            "positive_data_acceptance": {"enabled": False},
            # A body over API_MAX_CONTENT_LENGTH (say, a summary far past its maxLength) is
            # refused before it is read: 413 is a rejection too.
            "negative_data_rejection": {
                "expected-statuses": [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]
            },
        }
    }
)


@pytest.mark.parametrize(
    "mode", [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
)
def test_api_conforms_to_its_document(app, mode):
    seed_topics(app)
    token = create_token(app, "schemathesis")
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, config=CONFIG)
    statuses: list[int] = []

    @given(case=schema.as_strategy(generation_mode=mode))
    @settings(
        max_examples=75,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        database=None,
    )
    def run(case):
        response = case.call_and_validate(headers={"Authorization": f"Bearer {token}"})
        statuses.append(response.status_code)

    run()
    assert statuses and all(status < 500 for status in statuses)
    if mode == schemathesis.GenerationMode.POSITIVE:
        assert 201 in statuses, "some generated articles were stored"
        assert count(app, Article) > 0
    else:
        assert 422 in statuses, "invalid articles were refused with field errors"
