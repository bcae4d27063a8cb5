"""The ``/api/v1`` blueprint and the one rule every route under it obeys.

Every route declares the scope it needs with ``@requires(scope)``; before any view runs,
``_check_token`` refuses a request without a live token (401), and a token without the
route's scope (403, RFC 6750 §3.1 ``insufficient_scope``). A route that declares no scope
is refused to everyone: forgetting the declaration fails closed, and
``tests/test_authorisation.py`` reads the declarations to check each route.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import marshmallow as ma
from flask import Response, current_app, g, jsonify, request
from flask_limiter.util import get_remote_address
from flask_smorest import Blueprint
from marshmallow import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import RequestEntityTooLarge, UnprocessableEntity

from alertsvc.api import tokens
from alertsvc.api.schemas import ErrorSchema
from alertsvc.audit import Actor, set_actor
from alertsvc.database import database_unavailable, transaction
from alertsvc.extensions import db, limiter

# No field takes a long number; this only bounds the work of reading one.
NUMBER_MAX_CHARACTERS = 100
SCOPE_ATTRIBUTE = "required_scope"

bp = Blueprint(
    "api",
    __name__,
    url_prefix="/api/v1",
    description="Articles in; topics, feeds, runs and statistics out; subscriber export "
    "and erasure. Each route needs a token with its scope.",
)

View = TypeVar("View", bound=Callable[..., Any])


def error_response(
    status: int, error: str, detail: str, errors: dict[Any, Any] | None = None
) -> Response:
    """The API's one error shape: ``{"error", "detail", "errors"?}``."""
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


def forbidden(scope: str | None) -> Response:
    detail = (
        f"This token does not have the scope {scope!r} this request needs."
        if scope
        else "This route is not open to any token."
    )
    response = error_response(403, "Forbidden", detail)
    # RFC 6750 §3.1: the token is fine, its scope is not enough.
    response.headers["WWW-Authenticate"] = (
        f'Bearer realm="alertsvc", error="insufficient_scope", scope="{scope or ""}"'
    )
    return response


def invalid(errors: dict[Any, Any]) -> Response:
    return error_response(
        422, "Unprocessable Entity", "The request is not valid: see errors.", errors
    )


def bad_request(detail: str) -> Response:
    return error_response(400, "Bad Request", detail)


def not_found(detail: str) -> Response:
    return error_response(404, "Not Found", detail)


def requires(scope: str) -> Callable[[View], View]:
    """Declare the scope a route needs; ``_check_token`` enforces it before the view runs.

    Anywhere under ``@bp.route``: flask-smorest's decorators copy the attribute outwards
    to the view Flask registers. It also documents the route's security and refusals.
    """
    if scope not in tokens.SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    def decorate(view: View) -> View:
        setattr(view, SCOPE_ATTRIBUTE, scope)
        documented = bp.doc(security=[{"bearerAuth": []}])(view)
        documented = bp.alt_response(401, schema=ErrorSchema, description="No valid API token.")(
            documented
        )
        documented = bp.alt_response(
            403, schema=ErrorSchema, description=f"The token lacks the `{scope}` scope."
        )(documented)
        return bp.alt_response(
            429,
            schema=ErrorSchema,
            description="Too many requests for this token (`API_RATE_LIMIT`): see `Retry-After`.",
        )(documented)

    return decorate


def current_token() -> tokens.ApiToken | None:
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
    try:
        token = current_token()
    except SQLAlchemyError as error:
        # The database is out of reach (the request goes on to its 503): without a token
        # to look up, the address's allowance applies. Raised here, the limiter would
        # take the database's outage for its own storage's and stop counting in Redis.
        if not database_unavailable(error):
            raise
        with contextlib.suppress(SQLAlchemyError):
            db.session.rollback()
        token = None
    return f"api-token:{token.id}" if token is not None else "api-ip:" + get_remote_address()


def _rate_limit() -> str:
    return str(current_app.config["API_RATE_LIMIT"])


# One allowance per token (or address) across every route of the API.
limiter.shared_limit(_rate_limit, scope="api", key_func=_client_key)(bp)


@bp.before_request
def _body_limit() -> None:
    """Batches need a larger body than the site's forms (``MAX_CONTENT_LENGTH``)."""
    request.max_content_length = current_app.config["API_MAX_CONTENT_LENGTH"]


@bp.before_request
def _check_token() -> Response | None:
    with transaction():
        token = current_token()
        if token is not None:
            tokens.record_use(token)
            name, scopes = token.name, tokens.token_scopes(token)
    if token is None:
        return unauthorised(tokens.bearer_token(request) is not None)
    view = current_app.view_functions.get(request.endpoint or "")
    scope = getattr(view, SCOPE_ATTRIBUTE, None)
    if scope is None or scope not in scopes:
        return forbidden(scope)
    set_actor(Actor(f"token:{name}"))
    return None


