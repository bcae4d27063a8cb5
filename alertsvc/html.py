"""Untrusted text and HTML: the one allow-list for summaries, and plain-text helpers.

Article cleaning (on the way in) and digest rendering (on the way out) both clean summary
HTML with :func:`clean_html`, so what survives into an email is exactly what the README
promises: paragraphs, line breaks, links, emphasis, lists and block quotes. Links keep only
http(s) and mailto targets and get ``rel="noopener noreferrer nofollow"``.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from html.parser import HTMLParser

import nh3

ALLOWED_TAGS = frozenset({"p", "br", "a", "strong", "em", "b", "i", "ul", "ol", "li", "blockquote"})
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}}
ALLOWED_URL_SCHEMES = frozenset({"http", "https", "mailto"})
LINK_REL = "noopener noreferrer nofollow"

# Control characters, and lone surrogates (invalid JSON escapes such as "\ud800"): neither is
# text, and PostgreSQL refuses NUL and anything that is not valid UTF-8.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def collapse(value: str) -> str:
    """``value`` without control characters, its whitespace runs collapsed to one space."""
    return " ".join(CONTROL_CHARACTERS.sub("", value).split())


def clean_html(
    value: str, attribute_filter: Callable[[str, str, str], str | None] | None = None
) -> str:
    """``value`` reduced to the allow-list above. ``attribute_filter`` as nh3 takes it."""
    return nh3.clean(
        value,
        tags=set(ALLOWED_TAGS),
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=set(ALLOWED_URL_SCHEMES),
        link_rel=LINK_REL,
        attribute_filter=attribute_filter,
    )


def html_to_text(value: str) -> str:
    """The visible text of an HTML fragment, whitespace collapsed (scripts and styles dropped)."""
    return collapse(html.unescape(nh3.clean(value, tags=set())))


class _TextWithLinks(HTMLParser):
    """Collects the visible text of an HTML fragment, each link followed by its target."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._links: list[tuple[str | None, int]] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skipping += 1
        elif tag == "a":
            self._links.append((dict(attrs).get("href"), len(self.parts)))
        elif tag in ("p", "br", "li", "blockquote", "ul", "ol"):
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skipping = max(0, self._skipping - 1)
        elif tag == "a" and self._links:
            href, start = self._links.pop()
            label = "".join(self.parts[start:]).strip()
            if href and href != label:
                self.parts.append(f" ({href})" if label else href)

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def html_to_text_with_links(value: str) -> str:
    """The visible text of a (cleaned) HTML fragment, whitespace collapsed, each link's
    target in brackets after its text: an email's text part must offer every link its HTML
    part does, or a reader of the text part cannot follow them."""
    parser = _TextWithLinks()
    parser.feed(value)
    parser.close()
    return collapse("".join(parser.parts))
