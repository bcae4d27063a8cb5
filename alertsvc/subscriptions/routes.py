"""Public pages: sign up, confirm, manage, unsubscribe. Parse, call a service, render."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import timedelta

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue

from alertsvc.addresses import InvalidAddress, display_email, normalise_email
from alertsvc.database import transaction
from alertsvc.extensions import csrf, limiter
from alertsvc.models import Frequency, SignupRequest, Subscriber, Topic
from alertsvc.subscriptions import services
from alertsvc.subscriptions.forms import (
    NOT_SUBSCRIBED,
    TOPIC_FIELD_PREFIX,
    EmptyForm,
    ManageLinkForm,
    PauseForm,
    ScheduleFields,
    SignupForm,
    make_manage_form,
)
from alertsvc.subscriptions.prefill import prefill_signup
from alertsvc.tokens import ExpiredToken, InvalidToken, TokenPurpose, make_token, read_token
from alertsvc.topics.services import active_topics, list_topics

log = logging.getLogger(__name__)

bp = Blueprint("subscriptions", __name__)
bp.add_app_template_filter(display_email, "display_email")
bp.add_app_template_filter(services.long_date, "long_date")

# Where the signup form keeps the address it was given, for the "check your email" page.
SIGNUP_ADDRESS_KEY = "signup_address"


def _address_key() -> str:
    """Rate-limit key for the address typed into a form, so one inbox can't be mail-bombed."""
    try:
        return "address:" + normalise_email(request.form.get("email", ""))
    except InvalidAddress:
        return "address:invalid"


def _ip_limit() -> str:
    return current_app.config["SIGNUP_RATE_LIMIT_PER_IP"]


def _address_limit() -> str:
    return current_app.config["SIGNUP_RATE_LIMIT_PER_ADDRESS"]


def _schedule(form: ScheduleFields) -> services.Schedule:
    """The delivery times chosen on the signup or manage form."""
    return services.Schedule(
        timezone=form.timezone.data,
        daily_hour=form.daily_hour.data,
        weekly_day=form.weekly_day.data,
        weekly_hour=form.weekly_hour.data,
    )


def _token_problem(purpose: TokenPurpose, error: InvalidToken) -> tuple[str, int]:
    """A clear page for a link that no longer works, offering a fresh one."""
    expired = isinstance(error, ExpiredToken)
    return (
        render_template(
            "web/link_problem.html",
            purpose=purpose.name.lower(),
            expired=expired,
            manage_form=ManageLinkForm(),
        ),
        410 if expired else 400,
    )


@bp.route("/", methods=["GET", "POST"])
@limiter.limit(_ip_limit, methods=["POST"])
@limiter.limit(_address_limit, key_func=_address_key, methods=["POST"])
def signup() -> str | tuple[str, int] | Response:
    """Post/Redirect/Get: a valid signup redirects, so refreshing the reply posts nothing.

    A GET may be a link that fills the form in (``alertsvc.subscriptions.prefill``): from
    the Register For Alerts box, a publisher's plain form, or an email.

    Every valid signup (new, waiting, subscribed, or a bot's) gets the same redirect to the
    same page, so the reply never tells what is known about an address.
    """
    topics = active_topics()
    form = SignupForm(topics)
    if request.method == "GET":
        form.frequency.data = form.frequency.data or Frequency.DAILY.value
        prefill_signup(form, request.args, topics)
    if form.validate_on_submit():
        if not form.is_bot:
            wanted = set(form.topics.data)
            # The address is hashed by the log's redaction (alertsvc.logs), never kept.
            log.info(
                "signup from %s for %s (%s)",
                form.email.data,
                ", ".join(sorted(wanted)),
                form.frequency.data,
            )
            with transaction():
                services.sign_up(
                    form.email.data,
                    [t for t in topics if t.slug in wanted],
                    Frequency(form.frequency.data),
                    _schedule(form),
                )
        session[SIGNUP_ADDRESS_KEY] = form.email.data
        return redirect(url_for(".check_email"), 303)
    status = 400 if request.method == "POST" else 200
    return render_template("web/signup.html", form=form, topics=topics), status


@bp.get("/check-email")
def check_email() -> ResponseReturnValue:
    """After a signup: "we've sent you an email". Opened without one, there is nothing to
    say, so it goes to the signup form rather than claim an email was sent."""
    email = session.get(SIGNUP_ADDRESS_KEY)
    if not email:
        return redirect(url_for(".signup"), 303)
    return render_template("web/check_email.html", email=email)


