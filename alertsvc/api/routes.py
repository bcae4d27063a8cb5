"""The JSON API (``/api/v1``): parse, check the token, validate, call a service, answer."""

from __future__ import annotations

import json
import math
from typing import Any, NoReturn

from flask import Response, current_app, g, jsonify, request
from flask_limiter.util import get_remote_address
from flask_smorest import Blueprint
from marshmallow import ValidationError

from alertsvc.api import tokens
from alertsvc.api.schemas import ErrorSchema, IngestResultSchema
from alertsvc.articles.schemas import ArticleInSchema
from alertsvc.articles.services import ArticleInput, UnknownTopics, ingest_articles
from alertsvc.database import transaction
from alertsvc.extensions import limiter
from alertsvc.models import ArticleSource

# No field takes a number; this only bounds the work of reading one.
NUMBER_MAX_CHARACTERS = 100

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


def _api_token() -> tokens.ApiToken | None:
    """The live token sent with this request, looked up once: the rate limit's key needs it
    before the view runs."""
    if "api_token" not in g:
        g.api_token = tokens.live_token(tokens.bearer_token(request))
    token: tokens.ApiToken | None = g.api_token
    return token


def _client_key() -> str:
    """Rate-limit key: a valid token's own allowance, so each newsroom system has one.

    A missing or invalid token counts against the client's address: were each presented
    token its own key, sending a different made-up token every time would never be limited.
    """
    token = _api_token()
    return f"api-token:{token.id}" if token is not None else "api-ip:" + get_remote_address()


def _rate_limit() -> str:
    return str(current_app.config["API_RATE_LIMIT"])


@bp.before_request
def _body_limit() -> None:
    """Batches need a larger body than the site's forms (``MAX_CONTENT_LENGTH``)."""
    request.max_content_length = current_app.config["API_MAX_CONTENT_LENGTH"]


def bad_request(detail: str) -> Response:
    return error_response(400, "Bad Request", detail)


def _number(text: str) -> int | float:
    """A JSON number, refused if it is too long to be a sensible value or not finite."""
    if len(text) > NUMBER_MAX_CHARACTERS:
        raise ValueError(f"a number has more than {NUMBER_MAX_CHARACTERS} characters")
    number = float(text) if any(mark in text for mark in ".eE") else int(text)
    if not math.isfinite(number):
        raise ValueError(f"the number {text} is too large")
    return number


def _not_json(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON value")


def _json_body() -> Any:
    """The request's JSON, or the JSON 4xx answer that says why it cannot be read.

    Parsed here, not by ``request.get_json``, so that every body the API cannot take is a
    4xx: Python's parser raises ``RecursionError`` (not ``ValueError``) on deep nesting,
    turns digits past a limit into an error that names a Python setting, and accepts
    ``NaN`` and ``Infinity``, which are not JSON. RFC 8259 §8.1: JSON is UTF-8.
    """
    if not request.is_json:
        return error_response(
            415,
            "Unsupported Media Type",
            "Send the articles as JSON, with Content-Type: application/json.",
        )
    body = request.get_data(cache=False)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return bad_request("The body is not valid UTF-8.")
    try:
        return json.loads(text, parse_int=_number, parse_float=_number, parse_constant=_not_json)
    except RecursionError:
        return bad_request("The JSON is nested too deeply.")
    except ValueError as error:
        return bad_request(f"The body is not valid JSON: {error}.")


def _load(payload: Any) -> tuple[list[ArticleInput], bool] | Response:
    many = isinstance(payload, list)
    if not many and not isinstance(payload, dict):
        return invalid({"_schema": ["Send an article (a JSON object) or a list of articles."]})
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
@bp.alt_response(
    400,
    schema=ErrorSchema,
    description="The body is not JSON: not UTF-8, not well formed, nested too deeply, or "
    f"with a number that is not finite or over {NUMBER_MAX_CHARACTERS} characters long.",
)
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
    with transaction():
        token = _api_token()
        if token is not None:
            tokens.record_use(token)
    if token is None:
        return unauthorised(tokens.bearer_token(request) is not None)
    payload = _json_body()
    if isinstance(payload, Response):
        return payload
    loaded = _load(payload)
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
