"""``alertsvc suppressions list|add|remove`` and the suppression services behind them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from alertsvc.addresses import address_hash
from alertsvc.database import transaction
from alertsvc.delivery import suppressions
from alertsvc.delivery.suppressions import SuppressionSource
from alertsvc.models import AuditEntry, Suppression, SuppressionReason
from tests.factories import rows

WHEN = datetime(2026, 11, 30, 9, 15, tzinfo=UTC)


@pytest.fixture
def cli(app):
    runner = app.test_cli_runner()

    def invoke(*args: str):
        return runner.invoke(args=list(args))

    return invoke


def _suppressed(app) -> list[tuple[str, str, str, str | None]]:
    return rows(
        app,
        select(
            Suppression.email, Suppression.reason, Suppression.source, Suppression.detail
        ).order_by(Suppression.email),
    )


def _suppress(app, email, reason, source, detail, when=WHEN) -> bool:
    with app.app_context(), transaction():
        return suppressions.suppress(email, reason, source, detail, when)


def test_the_first_reason_is_kept(app):
    assert _suppress(app, "a@example.com", SuppressionReason.BOUNCE, SuppressionSource.SES, "1")
    assert not _suppress(
        app, "a@example.com", SuppressionReason.COMPLAINT, SuppressionSource.SES, "2"
    )

    assert _suppressed(app) == [("a@example.com", "bounce", "ses", "1")]


def test_add_by_an_operator(cli, app):
    result = cli("suppressions", "add", "  Reader@EXAMPLE.com ", "--detail", "asked by phone")

    assert result.exit_code == 0, result.output
    assert result.output == "Suppressed reader@example.com\n"
    assert _suppressed(app) == [("reader@example.com", "operator", "operator", "asked by phone")]


def test_add_with_a_reason(cli, app):
    result = cli("suppressions", "add", "reader@example.com", "--reason", "complaint")

    assert result.exit_code == 0, result.output
    assert _suppressed(app) == [("reader@example.com", "complaint", "operator", None)]


def test_adding_an_address_already_suppressed_keeps_its_first_reason(cli, app):
    _suppress(app, "reader@example.com", SuppressionReason.BOUNCE, SuppressionSource.SES, "x")

    result = cli("suppressions", "add", "reader@example.com")

    assert result.exit_code == 0, result.output
    assert result.output == (
        "reader@example.com was already suppressed (bounce, by ses, since 2026-11-30 09:15 UTC);"
        " left as it was\n"
    )
    assert _suppressed(app) == [("reader@example.com", "bounce", "ses", "x")]


@pytest.mark.parametrize("command", ["add", "remove"])
@pytest.mark.parametrize("email", ["not-an-address", "reader@", "", "a@b@example.com"])
def test_a_bad_address_is_one_line(command, email, cli, app):
    result = cli("suppressions", command, "--", email)

    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {email!r} is not an email address: ")
    assert len(result.output.splitlines()) == 1
    assert _suppressed(app) == []


def test_an_unknown_reason_is_refused(cli, app):
    result = cli("suppressions", "add", "reader@example.com", "--reason", "spite")

    assert result.exit_code == 2
    assert "'spite' is not one of" in result.output
    assert _suppressed(app) == []


def test_remove(cli, app):
    _suppress(app, "reader@example.com", SuppressionReason.BOUNCE, SuppressionSource.SES, None)
    _suppress(app, "other@example.com", SuppressionReason.BOUNCE, SuppressionSource.SES, None)

    result = cli("suppressions", "remove", "READER@example.com")

    assert result.exit_code == 0, result.output
    assert result.output == "Removed reader@example.com from the suppression list\n"
    assert _suppressed(app) == [("other@example.com", "bounce", "ses", None)]


def test_an_erased_subscribers_hashed_suppression_is_found_and_removed(cli, app):
    """After an erasure only the address's hash is kept: asking about, adding and removing
    the address itself still find it."""
    kept = address_hash("reader@example.com")
    _suppress(app, kept, SuppressionReason.COMPLAINT, SuppressionSource.SES, None)
    with app.app_context():
        assert suppressions.suppression_of("reader@example.com").email == kept
        assert suppressions.suppression_of("other@example.com") is None

    result = cli("suppressions", "remove", "Reader@Example.com")

    assert result.exit_code == 0, result.output
    assert result.output == "Removed reader@example.com from the suppression list\n"
    assert _suppressed(app) == []
    [(action, target)] = rows(app, select(AuditEntry.action, AuditEntry.target))
    assert action == "suppression.remove" and target.startswith("suppression ")


def test_removing_an_address_not_suppressed_is_one_line(cli, app):
    result = cli("suppressions", "remove", "reader@example.com")

    assert result.exit_code == 1
    assert result.output == "Error: reader@example.com is not suppressed\n"


def test_list_shows_why_each_address_is_suppressed(cli, app):
    assert cli("suppressions", "list").output == "No addresses are suppressed.\n"
    _suppress(
        app,
        "bounced@example.com",
        SuppressionReason.BOUNCE,
        SuppressionSource.SES,
        "General: smtp; 550 5.1.1\nuser unknown\x1b[31m",
        WHEN,
    )
    _suppress(
        app,
        "op@example.com",
        SuppressionReason.OPERATOR,
        SuppressionSource.OPERATOR,
        None,
        WHEN.replace(hour=10),
    )

    result = cli("suppressions", "list")

    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "op@example.com       operator  operator  2026-11-30 10:15 UTC",
        "bounced@example.com  bounce    ses       2026-11-30 09:15 UTC"
        "  General: smtp; 550 5.1.1 user unknown [31m",
    ]


def test_list_by_reason_and_limit(cli, app):
    for number in range(3):
        _suppress(
            app,
            f"c{number}@example.com",
            SuppressionReason.COMPLAINT,
            SuppressionSource.SES,
            "abuse",
            WHEN.replace(minute=number),
        )
    _suppress(app, "b@example.com", SuppressionReason.BOUNCE, SuppressionSource.SES, None)

    result = cli("suppressions", "list", "--reason", "complaint", "--limit", "2")

    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "c2@example.com  complaint  ses  2026-11-30 09:02 UTC  abuse",
        "c1@example.com  complaint  ses  2026-11-30 09:01 UTC  abuse",
        "… and 1 more (use --limit to see them)",
    ]
    assert cli("suppressions", "list", "--reason", "transient_bounces").output == (
        "No addresses are suppressed for transient_bounces.\n"
    )
    assert cli("suppressions", "list", "--limit", "0").exit_code == 2
