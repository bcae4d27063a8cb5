"""The JSON API (``/api/v1``): parse, check the token, validate, call a service, answer."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, jsonify, request
from flask_limiter.util import get_remote_address
from flask_smorest import Blueprint
from marshmallow import ValidationError

from alertsvc.api import auth
from alertsvc.api.schemas import ArticleInSchema, ErrorSchema, IngestResultSchema
from alertsvc.articles.services import ArticleInput, UnknownTopics, ingest_articles
from alertsvc.database import transaction
from alertsvc.extensions import limiter
from alertsvc.models import ArticleSource

bp = Blueprint(
    "api", __name__, url_prefix="/api/v1", description="Articles in, for the newsroom's systems."
)


def error_response(
    status: int, error: str, detail: str, errors: dict[Any, Any] | None = None
) -> Response:
    body: dict[str, Any] = {"error": error, "detail": detail}
    if errors is not None:
        body["errors"] = errors
    response = jsonify(body)
    response.status_code = status
    return response


def unauthorised(token_given: bool) -> Response:
    response = error_response(
        401,
        "Unauthorized",
        "Send a valid API token: Authorization: Bearer <token>"
        if not token_given
        else "The API token is not valid or has been revoked.",
    )
    # RFC 6750 §3: say which scheme, and that a presented token was refused.
    challenge = 'Bearer realm="alertsvc"' + (', error="invalid_token"' if token_given else "")
    response.headers["WWW-Authenticate"] = challenge
    return response


def invalid(errors: dict[Any, Any]) -> Response:
    return error_response(
        422, "Unprocessable Entity", "The request is not valid: see errors.", errors
    )


def _client_key() -> str:
    """Rate-limit key: the presented token (hashed), so each newsroom system has its own
    allowance; the address when no token is sent."""
    token = auth.bearer_token(request)
    return "api-token:" + auth.hash_token(token) if token else "api-ip:" + get_remote_address()


def _rate_limit() -> str:
    return str(current_app.config["API_RATE_LIMIT"])


@bp.before_request
def _body_limit() -> None:
    """Batches need a larger body than the site's forms (``MAX_CONTENT_LENGTH``)."""
    request.max_content_length = current_app.config["API_MAX_CONTENT_LENGTH"]


def _load(payload: Any) -> tuple[list[ArticleInput], bool] | Response:
    many = isinstance(payload, list)
    limit = current_app.config["API_MAX_BATCH"]
    if many and not 1 <= len(payload) <= limit:
        return invalid({"_schema": [f"Send between 1 and {limit} articles."]})
    try:
        items = ArticleInSchema(many=True).load(payload if many else [payload])
    except ValidationError as error:
        messages: Any = error.messages
        return invalid(messages if many else messages.get(0, messages))
    return items, many


@bp.route("/articles", methods=["POST"])
@bp.doc(
    summary="Add or update articles",
    description=(
        "Send one article, or a list of up to `API_MAX_BATCH` (default 500). Articles are "
        "unique by `guid` (default: the normalised `url`). Sending an article again exactly "
        "as it is changes nothing and alerts nobody; a changed title or summary updates it, "
        "and alerts subscribers again only if `major_update` is true (or the service is "
        "set to alert on every update). Answers 201 if any article was new, else 200."
    ),
    security=[{"bearerAuth": []}],
    requestBody={
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"$ref": "#/components/schemas/ArticleIn"},
                        {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/ArticleIn"},
                            "minItems": 1,
                            "description": "Up to API_MAX_BATCH articles (default 500).",
                        },
                    ]
                }
            }
        },
    },
)
@bp.response(201, IngestResultSchema, description="At least one article was new.")
@bp.alt_response(200, schema=IngestResultSchema, description="Every article was already known.")
@bp.alt_response(400, schema=ErrorSchema, description="The body is not JSON.")
@bp.alt_response(401, schema=ErrorSchema, description="No valid API token.")
@bp.alt_response(413, schema=ErrorSchema, description="The body is too large.")
@bp.alt_response(415, schema=ErrorSchema, description="The body is not `application/json`.")
@bp.alt_response(422, schema=ErrorSchema, description="Invalid articles: see `errors`.")
@bp.alt_response(
    429,
    schema=ErrorSchema,
    description="Too many requests for this token (`API_RATE_LIMIT`): see `Retry-After`.",
)
@limiter.limit(_rate_limit, key_func=_client_key)
def post_articles() -> Any:
    token = auth.bearer_token(request)
    with transaction():
        known = auth.authenticate(token) is not None
    if not known:
        return unauthorised(token is not None)
    loaded = _load(request.get_json())
    if isinstance(loaded, Response):
        return loaded
    items, many = loaded
    try:
        with transaction():
            result = ingest_articles(items, ArticleSource.API)
    except UnknownTopics as error:
        errors = {}
        for index, item in enumerate(items):
            unknown = [slug for slug in item.topics if slug in error.slugs]
            if unknown:
                errors[index] = {"topics": [f"No topic with slug {slug!r}." for slug in unknown]}
        return invalid(errors if many else errors[0])
    body = {
        "created": result.created,
        "updated": result.updated,
        "unchanged": result.unchanged,
        "skipped": result.skipped,
        "articles": [
            {
                "id": outcome.article_id,
                "guid": outcome.guid,
                "status": outcome.status.value,
                "reason": outcome.reason,
            }
            for outcome in result.outcomes
        ],
    }
    return body, 201 if result.created else 200
