"""Form definitions for the subscriber pages (Flask-WTF: CSRF on every POST)."""

from __future__ import annotations

from datetime import date
from functools import cache, lru_cache
from importlib import resources
from typing import Any

from flask import current_app
from flask_wtf import FlaskForm
from markupsafe import Markup
from wtforms import (
    Field,
    Form,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    ValidationError,
    widgets,
)
from wtforms.fields.choices import Choice
from wtforms.utils import unset_value
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from alertsvc.addresses import InvalidAddress, normalise_email
from alertsvc.models import Frequency, Topic

FREQUENCY_CHOICES = [
    (Frequency.IMMEDIATELY.value, "Immediately"),
    (Frequency.DAILY.value, "Once a day"),
    (Frequency.WEEKLY.value, "Once a week"),
]
HOUR_CHOICES = [(hour, f"{hour:02d}:00") for hour in range(24)]
WEEKDAY_CHOICES = list(
    enumerate(["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"])
)
TIMEZONE_MESSAGE = "Select a time zone from the list"


TZDATA = resources.files("tzdata.zoneinfo")


@cache
def _canonical_zones() -> frozenset[str]:
    """Every zone the tz database offers people to choose from: one line a place in
    ``zone.tab``, with none of the old names (``Asia/Calcutta``, ``US/Eastern``) kept for
    backward compatibility."""
    lines = TZDATA.joinpath("zone.tab").read_text(encoding="utf-8").splitlines()
    return frozenset(line.split("\t")[2] for line in lines if line and not line.startswith("#"))


@cache
def _zone_links() -> dict[str, str]:
    """Old or alternative zone name -> the name it links to (``L`` lines of tzdata.zi)."""
    lines = TZDATA.joinpath("tzdata.zi").read_text(encoding="utf-8").splitlines()
    return {parts[2]: parts[1] for parts in map(str.split, lines) if parts[:1] == ["L"]}


@cache
def _chosen_by_final_zone() -> dict[str, str]:
    """Zone data -> the offered name that uses it (``Etc/UTC`` -> ``UTC``)."""
    offered: dict[str, str] = {}
    for name in sorted(_canonical_zones() | {"UTC"}):
        final = name
        while final in _zone_links():
            final = _zone_links()[final]
        if name == final or final not in offered:
            offered[final] = name
    return offered


def canonical_timezone(name: str) -> str | None:
    """The offered name for a zone stored or posted under an old one, or None if unknown.

    Subscribers who chose from the old, longer list may hold ``Asia/Calcutta``: their page
    shows, and saving stores, ``Asia/Kolkata``.
    """
    if name == "UTC" or name in _canonical_zones():
        return name
    target = name
    while target in _zone_links():
        target = _zone_links()[target]
        if target in _canonical_zones():
            return target
    return _chosen_by_final_zone().get(target)


def timezone_choices() -> list[tuple[str, str]]:
    """The time zones a reader chooses from: the service's default and UTC first, then
    every canonical zone by name. Signup and manage share the one list."""
    return _timezone_choices(current_app.config["TIMEZONE"])


@cache
def _timezone_choices(default: str) -> list[tuple[str, str]]:
    first = list(dict.fromkeys([canonical_timezone(default) or default, "UTC"]))
    names = first + sorted(_canonical_zones() - set(first))
    return [(name, name.replace("_", " ")) for name in names]


def timezone_names() -> frozenset[str]:
    return _timezone_names(current_app.config["TIMEZONE"])


@cache
def _timezone_names(default: str) -> frozenset[str]:
    return frozenset(name for name, _ in _timezone_choices(default))


class OptionsOnceSelect(widgets.Select):
    """WTForms' select, with each option's markup made once per process.

    The time zone select has over 400 options, and WTForms builds each one's attributes
    and escapes its text again on every render: that was nine tenths of the signup page's
    CPU. The markup is the same; an option with extra attributes is made as before.
    """

    @classmethod
    def render_option(cls, choice: Any, **kwargs: Any) -> Markup:
        if kwargs or choice.render_kw or not isinstance(choice.value, str | int):
            return super().render_option(choice, **kwargs)
        return _option(choice.value, choice.label or choice.value, bool(choice.selected))


@lru_cache(maxsize=4096)
def _option(value: str | int, label: Any, selected: bool) -> Markup:
    return widgets.Select.render_option(Choice(value, label, selected, {}))