@bp.route("/confirm/<token>", methods=["GET", "POST"])
def confirm(token: str) -> str | tuple[str, int]:
    try:
        signup_request = services.load_signup_request(read_token(TokenPurpose.CONFIRM, token))
    except InvalidToken as error:
        return _token_problem(TokenPurpose.CONFIRM, error)
    form = EmptyForm()
    if request.method == "POST":
        if not form.validate_on_submit():
            return _confirm_page(signup_request, form), 400
        with transaction(keep_loaded=True):
            subscribed = services.confirm_signup(signup_request)
        if subscribed:
            return render_template(
                "web/confirmed.html",
                topics=subscribed,
                frequency=signup_request.frequency,
                paused_until=services.current_pause(signup_request.subscriber),
            )
        if subscribed == []:
            # Nothing it asked for is offered any more: nothing was confirmed.
            return _confirm_page(signup_request, form)
    if request.method == "POST" or signup_request.confirmed_at is not None:
        return render_template(
            "web/already_confirmed.html", now=services.confirmed_signup_now(signup_request)
        )
    return _confirm_page(signup_request, form)


def _confirm_page(signup_request: SignupRequest, form: EmptyForm) -> str:
    """What a signup would subscribe to, with the button; or, when none of its topics is
    offered any more, no button and the topics that are, to sign up again."""
    topics = services.request_topics(signup_request)
    return render_template(
        "web/confirm.html",
        signup=signup_request,
        topics=topics,
        offered=[] if topics else active_topics(),
        form=form,
    )


@bp.route("/manage", methods=["GET", "POST"])
@limiter.limit(_ip_limit, methods=["POST"])
@limiter.limit(_address_limit, key_func=_address_key, methods=["POST"])
def manage_link() -> str | tuple[str, int]:
    form = ManageLinkForm()
    if form.validate_on_submit():
        with transaction():
            services.send_manage_link(form.email.data)
        return render_template("web/manage_link_sent.html", email=form.email.data)
    status = 400 if request.method == "POST" else 200
    return render_template("web/manage_link.html", form=form), status


def _manage_subscriber(token: str) -> Subscriber:
    return services.load_subscriber(read_token(TokenPurpose.MANAGE, token))


def _with_manage_link(
    view: Callable[..., ResponseReturnValue],
) -> Callable[[str], ResponseReturnValue]:
    """Resolve a manage token to its subscriber, or answer with the link-problem page."""

    @functools.wraps(view)
    def wrapper(token: str) -> ResponseReturnValue:
        try:
            subscriber = _manage_subscriber(token)
        except InvalidToken as error:
            return _token_problem(TokenPurpose.MANAGE, error)
        return view(token, subscriber)

    return wrapper


def _manage_topics(subscriber: Subscriber) -> list[Topic]:
    """The topics the manage page offers: those readers can choose, and any retired topic
    this reader still follows (so they can see it and stop it, not choose it again)."""
    live = services.live_frequencies(subscriber)
    return [t for t in list_topics() if t.retired_at is None or t.id in live]


def _render_manage(token: str, subscriber: Subscriber, topics: list[Topic], **forms: object) -> str:
    current = services.live_frequencies(subscriber)
    forms.setdefault(
        "form",
        make_manage_form(
            topics,
            current,
            formdata=None,
            daily_hour=subscriber.daily_hour,
            weekly_day=subscriber.weekly_day,
            weekly_hour=subscriber.weekly_hour,
            timezone=subscriber.timezone,
        ),
    )
    forms.setdefault("pause_form", PauseForm(formdata=None, until=subscriber.paused_until))
    forms.setdefault("empty_form", EmptyForm(formdata=None))
    today = services.local_today(subscriber)
    return render_template(
        "web/manage.html",
        token=token,
        subscriber=subscriber,
        topics=topics,
        current=current,
        subscribed_topics=[t for t in topics if t.id in current],
        field_prefix=TOPIC_FIELD_PREFIX,
        today=today,
        pause_example=today + timedelta(days=14),
        latest_pause=services.latest_pause_date(today),
        **forms,
    )


@bp.route("/manage/<token>", methods=["GET", "POST"])
@_with_manage_link
def manage(token: str, subscriber: Subscriber) -> str | tuple[str, int] | Response:
    topics = _manage_topics(subscriber)
    if request.method != "POST":
        return _render_manage(token, subscriber, topics)

    form = make_manage_form(topics, services.live_frequencies(subscriber))
    if not form.validate_on_submit():
        return _render_manage(token, subscriber, topics, form=form), 400
    wanted: dict[int, Frequency | None] = {}
    for topic in topics:
        value = form[TOPIC_FIELD_PREFIX + topic.slug].data
        if topic.retired_at is not None and value != NOT_SUBSCRIBED:
            continue  # a retired topic can be stopped, not started or changed
        wanted[topic.id] = None if value == NOT_SUBSCRIBED else Frequency(value)
    with transaction():
        services.update_subscriptions(subscriber, wanted, _schedule(form))
    flash("Your changes have been saved.")
    return redirect(url_for(".manage", token=token), 303)


