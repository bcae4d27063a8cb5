"""Forms shared by the admin pages."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import InputRequired, Length

from alertsvc.admin.operators import PASSWORD_MAX


class SignInForm(FlaskForm):
    email = StringField(
        "Email address", validators=[InputRequired("Enter your email address"), Length(max=320)]
    )
    password = PasswordField(
        "Password", validators=[InputRequired("Enter your password"), Length(max=PASSWORD_MAX)]
    )


class ConfirmForm(FlaskForm):
    """A form with nothing but its CSRF token: for buttons that change one thing."""
