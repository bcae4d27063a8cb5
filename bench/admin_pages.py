"""How long the operators' pages and the API's reads take on a big database (PostgreSQL).

    uv run python bench/admin_pages.py [--subscribers N] [--outbox N]

Creates N confirmed subscribers (100,000 by default, as bench/digest_plan.py makes them)
and an outbox of M emails (1,000,000 by default) spread over the last 30 days in every
status, digest runs to go with them, then times each admin page and API read in this
process through the app (signed in as an admin; a token with the read scope), five times
each, and prints the median. The floor, measured in the same run: one ``SELECT count(*)``
over the whole outbox, the least a page that counts the outbox by status must read.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import UTC, datetime

import psycopg
from _support import alertsvc_command, fresh_database, render_url, step
from digest_plan import populate

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/alertsvc_bench_admin"
REPEATS = 5
PASSWORD = "bench admin password"


def fill_outbox(dsn: str, emails: int) -> None:
    """M emails over 30 days: mostly sent or delivered, some failed, suppressed, queued."""
    now = datetime.now(UTC)
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(
            """
            INSERT INTO digest_runs (frequency, window_start, window_end, status, created_at,
                                     planned_at, subscriber_count, email_count, trigger,
                                     attempts)
            SELECT 'daily', %(now)s - (n + 1) * interval '1 day', %(now)s - n * interval '1 day',
                   'planned', %(now)s - n * interval '1 day', %(now)s - n * interval '1 day',
                   %(per_run)s, %(per_run)s, 'scheduler', 1
            FROM generate_series(1, 30) AS n
            """,
            {"now": now, "per_run": emails // 30},
        )
        connection.execute(
            """
            INSERT INTO outbox (created_at, template, to_address, subject, context,
                                subscriber_id, unsubscribe_topic_ids, body_id, run_id, status,
                                attempts, next_attempt_at, sent_at)
            SELECT %(now)s - (n %% 30) * interval '1 day' - (n %% 3600) * interval '1 second',
                   'digest', 'reader' || (1 + n %% %(subscribers)s) || '@example.com',
                   'Daily email alert', '{}', 1 + n %% %(subscribers)s, '[1]', 1,
                   (SELECT min(id) FROM digest_runs) + n %% 30,
                   CASE WHEN n %% 100 < 80 THEN 'sent' WHEN n %% 100 < 95 THEN 'delivered'
                        WHEN n %% 100 < 97 THEN 'failed' WHEN n %% 100 < 99 THEN 'suppressed'
                        ELSE 'queued' END,
                   1, %(now)s - (n %% 30) * interval '1 day',
                   CASE WHEN n %% 100 < 95
                        THEN %(now)s - (n %% 30) * interval '1 day' END
            FROM generate_series(1, %(emails)s) AS n
            """,
            {"now": now, "emails": emails, "subscribers": max(1, emails // 10)},
        )
        connection.execute("VACUUM ANALYZE")


def floor_seconds(dsn: str) -> float:
    with psycopg.connect(dsn) as connection:
        times = []
        for _ in range(REPEATS):
            started = time.perf_counter()
            connection.execute("SELECT count(*) FROM outbox").fetchone()
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def time_pages(url: str) -> list[tuple[str, float, int]]:
    """(path, median seconds, status) for each page, through the app in this process."""
    os.environ["ALERTSVC_ENV"] = "development"
    from alertsvc import create_app
    from alertsvc.admin.operators import create_operator
    from alertsvc.api.tokens import create_api_token
    from alertsvc.extensions import db

    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": render_url(url),
            "METRICS_TOKEN": "bench-metrics-token-0123456789abcdefghijkl",
            "WTF_CSRF_ENABLED": False,
            "RATELIMIT_ENABLED": False,
            "LOG_FORMAT": "text",
        }
    )
    with app.app_context():
        create_operator("bench@example.org", PASSWORD, "admin")
        _, token = create_api_token("bench", ["read"])
        db.session.commit()
    client = app.test_client()
    signed_in = client.post(
        "/admin/login", data={"email": "bench@example.org", "password": PASSWORD}
    )
    assert signed_in.status_code == 302, signed_in.status_code
    api = {"Authorization": f"Bearer {token}"}
    metrics = {"Authorization": "Bearer bench-metrics-token-0123456789abcdefghijkl"}
    pages: list[tuple[str, dict[str, str]]] = [
        ("/healthz", {}),
        ("/admin/", {}),
        ("/admin/topics", {}),
        ("/admin/feeds", {}),
        ("/admin/articles", {}),
        ("/admin/runs", {}),
        ("/admin/subscribers?q=reader1234", {}),
        ("/admin/subscribers/1234", {}),
        ("/admin/subscribers/1234/preview/daily", {}),
        ("/admin/delivery", {}),
        ("/admin/delivery/suppressions", {}),
        ("/admin/audit", {}),
        ("/api/v1/stats", api),
        ("/api/v1/runs", api),
        ("/metrics", metrics),
    ]
    results = []
    for path, headers in pages:
        times = []
        status = 0
        for _ in range(REPEATS):
            started = time.perf_counter()
            response = client.get(path, headers=headers)
            times.append(time.perf_counter() - started)
            status = response.status_code
        results.append((path, statistics.median(times), status))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--outbox", type=int, default=1_000_000)
    parser.add_argument(
        "--database-url", default=os.environ.get("BENCH_ADMIN_DATABASE_URL", DEFAULT_URL)
    )
    args = parser.parse_args()
    with fresh_database(args.database_url) as url:
        env = {"ALERTSVC_DATABASE_URL": render_url(url), "ALERTSVC_ENV": "development"}
        alertsvc_command(["db", "upgrade"], env)
        dsn = render_url(url).replace("postgresql+psycopg://", "postgresql://")
        step(f"creating {args.subscribers:,} subscribers and {args.outbox:,} outbox rows")
        populate(dsn, args.subscribers)
        fill_outbox(dsn, args.outbox)
        floor = floor_seconds(dsn)
        step("timing each page, median of 5")
        results = time_pages(url)
    print()
    print(f"{args.subscribers:,} subscribers, {args.outbox:,} outbox rows")
    print(f"{'page':<44}{'status':>7}{'ms':>9}{'x floor':>9}")
    for path, seconds, status in results:
        print(f"{path:<44}{status:>7}{seconds * 1000:>9.1f}{seconds / floor:>9.2f}")
    print(f"floor: SELECT count(*) FROM outbox, {floor * 1000:.1f} ms")
    failed = [path for path, _, status in results if status != 200]
    if failed:
        raise SystemExit(f"pages that did not answer 200: {', '.join(failed)}")


if __name__ == "__main__":
    main()
