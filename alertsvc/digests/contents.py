"""What a digest run sends: the distinct contents of its subscribers' digests.

Planning (``digests.planning``) reduces the audience to distinct *profiles*: a profile is
the text ``"topic@start,topic@start,c<article>"`` (each topic followed at the run's
frequency with where its window starts, and any held-back alerts). Here each profile is
turned into the articles it gets, grouped by topic with each article once, and each
distinct content is rendered and stored once.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import select
from sqlalchemy.engine import Connection

from alertsvc.digests.rendering import (
    ArticleView,
    RenderedBody,
    article_view,
    digest_entry,
    render_digest,
    store_bodies,
)
from alertsvc.extensions import db
from alertsvc.models import Article, Topic, article_topics


@dataclass(frozen=True)
class RunRef:
    """The run being planned, as planning needs it."""

    id: int
    frequency: str
    window_end: datetime


@dataclass(frozen=True)
class _Candidate:
    """What planning needs of a candidate article."""

    view: ArticleView
    created_at: datetime
    topic_ids: tuple[int, ...]


class _ArticleIndex:
    """The run's candidate articles by topic, sorted by arrival, for window look-ups."""

    def __init__(self, start: datetime, end: datetime, max_age: timedelta, zone: ZoneInfo) -> None:
        rows = db.session.execute(
            select(Article, article_topics.c.topic_id)
            .join(article_topics, article_topics.c.article_id == Article.id)
            .where(Article.created_at >= start, Article.created_at < end)
            .order_by(Article.created_at, Article.id)
        ).all()
        self.zone = zone
        self.articles: dict[int, _Candidate] = {}
        self.by_topic: dict[int, list[tuple[datetime, int]]] = defaultdict(list)
        topics: dict[int, list[int]] = defaultdict(list)
        for article, topic_id in rows:
            if article.published_at < article.created_at - max_age:
                continue  # an old article imported late: stored, never sent
            topics[article.id].append(topic_id)
            if article.id not in self.articles:
                self.articles[article.id] = _Candidate(
                    digest_entry(article_view(article, zone)), article.created_at, ()
                )
            self.by_topic[topic_id].append((article.created_at, article.id))
        for article_id, candidate in self.articles.items():
            self.articles[article_id] = _Candidate(
                candidate.view, candidate.created_at, tuple(topics[article_id])
            )
        self.keys = {topic: [t for t, _ in items] for topic, items in self.by_topic.items()}

    def add(self, article_ids: set[int]) -> None:
        """Carried-over alerts may be older than the window: load them too."""
        missing = article_ids - set(self.articles)
        if not missing:
            return
        topics: dict[int, list[int]] = defaultdict(list)
        for article_id, topic_id in db.session.execute(
            select(article_topics.c.article_id, article_topics.c.topic_id).where(
                article_topics.c.article_id.in_(missing)
            )
        ):
            topics[article_id].append(topic_id)
        for article in db.session.scalars(select(Article).where(Article.id.in_(missing))):
            self.articles[article.id] = _Candidate(
                digest_entry(article_view(article, self.zone)),
                article.created_at,
                tuple(topics[article.id]),
            )

    def in_window(self, topic_id: int, start: datetime) -> list[int]:
        items = self.by_topic.get(topic_id)
        if not items:
            return []
        return [a for _, a in items[bisect.bisect_left(self.keys[topic_id], start) :]]

    def view(self, article_id: int) -> ArticleView:
        return self.articles[article_id].view


@dataclass(eq=False)
class _Content:
    """A digest's content as ids: ((topic id, article ids) per section, carried-over ids)."""

    key: tuple[tuple[tuple[int, tuple[int, ...]], ...], tuple[int, ...]]
    count: int
    topic_ids: tuple[int, ...]


