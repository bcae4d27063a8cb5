"""Untrusted article text made safe once, before it is stored, and article addresses.

Titles are plain text (HTML from a feed is reduced to its text; Jinja escapes titles
wherever they are shown); summaries are HTML cleaned to the shared allow-list in
:mod:`alertsvc.html`, so templates may mark them safe. This module also owns what makes a
link an article's address (http(s) only, no user name or password), the normalised URL
used as a GUID, and the dates an article may carry.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from alertsvc.html import CONTROL_CHARACTERS, clean_html, collapse, html_to_text

TITLE_MAX = 500
AUTHOR_MAX = 300
URL_MAX = 2048
GUID_MAX = 2048
# A summary is a teaser, not the article: past this much HTML it is cut to plain text.
SUMMARY_HTML_MAX = 5000
SUMMARY_TEXT_MAX = 1000
# Publication and update times outside EARLIEST-LATEST are a sender's or feed's mistake
# (a zero date read as 1900, a year typed wrong): refused from the API and CLI, unknown
# when a feed gives them (``parsing.parse_feed``).
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
DATE_RANGE_ERROR = "Must be between 1970 and 2100."

_TRACKING_PARAMETER = re.compile(r"^(utm_[a-z]+|fbclid|gclid|mc_cid|mc_eid)$", re.IGNORECASE)


def cut(value: str, limit: int) -> str:
    """``value`` cut to at most ``limit`` characters at a word boundary, with an ellipsis."""
    if len(value) <= limit:
        return value
    shortened = value[: limit - 1]
    if " " in shortened[limit // 2 :]:
        shortened = shortened.rsplit(" ", 1)[0]
    return shortened.rstrip(" ,;:.-") + "…"


def clean_title(value: str, *, is_html: bool = False) -> str:
    """A title as plain text. Feeds may send HTML titles (``is_html``): keep only their text."""
    text = html_to_text(value) if is_html else collapse(value)
    return cut(text, TITLE_MAX)


def clean_summary(value: str, base_url: str | None = None) -> str:
    """A summary as HTML limited to the shared allow-list, safe to put in a page or an email.

    Links keep only http(s) and mailto targets, relative ones made absolute against
    ``base_url`` (the article's address; dropped without one, as an email has no base), and
    get ``rel="noopener noreferrer nofollow"``. Plain text comes out as the equivalent HTML
    (``<`` becomes ``&lt;``). A summary longer than ``SUMMARY_HTML_MAX`` (a feed that puts the
    whole article in its description) becomes its first ``SUMMARY_TEXT_MAX`` characters of
    plain text.
    """

    def absolute_links(element: str, attribute: str, link: str) -> str | None:
        if attribute != "href":
            return link
        if urlsplit(link).scheme:
            return link  # nh3 has already dropped schemes outside the allow-list
        if base_url is None:
            return None
        resolved = urljoin(base_url, link)
        return resolved if urlsplit(resolved).scheme in ("http", "https") else None

    cleaned = clean_html(CONTROL_CHARACTERS.sub("", value), absolute_links).strip()
    if len(cleaned) > SUMMARY_HTML_MAX:
        return html.escape(cut(html_to_text(cleaned), SUMMARY_TEXT_MAX), quote=False)
    return cleaned


def summary_text(summary: str) -> str:
    """A stored (HTML) summary as plain text, for text emails and keyword matching."""
    return html_to_text(summary)


def is_web_url(value: str) -> bool:
    """An http(s) address with a host, and a port only if it is a number in 0-65535:
    ``normalise_url`` reads the port, which raises for ``:99999`` or ``:port``."""
    try:
        parts = urlsplit(value.strip())
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def is_article_date(value: datetime) -> bool:
    """``value`` (aware) is a time an article may be published or updated at."""
    return EARLIEST <= value <= LATEST


def has_credentials(value: str) -> bool:
    """The address holds a user name or password (``https://user:pass@host/``).

    An article's address is shown on topic pages and in the Atom feed and emailed to every
    subscriber, so credentials in it would be published; and
    ``https://trusted.example@evil.example/`` reads as one site while leading to another.
    The API and CLI refuse such an address; ingestion stores a feed's without them
    (``without_credentials``).
    """
    try:
        return "@" in urlsplit(value.strip()).netloc
    except ValueError:
        return False


def without_credentials(value: str) -> str:
    """``value`` with any user name and password taken out of its host part."""
    parts = urlsplit(value)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def normalise_url(value: str) -> str:
    """The form of a URL used as an article's GUID when its feed gives none.

    Lower-case scheme and host, no default port, no fragment, no tracking parameters
    (``utm_*``, ``fbclid`` …), an empty path as ``/``. The remaining query is kept in order:
    some sites use it to say which article.
    """
    parts = urlsplit(value.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port
    if port and not ((scheme == "http" and port == 80) or (scheme == "https" and port == 443)):
        host = f"{host}:{port}"
    query = urlencode(
        [
            (key, item)
            for key, item in parse_qsl(parts.query, keep_blank_values=True)
            if not _TRACKING_PARAMETER.match(key)
        ]
    )
    return urlunsplit((scheme, host, parts.path or "/", query, ""))
