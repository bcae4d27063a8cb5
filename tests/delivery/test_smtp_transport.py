"""The SMTP transport against real aiosmtpd servers started by each test: plain, STARTTLS and
implicit TLS with the test's own CA, AUTH, a server that drops the connection, refusals."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import re
import socket
import ssl
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from flask import Flask

from alertsvc.database import transaction
from alertsvc.delivery.outbox import queue_email
from alertsvc.delivery.transports import make_transport
from alertsvc.delivery.worker import BatchResult, Worker, send_outbox_batch
from alertsvc.extensions import db
from alertsvc.models import OutboxStatus, utcnow
from tests.delivery.helpers import outbox_row
from tests.factories import create_subscriber, create_topic, queue_manage_link
from tests.mail import links, text_part

SENDER = "alerts@alerts.test"
USER, PASSWORD = "alerts@pub.test", "p@ss:w/rd%"
# The same, percent-encoded as a URL carries them.
USER_IN_URL, PASSWORD_IN_URL = "alerts%40pub.test", "p%40ss%3Aw%2Frd%25"


# aiosmtpd warns about AUTH without STARTTLS; the smtps servers here are TLS throughout.
IMPLICIT_TLS_AUTH = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes
    peer: Any
    encrypted: bool


@dataclass
class Inbox:
    """An aiosmtpd handler that keeps what it accepted and refuses what a test tells it to.

    ``rcpt_replies`` answer RCPT TO for chosen addresses; ``drop_data`` drops the connection
    instead of answering the DATA of the messages with those numbers (counted from 1, over
    every DATA this server was sent).
    """

    rcpt_replies: dict[str, str] = field(default_factory=dict)
    drop_data: set[int] = field(default_factory=set)
    received: list[Received] = field(default_factory=list)
    mail_commands: int = 0
    mail_peers: list[Any] = field(default_factory=list)
    data_commands: int = 0
    logins: list[tuple[bytes, bytes]] = field(default_factory=list)
    quits: int = 0

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        self.mail_commands += 1
        self.mail_peers.append(session.peer)
        envelope.mail_from = address
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        self.data_commands += 1
        if self.data_commands in self.drop_data:
            server.transport.close()
            return "421 4.4.2 connection dropped"
        raw = envelope.original_content
        self.received.append(
            Received(
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                message=email.message_from_bytes(raw, policy=email.policy.default),
                raw=raw,
                peer=session.peer,
                encrypted=server.transport.get_extra_info("ssl_object") is not None,
            )
        )
        return f"250 2.0.0 Ok: queued as Q{len(self.received)}X"

    async def handle_QUIT(self, server, session, envelope):
        self.quits += 1
        return "221 2.0.0 Bye"

    def authenticator(self, server, session, envelope, mechanism, auth_data):
        self.logins.append((auth_data.login, auth_data.password))
        ok = (auth_data.login, auth_data.password) == (USER.encode(), PASSWORD.encode())
        # handled=False: aiosmtpd answers a failure with 535 itself.
        return AuthResult(success=ok, handled=ok)


@dataclass
class Certificates:
    ca_file: Path
    server: ssl.SSLContext


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """A CA of the test's own and a certificate it signed for 127.0.0.1 and localhost."""
    directory = tmp_path_factory.mktemp("tls")
    now = dt.datetime.now(dt.UTC)

    def name(common_name: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(name("alertsvc test CA"))
        .issuer_name(name("alertsvc test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(name("localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file, key_file = directory / "server.pem", directory / "server.key"
    cert_file.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    return Certificates(ca_file, server)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp_server() -> Iterator[Callable[..., Controller]]:
    """Start an aiosmtpd server on a free port (stopped after the test)."""
    started: list[Controller] = []

    def start(inbox: Inbox, port: int | None = None, **smtp_options: Any) -> Controller:
        controller = Controller(
            inbox, hostname="127.0.0.1", port=port or free_port(), **smtp_options
        )
        controller.start()
        started.append(controller)
        return controller

    yield start
    for controller in started:
        if controller._thread is not None:  # still running
            controller.stop()


def smtp_app(app_with, url: str, **settings: Any) -> Flask:
    return app_with(MAIL_TRANSPORT="smtp", SMTP_URL=url, SMTP_TIMEOUT_SECONDS=5, **settings)


def queue_subscription_email(app: Flask, address: str = "reader@example.com") -> int:
    topic = create_topic(app)
    subscriber = create_subscriber(app, address, {topic: "daily"})
    with app.app_context(), transaction():
        row = queue_email(
            template="subscribed",
            to_address=address,
            subject="You're subscribed: Data",
            context={"topic_names": ["Data"], "frequency": "daily"},
            subscriber_id=subscriber,
            unsubscribe_topic_ids=[topic],
        )
        db.session.flush()
        return row.id


def send(app: Flask, transport: Any, pool: ThreadPoolExecutor) -> BatchResult:
    """One worker batch on ``pool`` (one thread: its connection is reused batch to batch)."""
    with app.app_context():
        result = send_outbox_batch(transport, pool)
        db.session.remove()
    return result


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(1) as executor:
        yield executor


def test_plain_smtp_delivers_the_message_as_built_and_reuses_the_connection(
    app_with, smtp_server, pool
):
    inbox = Inbox()
    server = smtp_server(inbox)
    app = smtp_app(app_with, f"smtp://127.0.0.1:{server.port}")
    row_id = queue_subscription_email(app)
    transport = make_transport(app, 1)

    assert send(app, transport, pool).sent == 1
    second = queue_manage_link(app, "second@example.com")
    assert send(app, transport, pool).sent == 1
    transport.close()

    first, then = inbox.received
    assert (first.mail_from, first.rcpt_tos) == (SENDER, ["reader@example.com"])
    message = first.message
    row = outbox_row(app, row_id)
    assert (row.status, row.provider_message_id) == (OutboxStatus.SENT, "Q1X")
    assert message["To"] == "reader@example.com"
    assert message["From"] == f"Public Technology alerts <{SENDER}>"
    assert message["Subject"] == "You're subscribed: Data"
    assert message["Message-ID"] == row.message_id
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    https_link, mailto_link = (part.strip(" <>") for part in message["List-Unsubscribe"].split(","))
    assert https_link.startswith("https://alerts.test/unsubscribe/")
    assert https_link in links(message)
    unfolded = re.sub(r"\r\n[ \t]+", " ", first.raw.split(b"\r\n\r\n", 1)[0].decode("ascii"))
    assert f"\r\nList-Unsubscribe: <{https_link}>, <{mailto_link}>\r\n" in unfolded
    assert "Data" in text_part(message)
    assert not first.encrypted

    assert (then.rcpt_tos, then.message["Subject"]) == (
        ["second@example.com"],
        "Manage your email alerts",
    )
    assert outbox_row(app, second).provider_message_id == "Q2X"
    assert then.peer == first.peer, "the thread's connection was reused"


def test_without_a_queue_id_in_the_reply_the_message_id_is_kept(app_with, smtp_server, pool):
    class PlainReply(Inbox):
        async def handle_DATA(self, server, session, envelope):
            await super().handle_DATA(server, session, envelope)
            return "250 Message accepted for delivery"

    server = smtp_server(PlainReply())
    app = smtp_app(app_with, f"smtp://127.0.0.1:{server.port}")
    row_id = queue_manage_link(app)

    assert send(app, make_transport(app, 1), pool).sent == 1

    row = outbox_row(app, row_id)
    assert row.provider_message_id == row.message_id


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_starttls_with_auth_encrypts_before_logging_in(
    app_with, smtp_server, pool, certificates, host
):
    inbox = Inbox()
    server = smtp_server(
        inbox,
        tls_context=certificates.server,
        require_starttls=True,
        authenticator=inbox.authenticator,
        auth_required=True,
    )
    app = smtp_app(
        app_with,
        f"smtp+starttls://{USER_IN_URL}:{PASSWORD_IN_URL}@{host}:{server.port}",
        SMTP_CA_FILE=str(certificates.ca_file),
    )
    row_id = queue_subscription_email(app)

    assert send(app, make_transport(app, 1), pool).sent == 1

    [received] = inbox.received
    assert received.encrypted
    assert inbox.logins == [(USER.encode(), PASSWORD.encode())], "percent-decoded"
    assert received.rcpt_tos == ["reader@example.com"]
    assert received.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert outbox_row(app, row_id).status == OutboxStatus.SENT


@IMPLICIT_TLS_AUTH
def test_smtps_is_tls_from_the_first_byte(app_with, smtp_server, pool, certificates):
    inbox = Inbox()
    server = smtp_server(
        inbox,
        ssl_context=certificates.server,
        authenticator=inbox.authenticator,
        auth_required=True,
        # aiosmtpd counts only STARTTLS as TLS; this whole connection is TLS.
        auth_require_tls=False,
    )
    app = smtp_app(
        app_with,
        f"smtps://{USER_IN_URL}:{PASSWORD_IN_URL}@127.0.0.1:{server.port}",
        SMTP_CA_FILE=str(certificates.ca_file),
    )
    row_id = queue_manage_link(app)

    assert send(app, make_transport(app, 1), pool).sent == 1

    [received] = inbox.received
    assert received.encrypted
    assert inbox.logins == [(USER.encode(), PASSWORD.encode())]
    assert outbox_row(app, row_id).status == OutboxStatus.SENT


def test_a_certificate_from_an_unknown_ca_is_refused(app_with, smtp_server, pool, certificates):
    inbox = Inbox()
    server = smtp_server(inbox, tls_context=certificates.server, require_starttls=True)
    # No SMTP_CA_FILE: the system's CA store does not know the test's CA.
    app = smtp_app(app_with, f"smtp+starttls://127.0.0.1:{server.port}")
    row_id = queue_manage_link(app)

    assert send(app, make_transport(app, 1), pool).retried == 1

    row = outbox_row(app, row_id)
    assert row.status == OutboxStatus.QUEUED
    assert "CERTIFICATE_VERIFY_FAILED" in row.last_error
    assert inbox.mail_commands == 0


def test_starttls_url_refuses_a_server_without_starttls(app_with, smtp_server, pool):
    inbox = Inbox()
    server = smtp_server(inbox)
    app = smtp_app(
        app_with, f"smtp+starttls://{USER_IN_URL}:{PASSWORD_IN_URL}@127.0.0.1:{server.port}"
    )
    row_id = queue_manage_link(app)

    result = send(app, make_transport(app, 1), pool)

    assert result.retried == 1, "kept queued for when the server is fixed"
    row = outbox_row(app, row_id)
    assert row.status == OutboxStatus.QUEUED
    assert row.last_error == (
        f"SMTP SMTPNotSupportedError: 127.0.0.1:{server.port} does not offer STARTTLS, "
        "which smtp+starttls:// requires; nothing was sent"
    )
    assert (inbox.mail_commands, inbox.logins, inbox.received) == (0, [], []), (
        "nothing said in clear"
    )


@IMPLICIT_TLS_AUTH
def test_a_wrong_password_keeps_the_mail_queued(app_with, smtp_server, pool, certificates):
    inbox = Inbox()
    server = smtp_server(
        inbox,
        ssl_context=certificates.server,
        authenticator=inbox.authenticator,
        auth_required=True,
        # aiosmtpd counts only STARTTLS as TLS; this whole connection is TLS.
        auth_require_tls=False,
    )
    app = smtp_app(
        app_with,
        f"smtps://{USER_IN_URL}:wrong@127.0.0.1:{server.port}",
        SMTP_CA_FILE=str(certificates.ca_file),
    )
    row_id = queue_manage_link(app)

    assert send(app, make_transport(app, 1), pool).retried == 1

    row = outbox_row(app, row_id)
    assert row.status == OutboxStatus.QUEUED
    assert row.last_error.startswith("SMTP 535: authentication failed: ")
    assert inbox.received == []


def test_a_server_restarted_between_sends_is_reconnected_to(app_with, smtp_server, pool):
    inbox = Inbox()
    server = smtp_server(inbox)
    app = smtp_app(app_with, f"smtp://127.0.0.1:{server.port}")
    transport = make_transport(app, 1)
    queue_manage_link(app, "first@example.com")
    assert send(app, transport, pool).sent == 1

    server.stop()  # closes the connection the transport keeps
    restarted = smtp_server(inbox, port=server.port)
    row_id = queue_manage_link(app, "second@example.com")
    result = send(app, transport, pool)

    assert (result.sent, result.retried, result.failed) == (1, 0, 0)
    assert [received.rcpt_tos for received in inbox.received] == [
        ["first@example.com"],
        ["second@example.com"],
    ]
    assert inbox.received[0].peer != inbox.received[1].peer, "a new connection"
    row = outbox_row(app, row_id)
    assert (row.status, row.attempts) == (OutboxStatus.SENT, 1)
    restarted.stop()


def test_a_connection_dropped_mid_message_is_replaced_and_the_message_sent_once(
    app_with, smtp_server, pool
):
    inbox = Inbox(drop_data={2})
    server = smtp_server(inbox)
    app = smtp_app(app_with, f"smtp://127.0.0.1:{server.port}")
    transport = make_transport(app, 1)
    queue_manage_link(app, "first@example.com")
    assert send(app, transport, pool).sent == 1
    row_id = queue_manage_link(app, "second@example.com")

    result = send(app, transport, pool)

    assert (result.sent, result.retried, result.failed) == (1, 0, 0)
    assert inbox.data_commands == 3, "the dropped message was sent again on a new connection"
    assert [received.rcpt_tos for received in inbox.received] == [
        ["first@example.com"],
        ["second@example.com"],
    ]
    row = outbox_row(app, row_id)
    assert (row.status, row.attempts, row.provider_message_id) == (OutboxStatus.SENT, 1, "Q2X")


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        ("550 5.1.1 <gone@example.com>: Recipient address rejected", OutboxStatus.FAILED),
        ("553 5.1.3 Bad recipient address syntax", OutboxStatus.FAILED),
        ("554 5.7.1 Relay access denied", OutboxStatus.FAILED),
        ("451 4.7.1 Greylisted, try again later", OutboxStatus.QUEUED),
        ("452 4.2.2 Mailbox full", OutboxStatus.QUEUED),
        ("450 4.2.0 Mailbox busy", OutboxStatus.QUEUED),
    ],
)
def test_the_servers_reply_decides_fail_or_retry(app_with, smtp_server, pool, reply, status):
    inbox = Inbox(rcpt_replies={"gone@example.com": reply})
    server = smtp_server(inbox)
    app = smtp_app(app_with, f"smtp://127.0.0.1:{server.port}")
    refused = queue_manage_link(app, "gone@example.com")
    fine = queue_manage_link(app, "fine@example.com")
    before = utcnow()

    send(app, make_transport(app, 1), pool)

    row = outbox_row(app, refused)
    assert (row.status, row.attempts) == (status, 1)
    code, text = reply.split(" ", 1)
    assert row.last_error == f"SMTP {code}: {text}"
    if status == OutboxStatus.QUEUED:
        assert row.next_attempt_at > before
    assert outbox_row(app, fine).status == OutboxStatus.SENT
    assert len(inbox.mail_peers) == 2
    assert len(set(inbox.mail_peers)) == 1, "the refusal ended the transaction, not the connection"
    assert [received.rcpt_tos for received in inbox.received] == [["fine@example.com"]]


def test_a_server_that_is_not_there_is_worth_retrying(app_with, pool):
    app = smtp_app(app_with, f"smtp://127.0.0.1:{free_port()}")
    row_id = queue_manage_link(app)

    assert send(app, make_transport(app, 1), pool).retried == 1

    row = outbox_row(app, row_id)
    assert row.status == OutboxStatus.QUEUED
    assert row.last_error.startswith("SMTP ConnectionRefusedError: ")


def test_the_worker_says_quit_on_its_connections_when_it_stops(app_with, smtp_server):
    inbox = Inbox()
    server = smtp_server(inbox)
    app = smtp_app(app_with, f"smtp://127.0.0.1:{server.port}", WORKER_CONCURRENCY=1)
    queue_manage_link(app, "first@example.com")
    queue_manage_link(app, "second@example.com")

    totals = Worker(app, burst=True).run()

    assert totals.sent == 2
    assert len({received.peer for received in inbox.received}) == 1
    assert inbox.quits == 1
