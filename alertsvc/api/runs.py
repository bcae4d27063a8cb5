"""The JSON API's digest runs: trigger one (or a dry run), list them, follow one's progress.

A run is started by the same job the CLI's ``alertsvc digest run`` uses
(``digests.jobs.plan_run``), its window end checked by the same rule
(``digests.planning.check_window_end``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Response
from marshmallow import RAISE

from alertsvc.api.blueprint import (
    bp,
    invalid,
    json_body_errors,
    load_json_object,
    not_found,
    requires,
)
from alertsvc.api.schemas import (
    MAX_ID,
    ErrorSchema,
    RunInSchema,
    RunListQuerySchema,
    RunListSchema,
    RunSchema,
    RunTriggerResultSchema,
)
from alertsvc.database import transaction
from alertsvc.digests import jobs
from alertsvc.digests.planning import (
    PlanResult,
    RunRefused,
    check_window_end,
    start_digest_run,
)
from alertsvc.digests.runs import list_runs, record_run_trigger, run_emails
from alertsvc.digests.schedule import floor_hour
from alertsvc.extensions import db
from alertsvc.models import DigestRun, RunStatus, utcnow
from alertsvc.text import sentence


def _runs(runs: list[DigestRun]) -> list[dict[str, Any]]:
    emails = run_emails([run.id for run in runs])
    return [
        {
            "id": run.id,
            "frequency": run.frequency,
            "status": run.status,
            "trigger": run.trigger,
            "window_start": run.window_start,
            "window_end": run.window_end,
            "created_at": run.created_at,
            "planned_at": run.planned_at,
            "subscriber_count": run.subscriber_count,
            "email_count": run.email_count,
            "attempts": run.attempts,
            "last_error": run.last_error,
            "parked_at": run.parked_at,
            "emails": emails[run.id].every_status(),
        }
        for run in runs
    ]


def _window_end(at: datetime | None) -> datetime | Response:
    if at is None:
        return floor_hour(utcnow())
    try:
        return check_window_end(at)
    except RunRefused as error:
        return invalid({"at": [f"{sentence(str(error))}."]})
    except (ValueError, OverflowError):
        return invalid({"at": ["Not a time this service can plan a run for."]})


@bp.route("/runs", methods=["POST"])
@bp.doc(
    summary="Run a digest now, or count what it would queue",
    description=(
        "Scope `runs:write`. Plans the `frequency` run ending at `at` (default: the last "
        "whole hour), exactly as the hourly scheduler would: the subscribers whose chosen "
        "hour it was get their digest; a run planned before queues nothing more. With "
        "`dry_run`, counts the subscribers and emails and writes nothing (`run` is then null "
        "unless the run was already planned). Answers 201 when "
        "this request planned the run, else 200."
    ),
    requestBody={
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RunIn"}}},
    },
)
@bp.response(201, RunTriggerResultSchema, description="The run was planned now.")
@bp.alt_response(
    200, schema=RunTriggerResultSchema, description="A dry run, or a run planned before."
)
@json_body_errors
@bp.alt_response(
    422, schema=ErrorSchema, description="Invalid, or `at` is in the future: see `errors`."
)
@requires("runs:write")
def post_runs() -> Any:
    loaded = load_json_object(RunInSchema(), "the run")
    if isinstance(loaded, Response):
        return loaded
    frequency: str = loaded["frequency"]
    window_end = _window_end(loaded.get("at"))
    if isinstance(window_end, Response):
        return window_end
    if loaded["dry_run"]:
        result = jobs.plan_run(frequency, window_end, trigger="api", dry_run=True)
        if not result.already_planned:
            return _trigger_result(result, None), 200
        with transaction():
            [existing] = _runs([db.session.get_one(DigestRun, result.run_id)])
        return _trigger_result(result, existing), 200
    with transaction():
        # The run row commits with its audit entry; planning then goes on in transactions
        # of its own (many connections, in chunks). Should it fail, the run is left
        # planning, and the sweeper finishes it as it would a scheduled one.
        run = start_digest_run(frequency, window_end, trigger="api")
        run_id = run.id
        record_run_trigger(
            frequency, run.window_end, run.id, already_planned=run.status == RunStatus.PLANNED
        )
    result = jobs.plan_run(frequency, window_end, trigger="api")
    with transaction():
        [progress] = _runs([db.session.get_one(DigestRun, run_id)])
    return _trigger_result(result, progress), 200 if result.already_planned else 201


def _trigger_result(result: PlanResult, run: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "dry_run": result.dry_run,
        "already_planned": result.already_planned,
        "frequency": result.frequency,
        "window_end": result.window_end,
        "subscribers": result.subscribers,
        "emails": result.emails,
        "bodies": result.bodies,
        "run": run,
    }


@bp.route("/runs", methods=["GET"])
@bp.doc(summary="List digest runs", description="Scope `read`. Newest first.")
@bp.arguments(RunListQuerySchema, location="query", as_kwargs=True, unknown=RAISE)
@bp.response(200, RunListSchema)
@bp.alt_response(422, schema=ErrorSchema, description="Invalid arguments: see `errors`.")
@requires("read")
def get_runs(limit: int, **filters: Any) -> Any:
    with transaction():
        runs = _runs(
            list_runs(
                limit=limit,
                frequency=filters.get("frequency"),
                before_id=filters.get("before_id"),
            )
        )
    return {"runs": runs, "next_before_id": runs[-1]["id"] if len(runs) == limit else None}


@bp.route("/runs/<int:run_id>", methods=["GET"])
@bp.doc(
    summary="A run's progress",
    description="Scope `read`. Its status, window, subscribers, and its emails by status.",
)
@bp.response(200, RunSchema)
@bp.alt_response(404, schema=ErrorSchema, description="No such run.")
@requires("read")
def get_run(run_id: int) -> Any:
    with transaction():
        run = db.session.get(DigestRun, run_id) if run_id <= MAX_ID else None
        if run is None:
            return not_found(f"No run {run_id}.")
        [body] = _runs([run])
    return body
