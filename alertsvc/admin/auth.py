"""Signing in and out of ``/admin`` (Flask-Login; the session is Flask's signed cookie)."""

from __future__ import annotations

from flask import (
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_user, logout_user

from alertsvc.addresses import InvalidAddress, normalise_email
from alertsvc.admin import operators
from alertsvc.admin.blueprint import SEEN_KEY, bp, safe_next
from alertsvc.admin.forms import ConfirmForm, SignInForm
from alertsvc.audit import Actor, record_audit, set_actor
from alertsvc.database import transaction
from alertsvc.extensions import limiter
from alertsvc.models import utcnow


def _ip_limit() -> str:
    return current_app.config["ADMIN_SIGNIN_RATE_LIMIT_PER_IP"]


def _address_limit() -> str:
    return current_app.config["ADMIN_SIGNIN_RATE_LIMIT_PER_ADDRESS"]


def _address_key() -> str:
    """Per address typed, so one account cannot be guessed at from many clients."""
    try:
        return "admin-address:" + normalise_email(request.form.get("email", "")).lower()
    except InvalidAddress:
        return "admin-address:invalid"


def _failed(response: Response) -> bool:
    """Only a refused attempt counts against the limits: signing in (a redirect) does not,
    so an operator who signs in often is never locked out by their own successes."""
    return response.status_code >= 400


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_ip_limit, methods=["POST"], deduct_when=_failed)
@limiter.limit(_address_limit, key_func=_address_key, methods=["POST"], deduct_when=_failed)
def sign_in() -> ResponseReturnValue:
    form = SignInForm()
    problem = None
    if form.validate_on_submit():
        with transaction():
            operator = operators.authenticate(form.email.data or "", form.password.data or "")
            if operator is not None:
                set_actor(Actor(f"operator:{operator.email}", operator.id))
                record_audit("operator.sign_in", f"operator {operator.email}")
        if operator is not None:
            session.clear()  # nothing from before signing in carries over
            login_user(operator)
            session[SEEN_KEY] = utcnow().timestamp()
            return redirect(safe_next(request.args.get("next")))
        problem = "The email address or password is not right"
    status = 200 if problem is None and not form.errors else 400
    return render_template("web/admin/sign_in.html", form=form, problem=problem), status


@bp.post("/logout")
def sign_out() -> ResponseReturnValue:
    form = ConfirmForm()
    if form.validate_on_submit():
        with transaction():
            operators.sign_out_operator(current_user)
            record_audit("operator.sign_out", f"operator {current_user.email}")
        logout_user()
        session.clear()
        flash("You have signed out.")
    return redirect(url_for("admin.sign_in"))
