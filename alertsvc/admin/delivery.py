"""The Delivery pages: sending pauses and the reputation figures, the suppression list, and
the JSON API's tokens. Thin routes over the delivery and token services; every change is
audited in its own transaction."""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from sqlalchemy import or_, select
from wtforms import Form, HiddenField, RadioField, StringField
from wtforms.validators import DataRequired, InputRequired, Length, ValidationError

from alertsvc.addresses import InvalidAddress, address_hash, address_prefix, normalise_email
from alertsvc.admin.blueprint import bp
from alertsvc.admin.forms import ConfirmForm
from alertsvc.api.tokens import (
    NAME_MAX,
    SCOPES,
    ApiToken,
    TokenError,
    create_api_token,
    revoke_api_token,
)
from alertsvc.audit import record_audit
from alertsvc.database import transaction
from alertsvc.delivery import suppressions
from alertsvc.delivery.pauses import SCOPE_WORDS, pause, pause_actor, pauses_in_force, resume
from alertsvc.delivery.reputation import PAUSED_BY as GUARD
from alertsvc.delivery.reputation import measure_reputation
from alertsvc.extensions import db
from alertsvc.models import PauseScope, Suppression, SuppressionReason, utcnow
from alertsvc.subscriptions.forms import MultiCheckboxField
from alertsvc.text import OPERATOR_NOTE_MAX, one_line

ERASED_ADDRESS = "an erased subscriber's address (kept as a hash)"
SUPPRESSIONS_SHOWN = 100
SCOPE_HINTS = {
    PauseScope.SUBSCRIPTIONS.value: "Digests and alerts stop; confirmation and "
    "manage-link emails still go.",
    PauseScope.ALL.value: "Every email stops, confirmations too.",
}
SCOPE_DESCRIPTIONS = {
    "articles:write": "send articles (POST /api/v1/articles)",
    "runs:write": "trigger digest runs",
    "read": "read topics, feeds, articles, runs and statistics",
    "subscribers:admin": "export and erase subscribers",
}


def _reason_field(label: str, message: str) -> StringField:
    return StringField(
        label,
        filters=[one_line],
        validators=[
            DataRequired(message),
            Length(
                max=OPERATOR_NOTE_MAX,
                message=f"The reason must be {OPERATOR_NOTE_MAX} characters or fewer",
            ),
        ],
    )


class PauseForm(FlaskForm):
    scope = RadioField(
        "What to pause",
        choices=[(scope.value, SCOPE_WORDS[scope].capitalize()) for scope in PauseScope],
        default=PauseScope.SUBSCRIPTIONS.value,
        validators=[InputRequired("Choose what to pause")],
    )
    reason = _reason_field("Reason", "Enter why sending is paused")


class ResumeForm(FlaskForm):
    scope = HiddenField(validators=[InputRequired()])

    def validate_scope(self, field: HiddenField) -> None:
        if field.data not in {scope.value for scope in PauseScope}:
            raise ValidationError("Unknown pause")


def _check_address(form: Form, field: StringField) -> None:
    try:
        field.data = normalise_email(field.data or "")
    except InvalidAddress as error:
        raise ValidationError(f"Enter an email address, like name@example.org ({error})") from error


class SuppressionAddForm(FlaskForm):
    email = StringField(
        "Email address",
        filters=[lambda value: (value or "").strip()],
        validators=[InputRequired("Enter the email address to suppress"), _check_address],
    )
    detail = _reason_field("Reason", "Enter why this address must not be sent to")


class SuppressionRemoveForm(FlaskForm):
    reason = _reason_field("Reason", "Enter why mail to this address may go again")


class TokenCreateForm(FlaskForm):
    name = StringField(
        "Name",
        filters=[lambda value: " ".join((value or "").split())],
        validators=[
            DataRequired("Enter a name for the token"),
            Length(max=NAME_MAX, message=f"The name must be {NAME_MAX} characters or fewer"),
        ],
    )
    scopes = MultiCheckboxField(
        "Scopes",
        choices=[(scope, scope) for scope in SCOPES],
        validators=[InputRequired("Choose at least one scope")],
    )


# -- sending and reputation ------------------------------------------------------------------


