"""Operators: accounts, passwords (argon2id, argon2-cffi) and checking a sign-in."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select

from alertsvc.addresses import InvalidAddress, normalise_email
from alertsvc.extensions import db
from alertsvc.models import Operator, OperatorRole, utcnow

PASSWORD_MIN = 12
# argon2 hashes whatever it is given; a bound keeps a sign-in from being a way to make the
# server hash megabytes.
PASSWORD_MAX = 1024

_hasher = PasswordHasher()
# Verified against when the address is unknown, so a wrong address takes as long as a
# wrong password and the sign-in page does not reveal who has an account.
_UNKNOWN_ADDRESS_HASH = _hasher.hash("not anyone's password, only for timing")


class OperatorError(ValueError):
    """An operator could not be created or changed as asked (the message says why)."""


def operator_email(raw: str) -> str:
    """An operator's address as stored: normalised, lower case (addresses are compared
    without regard to case here; they are people at the publisher, not subscribers)."""
    try:
        return normalise_email(raw).lower()
    except InvalidAddress as error:
        raise OperatorError(f"{raw!r} is not an email address: {error}") from None


def check_password(password: str) -> None:
    if len(password) < PASSWORD_MIN:
        raise OperatorError(f"the password must be at least {PASSWORD_MIN} characters")
    if len(password) > PASSWORD_MAX:
        raise OperatorError(f"the password must be at most {PASSWORD_MAX} characters")


def role_of(value: str) -> OperatorRole:
    try:
        return OperatorRole(value)
    except ValueError:
        roles = ", ".join(role.value for role in OperatorRole)
        raise OperatorError(f"the role must be one of {roles}, not {value!r}") from None


def find_operator(email: str) -> Operator | None:
    return db.session.scalar(select(Operator).where(Operator.email == operator_email(email)))


def get_operator(email: str) -> Operator:
    operator = find_operator(email)
    if operator is None:
        raise OperatorError(f"no operator {operator_email(email)}")
    return operator


def create_operator(email: str, password: str, role: str = OperatorRole.VIEWER) -> Operator:
    address = operator_email(email)
    check_password(password)
    if find_operator(address) is not None:
        raise OperatorError(f"an operator {address} already exists")
    operator = Operator(
        email=address, password_hash=_hasher.hash(password), role=role_of(role).value
    )
    db.session.add(operator)
    db.session.flush()
    return operator


def list_operators() -> list[Operator]:
    return list(db.session.scalars(select(Operator).order_by(Operator.email)))


def _sign_out_everywhere(operator: Operator) -> None:
    operator.session_version += 1


def sign_out_operator(operator: Operator) -> None:
    """Signing out ends every session of this operator: a copied cookie stops working too
    (the cookie alone cannot be taken back, its session version can)."""
    _sign_out_everywhere(operator)


def disable_operator(email: str) -> Operator:
    operator = get_operator(email)
    if operator.disabled_at is None:
        operator.disabled_at = utcnow()
        _sign_out_everywhere(operator)
    return operator


def enable_operator(email: str) -> Operator:
    operator = get_operator(email)
    operator.disabled_at = None
    return operator


def set_operator_role(email: str, role: str) -> Operator:
    operator = get_operator(email)
    new_role = role_of(role).value
    if operator.role != new_role:
        operator.role = new_role
        _sign_out_everywhere(operator)
    return operator


def reset_operator_password(email: str, password: str) -> Operator:
    operator = get_operator(email)
    check_password(password)
    operator.password_hash = _hasher.hash(password)
    _sign_out_everywhere(operator)
    return operator


def authenticate(email: str, password: str) -> Operator | None:
    """The enabled operator with this address and password, or None (whichever was wrong)."""
    try:
        operator = find_operator(email)
    except OperatorError:
        operator = None
    if len(password) > PASSWORD_MAX:
        return None
    stored = operator.password_hash if operator is not None else _UNKNOWN_ADDRESS_HASH
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if operator is None or not operator.is_active:
        return None
    if _hasher.check_needs_rehash(operator.password_hash):
        operator.password_hash = _hasher.hash(password)
    operator.last_signed_in_at = utcnow()
    return operator


def load_operator(user_id: str) -> Operator | None:
    """Flask-Login's loader: ``id:session_version`` as stored in the signed session."""
    raw_id, _, version = user_id.partition(":")
    if not raw_id.isdigit() or not version.isdigit():
        return None
    operator = db.session.get(Operator, int(raw_id))
    if operator is None or not operator.is_active or operator.session_version != int(version):
        return None
    return operator
