"""Commands for topic administration: ``topics add|add-keyword|list|preview``, ``seed-demo``,
and the category-mapping commands the ``feeds`` group shows (``FEED_COMMANDS``)."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from alertsvc.audit import record_audit
from alertsvc.database import transaction
from alertsvc.ids import ROW_ID
from alertsvc.text import plural
from alertsvc.topics import services
from alertsvc.topics.keywords import QueryError


@click.group("topics")
def topics_cli() -> None:
    """Create and list topics."""


@topics_cli.command("add")
@click.argument("slug")
@click.argument("name")
@click.option("--description", default="", help="One sentence shown on the signup form.")
@with_appcontext
def add_command(slug: str, name: str, description: str) -> None:
    """Add a topic readers can follow."""
    try:
        with transaction():
            topic = services.add_topic(slug, name, description)
            record_audit("topic.create", f"topic {topic.slug}", {"name": topic.name})
    except services.TopicError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"Added topic {topic.slug}: {topic.name}")


@topics_cli.command("list")
@with_appcontext
def list_command() -> None:
    """List topics."""
    topics = services.list_topics()
    if not topics:
        click.echo("No topics yet. Add one with: alertsvc topics add SLUG NAME")
        return
    width = max(len(t.slug) for t in topics)
    for topic in topics:
        retired = "  (retired)" if topic.retired_at else ""
        click.echo(f"{topic.slug:<{width}}  {topic.name}{retired}")


@click.command("seed-demo")
@with_appcontext
def seed_demo_command() -> None:
    """Create the demo topics (safe to run again)."""
    with transaction():
        created = services.seed_demo_topics()
        if created:
            record_audit("topic.seed_demo", "demo topics", {"created": created})
    click.echo(
        f"Demo topics: {created} created, {len(services.DEMO_TOPICS) - created} already there"
    )


@topics_cli.command("add-keyword")
@click.argument("slug")
@click.argument("name")
@click.argument("query")
@click.option("--description", default="", help="One sentence shown on the signup form.")
@with_appcontext
def add_keyword_command(slug: str, name: str, query: str, description: str) -> None:
    """Add a keyword topic: new articles whose title or summary match QUERY join it.

    QUERY: words match whole words, any case; "quoted words" are a phrase; words are ANDed;
    OR between terms makes alternatives. E.g. NHS, '"artificial intelligence"',
    'cyber OR ransomware'.
    """
    try:
        with transaction():
            topic = services.add_topic(slug, name, description, query=query)
            record_audit(
                "topic.create", f"topic {topic.slug}", {"name": topic.name, "query": topic.query}
            )
    except services.TopicError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"Added keyword topic {topic.slug}: {topic.name} (query: {topic.query})")


@topics_cli.command("preview")
@click.argument("query")
@click.option("--days", default=30, show_default=True, type=click.IntRange(1, 3650))
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
@with_appcontext
def preview_command(query: str, days: int, limit: int) -> None:
    """Show which recent articles QUERY matches (newest first)."""
    try:
        articles = services.preview_query(query, days=days, limit=limit)
    except QueryError as error:
        raise click.ClickException(f"query {query!r}: {error}") from error
    if not articles:
        click.echo(f"No articles from the last {plural(days, 'day')} match {query}.")
        return
    for article in articles:
        click.echo(f"{article.published_at:%Y-%m-%d}  {article.title}  {article.url}")
    more = " (limit reached)" if len(articles) >= limit else ""
    click.echo(
        f"{plural(len(articles), 'article')} from the last {plural(days, 'day')} "
        f"match{'es' if len(articles) == 1 else ''}{more}."
    )


# -- category mappings (commands of the ``feeds`` group) ------------------------------


@click.command("map-category")
@click.argument("category")
@click.argument("topic")
@click.option("--feed", "feed_id", type=ROW_ID, help="Only for this feed (default: every feed).")
@with_appcontext
def feeds_map_category_command(category: str, topic: str, feed_id: int | None) -> None:
    """Put new articles with CATEGORY (a feed category or tag) in TOPIC (a slug)."""
    try:
        with transaction():
            mapping = services.map_category(category, topic, feed_id)
            record_audit(
                "category.map",
                f"category {mapping.category}",
                {"topic": topic, "feed_id": feed_id},
            )
    except services.TopicError as error:
        raise click.ClickException(str(error)) from error
    where = f"feed {feed_id}" if feed_id else "every feed"
    click.echo(f"Category {mapping.category!r} from {where} -> topic {topic}")


@click.command("categories")
@with_appcontext
def feeds_categories_command() -> None:
    """List category mappings."""
    mappings = services.list_category_mappings()
    if not mappings:
        click.echo("No category mappings. Add one with: alertsvc feeds map-category CATEGORY SLUG")
    for mapping in mappings:
        where = f"feed {mapping.feed_id}" if mapping.feed_id else "every feed"
        click.echo(f"{mapping.category!r} from {where} -> {mapping.topic.slug}")


FEED_COMMANDS = [feeds_map_category_command, feeds_categories_command]
COMMANDS = [topics_cli, seed_demo_command]
