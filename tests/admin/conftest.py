"""Fixtures for the admin pages: clients signed in as an admin or as a viewer."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.admin.helpers import sign_in
from tests.factories import create_operator

ADMIN_EMAIL = "ops@publisher.example"
VIEWER_EMAIL = "viewer@publisher.example"


@pytest.fixture
def admin_client(app: Flask) -> FlaskClient:
    create_operator(app, ADMIN_EMAIL, "admin")
    client = app.test_client()
    assert sign_in(client, ADMIN_EMAIL).status_code == 302
    return client


@pytest.fixture
def viewer_client(app: Flask) -> FlaskClient:
    create_operator(app, VIEWER_EMAIL, "viewer")
    client = app.test_client()
    assert sign_in(client, VIEWER_EMAIL).status_code == 302
    return client
