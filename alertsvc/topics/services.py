"""Creating and listing topics."""

from __future__ import annotations

import re
from collections.abc import Iterable

from sqlalchemy import select

from alertsvc.extensions import db
from alertsvc.models import Topic

SLUG_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
# C0 and C1 controls (CR, LF, NEL among them) and the Unicode line and paragraph separators.
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")

DEMO_TOPICS: list[tuple[str, str, str]] = [
    (
        "digital-government",
        "Digital government",
        "Online public services, GOV.UK and digital transformation across departments.",
    ),
    ("data", "Data", "Open data, data sharing, analytics and statistics in the public sector."),
    (
        "cyber-security",
        "Cyber security",
        "Threats, incidents and defences for public bodies.",
    ),
    (
        "health-and-care",
        "Health and care",
        "Digital health, the NHS and social care technology.",
    ),
    ("local-digital", "Local digital", "Councils, local services and shared platforms."),
    (
        "police-and-justice",
        "Police and justice",
        "Technology in policing, courts, prisons and probation.",
    ),
    (
        "emerging-technology",
        "Emerging technology",
        "AI, automation and other new technology in government.",
    ),
]


class TopicError(ValueError):
    """A topic could not be created as asked."""


def validate_topic(slug: str, name: str) -> None:
    if not SLUG_PATTERN.fullmatch(slug) or len(slug) > 80:  # fullmatch: "$" allows "\n"
        raise TopicError(
            f"slug {slug!r} must be lower-case letters and digits separated by single hyphens"
        )
    if not name.strip() or len(name) > 200:
        raise TopicError("name must be between 1 and 200 characters")
    if _CONTROL_CHARACTERS.search(name):
        raise TopicError("name must not contain line breaks or control characters")


def add_topic(slug: str, name: str, description: str = "") -> Topic:
    validate_topic(slug, name)
    if db.session.scalar(select(Topic.id).where(Topic.slug == slug)) is not None:
        raise TopicError(f"a topic with slug {slug!r} already exists")
    topic = Topic(slug=slug, name=name.strip(), description=description.strip())
    db.session.add(topic)
    return topic


def list_topics() -> list[Topic]:
    return list(db.session.scalars(select(Topic).order_by(Topic.name)))


def topics_by_slug(slugs: Iterable[str]) -> dict[str, Topic]:
    slugs = list(slugs)
    if not slugs:
        return {}
    return {t.slug: t for t in db.session.scalars(select(Topic).where(Topic.slug.in_(slugs)))}


def seed_demo_topics() -> int:
    """Create the demo topics that are missing. Returns how many were created."""
    existing = set(db.session.scalars(select(Topic.slug)))
    created = 0
    for slug, name, description in DEMO_TOPICS:
        if slug not in existing:
            db.session.add(Topic(slug=slug, name=name, description=description))
            created += 1
    return created