@bp.get("/delivery")
def delivery() -> ResponseReturnValue:
    return _delivery_page(PauseForm())


def reputation_context() -> dict[str, Any]:
    """What ``_reputation.html`` shows (the delivery page and the dashboard): the guard's
    measure now, the pauses in force, and whether the guard made one of them."""
    pauses = pauses_in_force()
    report = measure_reputation(current_app.config, utcnow())
    db.session.rollback()
    return {
        "pauses": pauses,
        "report": report,
        "guard_paused": any(p.paused_by == GUARD for p in pauses),
    }


def _delivery_page(form: PauseForm, status: int = 200) -> ResponseReturnValue:
    return (
        render_template(
            "web/admin/delivery.html",
            form=form,
            resume_form=ResumeForm(),
            **reputation_context(),
            scope_words=SCOPE_WORDS,
            scope_hints=SCOPE_HINTS,
        ),
        status,
    )


@bp.post("/delivery/pause")
def delivery_pause() -> ResponseReturnValue:
    form = PauseForm()
    if not form.validate_on_submit():
        return _delivery_page(form, 400)
    scope = PauseScope(form.scope.data)
    with transaction():
        recorded = pause(scope, form.reason.data, pause_actor(), utcnow())
        if recorded:
            record_audit("sending.pause", f"sending: {scope.value}", {"reason": form.reason.data})
    flash(
        f"Paused {SCOPE_WORDS[scope]}."
        if recorded
        else f"{SCOPE_WORDS[scope].capitalize()} was already paused; nothing changed."
    )
    return redirect(url_for("admin.delivery"), 303)


@bp.post("/delivery/resume")
def delivery_resume() -> ResponseReturnValue:
    form = ResumeForm()
    if not form.validate_on_submit():
        abort(400)
    scope = PauseScope(form.scope.data)
    with transaction():
        ended = resume(scope, pause_actor(), utcnow())
        if ended:
            record_audit("sending.resume", f"sending: {scope.value}")
    flash(f"Resumed {SCOPE_WORDS[scope]}." if ended else "That pause had already ended.")
    return redirect(url_for("admin.delivery"), 303)


# -- suppressions ----------------------------------------------------------------------------


def _whole_address(text: str) -> str | None:
    """``text`` normalised, if it is a whole valid address."""
    if "@" not in text:
        return None
    try:
        return normalise_email(text)
    except InvalidAddress:
        return None


def _search(prefix: str, address: str | None) -> list[Suppression]:
    """The newest suppressions starting with ``prefix``; when it is a whole ``address``,
    its hash too (an erased subscriber's suppression keeps no address)."""
    query = select(Suppression).order_by(Suppression.created_at.desc(), Suppression.id.desc())
    if not prefix:
        return list(db.session.scalars(query.limit(SUPPRESSIONS_SHOWN)))
    typed = address_prefix(prefix)
    whole = [address, address_hash(address)] if address is not None else []
    starts = [Suppression.email.startswith(p, autoescape=True) for p in typed.stored]
    query = query.where(or_(*starts, Suppression.email.in_(whole)))
    candidates = db.session.scalars(query.limit(typed.rows_to_fetch(SUPPRESSIONS_SHOWN)))
    found = [row for row in candidates if row.email in whole or typed.matches(row.email)]
    return found[:SUPPRESSIONS_SHOWN]


@bp.get("/delivery/suppressions")
def delivery_suppressions() -> ResponseReturnValue:
    return _suppressions_page(SuppressionAddForm())


def _suppressions_page(form: SuppressionAddForm, status: int = 200) -> ResponseReturnValue:
    prefix = (request.args.get("q") or "").strip()[:320]
    address = _whole_address(prefix)
    found = _search(prefix, address)
    total = suppressions.count_suppressions()
    db.session.rollback()
    return (
        render_template(
            "web/admin/delivery_suppressions.html",
            form=form,
            prefix=prefix,
            address=address,
            address_hash=address_hash(address) if address else None,
            is_hashed=suppressions.is_hashed,
            found=found,
            total=total,
            shown=SUPPRESSIONS_SHOWN,
        ),
        status,
    )


