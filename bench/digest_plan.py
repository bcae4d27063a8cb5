"""Planning one daily digest run at a national publisher's scale, on PostgreSQL.

    uv run python bench/digest_plan.py [--subscribers N] [--million] [--all-due]

Creates N confirmed subscribers (100,000 by default; 1,000,000 with --million) over 20
topics with a realistic mix (most follow 1-4 topics; about 60% of subscriptions daily, 25%
immediately, 15% weekly; most want their digest at 07:00, the rest spread over the day;
5% outside London), plus 200 new articles, then times `alertsvc digest run daily` for the
07:00 UTC run in its own process and reads that process's peak RSS. Then 200 more
articles arrive and the next day's 07:00 run is timed the same way: the first run finds
an empty ledger, the second finds everyone's previous digest in it, as every day will.
With --all-due every subscriber wants 07:00 in London, so each run serves every daily
subscriber.

The floor, measured in the same run: COPY of as many rows as the run queued emails into an
unlogged table shaped like the outbox. Targets: 1,000,000 subscribers in <= 30 s, <= 3x the
floor, peak RSS <= 300 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from email.utils import make_msgid

import psycopg
from _support import (
    PROJECT_ROOT,
    alertsvc_command,
    fresh_database,
    insert_articles,
    render_url,
    step,
)

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/alertsvc_bench_digest"
WINDOW_END = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)


def populate(dsn: str, subscribers: int, *, all_due: bool = False) -> None:
    """Everything in SQL: generating a million rows through Python would measure Python."""
    day_before = WINDOW_END - timedelta(days=1)
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(
            """
            INSERT INTO topics (slug, name, description, created_at)
            SELECT 'topic-' || n, 'Topic ' || n, '', now() FROM generate_series(1, 20) AS n
            """
        )
        connection.execute(
            """
            INSERT INTO subscribers (email, created_at, confirmed_at, timezone, daily_hour,
                                     weekly_day, weekly_hour)
            SELECT 'reader' || n || '@example.com', %(start)s, %(start)s,
                   CASE WHEN n %% 20 = 0 THEN 'America/New_York' ELSE 'Europe/London' END,
                   CASE WHEN n %% 10 < 6 THEN 7 ELSE (n * 7) %% 24 END,
                   n %% 7, CASE WHEN n %% 2 = 0 THEN 7 ELSE 9 END
            FROM generate_series(1, %(count)s) AS n
            """,
            {"count": subscribers, "start": day_before},
        )
        if all_due:
            connection.execute("UPDATE subscribers SET daily_hour = 7, timezone = 'Europe/London'")
        # 1-4 topics each, skewed towards the popular ones; frequency by a hash of the pair.
        connection.execute(
            """
            INSERT INTO subscriptions (subscriber_id, topic_id, frequency, created_at,
                                       delivered_until)
            SELECT s.id, t.id,
                   CASE WHEN (s.id + t.id) %% 20 < 12 THEN 'daily'
                        WHEN (s.id + t.id) %% 20 < 17 THEN 'immediately'
                        ELSE 'weekly' END,
                   %(start)s, %(start)s
            FROM subscribers s
            JOIN LATERAL (
                SELECT DISTINCT
                       1 + ((s.id::bigint * k * 7919 + k * k) %% (4 + (s.id %% 17))) AS topic
                FROM generate_series(1, 1 + s.id %% 4) AS k
            ) chosen ON true
            JOIN topics t ON t.slug = 'topic-' || chosen.topic
            """,
            {"start": day_before},
        )
        add_articles(connection, day_before + timedelta(hours=5))
        connection.execute("VACUUM ANALYZE")
        counts = connection.execute(
            "SELECT (SELECT count(*) FROM subscribers), (SELECT count(*) FROM subscriptions),"
            " (SELECT count(*) FROM articles), (SELECT count(*) FROM article_topics)"
        ).fetchone()
    step(
        f"data: {counts[0]:,} subscribers, {counts[1]:,} subscriptions, "
        f"{counts[2]} articles in {counts[3]} article-topic pairs"
    )


def add_articles(connection: psycopg.Connection, at: datetime) -> None:
    """200 new articles arriving at ``at``, each in one to three topics."""
    first = insert_articles(connection, at, 200, ", with <strong>some</strong> markup.</p>")
    connection.execute(
        """
        INSERT INTO article_topics (article_id, topic_id)
        SELECT a.id, t.id FROM articles a JOIN topics t
          ON (a.id + t.id) %% 9 = 0 OR (a.id %% 20) + 1 = t.id
        WHERE a.id >= %(first)s
        """,
        {"first": first},
    )


# The CLI, reporting its own peak RSS on the way out (Click's main ends in sys.exit).
_REPORTING_PEAK_RSS = """
import atexit, resource, sys
atexit.register(lambda: sys.stderr.write(
    f"\\npeak-rss-kb={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}\\n"))
from alertsvc.cli import main
main()
"""


def run_cli(env: dict[str, str], *args: str) -> tuple[str, float]:
    """Run an ``alertsvc`` command in its own process: (its last line, its peak RSS in MB)."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", _REPORTING_PEAK_RSS, *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-3000:] + result.stderr[-3000:])
        raise SystemExit(f"alertsvc {' '.join(args)} failed")
    summary = result.stdout.strip().splitlines()[-1]
    step(f"alertsvc {args[0]} said: {summary} (process wall time {wall:.2f} s)")
    peak_kb = re.findall(r"^peak-rss-kb=(\d+)$", result.stderr, re.MULTILINE)
    return summary, int(peak_kb[-1]) / 1024


