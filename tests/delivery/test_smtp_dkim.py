"""DKIM signatures on mail sent through SMTP: sent through a real aiosmtpd server, verified with
dkimpy against the test key's DNS record; start-up refuses settings that cannot sign."""

from __future__ import annotations

import base64
import re
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask import Flask

from alertsvc.config import ConfigurationError
from alertsvc.delivery.smtp import SmtpTransport
from alertsvc.delivery.transports import make_transport
from alertsvc.models import utcnow
from tests.delivery import test_smtp_transport
from tests.delivery.test_smtp_transport import Inbox, queue_subscription_email, send
from tests.factories import queue_manage_link

# The SMTP transport tests' fixtures: an aiosmtpd server per test, a one-thread pool.
smtp_server = test_smtp_transport.smtp_server
pool = test_smtp_transport.pool
SELECTOR, DOMAIN = "alerts2026", "alerts.test"


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: Any, form: serialization.PrivateFormat = serialization.PrivateFormat.PKCS8) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, form, serialization.NoEncryption())


@pytest.fixture
def key_file(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> Path:
    """The key as ``openssl genrsa`` (OpenSSL 3) writes it: PKCS#8 PEM."""
    path = tmp_path / "dkim.pem"
    path.write_bytes(pem(rsa_key))
    return path


def dns_record(key: rsa.RSAPrivateKey) -> bytes:
    """The TXT record an operator publishes at ``selector._domainkey.domain``."""
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def verifies(raw: bytes, key: rsa.RSAPrivateKey) -> bool:
    """dkimpy's verdict, with the DNS answered from the test key for our name only."""
    looked_up: list[bytes] = []

    def dnsfunc(name: bytes, timeout: float = 5) -> bytes | None:
        looked_up.append(name)
        return dns_record(key) if name == f"{SELECTOR}._domainkey.{DOMAIN}.".encode() else None

    verdict = dkim.verify(raw, dnsfunc=dnsfunc)
    assert looked_up == [f"{SELECTOR}._domainkey.{DOMAIN}.".encode()]
    return verdict


def signed_headers(raw: bytes) -> list[str]:
    """The h= tag of the message's DKIM-Signature, in order."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    unfolded = re.sub(r"\r\n[ \t]+", " ", head)
    [signature] = [line for line in unfolded.split("\r\n") if line.startswith("DKIM-Signature:")]
    tags = dict(
        part.strip().split("=", 1) for part in signature.split(":", 1)[1].split(";") if "=" in part
    )
    assert (tags["a"], tags["c"], tags["d"], tags["s"]) == (
        "rsa-sha256",
        "relaxed/relaxed",
        DOMAIN,
        SELECTOR,
    )
    return [name.strip() for name in tags["h"].split(":")]


def dkim_settings(key_file: Path, **settings: Any) -> dict[str, Any]:
    return {
        "MAIL_TRANSPORT": "smtp",
        "SMTP_URL": "smtp://127.0.0.1:2525",
        "DKIM_SELECTOR": SELECTOR,
        "DKIM_DOMAIN": DOMAIN,
        "DKIM_PRIVATE_KEY_FILE": str(key_file),
        **settings,
    }


def signing_app(app_with, port: int, key_file: Path, **settings: Any) -> Flask:
    return app_with(
        **dkim_settings(
            key_file, SMTP_URL=f"smtp://127.0.0.1:{port}", SMTP_TIMEOUT_SECONDS=5, **settings
        )
    )


def test_each_message_is_signed_and_verifies_against_the_published_key(
    app_with, smtp_server, pool, key_file, rsa_key
):
    inbox = Inbox()
    server = smtp_server(inbox)
    app = signing_app(app_with, server.port, key_file)
    queue_subscription_email(app)
    transport = make_transport(app, 1)
    assert send(app, transport, pool).sent == 1
    queue_manage_link(app, "second@example.com")
    assert send(app, transport, pool).sent == 1
    transport.close()

    subscription, manage = inbox.received
    assert subscription.raw.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;")
    assert verifies(subscription.raw, rsa_key)
    assert signed_headers(subscription.raw) == [
        "from",
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "list-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
        "auto-submitted",
        "feedback-id",
    ]
    # A transactional email has no List-Unsubscribe-Post, so none is signed.
    assert verifies(manage.raw, rsa_key)
    assert "list-unsubscribe-post" not in signed_headers(manage.raw)
    assert {"from", "subject", "date", "message-id"} <= set(signed_headers(manage.raw))


def test_a_changed_subject_or_body_or_key_fails_verification(
    app_with, smtp_server, pool, key_file, rsa_key
):
    inbox = Inbox()
    server = smtp_server(inbox)
    app = signing_app(app_with, server.port, key_file)
    queue_subscription_email(app)
    assert send(app, make_transport(app, 1), pool).sent == 1
    [received] = inbox.received
    raw = received.raw
    assert verifies(raw, rsa_key)

    subject = b"Subject: You're subscribed: Data"
    assert subject in raw
    assert not verifies(raw.replace(subject, b"Subject: You're subscribed: Dat4"), rsa_key)
    assert not verifies(raw.replace(b"Data", b"D4ta"), rsa_key)
    # A second From added on the way fails too.
    added = b"From: Bank <security@bank.test>\r\n" + raw
    assert not verifies(added, rsa_key)
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert not verifies(raw, other_key)


def test_every_deliverability_header_present_is_signed(app_with, smtp_server, key_file, rsa_key):
    """List-Id, Reply-To, Auto-Submitted and Feedback-ID are signed when a message has them;
    a message with LF line ends (as ``EmailMessage`` writes) is signed as it travels."""
    inbox = Inbox()
    server = smtp_server(inbox)
    app = signing_app(app_with, server.port, key_file)
    message = EmailMessage()
    message["From"] = f"Public Technology alerts <alerts@{DOMAIN}>"
    message["To"] = "reader@example.com"
    message["Reply-To"] = "editor@alerts.test"
    message["Subject"] = "Daily digest: Data, Newyddion, Données"
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = make_msgid(domain=DOMAIN)
    message["List-Id"] = f"Data <data.{DOMAIN}>"
    message["List-Unsubscribe"] = "<https://alerts.test/unsubscribe/x>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["Auto-Submitted"] = "auto-generated"
    message["Feedback-ID"] = "daily:data:alertsvc"
    message.set_content("Hello\n")
    transport = SmtpTransport.from_config(app.config)
    transport.send(message)
    transport.close()

    [received] = inbox.received
    assert verifies(received.raw, rsa_key)
    assert set(signed_headers(received.raw)) == {
        "from",
        "to",
        "reply-to",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "list-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
        "auto-submitted",
        "feedback-id",
    }


def test_a_parent_of_the_sender_domain_signs_and_without_settings_nothing_is_signed(
    app_with, smtp_server, pool, key_file, rsa_key
):
    inbox = Inbox()
    server = smtp_server(inbox)
    app = signing_app(
        app_with, server.port, key_file, MAIL_FROM=f"Alerts <news@mail.{DOMAIN.upper()}>"
    )
    queue_manage_link(app)
    assert send(app, make_transport(app, 1), pool).sent == 1
    unsigned = app_with(
        MAIL_TRANSPORT="smtp", SMTP_URL=f"smtp://127.0.0.1:{server.port}", SMTP_TIMEOUT_SECONDS=5
    )
    queue_manage_link(unsigned, "other@example.com")
    assert send(unsigned, make_transport(unsigned, 1), pool).sent == 1

    signed, plain = inbox.received
    assert verifies(signed.raw, rsa_key)
    assert b"DKIM-Signature" not in plain.raw


KEY_SETTING = "ALERTSVC_DKIM_PRIVATE_KEY_FILE"
GENERATE = "generate one with: openssl genrsa -out dkim.pem 2048"


def refusal(app_with, **settings: Any) -> str:
    with pytest.raises(ConfigurationError) as refused:
        app_with(**settings)
    message = str(refused.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("left_out", "missing"),
    [
        (("DKIM_SELECTOR",), "ALERTSVC_DKIM_SELECTOR"),
        (("DKIM_DOMAIN", "DKIM_PRIVATE_KEY_FILE"), "ALERTSVC_DKIM_DOMAIN and " + KEY_SETTING),
        (("DKIM_SELECTOR", "DKIM_DOMAIN"), "ALERTSVC_DKIM_SELECTOR and ALERTSVC_DKIM_DOMAIN"),
    ],
)
def test_some_but_not_all_settings_are_refused(app_with, key_file, left_out, missing):
    settings = dkim_settings(key_file)
    for name in left_out:
        settings[name] = None
    assert refusal(app_with, **settings) == (
        f"{missing} must be set too: ALERTSVC_DKIM_SELECTOR, ALERTSVC_DKIM_DOMAIN and "
        f"{KEY_SETTING} sign mail together; set all three, or none to send unsigned"
    )


def test_other_transports_are_refused(app_with, key_file):
    ses = dkim_settings(key_file, MAIL_TRANSPORT="ses", SES_REGION="eu-west-2")
    assert refusal(app_with, **ses) == (
        "ALERTSVC_DKIM_* signs mail only with ALERTSVC_MAIL_TRANSPORT=smtp, not 'ses': SES "
        "signs with Easy DKIM (see the README); unset ALERTSVC_DKIM_*"
    )
    assert refusal(app_with, **dkim_settings(key_file, MAIL_TRANSPORT="file")) == (
        "ALERTSVC_DKIM_* signs mail only with ALERTSVC_MAIL_TRANSPORT=smtp, not 'file': "
        "unset ALERTSVC_DKIM_* or send with smtp"
    )


def test_a_domain_that_does_not_align_with_the_sender_is_refused(app_with, key_file):
    assert refusal(app_with, **dkim_settings(key_file, DKIM_DOMAIN="mail.alerts.test")) == (
        "ALERTSVC_DKIM_DOMAIN 'mail.alerts.test' is neither the ALERTSVC_MAIL_FROM domain "
        "'alerts.test' nor a parent of it, so DMARC would not count the signature; set it "
        "to 'alerts.test' or a parent domain"
    )
    # "alerts.test" ends with the letters "rts.test", but that is not a parent domain.
    assert refusal(app_with, **dkim_settings(key_file, DKIM_DOMAIN="rts.test")).startswith(
        "ALERTSVC_DKIM_DOMAIN 'rts.test' is neither"
    )
    assert refusal(app_with, **dkim_settings(key_file, DKIM_DOMAIN="test")) == (
        "ALERTSVC_DKIM_DOMAIN must be a DNS name such as example.org, not 'test'"
    )
    assert refusal(app_with, **dkim_settings(key_file, DKIM_SELECTOR="alerts 2026")) == (
        "ALERTSVC_DKIM_SELECTOR must be a DNS name such as alerts2026, not 'alerts 2026'"
    )


def test_a_key_that_cannot_sign_is_refused_in_one_line_without_its_contents(
    app_with, tmp_path, rsa_key
):
    missing = tmp_path / "missing.pem"
    assert refusal(app_with, **dkim_settings(missing)) == (
        f"{KEY_SETTING}: cannot read '{missing}' (No such file or directory)"
    )
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    assert refusal(app_with, **dkim_settings(garbage)) == (
        f"{KEY_SETTING}: '{garbage}' is not an unencrypted PEM private key; {GENERATE}"
    )
    encrypted = tmp_path / "encrypted.pem"
    encrypted.write_bytes(
        rsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    assert refusal(app_with, **dkim_settings(encrypted)) == (
        f"{KEY_SETTING}: '{encrypted}' is not an unencrypted PEM private key; {GENERATE}"
    )
    elliptic = tmp_path / "ec.pem"
    elliptic.write_bytes(pem(ec.generate_private_key(ec.SECP256R1())))
    message = refusal(app_with, **dkim_settings(elliptic))
    assert message.startswith(f"{KEY_SETTING}: '{elliptic}' holds a ")
    assert message.endswith(f"key; alertsvc signs rsa-sha256, so use an RSA key: {GENERATE}")
    # A PKCS#1 key ("BEGIN RSA PRIVATE KEY", older openssl) is accepted as well.
    traditional = tmp_path / "pkcs1.pem"
    traditional.write_bytes(pem(rsa_key, serialization.PrivateFormat.TraditionalOpenSSL))
    app_with(**dkim_settings(traditional))


def test_the_signer_does_not_show_the_key(app_with, key_file):
    app = app_with(**dkim_settings(key_file))
    transport = SmtpTransport.from_config(app.config)
    assert repr(transport.signer) == f"DkimSigner(s={SELECTOR}, d={DOMAIN})"