@bp.post("/delivery/suppressions")
def delivery_suppression_add() -> ResponseReturnValue:
    form = SuppressionAddForm()
    if not form.validate_on_submit():
        return _suppressions_page(form, 400)
    with transaction():
        added = suppressions.suppress(
            form.email.data,
            SuppressionReason.OPERATOR,
            suppressions.SuppressionSource.OPERATOR,
            form.detail.data,
            utcnow(),
        )
        row = suppressions.suppression_of(form.email.data)
        if added and row is not None:
            # The row's id, never the address: the audit log outlives an erasure.
            record_audit(
                "suppression.add",
                f"suppression {row.id}",
                {"reason": SuppressionReason.OPERATOR.value, "detail": form.detail.data},
            )
    flash(
        f"Suppressed {form.email.data}."
        if added
        else f"{form.email.data} was already suppressed; left as it was."
    )
    return redirect(url_for("admin.delivery_suppressions"), 303)


@bp.route("/delivery/suppressions/<int:suppression_id>/remove", methods=["GET", "POST"])
def delivery_suppression_remove(suppression_id: int) -> ResponseReturnValue:
    row = db.session.get(Suppression, suppression_id)
    if row is None:
        abort(404)
    form = SuppressionRemoveForm()
    if form.validate_on_submit():
        with transaction():
            email, reason = row.email, row.reason
            if suppressions.unsuppress(email):
                record_audit(
                    "suppression.remove",
                    f"suppression {suppression_id}",
                    {"was": reason, "reason": form.reason.data},
                )
        shown = ERASED_ADDRESS if suppressions.is_hashed(email) else email
        flash(f"Removed {shown} from the suppression list: mail to it may go again.")
        return redirect(url_for("admin.delivery_suppressions"), 303)
    status = 400 if request.method == "POST" else 200
    shown = ERASED_ADDRESS if suppressions.is_hashed(row.email) else row.email
    return render_template(
        "web/admin/delivery_suppression_remove.html", form=form, suppression=row, shown=shown
    ), status


# -- API tokens ------------------------------------------------------------------------------


@bp.get("/delivery/tokens")
def delivery_tokens() -> ResponseReturnValue:
    form = TokenCreateForm()
    form.scopes.data = form.scopes.data or ["articles:write"]
    return _tokens_page(form)


def _tokens_page(form: TokenCreateForm, status: int = 200) -> ResponseReturnValue:
    tokens = list(
        db.session.scalars(select(ApiToken).order_by(ApiToken.created_at.desc(), ApiToken.id))
    )
    db.session.rollback()
    return (
        render_template(
            "web/admin/delivery_tokens.html",
            form=form,
            tokens=tokens,
            revoke_form=ConfirmForm(),
            scope_descriptions=SCOPE_DESCRIPTIONS,
        ),
        status,
    )


@bp.post("/delivery/tokens")
def delivery_token_create() -> ResponseReturnValue:
    form = TokenCreateForm()
    if not form.validate_on_submit():
        return _tokens_page(form, 400)
    try:
        with transaction():
            row, token = create_api_token(form.name.data, form.scopes.data)
            record_audit("token.create", f"token {row.name}", {"scopes": row.scopes.split()})
            name, scopes = row.name, row.scopes.split()
    except TokenError as error:
        form.name.errors = [*form.name.errors, str(error).capitalize()]
        return _tokens_page(form, 400)
    # Shown once, on this response only (never stored, never in a redirect or the session).
    return render_template(
        "web/admin/delivery_token_created.html", name=name, scopes=scopes, token=token
    )


@bp.post("/delivery/tokens/<int:token_id>/revoke")
def delivery_token_revoke(token_id: int) -> ResponseReturnValue:
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400)
    row = db.session.get(ApiToken, token_id)
    if row is None:
        abort(404)
    if row.revoked_at is not None:
        flash(f"The token {row.name} was already revoked.")
        return redirect(url_for("admin.delivery_tokens"), 303)
    name = row.name
    with transaction():
        revoke_api_token(name)
        record_audit("token.revoke", f"token {name}")
    flash(f"Revoked the token {name}: it stops working at once.")
    return redirect(url_for("admin.delivery_tokens"), 303)
