"""Signed links. Every link that acts for a subscriber carries an itsdangerous token.

Each purpose has its own salt, so a token made for one purpose never passes for another.
Tokens are signed with ``SECRET_KEY`` and checked against it and every key in
``SECRET_KEY_FALLBACKS``, so keys can be rotated without breaking links already emailed.
"""

from __future__ import annotations

import enum
from typing import Any

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from alertsvc.ids import ID_MAX


class TokenPurpose(enum.StrEnum):
    CONFIRM = "alertsvc.confirm"
    MANAGE = "alertsvc.manage"
    UNSUBSCRIBE = "alertsvc.unsubscribe"


class InvalidToken(Exception):
    """Tampered, unknown or made for another purpose."""


class ExpiredToken(InvalidToken):
    """Genuine but older than its purpose allows."""


_MAX_AGE_SETTING = {
    TokenPurpose.CONFIRM: "CONFIRM_TOKEN_MAX_AGE",
    TokenPurpose.MANAGE: "MANAGE_TOKEN_MAX_AGE",
    TokenPurpose.UNSUBSCRIBE: None,  # one-click links in old emails must keep working
}


def _serializer(purpose: TokenPurpose) -> URLSafeTimedSerializer:
    config = current_app.config
    # itsdangerous signs with the last key and accepts any of them.
    keys = [*config["SECRET_KEY_FALLBACKS"], config["SECRET_KEY"]]
    return URLSafeTimedSerializer(keys, salt=purpose.value)


def make_token(purpose: TokenPurpose, payload: Any) -> str:
    return _serializer(purpose).dumps(payload)


def read_token(purpose: TokenPurpose, token: str) -> Any:
    """Return the payload, or raise ``ExpiredToken`` / ``InvalidToken``."""
    setting = _MAX_AGE_SETTING[purpose]
    max_age = current_app.config[setting] if setting else None
    try:
        payload = _serializer(purpose).loads(token, max_age=max_age)
    except SignatureExpired as error:
        raise ExpiredToken(str(error)) from error
    except BadSignature as error:
        raise InvalidToken(str(error)) from error
    if not _ids_possible(payload):
        raise InvalidToken("the link names a row that cannot exist")
    return payload


def _ids_possible(payload: Any) -> bool:
    """Every number a payload holds is a row id (a request, a subscriber, a topic): one past
    the database's integer names no row, and would fail in the database instead (500)."""
    if isinstance(payload, bool):
        return True
    if isinstance(payload, int):
        return 0 <= payload <= ID_MAX
    if isinstance(payload, list):
        return all(_ids_possible(value) for value in payload)
    if isinstance(payload, dict):
        return all(_ids_possible(value) for value in payload.values())
    return True


def external_url(path: str) -> str:
    """An absolute URL on ``BASE_URL`` for links that leave the site (emails)."""
    return f"{current_app.config['BASE_URL']}{path}"


_PATH_PREFIX = {
    TokenPurpose.CONFIRM: "/confirm/",
    TokenPurpose.MANAGE: "/manage/",
    TokenPurpose.UNSUBSCRIBE: "/unsubscribe/",
}


def signed_url(purpose: TokenPurpose, payload: Any) -> str:
    """The absolute link a subscriber follows for ``purpose``, carrying a fresh token."""
    return external_url(_PATH_PREFIX[purpose] + make_token(purpose, payload))


def unsubscribe_payload(subscriber_id: int, topic_ids: list[int] | None) -> dict[str, Any]:
    """What a one-click unsubscribe link ends: these topics, or all of them when ``None``.

    Topics rather than subscription ids, so that a link in an old email still works after
    the subscriber changed frequency (which starts new subscription rows).
    """
    return {"s": subscriber_id, "t": sorted(topic_ids) if topic_ids is not None else None}