def plan(env: dict[str, str], window_end: datetime) -> tuple[float, int, int, float]:
    """Plan the daily run: (seconds, subscribers, emails, peak RSS in MB)."""
    summary, peak_mb = run_cli(env, "digest", "run", "daily", "--at", window_end.isoformat())
    match = re.search(r"(\d+) subscribers?, (\d+) emails? queued, .* ([\d.]+) s$", summary)
    if not match:
        raise SystemExit(f"unexpected output: {summary}")
    return float(match.group(3)), int(match.group(1)), int(match.group(2)), peak_mb


def alert(env: dict[str, str], dsn: str) -> tuple[float, int, float]:
    """One article in the three most followed topics: (seconds, alerts queued, peak RSS)."""
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(
            """
            INSERT INTO articles (guid, url, title, summary, author, published_at, source,
                                  created_at, revision)
            VALUES ('https://news.example/breaking', 'https://news.example/breaking',
                    'Breaking news for everyone', '<p>Read this now.</p>', 'Reporter',
                    now(), 'cli', now(), 0)
            """
        )
        connection.execute(
            """
            INSERT INTO article_topics (article_id, topic_id)
            SELECT a.id, t.id FROM articles a JOIN topics t
              ON t.slug IN ('topic-1', 'topic-2', 'topic-3')
            WHERE a.guid = 'https://news.example/breaking'
            """
        )
    summary, peak_mb = run_cli(env, "alerts", "run")
    match = re.search(r"(\d+) emails? queued.* ([\d.]+) s", summary)
    if not match:
        raise SystemExit(f"unexpected output: {summary}")
    return float(match.group(2)), int(match.group(1)), peak_mb


def floor(dsn: str, rows: int) -> float:
    """COPY ``rows`` outbox-shaped rows into an unlogged table: the least the run must write."""
    with psycopg.connect(dsn) as connection:
        connection.execute("DROP TABLE IF EXISTS floor_outbox")
        connection.execute("CREATE UNLOGGED TABLE floor_outbox (LIKE outbox INCLUDING DEFAULTS)")
        connection.commit()
        now = datetime.now(UTC)
        topic_ids = json.dumps([1, 2, 3])
        started = time.perf_counter()
        with (
            connection.cursor() as cursor,
            cursor.copy(
                "COPY floor_outbox (created_at, template, to_address, subject, context, "
                "subscriber_id, unsubscribe_topic_ids, body_id, message_id, status, attempts, "
                "next_attempt_at) FROM STDIN"
            ) as copy,
        ):
            for n in range(rows):
                copy.write_row(
                    (
                        now,
                        "digest",
                        f"reader{n}@example.com",
                        "Daily email alert: 12 new articles on Topic 1, Topic 2",
                        "{}",
                        n,
                        topic_ids,
                        1,
                        make_msgid(domain="alerts.example.org"),
                        "queued",
                        0,
                        now,
                    )
                )
        connection.commit()
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--million", action="store_true", help="1,000,000 subscribers")
    parser.add_argument(
        "--all-due",
        action="store_true",
        help="worst case: every subscriber wants 07:00 London, so the run serves them all",
    )
    parser.add_argument(
        "--database-url", default=os.environ.get("BENCH_DIGEST_DATABASE_URL", DEFAULT_URL)
    )
    args = parser.parse_args()
    subscribers = 1_000_000 if args.million else args.subscribers
    with fresh_database(args.database_url) as url:
        env = {"ALERTSVC_DATABASE_URL": render_url(url), "ALERTSVC_ENV": "development"}
        alertsvc_command(["db", "upgrade"], env)
        dsn = render_url(url).replace("postgresql+psycopg://", "postgresql://")
        step(f"creating {subscribers:,} subscribers")
        populate(dsn, subscribers, all_due=args.all_due)
        runs = []
        for label, window_end in (
            ("first run, empty ledger", WINDOW_END),
            ("next day, ledger in use", WINDOW_END + timedelta(days=1)),
        ):
            if window_end != WINDOW_END:
                with psycopg.connect(dsn, autocommit=True) as connection:
                    add_articles(connection, window_end - timedelta(hours=19))
                    connection.execute("ANALYZE")
            step(f"planning the daily run ending {window_end:%Y-%m-%d %H:%M} UTC ({label})")
            seconds, served, emails, peak_mb = plan(env, window_end)
            floor_seconds = floor(dsn, emails)
            runs.append((label, served, emails, seconds, peak_mb, floor_seconds))
        step("an article in the three most followed topics: immediate alerts")
        alert_seconds, alerts, alert_mb = alert(env, dsn)
        alert_floor = floor(dsn, alerts)
    print()
    print(f"subscribers in database: {subscribers:,}")
    print(
        f"{'run':<26}{'in run':>10}{'emails':>10}{'seconds':>9}{'subs/s':>9}"
        f"{'RSS MB':>8}{'floor s':>9}{'ratio':>7}"
    )
    for label, served, emails, seconds, peak_mb, floor_seconds in runs:
        ratio = seconds / floor_seconds if floor_seconds else float("inf")
        rate = served / seconds if seconds else 0
        print(
            f"{label:<26}{served:>10,}{emails:>10,}{seconds:>9.2f}{rate:>9,.0f}"
            f"{peak_mb:>8.0f}{floor_seconds:>9.2f}{ratio:>7.2f}"
        )
    print("targets at 1,000,000 subscribers: <= 30 s, <= 3x the floor, peak RSS <= 300 MB")
    print(
        f"immediate alerts for one article: {alerts:,} queued in {alert_seconds:.2f} s"
        f" (floor {alert_floor:.2f} s, ratio {alert_seconds / alert_floor:.2f}),"
        f" peak RSS {alert_mb:.0f} MB"
    )


if __name__ == "__main__":
    main()
