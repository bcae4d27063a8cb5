from __future__ import annotations

import click
from flask.cli import with_appcontext

from alertsvc.database import transaction
from alertsvc.topics import services


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
        click.echo(f"{topic.slug:<{width}}  {topic.name}")


@click.command("seed-demo")
@with_appcontext
def seed_demo_command() -> None:
    """Create the demo topics (safe to run again)."""
    with transaction():
        created = services.seed_demo_topics()
    click.echo(
        f"Demo topics: {created} created, {len(services.DEMO_TOPICS) - created} already there"
    )
