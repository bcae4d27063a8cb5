"""Email addresses in the one form alertsvc stores and sends to.

Shared by every capability that meets an address (subscriptions from the signup form,
delivery's suppression list, SES's bounce and complaint reports), so all of them compare
the same string: a rule with one home, below the capability packages, which may not
import each other in a cycle.
"""

from __future__ import annotations

import hashlib

from email_validator import EmailNotValidError, validate_email

EMAIL_FORMAT_MESSAGE = "Enter an email address in the correct format, like name@example.com"
NON_ASCII_LOCAL_PART_MESSAGE = (
    "The part of the email address before the @ can only use the letters a to z, numbers and "
    "symbols like . _ + -"
)
LONG_LOCAL_PART_MESSAGE = (
    "The part of the email address before the @ must be 64 characters or fewer"
)
# RFC 5321 §4.5.3.1.1: a local part is at most 64 octets.
MAX_LOCAL_PART_LENGTH = 64


class InvalidAddress(ValueError):
    """Not an email address we can send to. The message is written for the reader."""


def normalise_email(raw: str, *, check_deliverability: bool = False) -> str:
    """The canonical form of an address: one subscriber row per person.

    It is the form mail is sent to: the domain in its ASCII (IDNA) form, because a header
    can only carry a Unicode domain as an RFC 2047 word, which no server reads as an
    address. A local part that is not ASCII is refused rather than sent with SMTPUTF8:
    SES and many receiving servers do not take it, so we could not promise delivery.
    email-validator normalises Unicode and the domain; the local part is lower-cased too,
    because in practice no mailbox provider treats case as significant and a reader who
    types their address differently must not end up with two subscriber rows.
    """
    try:
        result = validate_email(
            raw.strip(), check_deliverability=check_deliverability, allow_smtputf8=True
        )
    except EmailNotValidError as error:
        raise InvalidAddress(EMAIL_FORMAT_MESSAGE) from error
    if not result.local_part.isascii() or result.ascii_email is None:
        raise InvalidAddress(NON_ASCII_LOCAL_PART_MESSAGE)
    if len(result.local_part) > MAX_LOCAL_PART_LENGTH:
        raise InvalidAddress(LONG_LOCAL_PART_MESSAGE)
    return result.ascii_email.lower()


def display_email(address: str) -> str:
    """An address as the reader typed it: an internationalised domain in Unicode."""
    if "xn--" not in address:
        return address
    try:
        return validate_email(address, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return address


def stored_forms(email: str) -> list[str]:
    """The forms a normalised address may be stored in.

    Rows written before addresses were stored in ASCII hold an internationalised domain in
    Unicode; a reader typing either form must still find their one subscriber row.
    """
    unicode_form = display_email(email)
    return [email] if unicode_form == email else [email, unicode_form]


ADDRESS_HASH_PREFIX = "sha256:"


def address_hash(address: str) -> str:
    """What the suppression list keeps of an erased subscriber's address: a SHA-256 of its
    normalised form (``normalise_email``: ASCII domain, lower case), so mail to it stays
    stopped if it signs up again without the address itself being stored.

    ``address`` must already be normalised: the worker hashes every address of a batch, and
    cannot afford to validate them again.
    """
    return ADDRESS_HASH_PREFIX + hashlib.sha256(address.lower().encode("utf-8")).hexdigest()