class Digests:
    """The run's distinct digests, worked out from every partition's profiles and rendered
    once each; shared bodies are stored through the connection given to ``plan``."""

    def __init__(self, run: RunRef) -> None:
        config = current_app.config
        self.run = run
        self.zone = ZoneInfo(config["TIMEZONE"])
        self.max_age = timedelta(days=config["ALERT_MAX_ARTICLE_AGE_DAYS"])
        self.topic_names = dict(db.session.execute(select(Topic.id, Topic.name)).all())
        self.contents: dict[str, _Content | None] = {}
        self.bodies_by_profile: dict[str, dict[str, object]] = {}
        self.window_start = run.window_end
        self.bodies = 0

    def plan(self, profiles: set[str], connection: Connection | None) -> None:
        """Work out each distinct profile's content; unless ``connection`` is None (a dry
        run), render and store each distinct content once."""
        parsed = {profile: _parse_profile(profile) for profile in profiles}
        starts = [start for entries, _ in parsed.values() for _, start in entries]
        self.window_start = min([*starts, self.run.window_end])
        self.articles = _ArticleIndex(
            self.window_start, self.run.window_end, self.max_age, self.zone
        )
        self.articles.add({a for _, carried in parsed.values() for a in carried})
        by_key: dict[tuple, _Content] = {}
        for profile, (entries, carried) in parsed.items():
            content = self._content(entries, carried)
            if content is not None:
                content = by_key.setdefault(content.key, content)
            self.contents[profile] = content
        self.bodies = len(by_key)
        if connection is None:
            return
        bodies = self._store_bodies(list(by_key.values()), connection)
        self.bodies_by_profile = {
            profile: {
                "body": bodies[content.key][0],
                "count": content.count,
                "subject": bodies[content.key][1],
                "topics": "[" + ",".join(str(t) for t in content.topic_ids) + "]",
            }
            for profile, content in self.contents.items()
            if content is not None
        }

    def _content(self, entries: list[tuple[int, datetime]], carried: list[int]) -> _Content | None:
        """Each article once, under the first of the subscriber's topics (by name) holding it."""
        seen: set[int] = set()
        sections = []
        ordered = sorted(entries, key=lambda item: (self.topic_names.get(item[0], ""), item[0]))
        for topic_id, start in ordered:
            fresh = [a for a in self.articles.in_window(topic_id, start) if a not in seen]
            seen.update(fresh)
            if fresh:
                sections.append((topic_id, tuple(fresh)))
        held = tuple(
            a
            for a in dict.fromkeys(sorted(carried))
            if a not in seen and a in self.articles.articles
        )
        count = len(seen) + len(held)
        if not count:
            return None
        topic_ids = {topic_id for topic_id, _ in entries}
        for article_id in held:
            topic_ids.update(self.articles.articles[article_id].topic_ids)
        return _Content((tuple(sections), held), count, tuple(sorted(topic_ids)))

    def render(self, content: _Content) -> RenderedBody:
        """The shared body of one distinct content, as the run stores it (and as a preview of
        one subscriber's digest shows it)."""
        sections, carried = content.key
        return render_digest(
            self.run.id,
            self.run.frequency,
            tuple(
                (self.topic_names[topic_id], tuple(self.articles.view(a) for a in ids))
                for topic_id, ids in sections
            ),
            tuple(self.articles.view(a) for a in carried),
        )

    def _store_bodies(
        self, contents: list[_Content], connection: Connection
    ) -> dict[tuple, tuple[int, str]]:
        """Render each distinct content once and store it; content key -> (body id, subject).

        Bodies already stored (a resumed or raced run) are reused.
        """
        rendered = {content.key: self.render(content) for content in contents}
        ids = store_bodies(connection, list(rendered.values()))
        return {key: (ids[r.content_key], r.subject) for key, r in rendered.items()}


def _moment(text: str) -> datetime:
    """``"1764054000.123456"`` or ``"2026-11-25 07:00:00.123456"`` -> aware UTC, exactly."""
    if "-" not in text:
        seconds, _, fraction = text.partition(".")
        micro = int((fraction + "000000")[:6]) if fraction else 0
        return datetime.fromtimestamp(int(seconds), UTC).replace(microsecond=micro)
    moment = datetime.fromisoformat(text.replace(" ", "T"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _parse_profile(profile: str) -> tuple[list[tuple[int, datetime]], list[int]]:
    """``"12@1764054000.000000,c345"`` -> ([(12, start)], [345])."""
    entries: list[tuple[int, datetime]] = []
    carried: list[int] = []
    for entry in profile.split(","):
        if entry.startswith("c"):
            carried.append(int(entry[1:]))
            continue
        topic, _, start = entry.partition("@")
        entries.append((int(topic), _moment(start)))
    entries.sort()
    return entries, carried
