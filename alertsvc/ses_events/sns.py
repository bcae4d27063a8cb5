"""Believing an Amazon SNS message: the envelope's shape, then its signature.

No maintained Python package verifies SNS signatures well, so the check is written here on
``cryptography``, following "Verifying the signatures of Amazon SNS messages" in the SNS
developer guide:

- ``SignatureVersion`` "1" is SHA1withRSA, "2" SHA256withRSA (PKCS#1 v1.5), over the
  string to sign: for each field the type names, in byte order, ``Name\\nValue\\n``.
- ``SigningCertURL`` must match ``CERT_URL`` in full. A looser host check (a suffix, a
  ``startswith``) let any S3 bucket or lookalike domain sign messages in a well-known Django
  library; here the host, the path and the file name are all fixed.
- The certificate is fetched over https only (no redirects, a timeout, a size cap), must be
  a valid X.509 certificate inside its validity period, and is cached per URL in-process.
- The topic must be one we subscribed (``SNS_TOPIC_ARNS``) and the message recent.

Cheap checks run before the certificate is fetched, so a stranger's posts cost no request.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from flask import current_app

CERT_URL = re.compile(
    r"^https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/SimpleNotificationService-[a-f0-9]+\.pem$"
)
# Where SNS sends subscription confirmations from: the same hosts, any path.
SNS_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
MAX_CLOCK_SKEW = timedelta(minutes=5)
CERT_CACHE_SIZE = 32
# SNS's MessageIds are UUIDs; ``sns_messages.message_id`` holds 100 characters.
MAX_MESSAGE_ID_LENGTH = 100

NOTIFICATION = "Notification"
SUBSCRIPTION_CONFIRMATION = "SubscriptionConfirmation"
UNSUBSCRIBE_CONFIRMATION = "UnsubscribeConfirmation"
# The fields signed, per message type, in byte order (Subject only when present).
SIGNED_FIELDS = {
    NOTIFICATION: ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    SUBSCRIPTION_CONFIRMATION: (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
SIGNED_FIELDS[UNSUBSCRIBE_CONFIRMATION] = SIGNED_FIELDS[SUBSCRIPTION_CONFIRMATION]
OPTIONAL_FIELDS = frozenset({"Subject"})
ENVELOPE_FIELDS = ("Signature", "SignatureVersion", "SigningCertURL")
HASHES: dict[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}


class MalformedMessage(ValueError):
    """Not an SNS message at all (bad JSON, a missing field): answered 400."""


class Refused(Exception):
    """An SNS message that failed verification: answered 403. The text says why, for the log."""


@dataclass(frozen=True)
class SnsEnvelope:
    """The fields of a parsed SNS message that alertsvc acts on."""

    type: str
    message_id: str
    topic_arn: str
    message: str
    timestamp: datetime
    subscribe_url: str | None
    fields: dict[str, str]


def parse_envelope(body: bytes) -> SnsEnvelope:
    """The SNS message in ``body`` (JSON, whatever the content type), or ``MalformedMessage``.

    SNS sends a flat JSON object of strings; anything nested or not text is not SNS's.
    """
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as error:
        raise MalformedMessage("the body is not JSON") from error
    if not isinstance(data, dict):
        raise MalformedMessage("the body is not a JSON object")
    message_type = data.get("Type")
    if not isinstance(message_type, str) or message_type not in SIGNED_FIELDS:
        raise MalformedMessage(f"unknown message Type {str(message_type)[:64]!r}")
    required = [
        f for f in SIGNED_FIELDS[message_type] + ENVELOPE_FIELDS if f not in OPTIONAL_FIELDS
    ]
    missing = [name for name in required if not isinstance(data.get(name), str)]
    if missing:
        raise MalformedMessage(f"missing or not text: {', '.join(missing)}")
    if "Subject" in data and not isinstance(data["Subject"], str):
        raise MalformedMessage("Subject is not text")
    if len(data["MessageId"]) > MAX_MESSAGE_ID_LENGTH:
        raise MalformedMessage(f"MessageId is longer than {MAX_MESSAGE_ID_LENGTH} characters")
    timestamp = _parse_timestamp(data["Timestamp"])
    if timestamp is None:
        raise MalformedMessage("Timestamp is not an ISO 8601 time")
    return SnsEnvelope(
        type=message_type,
        message_id=data["MessageId"],
        topic_arn=data["TopicArn"],
        message=data["Message"],
        timestamp=timestamp,
        subscribe_url=data.get("SubscribeURL"),
        fields={name: value for name, value in data.items() if isinstance(value, str)},
    )


def _parse_timestamp(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def string_to_sign(envelope: SnsEnvelope) -> bytes:
    """``Name\\nValue\\n`` for each signed field of the message's type, in byte order."""
    fields = envelope.fields
    return "".join(
        f"{name}\n{fields[name]}\n"
        for name in SIGNED_FIELDS[envelope.type]
        if name in fields or name not in OPTIONAL_FIELDS
    ).encode("utf-8")


