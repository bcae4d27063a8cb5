"""The JSON API under ``/api/v1``, documented at ``/api/v1/openapi.json`` by flask-smorest."""

from __future__ import annotations

from flask import Flask
from flask_smorest import Api

from alertsvc.api.schemas import ErrorSchema
from alertsvc.api.tokens import SCOPES

OPENAPI_SETTINGS = {
    "API_TITLE": "alertsvc",
    "API_VERSION": "v1",
    "OPENAPI_VERSION": "3.0.3",
    "OPENAPI_URL_PREFIX": "/api/v1",
    "OPENAPI_JSON_PATH": "openapi.json",
}


class _Api(Api):
    """flask-smorest's Api without its app-wide HTTPException handler.

    ``alertsvc.errors`` already answers every HTTP error: JSON under ``/api/``, a page
    elsewhere. flask-smorest's handler would turn the site's error pages into JSON. The
    documented error body is therefore ours, not flask-smorest's.
    """

    ERROR_SCHEMA = ErrorSchema

    def _register_error_handlers(self) -> None:
        return None


def init_api(app: Flask) -> Api:
    """Register the API blueprint and the document that describes it."""
    from alertsvc.api import routes, runs, stats, subscribers  # noqa: F401  (routes register)
    from alertsvc.api.blueprint import bp
    from alertsvc.api.schemas import RunInSchema, SubscriberAddressSchema
    from alertsvc.articles.schemas import ArticleInSchema
    from alertsvc.extensions import csrf

    for key, value in OPENAPI_SETTINGS.items():
        app.config.setdefault(key, value)
    api = _Api(app)
    api.spec.components.security_scheme(
        "bearerAuth",
        {
            "type": "http",
            "scheme": "bearer",
            "description": "`alertsvc api-tokens create NAME --scope SCOPE`; scopes: "
            + ", ".join(f"`{scope}`" for scope in SCOPES),
        },
    )
    api.spec.components.schema("ArticleIn", schema=ArticleInSchema)
    api.spec.components.schema("RunIn", schema=RunInSchema)
    api.spec.components.schema("SubscriberAddress", schema=SubscriberAddressSchema)
    csrf.exempt(bp)
    api.register_blueprint(bp)
    return api
