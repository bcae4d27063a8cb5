"""Email addresses in the one form alertsvc stores and sends to.

Shared by every capability that meets an address (subscriptions from the signup form,
delivery's suppression list, SES's bounce and complaint reports), so all of them compare
the same string: a rule with one home, below the capability packages, which may not
import each other in a cycle.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import idna
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


# A search by a loosely matched prefix fetches this many times the rows it shows, so that
# those ``matches`` drops still leave a full page.
_LOOSE_PREFIX_OVERFETCH = 4


@dataclass(frozen=True)
class AddressPrefix:
    """The start of an address, as an operator types it to find the addresses beginning so.

    ``stored`` are the prefixes a stored address may begin with: the text typed (lower case),
    which also finds rows kept from before addresses were stored in ASCII, and, when the
    domain is typed in Unicode, its ASCII (IDNA) form. An unfinished label cannot be encoded
    exactly: Punycode writes a label's ASCII letters first and the others after them, so
    ``exäm`` can only be looked for as ``xn--exm``, which also finds ``exmö``; and ``ex``
    may be the start of ``exämple`` too, so it is looked for as ``xn--ex`` as well.
    ``matches`` says which of the addresses found really begin with what was typed.
    """

    typed: str
    stored: tuple[str, ...]
    unicode_form: str | None = None

    def rows_to_fetch(self, shown: int) -> int:
        """How many rows to fetch to show ``shown`` of those that ``matches``."""
        return shown if self.unicode_form is None else shown * _LOOSE_PREFIX_OVERFETCH

    def matches(self, address: str) -> bool:
        if self.unicode_form is None or address.lower().startswith(self.typed):
            return True
        return display_email(address).startswith(self.unicode_form)


def address_prefix(text: str) -> AddressPrefix:
    """What ``text``, the start of an address, may be stored as (see ``AddressPrefix``)."""
    typed = text.strip().lower()
    local, at, domain = typed.partition("@")
    if not at or not domain:
        return AddressPrefix(typed, (typed,))
    *whole_labels, last_label = domain.split(".")
    try:
        ascii_labels = [idna.encode(label, uts46=True).decode("ascii") for label in whole_labels]
        unicode_labels = [idna.decode(label) for label in ascii_labels]
        last_label = idna.uts46_remap(last_label, std3_rules=False, transitional=False)
    except UnicodeError:  # idna.IDNAError: not a domain, so only the text as typed
        return AddressPrefix(typed, (typed,))
    # The last label may be unfinished, and may yet need IDNA even if all typed so far is ASCII.
    ascii_letters = "".join(letter for letter in last_label if letter.isascii())
    endings = [ascii_letters] if last_label.isascii() else []
    if last_label:
        endings.append("xn--" + ascii_letters)
    stored = dict.fromkeys(
        [typed, *(f"{local}@{'.'.join([*ascii_labels, ending])}" for ending in endings)]
    )
    if len(stored) == 1:
        return AddressPrefix(typed, (typed,))
    return AddressPrefix(typed, tuple(stored), f"{local}@{'.'.join([*unicode_labels, last_label])}")


ADDRESS_HASH_PREFIX = "sha256:"


def address_hash(address: str) -> str:
    """What the suppression list keeps of an erased subscriber's address: a SHA-256 of its
    normalised form (``normalise_email``: ASCII domain, lower case), so mail to it stays
    stopped if it signs up again without the address itself being stored.

    ``address`` must already be normalised: the worker hashes every address of a batch, and
    cannot afford to validate them again.
    """
    return ADDRESS_HASH_PREFIX + hashlib.sha256(address.lower().encode("utf-8")).hexdigest()
