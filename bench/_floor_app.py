"""The floor for bench/signup.py: a bare Flask endpoint doing one INSERT, nothing else.

Served by gunicorn beside the real app in the same run, on the same database, so the
signup figures can be read as a fraction of what this machine does for one write per
request. No CSRF, templates, rate limits or ORM: a form field in, a row out.

    BENCH_FLOOR_DATABASE_URL=postgresql+psycopg://... \
        gunicorn -w 2 --chdir bench '_floor_app:create_app()'

The table is created beforehand with ``CREATE_TABLE`` (by bench/signup.py).
"""

from __future__ import annotations

import os

from flask import Flask, request
from sqlalchemy import create_engine, text

CREATE_TABLE = text(
    "CREATE TABLE IF NOT EXISTS bench_floor ("
    " id bigserial PRIMARY KEY,"
    " email varchar(320) NOT NULL UNIQUE,"
    " created_at timestamptz NOT NULL DEFAULT now())"
)
INSERT = text("INSERT INTO bench_floor (email) VALUES (:email)")


def create_app() -> Flask:
    engine = create_engine(os.environ["BENCH_FLOOR_DATABASE_URL"], pool_size=2)
    app = Flask(__name__)

    @app.get("/")
    def ready() -> str:
        return "ok"

    @app.post("/")
    def insert() -> str:
        with engine.begin() as connection:
            connection.execute(INSERT, {"email": request.form["email"]})
        return "ok"

    return app
