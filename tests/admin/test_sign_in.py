"""Signing in to /admin: who gets in, for how long, and what a viewer may do."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from sqlalchemy import select

from alertsvc.admin.blueprint import safe_next
from alertsvc.models import AuditEntry, Operator, utcnow
from alertsvc.models.types import set_clock
from tests.admin.helpers import csrf_token, post_form, sign_in
from tests.factories import OPERATOR_PASSWORD, create_operator, rows


def test_an_operator_signs_in_and_sees_the_dashboard(app: Flask):
    create_operator(app, "ops@publisher.example", "admin")
    client = app.test_client()
    response = sign_in(client, "OPS@Publisher.example")
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/"
    page = client.get("/admin/").get_data(as_text=True)
    assert "Dashboard" in page and "ops@publisher.example (admin)" in page
    entry = rows(app, select(AuditEntry.actor, AuditEntry.action, AuditEntry.client))
    assert entry == [("operator:ops@publisher.example", "operator.sign_in", "127.0.0.1")]


def test_wrong_password_and_unknown_address_get_the_same_answer(app: Flask):
    create_operator(app, "ops@publisher.example")
    client = app.test_client()
    wrong = sign_in(client, "ops@publisher.example", "not the password at all")
    unknown = sign_in(client, "nobody@publisher.example")
    for response in (wrong, unknown):
        assert response.status_code == 400
        assert "The email address or password is not right" in response.get_data(as_text=True)
    assert client.get("/admin/").status_code == 302


def test_a_disabled_operator_cannot_sign_in_and_is_signed_out(app: Flask):
    create_operator(app, "ops@publisher.example")
    client = app.test_client()
    assert sign_in(client).status_code == 302
    runner = app.test_cli_runner()
    assert runner.invoke(args=["operators", "disable", "ops@publisher.example"]).exit_code == 0
    assert client.get("/admin/").status_code == 302
    assert sign_in(client).status_code == 400


def test_anonymous_requests_are_refused(app: Flask):
    client = app.test_client()
    response = client.get("/admin/?x=1")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/admin/login?next=/admin/")
    assert client.post("/admin/").status_code in (403, 405)


def test_sign_in_only_returns_to_admin_pages(app: Flask):
    create_operator(app)
    for target, expected in [
        ("/admin/", "/admin/"),
        ("https://evil.example/admin", "/admin/"),
        ("//evil.example/admin", "/admin/"),
        ("/\\evil.example", "/admin/"),
        ("/admin/audit", "/admin/audit"),
        ("/admin/audit?action=topic.create&before=5", "/admin/audit?action=topic.create&before=5"),
        ("/admin", "/admin"),
        ("/administrator", "/admin/"),
        ("/admin/..//evil.example", "/admin/"),
        ("/admin/%2e%2e//evil.example", "/admin/"),
        ("/admin/./audit", "/admin/"),
        ("/admin//evil.example", "/admin/"),
        ("/admin/%5cevil.example", "/admin/"),
        ("/admin/audit?q=a b", "/admin/audit?q=a%20b"),
    ]:
        client = app.test_client()
        data = {
            "email": "ops@publisher.example",
            "password": "a long test password",
            "csrf_token": csrf_token(client),
        }
        response = client.post("/admin/login", query_string={"next": target}, data=data)
        assert response.status_code == 302, target
        assert response.headers["Location"] == expected, target


def test_next_with_a_control_character_goes_to_the_dashboard(app: Flask):
    """A newline in next= gave 500 (a header cannot hold one). Pages now refuse such a query
    before sign-in reads it (test_characters); safe_next refuses it on its own too."""
    with app.test_request_context():
        for target in (
            "/admin\r\nX-Injected: 1",
            "/admin/audit\nX",
            "/admin/%0d%0aX",
            "/admin\x00",
        ):
            assert safe_next(target) == "/admin/", target


def test_sessions_end_after_the_idle_time(app: Flask):
    create_operator(app)
    client = app.test_client()
    start = utcnow()
    try:
        set_clock(lambda: start)
        assert sign_in(client).status_code == 302
        set_clock(lambda: start + timedelta(minutes=29))
        assert client.get("/admin/").status_code == 200
        set_clock(lambda: start + timedelta(minutes=58))
        assert client.get("/admin/").status_code == 200  # 29 minutes since the last request
        set_clock(lambda: start + timedelta(minutes=89))
        response = client.get("/admin/")
        assert response.status_code == 302
        page = client.get(response.headers["Location"]).get_data(as_text=True)
        assert "signed out because you had not used the admin pages" in page
        assert client.get("/admin/").status_code == 302
    finally:
        set_clock(None)


def test_a_form_sent_after_the_idle_time_says_to_sign_in_again(app: Flask):
    """The operator left a form open past the idle time, then sent it: nothing changes, and
    the page says why and links to signing in, rather than a bare "Forbidden"."""
    create_operator(app)
    client = app.test_client()
    start = utcnow()
    try:
        set_clock(lambda: start)
        assert sign_in(client).status_code == 302
        token = csrf_token(client, "/admin/topics/new")
        set_clock(lambda: start + timedelta(minutes=31))
        response = client.post(
            "/admin/topics/new",
            data={"csrf_token": token, "slug": "late", "name": "Late"},
        )
    finally:
        set_clock(None)
    assert response.status_code == 403
    page = response.get_data(as_text=True)
    assert "<h1>You are not signed in</h1>" in page
    assert "Nothing was changed" in page
    assert 'href="/admin/login"' in page
    assert "Forbidden" not in page and "permission" not in page
    assert rows(app, select(AuditEntry.action).where(AuditEntry.action == "topic.create")) == []


def test_a_viewer_who_tries_a_change_is_told_their_role(app: Flask):
    create_operator(app, "viewer@publisher.example", "viewer")
    client = app.test_client()
    assert sign_in(client, "viewer@publisher.example").status_code == 302
    token = csrf_token(client, "/admin/")
    response = client.post("/admin/delivery/pause", data={"csrf_token": token, "reason": "x"})
    assert response.status_code == 403
    page = response.get_data(as_text=True)
    assert "<h1>Your account can only view</h1>" in page
    assert "Nothing was changed" in page
    assert 'href="/admin/"' in page and "Forbidden" not in page


def test_a_new_password_signs_out_every_session(app: Flask):
    create_operator(app)
    client = app.test_client()
    assert sign_in(client).status_code == 302
    result = app.test_cli_runner().invoke(
        args=["operators", "reset-password", "ops@publisher.example", "--password-stdin"],
        input="another long password\n",
    )
    assert result.exit_code == 0, result.output
    assert client.get("/admin/").status_code == 302
    assert sign_in(client, password="another long password").status_code == 302


def test_sign_out(app: Flask):
    create_operator(app)
    client = app.test_client()
    sign_in(client)
    response = post_form(client, "/admin/logout")
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 302


def test_sign_out_ends_the_session_on_the_server_too(app: Flask):
    """A cookie copied before signing out (another tab, a stolen copy) used to keep working."""
    create_operator(app)
    client = app.test_client()
    assert sign_in(client).status_code == 302
    copy = app.test_client()
    copy.set_cookie("session", client.get_cookie("session").value)
    assert copy.get("/admin/").status_code == 200

    assert post_form(client, "/admin/logout").status_code == 302

    assert copy.get("/admin/").status_code == 302
    assert client.get("/admin/").status_code == 302
    entries = rows(app, select(AuditEntry.actor, AuditEntry.action).order_by(AuditEntry.id))
    assert entries[-1] == ("operator:ops@publisher.example", "operator.sign_out")
    assert sign_in(client).status_code == 302


def test_viewers_see_the_pages_and_may_sign_out(app: Flask):
    create_operator(app, "viewer@publisher.example", "viewer")
    client = app.test_client()
    assert sign_in(client, "viewer@publisher.example").status_code == 302
    assert client.get("/admin/").status_code == 200
    token = csrf_token(client, "/admin/")
    assert client.post("/admin/logout", data={"csrf_token": token}).status_code == 302


def test_sign_in_is_rate_limited_per_address(app_with):
    app = app_with(ADMIN_SIGNIN_RATE_LIMIT_PER_ADDRESS="3 per hour")
    create_operator(app)
    for _ in range(3):
        client = app.test_client()
        assert sign_in(client, password="wrong password here").status_code == 400
    client = app.test_client()
    assert sign_in(client).status_code == 429
    assert sign_in(client, "someone.else@publisher.example").status_code == 400


def test_sign_in_is_rate_limited_per_client(app_with):
    """One client guessing at many addresses is stopped, whatever address it types next;
    another client is not."""
    app = app_with(
        ADMIN_SIGNIN_RATE_LIMIT_PER_IP="3 per hour",
        ADMIN_SIGNIN_RATE_LIMIT_PER_ADDRESS="100 per hour",
    )
    create_operator(app)
    guesser = {"REMOTE_ADDR": "203.0.113.9"}
    for n in range(3):
        response = sign_in(app.test_client(), f"guess{n}@publisher.example", environ_base=guesser)
        assert response.status_code == 400
    assert sign_in(app.test_client(), environ_base=guesser).status_code == 429
    assert (
        sign_in(app.test_client(), environ_base={"REMOTE_ADDR": "198.51.100.4"}).status_code == 302
    )


def test_only_failed_sign_ins_count_against_the_limits(app_with):
    """Successful sign-ins used to count too: an operator locked themselves out."""
    app = app_with(
        ADMIN_SIGNIN_RATE_LIMIT_PER_ADDRESS="3 per hour",
        ADMIN_SIGNIN_RATE_LIMIT_PER_IP="3 per hour",
    )
    create_operator(app)
    for _ in range(3):
        assert sign_in(app.test_client()).status_code == 302
    assert sign_in(app.test_client(), password="wrong password here").status_code == 400
    for _ in range(2):
        assert sign_in(app.test_client(), password="wrong password here").status_code == 400
    assert sign_in(app.test_client()).status_code == 429


def test_session_cookie_is_secure_in_production(app_with):
    app = app_with(ENV="production", SECRET_KEY="x" * 10 + "abcdefghijklmnopqrstuvwxyz0123456789")
    create_operator(app)
    client = app.test_client()
    https = "https://alerts.test"
    page = client.get("/admin/login", base_url=https).get_data(as_text=True)
    token = page.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
    data = {"email": "ops@publisher.example", "password": OPERATOR_PASSWORD, "csrf_token": token}
    # Over https Flask-WTF also wants a same-origin Referer, which browsers send to our own
    # pages under Referrer-Policy: same-origin.
    headers = {"Referer": f"{https}/admin/login"}
    response = client.post("/admin/login", data=data, base_url=https, headers=headers)
    assert response.status_code == 302
    cookie = response.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_operators_commands(app: Flask):
    runner = app.test_cli_runner()

    def run(*args: str, input: str | None = None):
        return runner.invoke(args=["operators", *args], input=input)

    created = run(
        "create",
        "ann@publisher.example",
        "--role",
        "admin",
        "--password-stdin",
        input="twelve chars ok\n",
    )
    assert created.exit_code == 0, created.output
    again = run("create", "ANN@publisher.example", "--password-stdin", input="twelve chars ok\n")
    assert again.exit_code == 1 and "already exists" in again.output
    bad = run("create", "not an address", "--password-stdin", input="twelve chars ok\n")
    assert bad.exit_code == 1 and "is not an email address" in bad.output
    short = run("create", "bob@publisher.example", "--password-stdin", input="short\n")
    assert short.exit_code == 1 and "at least 12 characters" in short.output
    assert run("set-role", "ann@publisher.example", "viewer").exit_code == 0
    assert run("set-role", "ann@publisher.example", "owner").exit_code == 2
    assert "no operator" in run("disable", "nobody@publisher.example").output
    listing = run("list").output
    assert "ann@publisher.example\tviewer\tactive\tnever signed in" in listing
    assert rows(app, select(Operator.email)) == ["ann@publisher.example"]
    actions = rows(app, select(AuditEntry.action).order_by(AuditEntry.id))
    assert actions == ["operator.create", "operator.set_role"]


def test_password_commands_without_a_terminal_say_so_in_one_line(app: Flask):
    """Without a terminal they printed a GetPassWarning and "Aborted!", and reset-password
    asked for a password before finding there was no such operator."""
    create_operator(app, "ann@publisher.example")
    runner = app.test_cli_runner()

    def run(*args: str, input: str | None = None) -> tuple[int, list[str]]:
        result = runner.invoke(args=["operators", *args], input=input)
        return result.exit_code, result.output.strip().splitlines()

    no_terminal = "Error: no terminal to ask for the password: pipe it with --password-stdin"
    assert run("reset-password", "nobody@example.org") == (
        1,
        ["Error: no operator nobody@example.org"],
    )
    assert run("reset-password", "nobody@example.org", "--password-stdin", input="x" * 20) == (
        1,
        ["Error: no operator nobody@example.org"],
    )
    assert run("reset-password", "ann@publisher.example") == (1, [no_terminal])
    assert run("create", "x@example.org") == (1, [no_terminal])
    assert run("create", "ann@publisher.example") == (
        1,
        ["Error: an operator ann@publisher.example already exists"],
    )
    too_short = ["Error: the password must be at least 12 characters"]
    assert run("create", "x@example.org", "--password-stdin", input="\n") == (1, too_short)
    assert run("reset-password", "ann@publisher.example", "--password-stdin", input="") == (
        1,
        too_short,
    )
    assert rows(app, select(Operator.email)) == ["ann@publisher.example"]
    assert rows(app, select(AuditEntry.action)) == []
    assert sign_in(app.test_client(), "ann@publisher.example").status_code == 302


def test_make_runs_development_admin(app_with, tmp_path):
    app = app_with(ENV="development")
    app.instance_path = str(tmp_path)
    runner = app.test_cli_runner()
    first = runner.invoke(args=["operators", "dev-admin"])
    assert first.exit_code == 0, first.output
    password = (tmp_path / "dev-admin-password").read_text().strip()
    assert f"as admin@example.org, password {password}" in first.output
    again = runner.invoke(args=["operators", "dev-admin"])
    assert again.output == first.output
    client = app.test_client()
    assert sign_in(client, "admin@example.org", password).status_code == 302


def test_development_admin_is_refused_elsewhere(app: Flask):
    result = app.test_cli_runner().invoke(args=["operators", "dev-admin"])
    assert result.exit_code == 1
    assert "for development only" in result.output