class ListField(SelectField):
    """A select whose every problem is one sentence in the service's own words.

    WTForms answers a missing, unreadable or unlisted value with its own "This field is
    required.", "Invalid Choice: could not coerce." or "Not a valid choice."; a reader sees
    ``message`` instead ("Select a time for daily emails").
    """

    widget = OptionsOnceSelect()

    def __init__(self, label: str, *, message: str, **kwargs: Any) -> None:
        kwargs.setdefault("validators", [InputRequired(message)])
        super().__init__(label, **kwargs)
        self.message = message

    def process_formdata(self, valuelist: list[Any]) -> None:
        try:
            super().process_formdata(valuelist)
        except ValueError as error:
            raise ValueError(self.message) from error

    def pre_validate(self, form: Form) -> None:
        if self.process_errors:
            return
        try:
            super().pre_validate(form)
        except ValidationError as error:
            raise ValidationError(self.message) from error


class TimezoneField(ListField):
    """A select of the time zones in ``timezone_choices()``, checked against a set.

    SelectField's own check builds an option object for each of the ~420 zones on every
    submit, over half the cost of validating the signup form (bench/signup.py). The answer
    is the same. A zone posted or stored under an old name is read as its canonical one.
    """

    def process_data(self, value: Any) -> None:
        super().process_data(value and (canonical_timezone(value) or value))

    def process_formdata(self, valuelist: list[Any]) -> None:
        super().process_formdata(valuelist)
        if self.data:
            self.data = canonical_timezone(self.data) or self.data

    def pre_validate(self, form: Form) -> None:
        if self.process_errors or self.choices is not timezone_choices():
            super().pre_validate(form)
        elif self.data not in timezone_names():
            raise ValidationError(self.message)


