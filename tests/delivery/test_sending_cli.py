"""``alertsvc sending status|pause|resume`` and the worker's options, as an operator sees them."""

from __future__ import annotations

import getpass
from datetime import timedelta

from sqlalchemy import select

from alertsvc.models import OutboxStatus, SendingPause, utcnow
from tests.delivery.helpers import pauses, suppress
from tests.factories import queue_manage_link, rows, stored_state
from tests.processes import alertsvc_env, exit_code, kill, output, start

# Who the audit log says runs the commands: who pauses and resumes from the command line.
ME = f"cli:{getpass.getuser()}"


def test_status_of_a_quiet_service(app):
    result = app.test_cli_runner().invoke(args=["sending", "status"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "Sending: running",
        "Reputation: 0 subscription emails sent in the window (the last 10000 within 7 days): "
        "bounce rate 0.00% (0; threshold 2.50%), complaint rate 0.00% (0; threshold 0.05%)",
        "  no verdict: fewer than 1000 sends in the window",
        "Outbox: 0 queued, 0 sending, 0 failed, 0 suppressed",
    ]


def test_status_counts_the_outbox_and_says_how_long_mail_has_waited(app):
    queue_manage_link(app, "waiting@example.com", created_at=utcnow() - timedelta(minutes=90))
    queue_manage_link(app, "newer@example.com")
    queue_manage_link(app, "stuck@example.com", status=OutboxStatus.SENDING, attempts=1)
    queue_manage_link(app, "gone@example.com", status=OutboxStatus.FAILED, attempts=3)
    queue_manage_link(app, "done@example.com", status=OutboxStatus.SENT, attempts=1)
    suppress(app, "bounced@example.com")
    queue_manage_link(app, "bounced@example.com", status=OutboxStatus.SUPPRESSED)

    result = app.test_cli_runner().invoke(args=["sending", "status"])

    assert result.exit_code == 0, result.output
    assert (
        "Outbox: 2 queued (oldest queued 1 hour), 1 sending, 1 failed, 1 suppressed"
        in result.output
    )


def test_pause_and_resume_say_what_changed(app):
    runner = app.test_cli_runner()

    first = runner.invoke(args=["sending", "pause", "--reason", "  bounce spike\nafter import "])
    assert first.exit_code == 0, first.output
    assert first.output == (
        "Paused subscription emails (digests and alerts): bounce spike after import\n"
    )
    again = runner.invoke(args=["sending", "pause", "--reason", "another reason"])
    assert again.exit_code == 0
    assert again.output.startswith(
        "Already paused, nothing changed: subscription emails (digests and alerts) paused since "
    )
    assert again.output.rstrip().endswith(f"by {ME}: bounce spike after import")
    everything = runner.invoke(args=["sending", "pause", "--all", "--reason", "domain move"])
    assert everything.output == "Paused all sending: domain move\n"

    status = runner.invoke(args=["sending", "status"]).output
    assert "Sending: subscription emails (digests and alerts) paused since " in status
    assert "Sending: all sending paused since " in status
    assert "Sending: running" not in status

    only_subscriptions = runner.invoke(args=["sending", "resume", "--subscriptions"])
    assert only_subscriptions.exit_code == 0
    lines = only_subscriptions.output.splitlines()
    assert lines[0].startswith("Resumed subscription emails (digests and alerts) paused since ")
    assert lines[1].startswith("Still paused: all sending paused since ")
    assert len(lines) == 2

    nothing_of_that = runner.invoke(args=["sending", "resume", "--subscriptions"])
    assert nothing_of_that.exit_code == 0
    assert nothing_of_that.output.splitlines()[0] == (
        "Nothing to resume: no pause of subscription emails (digests and alerts) is in force."
    )

    rest = runner.invoke(args=["sending", "resume"])
    assert rest.exit_code == 0
    assert rest.output.startswith("Resumed all sending paused since ")
    assert runner.invoke(args=["sending", "status"]).output.startswith("Sending: running\n")

    nothing = runner.invoke(args=["sending", "resume"])
    assert (nothing.exit_code, nothing.output) == (0, "Nothing to resume: no pause is in force.\n")
    assert [(scope, by, in_force) for scope, by, _, in_force in pauses(app)] == [
        ("subscriptions", ME, False),
        ("all", ME, False),
    ], "kept as history"
    assert rows(app, select(SendingPause.resumed_by)) == [ME, ME]


def test_bad_input_is_one_line_and_changes_nothing(app):
    runner = app.test_cli_runner()
    before = stored_state(app)

    no_reason = runner.invoke(args=["sending", "pause"])
    assert no_reason.exit_code == 2
    assert "Error: Missing option '--reason'" in no_reason.output
    blank = runner.invoke(args=["sending", "pause", "--reason", "   "])
    assert blank.exit_code == 2
    assert "Error: Invalid value for --reason: give a reason" in blank.output
    unknown = runner.invoke(args=["sending", "pause", "--reason", "x", "--forever"])
    assert unknown.exit_code == 2 and "Error: No such option '--forever'" in unknown.output
    unknown_command = runner.invoke(args=["sending", "stop"])
    assert unknown_command.exit_code == 2 and "No such command 'stop'" in unknown_command.output
    for bad in ("0", "257", "many"):
        concurrency = runner.invoke(args=["worker", "--burst", "--concurrency", bad])
        assert concurrency.exit_code == 2, concurrency.output
        assert "Invalid value for '--concurrency'" in concurrency.output

    outputs = [no_reason, blank, unknown, unknown_command]
    assert all("Traceback" not in result.output for result in outputs)
    assert stored_state(app) == before


def test_a_pause_reason_is_one_short_printable_line(app):
    """A reason is printed by every `sending status` and worker summary: a pasted 100 KB log
    or a terminal escape sequence in it would bury or garble the operator's screen."""
    runner = app.test_cli_runner()
    before = stored_state(app)

    huge = runner.invoke(args=["sending", "pause", "--reason", "x" * 100_000])

    assert huge.exit_code == 2
    assert (
        "Error: Invalid value for --reason: at most 500 characters (this one has 100000)"
        in huge.output
    )
    assert stored_state(app) == before

    escaped = runner.invoke(
        args=["sending", "pause", "--reason", "Prüfung \x1b[2J läuft — 検査\x07"]
    )
    assert escaped.exit_code == 0, escaped.output
    assert escaped.output == (
        "Paused subscription emails (digests and alerts): Prüfung [2J läuft — 検査\n"
    )
    assert "\x1b" not in runner.invoke(args=["sending", "status"]).output


def test_a_worker_concurrency_setting_out_of_range_is_one_line(app_with):
    result = app_with(WORKER_CONCURRENCY=0).test_cli_runner().invoke(args=["worker", "--burst"])
    assert result.exit_code == 1
    assert result.output == (
        "Error: ALERTSVC_WORKER_CONCURRENCY must be a whole number from 1 to 256, not 0\n"
    )


def test_concurrency_option_overrides_the_setting(app, database_url, tmp_path):
    queue_manage_link(app, "reader@example.com")
    log = tmp_path / "worker.log"
    env = alertsvc_env(database_url, tmp_path / "mail", WORKER_CONCURRENCY="0")
    process = start(["worker", "--burst", "--concurrency", "3"], env, log)
    try:
        assert exit_code(process, 120, log) == 0, output(log)
    finally:
        kill(process)
    assert "Worker stopped: 1 sent, 0 to retry, 0 failed, 0 suppressed, in 1 batch" in output(log)
