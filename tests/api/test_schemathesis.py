"""Schemathesis drives the API from the OpenAPI document it serves: valid and invalid
requests alike get no 5xx, and every answer is as documented (status, content type, body),
for every operation, with a token holding every scope and data for the reads to return.

Schemathesis's pytest plugin does not run under pytest 9 (``from_fixture`` reads
``Function._nodeid``), so its Hypothesis strategy is used directly.
"""

from __future__ import annotations

from collections import defaultdict

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import negative_data_rejection

from alertsvc.models import Article
from tests.api.helpers import full_token, seed_service
from tests.factories import count

CONFIG = schemathesis.Config.from_dict(
    {
        "checks": {
            # The document cannot say which topic slugs, ids or addresses exist, so a
            # valid-looking request naming a random one is rightly a 404 or 422.
            "positive_data_acceptance": {"enabled": False},
            # A body over API_MAX_CONTENT_LENGTH (say, a summary far past its maxLength) is
            # refused before it is read: 413 is a rejection too.
            "negative_data_rejection": {
                "expected-statuses": [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]
            },
        }
    }
)
EXAMPLES_PER_OPERATION = 25


@pytest.mark.parametrize(
    "mode", [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
)
def test_api_conforms_to_its_document(make_app, mode):
    app = make_app(API_RATE_LIMIT="100000 per minute")
    seed_service(app)
    token = full_token(app)
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, config=CONFIG)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12, [operation.label for operation in operations]
    statuses: dict[str, list[int]] = defaultdict(list)
    # Schemathesis can call a case negative for a mutation that never reaches the wire (an
    # extra query property it does not serialise, an Authorization header it dropped and
    # this test puts back) and then fails the check when the server rightly answers 200:
    # about one run in five on PostgreSQL. Refusals are asserted below and in
    # the other tests in tests/api (unknown and repeated parameters, bad bodies) instead.
    excluded = [negative_data_rejection] if mode == schemathesis.GenerationMode.NEGATIVE else None

    def check(operation: schemathesis.APIOperation) -> None:
        label = operation.label

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def run(case):
            response = case.call_and_validate(
                headers={"Authorization": f"Bearer {token}"}, excluded_checks=excluded
            )
            statuses[label].append(response.status_code)

        run()

    for operation in operations:
        check(operation)
    server_errors = {label: s for label, s in statuses.items() if any(x >= 500 for x in s)}
    assert not server_errors
    assert set(statuses) == {operation.label for operation in operations}
    if mode == schemathesis.GenerationMode.POSITIVE:
        assert 201 in statuses["POST /api/v1/articles"], "some generated articles were stored"
        assert count(app, Article) > 2
        for label in ("GET /api/v1/topics", "GET /api/v1/feeds", "GET /api/v1/stats"):
            assert set(statuses[label]) == {200}, label
        assert 200 in statuses["GET /api/v1/articles"] and 200 in statuses["GET /api/v1/runs"]
    else:
        assert 422 in statuses["POST /api/v1/articles"], "invalid articles were refused"
        assert 422 in statuses["POST /api/v1/runs"]
