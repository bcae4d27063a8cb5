"""Forms of the topics, feeds and articles pages (CSRF from Flask-WTF).

Lengths are checked here first, so a huge value is refused with a message before any
service sees it; the services then apply the rules they share with the CLI.
"""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import Field, SelectMultipleField, StringField
from wtforms.validators import InputRequired, Length, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from alertsvc.topics.services import DESCRIPTION_MAX, QUERY_MAX

URL_MAX = 2048


class MultiCheckboxField(SelectMultipleField):
    """Checkboxes (rendered by the ``choices`` macro of ``web/_forms.html``)."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class TopicForm(FlaskForm):
    slug = StringField(
        "Slug",
        validators=[
            InputRequired("Enter a slug"),
            Length(max=80, message="The slug must be 80 characters or fewer"),
        ],
    )
    name = StringField(
        "Name",
        validators=[
            InputRequired("Enter a name"),
            Length(max=200, message="The name must be 200 characters or fewer"),
        ],
    )
    description = StringField(
        "Description",
        validators=[
            Length(
                max=DESCRIPTION_MAX,
                message=f"The description must be {DESCRIPTION_MAX} characters or fewer",
            )
        ],
    )
    query = StringField(
        "Keyword query",
        validators=[
            Length(max=QUERY_MAX, message=f"The query must be {QUERY_MAX} characters or fewer")
        ],
    )


class EditTopicForm(TopicForm):
    """The slug is fixed once the topic exists: readers' links, API senders and category
    mappings name the topic by it."""

    slug = None  # type: ignore[assignment]


def _known_choices(form: FlaskForm, field: Field) -> None:
    known = {value for value, _ in field.choices or []}
    if any(value not in known for value in field.data or []):
        raise ValidationError("Select topics from the list")


class FeedForm(FlaskForm):
    url = StringField(
        "Feed address (URL)",
        validators=[
            InputRequired("Enter the feed's address"),
            Length(max=URL_MAX, message=f"The address must be {URL_MAX} characters or fewer"),
        ],
    )
    title = StringField(
        "Name (optional)",
        validators=[Length(max=500, message="The name must be 500 characters or fewer")],
    )
    topics = MultiCheckboxField("Topics", validate_choice=False, validators=[_known_choices])


class EditFeedForm(FeedForm):
    """The address is kept: a different address is a different feed."""

    url = None  # type: ignore[assignment]
