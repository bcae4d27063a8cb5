"""DKIM signatures for mail sent through SMTP (``ALERTSVC_DKIM_*``), made with dkimpy.

SES signs on its own (Easy DKIM), so only the smtp transport signs. The key is read and
checked once, at start-up (``alertsvc.config``) and when the transport is built; each message
is then signed rsa-sha256, relaxed/relaxed, over the headers a receiver and DMARC care about.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dkim
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from alertsvc.config import ConfigurationError

DKIM_SETTINGS = ("DKIM_SELECTOR", "DKIM_DOMAIN", "DKIM_PRIVATE_KEY_FILE")
# Signed when the message has them (From always, and once more so that a second From
# added on the way breaks the signature). Content-Type ties the body's MIME structure to it.
SIGNED_HEADERS = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "MIME-Version",
    "Content-Type",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Auto-Submitted",
    "Feedback-ID",
)
# RFC 8301: verifiers must refuse RSA keys under 1024 bits; 2048 is what to generate.
MIN_RSA_BITS = 1024
KEY_ADVICE = "generate one with: openssl genrsa -out dkim.pem 2048"
_HEADER_NAME = re.compile(rb"^([!-9;-~]+)[ \t]*:", re.MULTILINE)


def load_dkim_key(path: str | Path) -> bytes:
    """The RSA key in the PEM file at ``path``, as PKCS#1 PEM (what dkimpy reads).

    Any PEM private key form is accepted (``openssl genrsa`` writes PKCS#8 since OpenSSL 3);
    a key that cannot be used is one line naming the setting, never the key itself.
    """
    setting = "ALERTSVC_DKIM_PRIVATE_KEY_FILE"
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ConfigurationError(
            f"{setting}: cannot read {str(path)!r} ({error.strerror or type(error).__name__})"
        ) from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ConfigurationError(
            f"{setting}: {str(path)!r} is not an unencrypted PEM private key; {KEY_ADVICE}"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigurationError(
            f"{setting}: {str(path)!r} holds a {type(key).__name__.lstrip('_')} key; alertsvc "
            f"signs rsa-sha256, so use an RSA key: {KEY_ADVICE}"
        )
    if key.key_size < MIN_RSA_BITS:
        raise ConfigurationError(
            f"{setting}: {str(path)!r} is a {key.key_size}-bit RSA key, which receivers "
            f"ignore (RFC 8301 needs at least {MIN_RSA_BITS}); {KEY_ADVICE}"
        )
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


class DkimSigner:
    """Signs raw messages for one selector and domain; the key is loaded once, here."""

    def __init__(self, selector: str, domain: str, private_key_pem: bytes) -> None:
        self.selector = selector.encode("ascii")
        self.domain = domain.encode("ascii")
        self._key = private_key_pem

    def __repr__(self) -> str:
        return f"DkimSigner(s={self.selector.decode()}, d={self.domain.decode()})"

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> DkimSigner | None:
        """The signer the settings ask for, or None when DKIM is not set (checked by
        ``alertsvc.config`` at start-up)."""
        if not all(config.get(name) for name in DKIM_SETTINGS):
            return None
        return cls(
            str(config["DKIM_SELECTOR"]),
            str(config["DKIM_DOMAIN"]),
            load_dkim_key(str(config["DKIM_PRIVATE_KEY_FILE"])),
        )

    def sign(self, raw: bytes) -> bytes:
        """``raw`` (CRLF line ends) with a ``DKIM-Signature`` header in front."""
        head = raw.split(b"\r\n\r\n", 1)[0]
        present = {name.lower() for name in _HEADER_NAME.findall(head)}
        include = [b"from"] + [
            name.lower().encode("ascii")
            for name in SIGNED_HEADERS
            if name.lower().encode("ascii") in present
        ]
        signature = dkim.sign(
            raw,
            self.selector,
            self.domain,
            self._key,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=include,
        )
        return signature + raw
