"""A reader's whole journey through the subscriber pages, in a real browser."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from alertsvc.models import EndedReason, OutboxEmail, Subscriber, Subscription
from tests.browser.helpers import email_link, heading, open_email
from tests.factories import count, live_subscriptions, rows, seed_topics

pytestmark = pytest.mark.browser


def test_reader_signs_up_confirms_changes_settings_and_unsubscribes(page: Page, app, mailbox):
    topics = seed_topics(app)

    # Sign up.
    page.goto("/")
    expect(page).to_have_title(re.compile(r"^Get email alerts"))
    expect(heading(page)).to_have_text("Get email alerts")
    topic_choices = page.get_by_role("group", name="Which topics do you want emails about?")
    expect(topic_choices.get_by_label("Data", exact=True)).to_have_accessible_description(
        "Open data, data sharing, analytics and statistics in the public sector."
    )
    topic_choices.get_by_label("Data", exact=True).check()
    topic_choices.get_by_label("Cyber security", exact=True).check()
    page.get_by_role("group", name="How often do you want emails?").get_by_label(
        "Once a day"
    ).check()
    page.get_by_label("Time for daily emails").select_option(label="08:00")
    page.get_by_label("Email address").fill("Reader@Example.com")
    page.get_by_role("button", name="Subscribe").click()

    expect(heading(page)).to_have_text("Check your email")
    expect(page.get_by_role("main")).to_contain_text("We've sent an email to reader@example.com")
    assert count(app, Subscription) == 0

    # Confirm from the email.
    [confirmation] = mailbox.deliver()
    assert confirmation["To"] == "reader@example.com"
    open_email(page, "Confirm your email alerts: Cyber security, Data")
    email_link(page, "/confirm/").click()
    expect(heading(page)).to_have_text("Confirm your subscription")
    expect(page.get_by_role("main")).to_contain_text("You asked for a daily email about:")
    expect(page.get_by_role("main").get_by_role("listitem")).to_have_text(
        ["Cyber security", "Data"]
    )
    assert count(app, Subscription) == 0, "a GET of the confirm link subscribes nobody"
    page.get_by_role("button", name="Confirm subscription").click()

    expect(heading(page)).to_have_text("Subscription confirmed")
    expect(page.get_by_role("main")).to_contain_text("You'll get a daily email about:")
    [subscriber_id] = rows(app, select(Subscriber.id))
    assert live_subscriptions(app, subscriber_id) == {
        topics["data"]: "daily",
        topics["cyber-security"]: "daily",
    }

    # Change settings from the welcome email's manage link.
    [welcome] = mailbox.deliver()
    assert welcome["List-Unsubscribe"]
    open_email(page, "You're subscribed: Cyber security, Data")
    email_link(page, "/manage/").click()

    expect(heading(page)).to_have_text("Manage your email alerts")
    expect(page.get_by_role("main")).to_contain_text("Emails go to reader@example.com")
    expect(page.get_by_label("Data", exact=True)).to_have_value("daily")
    expect(page.get_by_label("Time for daily emails")).to_have_value("8")
    page.get_by_label("Data", exact=True).select_option(label="Once a week")
    page.get_by_label("Time for daily emails").select_option(label="18:00")
    page.get_by_role("button", name="Save changes").click()

    expect(page.get_by_role("status")).to_have_text("Your changes have been saved.")
    expect(heading(page)).to_have_text("Manage your email alerts")
    expect(page.get_by_label("Data", exact=True)).to_have_value("weekly")
    expect(page.get_by_label("Cyber security", exact=True)).to_have_value("daily")
    expect(page.get_by_label("Time for daily emails")).to_have_value("18")
    assert live_subscriptions(app, subscriber_id) == {
        topics["data"]: "weekly",
        topics["cyber-security"]: "daily",
    }

    # Leave with the welcome email's unsubscribe link.
    open_email(page, "You're subscribed: Cyber security, Data")
    email_link(page, "/unsubscribe/").click()
    expect(heading(page)).to_have_text("Unsubscribe")
    expect(page.get_by_role("main").get_by_role("listitem")).to_have_text(
        ["Cyber security", "Data"]
    )
    assert len(live_subscriptions(app, subscriber_id)) == 2, "a GET unsubscribes nobody"
    page.get_by_role("button", name="Unsubscribe").click()

    expect(heading(page)).to_have_text("You've unsubscribed")
    expect(page.get_by_role("main")).to_contain_text("You won't get any more emails about:")
    expect(page.get_by_role("main").get_by_role("listitem")).to_have_text(
        ["Cyber security", "Data"]
    )

    # What is stored: the subscriber with their chosen hour, and the append-only history.
    assert live_subscriptions(app, subscriber_id) == {}
    assert rows(app, select(Subscriber.email, Subscriber.daily_hour)) == [
        ("reader@example.com", 18)
    ]
    history = rows(
        app,
        select(Subscription.topic_id, Subscription.frequency, Subscription.ended_reason),
    )
    assert sorted(history) == sorted(
        [
            (topics["cyber-security"], "daily", EndedReason.UNSUBSCRIBED),
            (topics["data"], "daily", EndedReason.FREQUENCY_CHANGED),
            (topics["data"], "weekly", EndedReason.UNSUBSCRIBED),
        ]
    )
    assert count(app, OutboxEmail) == 2
    assert mailbox.deliver() == [], "unsubscribing sends nothing"


def test_mistakes_are_listed_and_each_error_link_leads_to_its_field(page: Page, app, mailbox):
    seed_topics(app)
    page.goto("/")
    page.get_by_label("Email address").fill("reader@@example.com")
    page.get_by_role("button", name="Subscribe").click()

    expect(page).to_have_title(re.compile(r"^Error: Get email alerts"))
    summary = page.get_by_role("alert")
    expect(summary.get_by_role("heading")).to_have_text("There is a problem")
    expect(summary.get_by_role("link")).to_have_text(
        [
            "Select at least one topic",
            "Enter an email address in the correct format, like name@example.com",
        ]
    )
    email = page.get_by_label("Email address")
    expect(email).to_have_value("reader@@example.com")
    expect(email).to_have_accessible_description(
        re.compile(r"Error: Enter an email address in the correct format")
    )

    summary.get_by_role("link", name="Enter an email address in the correct format").click()
    expect(page).to_have_url(re.compile(r"#email$"))
    expect(email).to_be_focused()

    summary.get_by_role("link", name="Select at least one topic").click()
    expect(page).to_have_url(re.compile(r"#topics-0$"))
    expect(page.get_by_role("checkbox").first).to_be_focused()

    # Put it right from where the links led.
    page.keyboard.press("Space")
    email.fill("reader@example.com")
    page.get_by_role("button", name="Subscribe").click()
    expect(heading(page)).to_have_text("Check your email")
    assert [m["To"] for m in mailbox.deliver()] == ["reader@example.com"]
    assert count(app, Subscriber) == 1
