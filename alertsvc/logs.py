"""Logs: one line per event, JSON in production and readable text in development, each
with the request or job it belongs to and never an email address in clear.

Both ``structlog`` loggers and the standard library's ``logging.getLogger(__name__)`` (most
of the code) go through one handler on the root logger, whose ``ProcessorFormatter`` runs
the same processors for both: the context (``request_id``, or ``job`` and its ids, bound
with ``structlog.contextvars``), level, time, the traceback as text, then the redaction,
last of all, so nothing added before it escapes it.

Addresses are replaced by ``email:`` and a keyed hash (HMAC-SHA256 under the secret key,
10 hex digits): the same address gives the same mark in every process, so a person can
follow one reader through the log, but nobody can read the address back or test guesses
against it without the key.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import structlog
from flask import Flask, Response, g, request
from structlog.types import EventDict, Processor

from alertsvc.config import ConfigurationError

LOG_FORMATS = ("json", "text")
REQUEST_ID_HEADER = "X-Request-ID"
# A request id from a proxy is kept when it is short and plain; anything else could forge
# log lines or carry data, and is replaced.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Anything with an @ in it, plain or percent-encoded (in a logged URL): a partial address (a
# search for ``due1@example``) is redacted too, and the rest of a request line is kept
# around it. The domain ends at the nearest separator of a URL, a header or a sentence; the
# local part may hold ' / & = ? (o'brien@, a/b@), so it runs back to a space, bracket,
# quote, comma or semicolon, and ``_kept_prefix`` gives back only what is surely not part
# of the address. At most ``_LOCAL_MOST`` characters back (a local part has at most 64;
# further back, more is redacted, never less). The text is walked from each @ rather than
# matched by one pattern: a pattern free to start anywhere cost time in the square of a
# value's length (76 ms for 4,000 letters, 700 ms for 12,000), which anyone able to get a
# value logged could use.
_AT = re.compile("@|%40")
_LOCAL_STOP = frozenset(' \t\n\r\f\v"<>()[]{},;')
_DOMAIN_REST = re.compile(r"""[^/?&=;,\s"'<>()\[\]{}]*""")
_LOCAL_MOST = 256
# In a URL (a path or a query before the @), the address starts after the last of these.
_URL_SEPARATORS = "/?&="
# Outside a URL: opening quotes, then a ``key=`` as in ``to=someone@example.org`` (so the
# rare local part that starts like one, ``a=b@``, keeps ``a=`` in clear).
_QUOTES_AND_KEY = re.compile(r"'*(?:[A-Za-z_][A-Za-z0-9_.-]*=)?")
# Left after the mark: the full stop or colon ending a sentence is not part of the address.
_TRAILING = ".:!"
_HANDLER_NAME = "alertsvc"
# What every line carries, from structlog or from the standard library's logging.
_SHARED_PROCESSORS: list[Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def _kept_prefix(found: str) -> str:
    """What comes before the address in ``found`` (a run of text holding an @) and is kept:
    the path and query of a URL up to the address, or opening quotes and a ``key=``. An
    apostrophe or slash inside the local part stays in the address: ``o'brien@`` is
    redacted whole, not left as ``o'`` and a mark."""
    local = re.split("@|%40", found, maxsplit=1)[0]
    if "?" in local or local.startswith("/") or "://" in local:
        return local[: max(local.rfind(separator) for separator in _URL_SEPARATORS) + 1]
    return _QUOTES_AND_KEY.match(local).group(0)  # type: ignore[union-attr]


class EmailRedactor:
    """A structlog processor replacing every address in every value of the event."""

    def __init__(self, key: str | bytes) -> None:
        self.key = key.encode() if isinstance(key, str) else key

    def mark(self, address: str) -> str:
        normal = address.replace("%40", "@").lower()
        digest = hmac.new(self.key, normal.encode(), hashlib.sha256).hexdigest()
        return f"email:{digest[:10]}"

    def _replace(self, found: str) -> str:
        prefix = _kept_prefix(found)
        address = found[len(prefix) :].rstrip(_TRAILING)
        if address in ("@", "%40"):
            return found
        return prefix + self.mark(address) + found[len(prefix) + len(address) :]

    def _redact_text(self, text: str) -> str:
        """``text`` with each run holding an @ (``_AT``) replaced, in one pass."""
        pieces = []
        done = 0  # everything before this is in ``pieces``
        for at in _AT.finditer(text):
            if at.start() < done:
                continue  # inside the domain of the run just replaced
            start = at.start()
            floor = max(done, start - _LOCAL_MOST)
            while start > floor and text[start - 1] not in _LOCAL_STOP:
                start -= 1
            end = _DOMAIN_REST.match(text, at.end()).end()  # type: ignore[union-attr]
            pieces += [text[done:start], self._replace(text[start:end])]
            done = end
        return "".join([*pieces, text[done:]])

    def redact(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._redact_text(value)
        if isinstance(value, Mapping):
            return {self.redact(k): self.redact(v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self.redact(item) for item in value]
        if value is None or isinstance(value, bool | int | float):
            return value
        return self.redact(str(value))

    def __call__(self, logger: Any, method: str, event_dict: EventDict) -> EventDict:
        return {key: self.redact(value) for key, value in event_dict.items()}


def log_format(config: Mapping[str, Any]) -> str:
    chosen = config.get("LOG_FORMAT") or ("json" if config["ENV"] == "production" else "text")
    if chosen not in LOG_FORMATS:
        raise ConfigurationError(
            f"ALERTSVC_LOG_FORMAT must be json or text, not {chosen!r}; "
            f"leave it unset for json in production and text elsewhere"
        )
    return str(chosen)


def log_formatter(config: Mapping[str, Any]) -> logging.Formatter:
    """The one format of every line: JSON or text (``log_format``), addresses redacted."""
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if log_format(config) == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_SHARED_PROCESSORS, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            EmailRedactor(str(config["SECRET_KEY"])),
            renderer,
        ],
    )


def configure_logging(config: Mapping[str, Any]) -> None:
    """Send every log line, structlog's and the standard library's, through one handler.

    Called by each app the process makes; the handler is replaced, never added twice.
    """
    formatter = log_formatter(config)
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_SHARED_PROCESSORS,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def request_id_from(value: str | None) -> str:
    """The caller's ``X-Request-ID`` when it is sane, else a new one."""
    if value and _SANE_REQUEST_ID.fullmatch(value):
        return value
    return uuid.uuid4().hex


def register_request_ids(app: Flask) -> None:
    """Each request's log lines carry its id, echoed in the response for the caller."""

    @app.before_request
    def _bind_request_id() -> None:
        structlog.contextvars.clear_contextvars()
        g.request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
        structlog.contextvars.bind_contextvars(request_id=g.request_id)

    @app.after_request
    def _echo_request_id(response: Response) -> Response:
        if "request_id" in g:
            response.headers[REQUEST_ID_HEADER] = g.request_id
        return response

    @app.teardown_request
    def _unbind(_: BaseException | None) -> None:
        structlog.contextvars.clear_contextvars()


@contextmanager
def job_context(job: str, **ids: Any) -> Iterator[None]:
    """Bind ``job`` (and ids such as ``run_id``) to every line logged inside, with an id
    for this one execution of it."""
    with structlog.contextvars.bound_contextvars(job=job, job_id=uuid.uuid4().hex[:12], **ids):
        yield