class MultiCheckboxField(SelectMultipleField):
    """Checkboxes: each value at most once, and never more values than there are choices.

    A browser sends each ticked box once; a form replayed with ``topics=data`` thousands of
    times must neither be stored nor list "Data" thousands of times in an email. Repeats
    are dropped (first order kept); a field sent more values than it has choices is refused
    with ``too_many_message``. This is the one home of the rule for every multi-value field.
    """

    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()

    def __init__(
        self, *args: Any, too_many_message: str = "Select from the list", **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.too_many_message = too_many_message

    def process_formdata(self, valuelist: list[str]) -> None:
        super().process_formdata(valuelist)
        self.data = list(dict.fromkeys(self.data or []))

    def pre_validate(self, form: Form) -> None:
        if len(self.raw_data or []) > len(self.choices or []):
            raise ValidationError(self.too_many_message)
        super().pre_validate(form)


def _check_address(form: Form, field: Field) -> None:
    try:
        field.data = normalise_email(
            field.data or "",
            check_deliverability=current_app.config["EMAIL_CHECK_DELIVERABILITY"],
        )
    except InvalidAddress as error:
        raise ValidationError(str(error)) from error


def _topic_choices(topics: list[Topic]) -> list[tuple[str, str]]:
    return [(t.slug, t.name) for t in topics]


class ScheduleFields:
    """Delivery time fields shared by the signup and manage forms."""

    daily_hour = ListField(
        "Time for daily emails",
        message="Select a time for daily emails",
        coerce=int,
        choices=HOUR_CHOICES,
        default=7,
    )
    weekly_day = ListField(
        "Day for weekly emails",
        message="Select a day for weekly emails",
        coerce=int,
        choices=WEEKDAY_CHOICES,
        default=0,
    )
    weekly_hour = ListField(
        "Time for weekly emails",
        message="Select a time for weekly emails",
        coerce=int,
        choices=HOUR_CHOICES,
        default=7,
    )
    timezone = TimezoneField("Time zone", message=TIMEZONE_MESSAGE)

    def set_timezone_choices(self) -> None:
        self.timezone.choices = timezone_choices()
        if not self.timezone.data:
            self.timezone.data = current_app.config["TIMEZONE"]


class SignupForm(ScheduleFields, FlaskForm):
    email = StringField(
        "Email address",
        validators=[
            DataRequired("Enter your email address"),
            Length(max=320, message="Email address must be 320 characters or fewer"),
            _check_address,
        ],
    )
    topics = MultiCheckboxField(
        "Topics",
        validators=[DataRequired("Select at least one topic")],
        validate_choice=False,
        too_many_message="Select topics from the list",
    )
    frequency = RadioField(
        "How often do you want emails?",
        choices=FREQUENCY_CHOICES,
        validators=[InputRequired("Select how often you want emails")],
        validate_choice=False,
    )
    # Honeypot: hidden from people, filled in by bots.
    website = StringField("Leave this field empty")

    def __init__(self, topics: list[Topic], *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.topics.choices = _topic_choices(topics)
        self.set_timezone_choices()

    def validate_topics(self, field: Field) -> None:
        known = {slug for slug, _ in field.choices}
        if any(slug not in known for slug in field.data or []):
            raise ValidationError("Select topics from the list")

    def validate_frequency(self, field: Field) -> None:
        if field.data not in {value for value, _ in FREQUENCY_CHOICES}:
            raise ValidationError("Select how often you want emails")

    def validate_timezone(self, field: Field) -> None:
        _check_timezone(field)

    @property
    def is_bot(self) -> bool:
        return bool(self.website.data)


def _check_timezone(field: Field) -> None:
    if field.data not in timezone_names():
        raise ValidationError(TIMEZONE_MESSAGE)


class ManageLinkForm(FlaskForm):
    email = StringField(
        "Email address",
        validators=[
            DataRequired("Enter your email address"),
            Length(max=320, message="Email address must be 320 characters or fewer"),
            _check_address,
        ],
    )


class ManageForm(ScheduleFields, FlaskForm):
    """One select per topic ("not subscribed" or a frequency), then the delivery times.

    The per-topic fields are added at run time because the topics live in the database.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.set_timezone_choices()


TOPIC_FIELD_PREFIX = "topic-"
NOT_SUBSCRIBED = "none"


def make_manage_form(topics: list[Topic], current: dict[int, str], **kwargs: object) -> ManageForm:
    choices = [(NOT_SUBSCRIBED, "Not subscribed"), *FREQUENCY_CHOICES]

    class _Form(ManageForm):
        pass

    for topic in topics:
        setattr(
            _Form,
            TOPIC_FIELD_PREFIX + topic.slug,
            ListField(
                # A retired topic is only shown to its followers, so they can stop it.
                topic.name + (" (no longer offered)" if topic.retired_at else ""),
                message=f"Select how often you want emails about {topic.name}",
                choices=choices,
                default=current.get(topic.id, NOT_SUBSCRIBED),
            ),
        )
    return _Form(**kwargs)


class DateInputField(Field):
    """A date typed as day, month and year boxes: the GOV.UK date input pattern.

    A browser's own date picker shows its locale's order (``mm/dd/yyyy`` in the US) whatever
    the page's hint or error says; three labelled boxes read the same everywhere. Posted as
    ``<name>-day``, ``<name>-month`` and ``<name>-year``; ``parts`` holds what was typed and
    ``error_parts`` the boxes a problem is about.
    """

    PARTS = ("day", "month", "year")

    def __init__(self, label: str, *, required_message: str, **kwargs: Any) -> None:
        super().__init__(label, **kwargs)
        self.required_message = required_message
        self.parts = dict.fromkeys(self.PARTS, "")
        self.error_parts: list[str] = []

    def process(self, formdata: Any, data: Any = unset_value, extra_filters: Any = None) -> None:
        self.process_errors = []
        if data is unset_value:
            data = self.default() if callable(self.default) else self.default
        self.object_data = self.data = data
        if data is not None:
            self.parts = {"day": str(data.day), "month": str(data.month), "year": str(data.year)}
        if formdata is None:
            return
        self.parts = {part: formdata.get(f"{self.name}-{part}", "").strip() for part in self.PARTS}
        self.raw_data = list(self.parts.values())
        self.data = None
        try:
            self.data = self._read()
        except ValueError as error:
            self.process_errors.append(error.args[0])

    def _read(self) -> date:
        missing = [part for part in self.PARTS if not self.parts[part]]
        if len(missing) == len(self.PARTS):
            self.error_parts = list(self.PARTS)
            raise ValueError(self.required_message)
        if missing:
            self.error_parts = missing
            raise ValueError(f"The date must include a {' and '.join(missing)}")
        not_numbers = [
            p for p in self.PARTS if not (self.parts[p].isascii() and self.parts[p].isdigit())
        ]
        if not_numbers:
            self.error_parts = not_numbers
            raise ValueError("The date must be a real date")
        if len(self.parts["year"]) != 4:
            self.error_parts = ["year"]
            raise ValueError("The year must include 4 numbers")
        try:
            return date(*(int(self.parts[part]) for part in ("year", "month", "day")))
        except (ValueError, OverflowError):
            self.error_parts = list(self.PARTS)
            raise ValueError("The date must be a real date") from None


class PauseForm(FlaskForm):
    until = DateInputField(
        "Pause all emails until", required_message="Enter the date to pause emails until"
    )


class EmptyForm(FlaskForm):
    """A form whose only field is the CSRF token: for buttons that do one thing."""

    reason = StringField(validators=[Optional()])
