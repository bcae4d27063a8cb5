"""What a link may fill in on the signup form: ``/?email=…&topic=SLUG[&topic=SLUG]``.

The one home of the rule, used by the signup page and by the Register For Alerts box
(``alertsvc.subscriptions.embed``). A link only fills in: nothing is subscribed by a GET,
and an address is checked only when the form is sent. What a link may say is bounded (a
link with thousands of ``topic`` values reads the first few), and only the slugs of topics
readers can choose are kept, so nothing else a link says is ever put back into a page.
"""

from __future__ import annotations

from werkzeug.datastructures import MultiDict

from alertsvc.articles.listing import find_article_by_address
from alertsvc.models import Topic
from alertsvc.subscriptions.forms import SignupForm

EMAIL_MAX = 320
# More than any page offers: a link naming more topics is not one a publisher wrote.
TOPIC_VALUES_MAX = 50


def prefilled_email(args: MultiDict[str, str]) -> str:
    """The ``email`` a link gives, or "" when it gives none or one too long to be one."""
    email = args.get("email", "").strip()
    return email if len(email) <= EMAIL_MAX else ""


def requested_topics(args: MultiDict[str, str], topics: list[Topic]) -> list[Topic]:
    """The topics (of ``topics``, those offered) a link asks for, in the order offered.

    ``article=<address>`` names the topics stored for that article when alertsvc has it and
    any of them is offered; otherwise the ``topic`` slugs are read. Unknown and retired
    slugs are dropped.
    """
    offered = {topic.slug: topic for topic in topics}
    wanted: set[str] = set()
    address = args.get("article", "")
    if address:
        article = find_article_by_address(address)
        if article is not None:
            wanted = {topic.slug for topic in article.topics if topic.slug in offered}
    if not wanted:
        wanted = set(args.getlist("topic")[:TOPIC_VALUES_MAX]) & offered.keys()
    return [topic for topic in topics if topic.slug in wanted]


def prefill_signup(form: SignupForm, args: MultiDict[str, str], topics: list[Topic]) -> None:
    """Fill in the address and tick the topics a link asks for (a GET, never validated)."""
    form.email.data = prefilled_email(args)
    form.topics.data = [topic.slug for topic in requested_topics(args, topics)]