def _query_names(view: Callable[..., Any] | None) -> set[str]:
    """The query parameters a view declares, through ``@bp.arguments(..., location="query")``
    (flask-smorest keeps the declarations on the view, for the OpenAPI document)."""
    declared = getattr(view, "_apidoc", {}).get("arguments", {}).get("parameters", [])
    names: set[str] = set()
    for parameter in declared:
        if parameter.get("in") != "query":
            continue
        schema = parameter["schema"]
        schema = schema() if isinstance(schema, type) else schema
        names.update(field.data_key or name for name, field in schema.fields.items())
    return names


@bp.before_request
def _check_query() -> Response | None:
    """Every route refuses a query parameter it does not take, and one given twice (which
    value counts would be a guess): the API's 422, the same for every route. Runs after
    ``_check_token``, so a caller without access learns nothing about parameters."""
    if not request.args:
        return None
    known = _query_names(current_app.view_functions.get(request.endpoint or ""))
    errors: dict[str, list[str]] = {}
    for name in request.args:
        if name not in known:
            errors[name] = ["Unknown field."]
        elif len(request.args.getlist(name)) > 1:
            errors[name] = ["Given more than once: give it once."]
    return invalid(errors) if errors else None


@bp.errorhandler(UnprocessableEntity)
def _invalid_arguments(error: UnprocessableEntity) -> Response:
    """Query strings that fail their schema (webargs, through flask-smorest): the API's 422."""
    messages = getattr(error, "data", {}).get("messages") or {}
    if isinstance(messages, dict) and set(messages) <= {"query", "json"}:
        messages = {key: value for part in messages.values() for key, value in part.items()}
    return invalid(messages if isinstance(messages, dict) else {"_schema": [str(messages)]})


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


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are each given once: with a key twice, which one counts
    depends on the parser (RFC 8259 §4), so neither is guessed."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"the key {key!r} is given more than once")
        result[key] = value
    return result


def json_body(what: str = "the request") -> Any:
    """The request's JSON, or the JSON 4xx answer that says why it cannot be read.

    Parsed here, not by ``request.get_json``, so that every body the API cannot take is a
    4xx: Python's parser raises ``RecursionError`` (not ``ValueError``) on deep nesting,
    turns digits past a limit into an error that names a Python setting, accepts ``NaN``
    and ``Infinity``, which are not JSON, and keeps the last of repeated keys. RFC 8259
    §8.1: JSON is UTF-8.
    """
    if not request.is_json:
        return error_response(
            415,
            "Unsupported Media Type",
            f"Send {what} as JSON, with Content-Type: application/json.",
        )
    body = request.get_data(cache=False)
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(body) >= limit:
        # Sent chunked, with no Content-Length to refuse it by, a body is read up to the
        # limit and cut there (Werkzeug): one that fills the limit is taken as over it.
        raise RequestEntityTooLarge()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return bad_request("The body is not valid UTF-8.")
    try:
        return json.loads(
            text,
            parse_int=_number,
            parse_float=_number,
            parse_constant=_not_json,
            object_pairs_hook=_object,
        )
    except RecursionError:
        return bad_request("The JSON is nested too deeply.")
    except ValueError as error:
        return bad_request(f"The body is not valid JSON: {error}.")


JSON_BODY_ERRORS = {
    400: "The body is not JSON: not UTF-8, not well formed, nested too deeply, with a "
    f"repeated key, or with a number that is not finite or over {NUMBER_MAX_CHARACTERS} "
    "characters long.",
    413: "The body is too large.",
    415: "The body is not `application/json`.",
}


def json_body_errors(view: View) -> View:
    """Document, on a route that reads a JSON body, the answers ``json_body`` (and the
    body size limit) give a body it cannot take: written once, for every such route."""
    for status, description in JSON_BODY_ERRORS.items():
        view = bp.alt_response(status, schema=ErrorSchema, description=description)(view)
    return view


def load_json_object(schema: ma.Schema, what: str) -> dict[str, Any] | Response:
    """A JSON object body loaded through ``schema``, or the 4xx answer."""
    payload = json_body(what)
    if isinstance(payload, Response):
        return payload
    if not isinstance(payload, dict):
        return invalid({"_schema": ["Send a JSON object."]})
    try:
        loaded: dict[str, Any] = schema.load(payload)
    except ValidationError as error:
        messages: Any = error.messages
        return invalid(messages if isinstance(messages, dict) else {"_schema": messages})
    return loaded