def verify(
    envelope: SnsEnvelope,
    *,
    topic_arns: Sequence[str],
    max_age: timedelta,
    now: datetime,
) -> None:
    """Raise ``Refused`` unless SNS signed this message for one of our topics, recently."""
    fields = envelope.fields
    algorithm = HASHES.get(fields["SignatureVersion"])
    if algorithm is None:
        raise Refused(f"unknown SignatureVersion {fields['SignatureVersion'][:16]!r}")
    cert_url = fields["SigningCertURL"]
    if not CERT_URL.fullmatch(cert_url):
        raise Refused(f"SigningCertURL is not an SNS certificate URL: {cert_url[:200]!r}")
    if envelope.topic_arn not in topic_arns:
        raise Refused(f"TopicArn {envelope.topic_arn[:256]!r} is not in ALERTSVC_SNS_TOPIC_ARNS")
    if envelope.timestamp < now - max_age:
        raise Refused(f"Timestamp {fields['Timestamp']} is older than {max_age}")
    if envelope.timestamp > now + MAX_CLOCK_SKEW:
        raise Refused(f"Timestamp {fields['Timestamp']} is in the future")
    try:
        signature = base64.b64decode(fields["Signature"], validate=True)
    except binascii.Error as error:
        raise Refused("Signature is not base64") from error
    public_key = signing_certificate(cert_url, now).public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise Refused("the signing certificate's key is not RSA")
    try:
        public_key.verify(signature, string_to_sign(envelope), padding.PKCS1v15(), algorithm())
    except InvalidSignature as error:
        raise Refused("the signature does not match the message") from error


class CertificateCache:
    """Signing certificates by URL, at most ``size`` of them, safe across threads.

    SNS signs with a handful of certificates per region; the bound only stops a flood of
    distinct (valid-looking) URLs from growing the process.
    """

    def __init__(self, size: int = CERT_CACHE_SIZE) -> None:
        self.size = size
        self._certificates: OrderedDict[str, x509.Certificate] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, url: str) -> x509.Certificate | None:
        with self._lock:
            return self._certificates.get(url)

    def put(self, url: str, certificate: x509.Certificate) -> None:
        with self._lock:
            self._certificates[url] = certificate
            self._certificates.move_to_end(url)
            while len(self._certificates) > self.size:
                self._certificates.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._certificates.clear()


certificates = CertificateCache()


def signing_certificate(url: str, now: datetime) -> x509.Certificate:
    """The certificate at ``url`` (already checked against ``CERT_URL``), cached, in date."""
    certificate = certificates.get(url)
    if certificate is None:
        config = current_app.config
        pem = fetch(
            url,
            timeout=float(config["SNS_CERT_TIMEOUT_SECONDS"]),
            max_bytes=int(config["SNS_CERT_MAX_BYTES"]),
        )
        try:
            certificate = x509.load_pem_x509_certificate(pem)
        except ValueError as error:
            raise Refused(f"{url} is not a PEM X.509 certificate") from error
        certificates.put(url, certificate)
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise Refused(f"the certificate at {url} is not valid at {now:%Y-%m-%d %H:%M} UTC")
    return certificate


