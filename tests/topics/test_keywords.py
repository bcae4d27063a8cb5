from __future__ import annotations

import re
from datetime import timedelta

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from alertsvc.models import Topic
from alertsvc.topics.keywords import QueryError, parse_query
from tests.articles.helpers import articles
from tests.factories import count, create_token, seed_topics


@pytest.mark.parametrize(
    ("query", "text", "expected"),
    [
        ("NHS", "The NHS's new app", True),
        ("NHS", "nhs trusts", True),
        ("NHS", "NHSX is no more", False),
        ("nhs", "The NHS.", True),
        ('"artificial intelligence"', "Artificial Intelligence in councils", True),
        ('"artificial intelligence"', "Artificial: intelligence", True),
        ('"artificial intelligence"', "artificial, then intelligence", False),
        ('"artificial intelligence"', "intelligence that is artificial", False),
        ('"artificial intelligence"', "artificial general intelligence", False),
        ("cyber OR ransomware", "Ransomware attack", True),
        ("cyber OR ransomware", "Cyber-security plan", True),
        ("cyber OR ransomware", "Security plan", False),
        ("NHS data", "NHS publishes data strategy", True),
        ("NHS data", "NHS publishes strategy", False),
        ("NHS cyber OR ransomware", "NHS hit by ransomware", True),
        ("NHS cyber OR ransomware", "Council hit by ransomware", False),
        ("cyber-security", "Cyber security review", True),
        ('"cyber security"', "A cyber-security review", True),
        ("café", "CAFÉ society", True),
        ("cafe", "Café society", True),
        ("or", "this or that", True),
    ],
)
def test_matching_examples(query, text, expected):
    assert parse_query(query).matches(text) is expected


def test_a_phrase_never_spans_title_and_summary():
    query = parse_query('"digital identity"')
    assert not query.matches("Plans for digital", "Identity checks for all")
    assert query.matches("Plans", "Digital identity checks")


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ('"unclosed phrase', "quote is not closed"),
        ("OR cyber", "OR must stand between"),
        ("cyber OR", "OR must stand between"),
        ("cyber OR OR attack", "OR must stand between"),
        ('""', "no words"),
        ("  - & ", "no words"),
    ],
)
def test_queries_that_cannot_be_understood(query, problem):
    with pytest.raises(QueryError, match=problem):
        parse_query(query)


# -- properties ------------------------------------------------------------------------------

VOCABULARY = ["nhs", "data", "cyber", "ai", "council", "app", "nhsx", "Data", "AI"]
SEPARATORS = [" ", "  ", "-", ", ", ". ", "\n", "'s ", " (", ") ", "/", "_"]


def _mixed_case(draw, word: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(word), max_size=len(word)))
    return "".join(c.upper() if flip else c.lower() for c, flip in zip(word, flips, strict=True))


@st.composite
def texts(draw) -> str:
    words = draw(st.lists(st.sampled_from(VOCABULARY), max_size=12))
    parts = []
    for word in words:
        parts.append(_mixed_case(draw, word))
        parts.append(draw(st.sampled_from(SEPARATORS)))
    return "".join(parts)


phrases = st.lists(st.sampled_from(VOCABULARY), min_size=1, max_size=3)


def phrase_in(words: list[str], text: str) -> bool:
    """An independent oracle: the words, in order, separated only by non-letters/digits."""
    pattern = r"(?<![^\W_])" + r"[\W_]+".join(map(re.escape, words)) + r"(?![^\W_])"
    return re.search(pattern, text, flags=re.IGNORECASE) is not None


@given(text=texts(), words=phrases)
@settings(max_examples=300, deadline=None)
@example(text="NHSX data", words=["nhs"])
@example(text="data-ai", words=["data", "ai"])
def test_a_phrase_matches_exactly_when_the_text_has_it(text, words):
    query = parse_query('"' + " ".join(words) + '"')
    assert query.matches(text) == phrase_in(words, text)


@given(text=texts(), words=phrases, prefix=texts())
@settings(max_examples=200, deadline=None)
def test_a_phrase_query_never_matches_text_that_lacks_it(text, words, prefix):
    query = parse_query('"' + " ".join(words) + '"')
    if not phrase_in(words, prefix + text):
        assert not query.matches(prefix + text)
        assert not query.matches(prefix, text)


