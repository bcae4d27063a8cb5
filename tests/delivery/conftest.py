from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask

from alertsvc.extensions import db


@pytest.fixture
def app_with(make_app: Callable[..., Flask]) -> Iterator[Callable[..., Flask]]:
    """``make_app`` whose engines are closed after the test, so no connection is left open."""
    made: list[Flask] = []

    def make(**overrides: Any) -> Flask:
        made.append(make_app(**overrides))
        return made[-1]

    yield make
    for flask_app in made:
        with flask_app.app_context():
            db.engine.dispose()
