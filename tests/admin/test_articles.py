"""Articles pages: search by title, id or address, newest first, paged; one article with its
topics and the alerts it produced per topic; marking a major update."""

from __future__ import annotations

import re
from datetime import timedelta

from flask import Flask
from sqlalchemy import insert, select

from alertsvc.extensions import db
from alertsvc.models import Article, AuditEntry, OutboxEmail, utcnow
from tests.admin.helpers import post_form
from tests.factories import create_article, create_topic, rows


def _titles(page: str) -> list[str]:
    return re.findall(r'<th scope="row"><a href="/admin/articles/\d+">([^<]+)</a>', page)


def test_search_by_title_id_and_address_newest_first(app: Flask, admin_client):
    now = utcnow()
    first = create_article(app, "Cloud first for councils", [], now - timedelta(days=3))
    create_article(app, "Data strategy: half% done", [], now - timedelta(days=2))
    create_article(
        app, "Cloud contracts", [], now - timedelta(days=1), url="https://news.example/cc"
    )
    assert _titles(admin_client.get("/admin/articles").get_data(as_text=True)) == [
        "Cloud contracts",
        "Data strategy: half% done",
        "Cloud first for councils",
    ]
    assert _titles(admin_client.get("/admin/articles?q=cLoUd").get_data(as_text=True)) == [
        "Cloud contracts",
        "Cloud first for councils",
    ]
    assert _titles(admin_client.get(f"/admin/articles?q={first}").get_data(as_text=True)) == [
        "Cloud first for councils"
    ]
    by_url = admin_client.get("/admin/articles?q=https://news.example/cc")
    assert _titles(by_url.get_data(as_text=True)) == ["Cloud contracts"]
    percent = admin_client.get("/admin/articles?q=f%25").get_data(as_text=True)
    assert _titles(percent) == ["Data strategy: half% done"], "% is a character, not a wildcard"
    none = admin_client.get("/admin/articles?q=nothing+like+it").get_data(as_text=True)
    assert "No article matches." in none


def test_pages_of_fifty_go_back_in_time(app: Flask, admin_client):
    now = utcnow()
    with app.app_context():
        db.session.execute(
            insert(Article),
            [
                {
                    "guid": f"g{n}",
                    "url": f"https://news.example/{n}",
                    "title": f"Story {n}",
                    "published_at": now,
                    "created_at": now,
                    "source": "cli",
                }
                for n in range(60)
            ],
        )
        db.session.commit()
    page = admin_client.get("/admin/articles").get_data(as_text=True)
    titles = _titles(page)
    assert len(titles) == 50 and titles[0] == "Story 59" and titles[-1] == "Story 10"
    older = re.search(r'href="(/admin/articles\?before=\d+)">Older articles', page).group(1)
    rest = admin_client.get(older).get_data(as_text=True)
    assert _titles(rest) == [f"Story {n}" for n in range(9, -1, -1)]
    assert "Older articles" not in rest and "Newest articles" in rest


def test_huge_or_odd_search_input_is_refused_cleanly(admin_client):
    response = admin_client.get("/admin/articles?q=" + "x" * 600)
    assert response.status_code == 400
    assert "Search for at most 500 characters" in response.get_data(as_text=True)
    assert admin_client.get("/admin/articles?before=abc").status_code == 400
    assert admin_client.get("/admin/articles?q=" + "9" * 40).status_code == 200


def test_an_article_shows_its_topics_and_alerts_per_topic_and_status(app: Flask, admin_client):
    data = create_topic(app, "data", "Data")
    cyber = create_topic(app, "cyber", "Cyber security")
    article = create_article(app, "Breach at a data centre", [data, cyber], utcnow())
    other = create_article(app, "Something else", [data], utcnow())
    with app.app_context():
        db.session.execute(
            insert(OutboxEmail),
            [
                {
                    "template": "alert",
                    "article_id": article,
                    "status": status,
                    "unsubscribe_topic_ids": ids,
                }
                for status, ids in [
                    ("sent", [data]),
                    ("sent", [data, cyber]),
                    ("failed", [cyber]),
                    ("queued", [data]),
                ]
            ]
            + [
                {
                    "template": "alert",
                    "article_id": other,
                    "status": "sent",
                    "unsubscribe_topic_ids": [data],
                }
            ],
        )
        db.session.commit()
    page = admin_client.get(f"/admin/articles/{article}").get_data(as_text=True)
    assert "Breach at a data centre" in page and ">Data</a>" in page
    assert "4 immediate alerts in all" in page

    def cells(header: str) -> list[str]:
        row = page.split(f'<th scope="row">{header}</th>')[1].split("</tr>")[0]
        return re.findall(r'<td class="number">([^<]*)</td>', row)

    # queued, sending, sent, delivered, failed, suppressed, total
    assert cells("Data") == ["1", "0", "2", "0", "0", "0", "3"]
    assert cells("Cyber security") == ["0", "0", "1", "0", "1", "0", "2"]
    assert cells("All alerts") == ["1", "0", "2", "0", "1", "0", "4"]


def test_mark_a_major_update_alerts_again_and_is_audited(app: Flask, admin_client):
    article = create_article(app, "Policy paper", [], utcnow() - timedelta(hours=2))
    response = post_form(admin_client, f"/admin/articles/{article}/major-update")
    assert response.status_code == 303
    assert "Marked as a major update" in admin_client.get(response.headers["Location"]).get_data(
        as_text=True
    )
    [(revision, processed, major)] = rows(
        app, select(Article.revision, Article.alerts_processed_at, Article.major_update_at)
    )
    assert revision == 1 and processed is None and major is not None
    assert rows(app, select(AuditEntry.action, AuditEntry.target, AuditEntry.details)) == [
        ("operator.sign_in", "operator ops@publisher.example", {}),
        ("article.major_update", f"article {article}", {"revision": 1}),
    ]


def test_unknown_articles_are_404(admin_client):
    assert admin_client.get("/admin/articles/12345").status_code == 404
    assert post_form(admin_client, "/admin/articles/12345/major-update").status_code == 404


def test_a_viewer_sees_articles_but_cannot_mark_an_update(app: Flask, viewer_client):
    article = create_article(app, "Policy paper", [], utcnow())
    assert viewer_client.get("/admin/articles").status_code == 200
    page = viewer_client.get(f"/admin/articles/{article}").get_data(as_text=True)
    assert "Policy paper" in page and "Mark as a major update" not in page
    assert post_form(viewer_client, f"/admin/articles/{article}/major-update").status_code == 403
    assert rows(app, select(Article.revision)) == [0]
