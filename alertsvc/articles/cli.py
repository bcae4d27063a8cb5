"""Commands for articles in: ``feeds …`` and ``articles …``.

``feeds map-category`` and ``feeds categories`` are topic administration: their code lives
in :mod:`alertsvc.topics.cli` and they are added to the ``feeds`` group here."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from flask import current_app
from flask.cli import with_appcontext
from marshmallow import ValidationError

from alertsvc.articles import feeds, jobs, parsing, services
from alertsvc.articles.fetching import FeedError
from alertsvc.articles.schemas import ArticleInSchema
from alertsvc.audit import record_audit
from alertsvc.database import transaction
from alertsvc.extensions import db
from alertsvc.ids import ROW_ID
from alertsvc.models import ArticleSource, Feed, utcnow
from alertsvc.text import plural
from alertsvc.topics.cli import FEED_COMMANDS

IMPORT_CHUNK = 500


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "never"


def _recovered(feed: Feed) -> bool:
    """The feed's last error came before its last success: it is no longer failing."""
    return (
        feed.last_success_at is not None
        and feed.last_error_at is not None
        and feed.last_success_at > feed.last_error_at
    )


# -- feeds -----------------------------------------------------------------------------------


@click.group("feeds")
def feeds_cli() -> None:
    """Add, list and poll RSS and Atom feeds."""


@feeds_cli.command("add")
@click.argument("url")
@click.option("--topic", "topics", multiple=True, help="Topic slug for its articles (repeat).")
@click.option("--title", default="", help="A name for the feed (default: the feed's own title).")
@with_appcontext
def feeds_add_command(url: str, topics: Sequence[str], title: str) -> None:
    """Add a feed whose articles join the given topics."""
    try:
        with transaction():
            feed = feeds.add_feed(url, topics, title)
            record_audit(
                "feed.create", f"feed {feed.id}", {"url": feed.url, "topics": list(topics)}
            )
    except FeedError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"Added feed {feed.id}: {feed.url}")
    if not topics:
        click.echo("It has no topics: its articles join topics only through category mappings")
        click.echo("and keyword topics.")


@feeds_cli.command("list")
@with_appcontext
def feeds_list_command() -> None:
    """List feeds with their health; problems are flagged FAILING or STALE."""
    rows = feeds.list_feeds()
    if not rows:
        click.echo("No feeds yet. Add one with: alertsvc feeds add URL --topic SLUG")
        return
    rules = feeds.HealthRules.from_config(current_app.config)
    now = utcnow()
    for feed in rows:
        topics = ", ".join(topic.slug for topic in feed.topics) or "no topics"
        click.echo(f"{feed.id:>4}  {feed.url}  [{topics}]")
        click.echo(
            f"      last success {_when(feed.last_success_at)} · "
            f"{plural(feed.consecutive_failures, 'failure')} in a row · "
            f"newest item {_when(feed.newest_item_at)}"
        )
        if feed.last_error and not _recovered(feed):
            click.echo(f"      last error {_when(feed.last_error_at)}: {feed.last_error}")
        for problem in rules.problems(feed, now):
            click.echo(f"      {problem}")


@feeds_cli.command("poll")
@click.argument("feed_id", type=ROW_ID, required=False)
@click.option("--all", "poll_all", is_flag=True, help="Poll every feed now, due or not.")
@with_appcontext
def feeds_poll_command(feed_id: int | None, poll_all: bool) -> None:
    """Poll the feeds that are due (or FEED_ID, or --all). Exits 1 if any failed."""
    if feed_id is not None and poll_all:
        raise click.UsageError("give a FEED_ID or --all, not both")
    if feed_id is not None:
        with transaction():
            known = db.session.get(Feed, feed_id) is not None
        if not known:
            raise click.ClickException(f"no feed with id {feed_id}: see alertsvc feeds list")
        results = jobs.poll_feeds([feed_id], due_only=False)
    elif poll_all:
        results = jobs.poll_feeds([feed.id for feed in feeds.list_feeds()], due_only=False)
    else:
        results = jobs.poll_feeds()
    if results:
        with transaction():
            record_audit(
                "feed.poll",
                f"feed {feed_id}" if feed_id is not None else "feeds",
                {"feeds": [r.feed_id for r in results], "results": [r.status for r in results]},
            )
    else:
        click.echo("No feeds are due.")
    for result in results:
        click.echo(f"feed {result.feed_id} {result.url}: {result.describe()}")
    if any(result.status == feeds.PollStatus.FAILED for result in results):
        raise SystemExit(1)


@feeds_cli.command("retry")
@click.argument("feed_id", type=ROW_ID)
@with_appcontext
def feeds_retry_command(feed_id: int) -> None:
    """Un-park FEED_ID (start its failure count again) and poll it now. Exits 1 if it fails."""
    try:
        result = jobs.retry_feed(feed_id)
    except FeedError as error:
        raise click.ClickException(str(error)) from error
    with transaction():
        record_audit("feed.retry", f"feed {feed_id}", {"result": result.status})
    click.echo(f"feed {result.feed_id} {result.url}: {result.describe()}")
    if result.status == feeds.PollStatus.FAILED:
        raise SystemExit(1)


# -- articles --------------------------------------------------------------------------------


