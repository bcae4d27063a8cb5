"""A keyword query in plain words, as topic pages show it to readers."""

from __future__ import annotations

import pytest

from alertsvc.topics.keywords import QueryError, describe_query


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("NHS", "articles that mention “NHS”"),
        ("cyber OR ransomware", "articles that mention “cyber” or “ransomware”"),
        ('"artificial intelligence"', "articles that mention “artificial intelligence”"),
        ("NHS data", "articles that mention “NHS” and “data”"),
        (
            "NHS cyber OR ransomware",
            "articles that mention “NHS” and either “cyber” or “ransomware”",
        ),
        ("AI OR ML OR robots", "articles that mention “AI”, “ML” or “robots”"),
        ("cyber-security & NHS", "articles that mention “cyber-security” and “NHS”"),
        ("NHS OR nhs", "articles that mention “NHS”"),
        ("or", "articles that mention “or”"),
    ],
)
def test_a_keyword_query_reads_as_plain_english(query, words):
    assert describe_query(query) == words


def test_a_query_the_parser_refuses_is_not_described():
    with pytest.raises(QueryError):
        describe_query("OR NHS")
