"""Keyword topics: a saved query that new articles join when their title or summary match.

The query language is small on purpose, so an operator can predict what it matches:

- Words match **whole words**, ignoring case and accents: ``NHS`` matches "the NHS's plan"
  and "nhs", but not "NHSX"; ``cafe`` matches "Café". A word is a run of letters and
  digits; everything else (spaces, punctuation, hyphens, apostrophes, underscores)
  separates words, so ``cyber`` matches "cyber-security". A bare term with separators
  inside (``cyber-security``) is a phrase.
- ``"quoted words"`` are a phrase: the words must appear consecutively, in that order, with
  only separators between them (``"cyber security"`` matches "Cyber-security"). A phrase
  never spans the title and the summary.
- Bare terms are ANDed: ``NHS data`` needs both words, anywhere in the title or summary.
- ``OR`` (upper case) joins alternatives and binds tighter than the implicit AND, as in web
  search: ``NHS cyber OR ransomware`` means NHS AND (cyber OR ransomware). A lower-case
  ``or`` is an ordinary word.

Matching runs in Python on plain text (HTML stripped from the summary first), once per new
article, against every keyword topic.
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

_WORD = re.compile(r"[^\W_]+")
_TOKEN = re.compile(r'"([^"]*)"|(\S+)')


@functools.cache
def _combining_marks() -> re.Pattern[str]:
    """A pattern for every combining mark (accents and the like), built once per process."""
    ranges: list[tuple[int, int]] = []
    for code in range(sys.maxunicode + 1):
        if unicodedata.category(chr(code)).startswith("M"):
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1] = (ranges[-1][0], code)
            else:
                ranges.append((code, code))
    spans = "".join(f"{re.escape(chr(low))}-{re.escape(chr(high))}" for low, high in ranges)
    return re.compile(f"[{spans}]+")


class QueryError(ValueError):
    """A keyword query that cannot be understood."""


def words(text: str) -> list[str]:
    """The words of ``text``: the unit both queries and articles are cut into.

    Unicode compatibility caseless matching (NFKD, case fold, NFKD again), then accents
    dropped, so "CAFÉ", "café" and "cafe" are the same word, as are "ﬁle" and "file".
    """
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold())
    return _WORD.findall(_combining_marks().sub("", folded))


@dataclass(frozen=True)
class Query:
    """A parsed query: every clause must match; a clause matches if any of its phrases does.

    Each phrase is a tuple of one or more words.
    """

    text: str
    clauses: tuple[tuple[tuple[str, ...], ...], ...]

    def matches(self, *texts: str) -> bool:
        """True if the plain ``texts`` (e.g. title, summary) together satisfy the query."""
        documents = [Document(words(text)) for text in texts]
        return self.matches_documents(documents)

    def matches_documents(self, documents: Iterable[Document]) -> bool:
        documents = list(documents)
        return all(
            any(document.contains(phrase) for phrase in clause for document in documents)
            for clause in self.clauses
        )


class Document:
    """The words of one text, indexed for phrase lookups."""

    __slots__ = ("positions", "words")

    def __init__(self, text_words: list[str]) -> None:
        self.words = text_words
        self.positions: dict[str, list[int]] = {}
        for index, word in enumerate(text_words):
            self.positions.setdefault(word, []).append(index)

    def contains(self, phrase: tuple[str, ...]) -> bool:
        starts = self.positions.get(phrase[0])
        if not starts:
            return False
        length = len(phrase)
        if length == 1:
            return True
        return any(tuple(self.words[start : start + length]) == phrase for start in starts)


def _clauses(text: str) -> list[dict[tuple[str, ...], str]]:
    """The query's clauses, each its phrases (in order, repeats dropped) mapped to the words
    as the query wrote them; or raise :class:`QueryError`. The one reading of the grammar
    that both :func:`parse_query` and :func:`describe_query` use."""
    if text.count('"') % 2:
        raise QueryError("a quote is not closed: quotes come in pairs around a phrase")
    terms: list[tuple[tuple[str, ...], str] | None] = []  # None marks an OR
    for match in _TOKEN.finditer(text):
        quoted, bare = match.groups()
        if bare == "OR":
            terms.append(None)
            continue
        written = quoted if quoted is not None else bare
        phrase = tuple(words(written))
        if not phrase:
            if quoted is not None:
                raise QueryError("a quoted phrase has no words in it")
            continue  # bare punctuation such as "-" or "&" separates, like in articles
        terms.append((phrase, " ".join(written.split())))

    clauses: list[dict[tuple[str, ...], str]] = []
    joining = False
    for term in terms:
        if term is None:
            if not clauses or joining:
                raise QueryError("OR must stand between two words or phrases")
            joining = True
        elif joining:
            clauses[-1].setdefault(*term)
            joining = False
        else:
            clauses.append(dict([term]))
    if joining:
        raise QueryError("OR must stand between two words or phrases")
    if not clauses:
        raise QueryError("the query has no words to match")
    return clauses


def parse_query(text: str) -> Query:
    """Parse a keyword query (see the module docstring), or raise :class:`QueryError`."""
    return Query(
        text=text.strip(),
        clauses=tuple(tuple(clause) for clause in _clauses(text)),
    )


def _english_list(items: list[str], conjunction: str) -> str:
    """``a``, ``a or b``, ``a, b or c`` (no serial comma, as GOV.UK writes)."""
    if len(items) == 1:
        return items[0]
    return f"{', '.join(items[:-1])} {conjunction} {items[-1]}"


def describe_query(text: str) -> str:
    """A keyword query in plain words for readers, e.g. ``NHS cyber OR ransomware`` ->
    ``articles that mention "NHS" and either "cyber" or "ransomware"``.

    Raises :class:`QueryError` for a query :func:`parse_query` would refuse.
    """
    clauses = _clauses(text)
    parts: list[str] = []
    for clause in clauses:
        written = [f"\u201c{phrase}\u201d" for phrase in clause.values()]
        alternatives = _english_list(written, "or")
        if len(written) > 1 and len(clauses) > 1:
            alternatives = f"either {alternatives}"
        parts.append(alternatives)
    return f"articles that mention {_english_list(parts, 'and')}"