@click.group("articles")
def articles_cli() -> None:
    """Add or import articles by hand."""


def _report(result: services.IngestResult) -> str:
    text = f"{result.created} new, {result.updated} updated, {result.unchanged} unchanged"
    return text + (f", {result.skipped} skipped" if result.skipped else "")


def _validation_message(messages: Any, prefix: str = "") -> list[str]:
    lines = []
    for key, value in messages.items():
        if isinstance(value, dict):
            lines.extend(_validation_message(value, f"{prefix}{key}."))
        else:
            lines.append(f"{prefix}{key}: {' '.join(map(str, value))}")
    return lines


@articles_cli.command("add")
@click.option("--title", required=True)
@click.option("--url", required=True)
@click.option("--topic", "topics", multiple=True, required=True, help="Topic slug (repeat).")
@click.option("--summary", default="", help="HTML (cleaned to a small allow-list) or text.")
@click.option("--published", help="ISO 8601 time, e.g. 2026-11-25T09:30:00+00:00 (default now).")
@click.option("--guid", help="Unique id (default: the normalised URL).")
@with_appcontext
def articles_add_command(
    title: str,
    url: str,
    topics: Sequence[str],
    summary: str,
    published: str | None,
    guid: str | None,
) -> None:
    """Add one article (subscribers to its topics are alerted as for any new article)."""
    # Topics first, as ``articles import`` does: a slug that cannot name a topic (``dätä``)
    # is reported by name like one that names none, not by its place in the list.
    try:
        with transaction():
            services.topic_ids_by_slug(topics)
    except services.UnknownTopics as error:
        raise click.ClickException(str(error)) from error
    data: dict[str, Any] = {"title": title, "url": url, "topics": list(topics), "summary": summary}
    if published:
        data["published"] = published
    if guid:
        data["guid"] = guid
    try:
        item = ArticleInSchema().load(data)
    except ValidationError as error:
        raise click.ClickException("; ".join(_validation_message(error.messages))) from error
    try:
        with transaction():
            result = services.ingest_articles([item], ArticleSource.CLI)
            [stored] = result.outcomes
            record_audit(
                "article.create", f"article {stored.article_id}", {"status": stored.status}
            )
    except services.UnknownTopics as error:
        raise click.ClickException(str(error)) from error
    [outcome] = result.outcomes
    click.echo(f"Article {outcome.article_id}: {outcome.status}")


def _read_import(path: Path, topics: Sequence[str]) -> list[services.ArticleInput]:
    if path.suffix.lower() == ".json":
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise click.ClickException(f"{path} is not JSON: {error}") from error
        except RecursionError as error:  # Python's parser gives up on deep nesting
            raise click.ClickException(f"{path}: the JSON is nested too deeply") from error
        if not isinstance(payload, list):
            raise click.ClickException(f"{path} must hold a JSON list of articles")
        try:
            items: list[services.ArticleInput] = ArticleInSchema(many=True).load(payload)
        except ValidationError as error:
            lines = _validation_message(error.messages)
            shown = "\n".join(f"  item {line}" for line in lines[:20])
            more = f"\n  … and {len(lines) - 20} more" if len(lines) > 20 else ""
            raise click.ClickException(
                f"{path} has invalid articles; nothing imported:\n{shown}{more}"
            ) from error
    else:
        try:
            parsed = parsing.parse_feed(path.read_bytes(), path.resolve().as_uri())
        except FeedError as error:
            raise click.ClickException(f"{path}: {error}") from error
        items = parsed.items
    for item in items:
        item.topics = list(dict.fromkeys([*item.topics, *topics]))
    return items


@articles_cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--topic", "topics", multiple=True, help="Also put every article in this topic.")
@click.option(
    "--backfill",
    is_flag=True,
    help="Store new articles as already alerted: nobody is emailed about them immediately.",
)
@with_appcontext
def articles_import_command(file: Path, topics: Sequence[str], backfill: bool) -> None:
    """Import FILE: a JSON list of articles (as the API takes them) or an RSS/Atom file.

    Each 500 articles are committed together, so an import that stops can be run again:
    articles already stored are left as they are.
    """
    items = _read_import(file, topics)
    try:
        services.topic_ids_by_slug(slug for item in items for slug in item.topics)
    except services.UnknownTopics as error:
        raise click.ClickException(str(error)) from error
    total = services.IngestResult()
    label = f"Importing {plural(len(items), 'article')}"
    with click.progressbar(length=len(items), label=label) as bar:
        for start in range(0, len(items), IMPORT_CHUNK):
            chunk = items[start : start + IMPORT_CHUNK]
            try:
                with transaction():
                    result = services.ingest_articles(chunk, ArticleSource.CLI, alert=not backfill)
                    record_audit(
                        "article.import",
                        f"file {file.name}",
                        {"articles": len(chunk), "backfill": backfill},
                    )
            except services.UnknownTopics as error:
                raise click.ClickException(str(error)) from error
            total.outcomes.extend(result.outcomes)
            total.alert_ids.extend(result.alert_ids)
            bar.update(len(chunk))
    click.echo(f"Imported {file.name}: {_report(total)}")


for _command in FEED_COMMANDS:
    feeds_cli.add_command(_command)

COMMANDS = [feeds_cli, articles_cli]
