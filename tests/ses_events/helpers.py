"""A certificate authority of the tests' own, SNS messages signed as SNS signs them, and
SES notification bodies in the shapes SES sends (the SES developer guide's examples)."""

from __future__ import annotations

import base64
import json
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

TOPIC = "arn:aws:sns:eu-west-2:123456789012:alertsvc-ses-events"
OTHER_TOPIC = "arn:aws:sns:eu-west-2:123456789012:someone-elses-topic"
CERT_URL = "https://sns.eu-west-2.amazonaws.com/SimpleNotificationService-0123456789abcdef.pem"
SES_MESSAGE_ID = "0102018c1a2b3c4d-5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9-000000"


@dataclass(frozen=True)
class Signer:
    """A key and its certificate, issued by the tests' CA."""

    key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca() -> Signer:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name("alertsvc tests CA"))
        .issuer_name(_name("alertsvc tests CA"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Signer(key, certificate)


def issue(
    ca: Signer,
    common_name: str,
    *,
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
    ip: str | None = None,
) -> Signer:
    """A certificate from ``ca``: an SNS signing certificate, or a server's (with ``ip``)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid_from or now - timedelta(days=1))
        .not_valid_after(valid_until or now + timedelta(days=30))
    )
    if ip:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(IPv4Address(ip))]), critical=False
        )
    return Signer(key, builder.sign(ca.key, hashes.SHA256()))


def server_context(server: Signer, directory: Any) -> ssl.SSLContext:
    """An https server's TLS context presenting ``server``'s certificate."""
    cert_path = directory / "server.pem"
    key_path = directory / "server.key"
    cert_path.write_bytes(server.pem)
    key_path.write_bytes(
        server.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return context


def client_context(ca: Signer) -> ssl.SSLContext:
    """A client's TLS context trusting only the tests' CA."""
    return ssl.create_default_context(cadata=ca.pem.decode())


# The string to sign, written out here from the SNS developer guide rather than imported,
# so a mistake in alertsvc's copy fails the tests instead of agreeing with them.
NOTIFICATION_FIELDS = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
CONFIRMATION_FIELDS = [
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
]


def sign(fields: dict[str, str], signer: Signer, version: str = "1") -> dict[str, str]:
    """``fields`` with SignatureVersion and Signature as SNS adds them."""
    names = NOTIFICATION_FIELDS if fields["Type"] == "Notification" else CONFIRMATION_FIELDS
    text = "".join(f"{name}\n{fields[name]}\n" for name in names if name in fields)
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
    signature = signer.key.sign(text.encode(), padding.PKCS1v15(), algorithm)
    return {
        **fields,
        "SignatureVersion": version,
        "Signature": base64.b64encode(signature).decode(),
    }


def sns_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def notification(
    message: dict[str, Any] | str,
    *,
    message_id: str = "d1d2c3a4-0000-4000-8000-000000000001",
    topic: str = TOPIC,
    timestamp: datetime | None = None,
    cert_url: str = CERT_URL,
    subject: str | None = None,
) -> dict[str, str]:
    """An unsigned SNS Notification carrying ``message`` (an SES notification)."""
    fields = {
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": topic,
        "Message": message if isinstance(message, str) else json.dumps(message),
        "Timestamp": sns_time(timestamp or datetime.now(UTC)),
        "SigningCertURL": cert_url,
        "UnsubscribeURL": (
            "https://sns.eu-west-2.amazonaws.com/?Action=Unsubscribe"
            f"&SubscriptionArn={topic}:3f2a9c1e-0000-4000-8000-000000000000"
        ),
    }
    if subject is not None:
        fields["Subject"] = subject
    return fields


def confirmation(
    subscribe_url: str,
    *,
    message_type: str = "SubscriptionConfirmation",
    message_id: str = "c0c0c0c0-0000-4000-8000-000000000001",
    topic: str = TOPIC,
) -> dict[str, str]:
    token = "2336412f37fb687f5d51e6e2425ba1f30c1a2b3c4d5e6f"
    return {
        "Type": message_type,
        "MessageId": message_id,
        "Token": token,
        "TopicArn": topic,
        "Message": (
            f"You have chosen to subscribe to the topic {topic}.\n"
            "To confirm the subscription, visit the SubscribeURL included in this message."
        ),
        "SubscribeURL": subscribe_url,
        "Timestamp": sns_time(datetime.now(UTC)),
        "SigningCertURL": CERT_URL,
    }


def subscribe_url(topic: str = TOPIC) -> str:
    return (
        "https://sns.eu-west-2.amazonaws.com/?Action=ConfirmSubscription"
        f"&TopicArn={topic}&Token=2336412f37fb687f5d51e6e2425ba1f30c1a2b3c4d5e6f"
    )


def _mail(recipient: str, message_id: str) -> dict[str, Any]:
    return {
        "timestamp": "2026-11-30T09:00:00.012Z",
        "source": "Public Technology alerts <alerts@alerts.test>",
        "sourceArn": "arn:aws:ses:eu-west-2:123456789012:identity/alerts.test",
        "sourceIp": "192.0.2.10",
        "sendingAccountId": "123456789012",
        "messageId": message_id,
        "destination": [recipient],
        "headersTruncated": False,
        "headers": [
            {"name": "From", "value": "Public Technology alerts <alerts@alerts.test>"},
            {"name": "To", "value": recipient},
            {"name": "Subject", "value": "Your daily digest"},
        ],
        "commonHeaders": {
            "from": ["Public Technology alerts <alerts@alerts.test>"],
            "to": [recipient],
            "subject": "Your daily digest",
        },
    }


def ses_bounce(
    recipient: str,
    *,
    bounce_type: str = "Permanent",
    sub_type: str = "General",
    diagnostic: str = "smtp; 550 5.1.1 user unknown",
    timestamp: str = "2026-11-30T09:00:01.669Z",
    message_id: str = SES_MESSAGE_ID,
    event_publishing: bool = False,
) -> dict[str, Any]:
    return {
        ("eventType" if event_publishing else "notificationType"): "Bounce",
        "bounce": {
            "bounceType": bounce_type,
            "bounceSubType": sub_type,
            "bouncedRecipients": [
                {
                    "emailAddress": recipient,
                    "action": "failed",
                    "status": "5.1.1",
                    "diagnosticCode": diagnostic,
                }
            ],
            "timestamp": timestamp,
            "feedbackId": "0102018c1a2b3c4d-feedback-000000",
            "remoteMtaIp": "192.0.2.20",
            "reportingMTA": "dsn; a8-70.smtp-out.amazonses.com",
        },
        "mail": _mail(recipient, message_id),
    }


def ses_complaint(
    recipient: str, *, message_id: str = SES_MESSAGE_ID, event_publishing: bool = True
) -> dict[str, Any]:
    return {
        ("eventType" if event_publishing else "notificationType"): "Complaint",
        "complaint": {
            "userAgent": "ExampleCorp Feedback Loop (V0.01)",
            "complainedRecipients": [{"emailAddress": recipient}],
            "complaintFeedbackType": "abuse",
            "arrivalDate": "2026-11-30T09:05:00.000Z",
            "timestamp": "2026-11-30T09:05:01.000Z",
            "feedbackId": "0102018c1a2b3c4d-complaint-000000",
        },
        "mail": _mail(recipient, message_id),
    }


def ses_delivery(
    recipient: str, *, message_id: str = SES_MESSAGE_ID, event_publishing: bool = False
) -> dict[str, Any]:
    return {
        ("eventType" if event_publishing else "notificationType"): "Delivery",
        "mail": _mail(recipient, message_id),
        "delivery": {
            "timestamp": "2026-11-30T09:00:02.184Z",
            "processingTimeMillis": 546,
            "recipients": [recipient],
            "smtpResponse": "250 2.0.0 OK  1701334802 a1si123456wra.45 - gsmtp",
            "remoteMtaIp": "192.0.2.30",
            "reportingMTA": "a8-70.smtp-out.amazonses.com",
        },
    }


def ses_received(
    raw: bytes,
    *,
    recipients: list[str],
    encoding: str | None = None,
    topic: str = TOPIC,
) -> dict[str, Any]:
    """What a receipt rule's SNS action publishes for ``raw`` (the SES developer guide's
    "Notification of an SNS action"): the email itself in ``content``, as text or, with the
    action's ``BASE64`` encoding, base64."""
    action: dict[str, Any] = {"type": "SNS", "topicArn": topic}
    if encoding:
        action["encoding"] = encoding
    return {
        "notificationType": "Received",
        "receipt": {
            "timestamp": "2026-11-30T09:00:00.936Z",
            "processingTimeMillis": 222,
            "recipients": recipients,
            "spamVerdict": {"status": "PASS"},
            "virusVerdict": {"status": "PASS"},
            "spfVerdict": {"status": "PASS"},
            "dkimVerdict": {"status": "PASS"},
            "dmarcVerdict": {"status": "PASS"},
            "action": action,
        },
        "mail": {
            "timestamp": "2026-11-30T09:00:00.936Z",
            "source": "reader@example.com",
            "messageId": "d6iitobk75ur44p8kdnnp7g2n800",
            "destination": recipients,
            "headersTruncated": False,
            "headers": [],
            "commonHeaders": {"from": ["reader@example.com"], "to": recipients},
        },
        "content": (
            base64.b64encode(raw).decode()
            if encoding == "BASE64"
            else raw.decode("utf-8", "replace")
        ),
    }