def _case_stable(c: str) -> bool:
    """Upper and lower case fold to the same thing (not, e.g., Turkish dotless i)."""
    return c.upper().casefold() == c.casefold() == c.lower().casefold()


word_characters = st.characters(categories=("Lu", "Ll", "Nd")).filter(_case_stable)
any_characters = st.characters(categories=("Lu", "Ll", "Nd", "Zs", "Po", "Pd")).filter(_case_stable)


@given(
    words=st.lists(
        # A bare upper-case OR is the operator, so the word "or" is left out here.
        st.text(word_characters, min_size=1, max_size=6).filter(lambda w: w.casefold() != "or"),
        min_size=1,
        max_size=3,
    ),
    before=st.text(any_characters, max_size=20),
    after=st.text(any_characters, max_size=20),
    include=st.booleans(),
)
@settings(max_examples=300, deadline=None)
def test_matching_ignores_case(words, before, after, include):
    text = before + " " + " ".join(words) + " " + after if include else before + after
    phrase = parse_query('"' + " ".join(words) + '"')
    bare = parse_query(" ".join(words))
    if include:
        assert phrase.matches(text) and bare.matches(text)
    for query in (phrase, bare):
        expected = query.matches(text)
        assert query.matches(text.upper()) == expected
        assert query.matches(text.lower()) == expected
        assert parse_query(query.text.upper()).matches(text) == expected
        assert parse_query(query.text.lower()).matches(text.upper()) == expected


# -- keyword topics in the service -----------------------------------------------------------


def test_keyword_topic_collects_matching_new_articles(app, client):
    seed_topics(app)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["topics", "add-keyword", "nhs", "NHS", "NHS"])
    assert result.exit_code == 0, result.output
    assert "Added keyword topic nhs: NHS (query: NHS)" in result.output
    result = runner.invoke(
        args=["topics", "add-keyword", "ai", "Artificial intelligence", '"artificial intelligence"']
    )
    assert result.exit_code == 0, result.output
    token = create_token(app)
    response = client.post(
        "/api/v1/articles",
        json=[
            {
                "title": "Trusts share records",
                "url": "https://news.example.org/records",
                "summary": "<p>The <b>NHS</b> app now shows records.</p>",
                "topics": ["data"],
            },
            {
                "title": "NHSX closes",
                "url": "https://news.example.org/nhsx",
                "summary": "Artificial <em>intelligence</em> unit moves.",
            },
            {"title": "Councils and artificial intelligence", "url": "https://news.example.org/ai"},
        ],
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 201
    assert [a["topics"] for a in articles(app)] == [["data", "nhs"], ["ai"], ["ai"]]
    assert count(app, Topic, Topic.query.is_not(None)) == 2


def test_adding_a_keyword_topic_checks_the_query_and_slug(app):
    seed_topics(app)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["topics", "add-keyword", "nhs", "NHS", '"NHS'])
    assert result.exit_code == 1 and "quote is not closed" in result.output
    result = runner.invoke(args=["topics", "add-keyword", "data", "Data again", "data"])
    assert result.exit_code == 1 and "already exists" in result.output
    assert count(app, Topic, Topic.query.is_not(None)) == 0


def test_preview_shows_recent_matches(app, client):
    from alertsvc.models import utcnow

    seed_topics(app)
    token = create_token(app)
    now = utcnow()
    client.post(
        "/api/v1/articles",
        json=[
            {
                "title": "Ransomware at a council",
                "url": "https://news.example.org/r1",
                "published": now.isoformat(),
            },
            {
                "title": "Cyber plan",
                "url": "https://news.example.org/c1",
                "published": (now - timedelta(days=2)).isoformat(),
            },
            {
                "title": "Old ransomware story",
                "url": "https://news.example.org/r0",
                "published": (now - timedelta(days=40)).isoformat(),
            },
            {"title": "Data week", "url": "https://news.example.org/d1"},
        ],
        headers={"Authorization": f"Bearer {token}"},
    )
    runner = app.test_cli_runner()
    result = runner.invoke(args=["topics", "preview", "cyber OR ransomware", "--days", "30"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "Ransomware at a council" in lines[0] and "Cyber plan" in lines[1]
    assert "Old ransomware story" not in result.output and "Data week" not in result.output
    assert lines[-1] == "2 articles from the last 30 days match."
    result = runner.invoke(args=["topics", "preview", "cyber OR"])
    assert result.exit_code == 1 and "OR must stand between" in result.output