@bp.post("/manage/<token>/pause")
@_with_manage_link
def pause(token: str, subscriber: Subscriber) -> str | tuple[str, int] | Response:
    if request.form.get("action") == "resume":
        form = EmptyForm()
        if form.validate_on_submit():
            with transaction():
                services.pause_subscriber(subscriber, None)
            flash("Your emails have been resumed.")
            return redirect(url_for(".manage", token=token), 303)
        return _render_manage(token, subscriber, _manage_topics(subscriber)), 400
    pause_form = PauseForm()
    if pause_form.validate_on_submit():
        until = pause_form.until.data
        try:
            services.check_pause_date(subscriber, until)
            with transaction():
                services.pause_subscriber(subscriber, until)
        except services.InvalidPause as error:
            pause_form.until.errors = [str(error)]
            pause_form.until.error_parts = list(pause_form.until.PARTS)
        else:
            flash(f"Your emails are paused until {until:%-d %B %Y}.")
            return redirect(url_for(".manage", token=token), 303)
    return _render_manage(token, subscriber, _manage_topics(subscriber), pause_form=pause_form), 400


def _live_topic_names(subscriber: Subscriber) -> list[str]:
    live = services.live_frequencies(subscriber)
    return [t.name for t in list_topics() if t.id in live]


@bp.route("/manage/<token>/unsubscribe-all", methods=["GET", "POST"])
@_with_manage_link
def unsubscribe_all(token: str, subscriber: Subscriber) -> str | tuple[str, int]:
    """GET says what will end and asks to confirm; only the confirmed POST ends it."""
    names = _live_topic_names(subscriber)
    form = EmptyForm()
    if not form.validate_on_submit():
        status = 400 if request.method == "POST" else 200
        return render_template(
            "web/unsubscribe_all.html", token=token, topic_names=names, form=form
        ), status
    with transaction():
        services.end_subscriptions(subscriber.id, None, services.EndedReason.UNSUBSCRIBED)
    return render_template(
        "web/unsubscribed.html",
        ended=names,
        remaining=[],
        manage_url=url_for(".manage", token=token),
    )


@bp.get("/manage/<token>/data.json")
@_with_manage_link
def export_data(token: str, subscriber: Subscriber) -> Response | tuple[str, int]:
    response = jsonify(services.export_subscriber(subscriber))
    response.headers["Content-Disposition"] = 'attachment; filename="my-email-alerts-data.json"'
    return response


@bp.route("/manage/<token>/erase", methods=["GET", "POST"])
@_with_manage_link
def erase(token: str, subscriber: Subscriber) -> str | tuple[str, int]:
    """GET says what deleting does and asks to confirm; only the confirmed POST deletes."""
    form = EmptyForm()
    if not form.validate_on_submit():
        status = 400 if request.method == "POST" else 200
        return render_template(
            "web/erase.html",
            token=token,
            subscriber=subscriber,
            topic_names=_live_topic_names(subscriber),
            form=form,
        ), status
    with transaction():
        services.erase_subscriber(subscriber)
    return render_template("web/erased.html")


@bp.route("/unsubscribe/<token>", methods=["GET", "POST"])
@csrf.exempt
def unsubscribe(token: str) -> str | tuple[str, int]:
    """RFC 8058 one-click unsubscribe.

    POST (from a mail client, or this page's button) acts at once, with no cookie and no
    CSRF token, and answers 200 with no redirect (§3.2). GET only shows the button, because
    link scanners fetch every URL in an email.
    """
    try:
        payload = read_token(TokenPurpose.UNSUBSCRIBE, token)
        if request.method == "POST":
            with transaction():
                done = services.unsubscribe(payload)
            return render_template(
                "web/unsubscribed.html",
                ended=done.ended,
                remaining=done.remaining,
                manage_url=url_for(
                    ".manage", token=make_token(TokenPurpose.MANAGE, done.subscriber_id)
                ),
            )
        _, topics = services.unsubscribe_topics_of(payload)
    except InvalidToken as error:
        return _token_problem(TokenPurpose.UNSUBSCRIBE, error)
    return render_template("web/unsubscribe.html", topics=topics, token=token)


# Registers the public topic pages on ``bp`` (they import ``bp`` from here).
from alertsvc.subscriptions import topic_pages  # noqa: E402, F401
