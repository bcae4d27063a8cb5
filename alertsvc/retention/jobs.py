"""The retention purge: the scheduled job and the command's engine. Owns the transactions.

Each step (outbox rows, bodies, ledgers, runs, addresses) runs alone, one transaction per
chunk: a step that fails is logged and the others still run, and what it had done by then
stays done. Steps go in dependency order: outbox rows first, so the bodies and runs they
held can go in the same purge.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from flask import current_app

from alertsvc.database import transaction
from alertsvc.extensions import db
from alertsvc.models import utcnow
from alertsvc.retention import services
from alertsvc.retention.services import Cutoffs, PurgeCounts

log = logging.getLogger(__name__)

# Blanking an address is a few statements per subscriber (erase_subscriber): smaller chunks.
ADDRESS_CHUNK = 500


def _in_chunks(step: Callable[[], int], limit: int, max_chunks: int) -> int:
    """Run ``step`` (one chunk, at most ``limit`` rows) in a transaction each time until a
    chunk comes back short, or ``max_chunks`` have run (the rest waits for the next day)."""
    total = 0
    for _ in range(max_chunks):
        with transaction():
            done = step()
        total += done
        if done < limit:
            break
    return total


def _digest_deliveries(cutoff: datetime, span: int, max_chunks: int) -> int:
    with transaction():
        bounds = services.subscriber_id_bounds()
    if bounds is None:
        return 0
    low, high = bounds
    total = 0
    for first in range(low, high + 1, span)[:max_chunks]:
        with transaction():
            total += services.purge_digest_deliveries(cutoff, first, first + span - 1)
    return total


def purge_expired_data(now: datetime | None = None, *, dry_run: bool = False) -> PurgeCounts:
    """Purge what the ``RETENTION_*`` settings no longer keep; return the counts (what would
    go, for a dry run). Each step fails alone: its failure is logged and the next runs."""
    config = current_app.config
    cutoffs = Cutoffs.from_config(config, now or utcnow())
    if dry_run:
        try:
            return services.count_would_purge(cutoffs)
        finally:
            db.session.rollback()
    limit = int(config["RETENTION_CHUNK_SIZE"])
    most = int(config["RETENTION_MAX_CHUNKS"])
    counts = PurgeCounts()
    steps: list[tuple[str, Callable[[], int]]] = [
        (
            "outbox_emails",
            lambda: _in_chunks(lambda: services.purge_outbox(cutoffs.outbox, limit), limit, most),
        ),
        (
            "email_bodies",
            lambda: _in_chunks(
                lambda: services.purge_bodies(cutoffs.outbox, cutoffs.runs, limit), limit, most
            ),
        ),
        ("digest_deliveries", lambda: _digest_deliveries(cutoffs.runs, limit, most)),
        (
            "alert_deliveries",
            lambda: _in_chunks(
                lambda: services.purge_alert_deliveries(cutoffs.alerts, limit), limit, most
            ),
        ),
        (
            "digest_runs",
            lambda: _in_chunks(lambda: services.purge_runs(cutoffs.runs, limit), limit, most),
        ),
        (
            "addresses_blanked",
            lambda: _in_chunks(
                lambda: services.blank_left_addresses(
                    cutoffs.unsubscribed, min(limit, ADDRESS_CHUNK)
                ),
                min(limit, ADDRESS_CHUNK),
                most,
            ),
        ),
    ]
    for name, step in steps:
        try:
            setattr(counts, name, step())
        except Exception:
            log.exception("retention purge: the %s step failed; the other steps go on", name)
    log.info(
        "retention purge done: %s",
        ", ".join(f"{name} {count}" for name, count in counts.as_dict().items()),
        extra={"purged": counts.as_dict()},
    )
    return counts
