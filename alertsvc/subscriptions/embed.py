"""The "Register For Alerts" box: a small page for a publisher's article pages to frame.

Only an address field and a button. It sends nothing itself: its form is a GET to the
signup page, opened in a new tab on alertsvc's own origin, where the reader sees what they
are signing up to and the CSRF-protected form does the rest. The topics it passes on are
the article's (``?article=<address>``) or the publisher's ``topic`` parameters.

Framing is allowed to the origins in ``EMBED_ORIGINS`` only (CSP ``frame-ancestors``);
with none configured the page refuses every frame, like every other page.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, make_response, render_template, request

from alertsvc.headers import content_security_policy, frame_ancestors
from alertsvc.subscriptions.prefill import requested_topics
from alertsvc.topics.services import active_topics

bp = Blueprint("embed", __name__)

# The box is on every article page: browsers and caches may keep it a few minutes (it
# holds no cookie, token or personal data). An article's topics show within that time.
CACHE_SECONDS = 300


@bp.get("/embed/register")
def register() -> Response:
    topics = requested_topics(request.args, active_topics())
    response = make_response(render_template("web/embed_register.html", topics=topics))
    response.headers["Content-Security-Policy"] = content_security_policy(
        frame_ancestors(current_app.config["EMBED_ORIGINS"])
    )
    response.headers["Cache-Control"] = f"public, max-age={CACHE_SECONDS}"
    return response