@dataclass(frozen=True)
class _TestRoute:
    origin: str
    verify: ssl.SSLContext


_test_route: _TestRoute | None = None


@contextmanager
def route_sns_to(origin: str, verify: ssl.SSLContext) -> Iterator[None]:
    """For tests: requests to SNS's hosts go to ``origin`` (``https://127.0.0.1:port``).

    Like a hosts-file entry: the URL in the message is still checked as it stands, and only
    where the request is sent changes (same path and query), trusting ``verify``'s CA. It
    takes effect only in a testing app, so production can never reach a local address.
    """
    global _test_route
    _test_route = _TestRoute(origin.rstrip("/"), verify)
    try:
        yield
    finally:
        _test_route = None


def destination(url: str) -> tuple[str, ssl.SSLContext | bool]:
    """Where a request for ``url`` goes, and what TLS trusts: ``url`` itself, except in tests."""
    route = _test_route
    if route is None or not current_app.testing:
        return url, True
    parts = urlsplit(url)
    origin = urlsplit(route.origin)
    return urlunsplit((origin.scheme, origin.netloc, parts.path, parts.query, "")), route.verify


def fetch(url: str, *, timeout: float, max_bytes: int) -> bytes:
    """GET ``url`` over https: no redirects, at most ``max_bytes``, within ``timeout`` overall.

    httpx's timeout bounds each read; the deadline bounds the whole download, so a server
    dripping a byte a second cannot hold a request open.
    """
    destination_url, tls = destination(url)
    if urlsplit(destination_url).scheme != "https":
        raise Refused(f"{url} is not https")
    deadline = time.monotonic() + timeout
    received = bytearray()
    try:
        with (
            httpx.Client(timeout=timeout, follow_redirects=False, verify=tls) as client,
            client.stream("GET", destination_url) as response,
        ):
            if response.status_code != httpx.codes.OK:
                raise Refused(f"GET {url} answered {response.status_code}")
            for chunk in response.iter_bytes():
                received += chunk
                if len(received) > max_bytes:
                    raise Refused(f"GET {url} is larger than {max_bytes} bytes")
                if time.monotonic() > deadline:
                    raise Refused(f"GET {url} took longer than {timeout} s")
    except httpx.HTTPError as error:
        raise Refused(f"GET {url} failed: {type(error).__name__}: {error}") from error
    return bytes(received)


def subscribe_url_problem(url: str) -> str | None:
    """Why a SubscribeURL must not be visited, or None: https, an SNS host, nothing else."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return f"SubscribeURL is not a URL: {url[:200]!r}"
    if (
        parts.scheme != "https"
        or parts.username is not None
        or parts.password is not None
        or port not in (None, 443)
        or not SNS_HOST.fullmatch(parts.netloc.removesuffix(":443"))
    ):
        return f"SubscribeURL is not an https SNS URL: {url[:200]!r}"
    return None


def confirm_subscription(url: str, *, timeout: float) -> None:
    """Visit the SubscribeURL of a SubscriptionConfirmation (checked first), or raise.

    ``Refused`` for a URL that is not SNS's; ``httpx.HTTPError`` if SNS could not be
    reached or said no, so the caller answers 502 and SNS sends the confirmation again.
    """
    problem = subscribe_url_problem(url)
    if problem:
        raise Refused(problem)
    destination_url, tls = destination(url)
    with httpx.Client(timeout=timeout, follow_redirects=False, verify=tls) as client:
        response = client.get(destination_url)
    if response.status_code != httpx.codes.OK:
        raise httpx.HTTPStatusError(
            f"SNS answered {response.status_code}", request=response.request, response=response
        )
