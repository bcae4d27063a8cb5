"""Subscription commands: ``alertsvc inbound-smtp``."""

from __future__ import annotations

import os
import signal
import socket
import threading

import click
from flask import current_app
from flask.cli import with_appcontext

from alertsvc.database import schema_problem
from alertsvc.subscriptions import inbound_smtp


@click.command("inbound-smtp")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    envvar="ALERTSVC_INBOUND_SMTP_HOST",
    help="Address to listen on (ALERTSVC_INBOUND_SMTP_HOST).",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=2525,
    show_default=True,
    envvar="ALERTSVC_INBOUND_SMTP_PORT",
    help="Port to listen on (ALERTSVC_INBOUND_SMTP_PORT).",
)
@with_appcontext
def inbound_smtp_command(host: str, port: int) -> None:
    """Receive mail to the unsubscribe address (List-Unsubscribe's mailto) and act on it.

    Runs until SIGTERM or Ctrl-C. Only that one address is accepted.
    """
    problem = schema_problem()
    if problem:
        raise click.ClickException(problem)
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    controller = inbound_smtp.listener(app, host, port)
    try:
        controller.start()
    except OSError as error:
        raise click.ClickException(f"cannot listen on {host}:{port}: {_reason(error)}") from error
    click.echo(f"Receiving mail for {app.config['UNSUBSCRIBE_MAILTO']} on {host}:{port}")
    try:
        while not stop.wait(1.0):
            pass
    finally:
        controller.stop()
    click.echo("Stopped receiving mail")


def _reason(error: OSError) -> str:
    """The system's words for a bind or name-lookup failure, without asyncio's wrapping."""
    if isinstance(error, socket.gaierror):
        return error.strerror or str(error)
    return os.strerror(error.errno) if error.errno else str(error)


COMMANDS = [inbound_smtp_command]
