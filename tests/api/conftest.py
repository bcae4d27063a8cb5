from __future__ import annotations

import pytest
from flask import Flask

from tests.factories import create_token


@pytest.fixture
def token(app: Flask) -> str:
    return create_token(app)


@pytest.fixture
def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
