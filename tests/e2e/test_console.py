"""The console at /ui in process (litestar's TestClient) over a product on SQLite, with
the history of ``console_story`` and one user per role (``conftest.USERS``): signing
in and out, sessions that end with their token, the headers and checks that keep the
pages safe, who sees what, and the figures of each page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from litestar.routes import HTTPRoute
from litestar.testing import TestClient

from tests.conftest import fresh_product
from tests.e2e.conftest import Api, open_api
from tests.e2e.console_story import (
    NEW_PHONE,
    NEW_PHONE_NATIONAL,
    OLD_PHONE,
    SCRIPT_NAME,
    Story,
    record_story,
)

EXPORTS_PER_HOUR = 1000
"""Enough for every page a test opens (pages showing personal values are bulk reads,
counted as exports); the test of the limit itself sets 2."""


@dataclass
class Console:
    api: Api
    story: Story

    @property
    def http(self) -> TestClient[Any]:
        return self.api.http

    def sign_in(self, user: str) -> None:
        """Sign in as ``user`` (dropping any session the client held)."""
        self.http.cookies.clear()
        answer = self.http.post(
            "/ui/login", data={"token": self.api.tokens[user]}, follow_redirects=False
        )
        assert answer.status_code == 303, answer.text

    def page(self, path: str, **params: Any) -> str:
        answer = self.http.get(path, params=params or None, follow_redirects=False)
        assert answer.status_code == 200, f"{path}: {answer.status_code} {answer.text[:500]}"
        return answer.text

    def form_token(self) -> str:
        match = re.search(r'name="form_token" value="([0-9a-f]+)"', self.page("/ui/"))
        assert match, "the page carries no form token"
        return match[1]


@pytest.fixture
def console(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Console]:
    """The console over the story; at most ``EXPORTS_PER_HOUR`` exports and bulk reads of
    personal values a user and hour, or as many as the test's parameter says."""
    with (
        fresh_product(
            "sqlite",
            tmp_path,
            embedded_projector=False,
            default_country="UA",
            export_rate_per_hour=getattr(request, "param", EXPORTS_PER_HOUR),
        ) as crm,
        open_api(crm) as api,
    ):
        story = record_story(api.http, api.tokens["ada"])
        api.catch_up()
        yield Console(api, story)


def cells(html: str, testid: str) -> list[list[str]]:
    """The text of each body row's cells of the table marked ``data-testid``."""
    table = re.search(rf'data-testid="{testid}".*?<tbody>(.*?)</tbody>', html, re.S)
    assert table, f"no table {testid}"
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", table[1], re.S)
    return [
        [
            re.sub(r"<[^>]+>", "", cell).strip()
            for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
        ]
        for row in rows
    ]


# ------------------------------------------------------------- signing in and out


def test_signing_in_with_a_token_sets_a_strict_http_only_session_cookie(console: Console) -> None:
    answer = console.http.post(
        "/ui/login", data={"token": console.api.tokens["aud"]}, follow_redirects=False
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("crm_console=")
    for flag in ("HttpOnly", "SameSite=strict", "Path=/ui", "Max-Age=28800"):
        assert flag in cookie, cookie
    assert "Secure" not in cookie  # served over plain http here
    assert console.api.tokens["aud"] not in cookie
    assert 'data-testid="who">aud' in console.page("/ui/")


def test_over_https_the_session_cookie_is_secure(console: Console) -> None:
    with TestClient(console.http.app, base_url="https://testserver.local") as https:
        answer = https.post(
            "/ui/login", data={"token": console.api.tokens["aud"]}, follow_redirects=False
        )
    assert answer.status_code == 303
    assert "Secure" in answer.headers["set-cookie"]


def test_an_unknown_token_is_refused_on_the_sign_in_form(console: Console) -> None:
    answer = console.http.post("/ui/login", data={"token": "crm_guess"}, follow_redirects=False)
    assert answer.status_code == 401
    assert "unknown or was revoked" in answer.text
    assert "set-cookie" not in answer.headers


def test_a_page_without_a_session_sends_to_the_sign_in_form_and_back(console: Console) -> None:
    console.http.cookies.clear()
    target = f"/ui/audit?client_id={console.story.olena}&field=phones"
    answer = console.http.get(target, follow_redirects=False)
    assert answer.status_code == 303
    location = answer.headers["location"]
    assert location.startswith("/ui/login?next=")
    form = console.page(location)
    assert 'name="next" value="/ui/audit?client_id=' in form
    signed_in = console.http.post(
        "/ui/login",
        data={"token": console.api.tokens["aud"], "next": target},
        follow_redirects=False,
    )
    assert signed_in.headers["location"] == target


def test_sign_in_never_sends_to_another_site(console: Console) -> None:
    for target in ("https://evil.example/", "//evil.example/ui/", "/ui//evil.example", "/schema"):
        answer = console.http.post(
            "/ui/login",
            data={"token": console.api.tokens["aud"], "next": target},
            follow_redirects=False,
        )
        assert answer.headers["location"] == "/ui/", target


def test_revoking_the_token_ends_the_console_session_at_the_next_request(
    console: Console,
) -> None:
    console.sign_in("aud")
    console.page("/ui/")
    console.api.crm.users.revoke("aud")
    answer = console.http.get("/ui/", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/ui/login")


def test_a_new_token_for_the_user_ends_sessions_opened_with_the_old_one(
    console: Console,
) -> None:
    console.sign_in("aud")
    assert console.api.crm.users.issue_token("aud")
    assert console.http.get("/ui/", follow_redirects=False).status_code == 303


def test_signing_out_ends_the_session_even_for_a_copy_of_the_cookie(console: Console) -> None:
    console.sign_in("aud")
    copy = dict(console.http.cookies)
    answer = console.http.post(
        "/ui/logout", data={"form_token": console.form_token()}, follow_redirects=False
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/login"
    console.http.cookies.update(copy)
    assert console.http.get("/ui/", follow_redirects=False).status_code == 303


# ------------------------------------------------------------------------ safety


def test_forms_from_another_site_or_without_their_token_are_refused(console: Console) -> None:
    console.sign_in("aud")
    token = console.form_token()
    foreign = console.http.post(
        "/ui/logout", data={"form_token": token}, headers={"Origin": "https://evil.example"}
    )
    assert foreign.status_code == 403
    tokenless = console.http.post("/ui/chain/verify", data={})
    assert tokenless.status_code == 403
    login_elsewhere = console.http.post(
        "/ui/login",
        data={"token": console.api.tokens["aud"]},
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    assert login_elsewhere.status_code == 403
    assert 'data-testid="who">aud' in console.page("/ui/")  # still signed in


def test_every_console_answer_forbids_framing_and_runs_no_script(console: Console) -> None:
    console.http.cookies.clear()
    answers = [
        console.http.get("/ui/", follow_redirects=False),  # a redirect to sign in
        console.http.get("/ui/login"),
        console.http.get("/ui/static/console.css"),
    ]
    console.sign_in("aud")
    answers += [
        console.http.get("/ui/"),
        console.http.get("/ui/clients/00000000-0000-0000-0000-000000000000"),  # an error page
    ]
    for answer in answers:
        policy = answer.headers["content-security-policy"]
        assert "default-src 'none'" in policy
        assert "script-src" not in policy  # so no script at all, inline or not
        assert "frame-ancestors 'none'" in policy
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["x-content-type-options"] == "nosniff"
    assert answers[3].headers["cache-control"] == "no-store"
    assert answers[4].status_code == 404


def test_no_console_page_has_an_inline_script_or_event_handler(console: Console) -> None:
    console.sign_in("ada")
    story = console.story
    for path in (
        "/ui/",
        "/ui/clients",
        f"/ui/clients/{story.olena}",
        "/ui/audit",
        "/ui/lifecycle",
        "/ui/funnel",
        "/ui/chain",
        "/ui/projections",
    ):
        html = console.page(path)
        assert "<script" not in html.replace("&lt;script", ""), path
        assert not re.search(r"\son[a-z]+\s*=", html), path
        assert not re.search(r'(src|href)="(https?:)?//', html), path


def test_a_client_named_like_a_script_is_shown_as_text(console: Console) -> None:
    console.sign_in("ada")
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    for html in (
        console.page(f"/ui/clients/{console.story.script}"),
        console.page("/ui/clients"),
        console.page("/ui/audit", client_id=console.story.script),
    ):
        assert SCRIPT_NAME not in html
        assert escaped in html


def test_a_search_by_national_phone_finds_the_client_with_no_phone_in_any_url(
    console: Console,
) -> None:
    console.sign_in("aud")
    answer = console.http.post(
        "/ui/clients", data={"q": NEW_PHONE_NATIONAL, "form_token": console.form_token()}
    )
    assert answer.status_code == 200
    assert answer.url.path == "/ui/clients"
    assert not answer.url.query
    rows = cells(answer.text, "clients")
    assert [row[0] for row in rows] == ["Olena Koval"]
    assert rows[0][3] == NEW_PHONE
    links = re.findall(r'(?:href|action)="([^"]*)"', answer.text)
    assert not [link for link in links if "380" in link or "050" in link or "Olena" in link]


def test_a_search_by_international_phone_or_email_or_name_finds_the_client(
    console: Console,
) -> None:
    console.sign_in("aud")
    token = console.form_token()
    for q in ("+380 50 123-45-67", "Koval", "olena"):
        answer = console.http.post("/ui/clients", data={"q": q, "form_token": token})
        assert [row[0] for row in cells(answer.text, "clients")] == ["Olena Koval"], q


def test_a_page_of_cards_or_of_the_audit_trail_is_recorded_as_a_bulk_read(
    console: Console,
) -> None:
    """As over the API (``GET /clients``, ``GET /audit``): a page showing personal
    values is counted and recorded as ``DataExported``; the search text as "(text)"."""
    console.sign_in("aud")
    token = console.form_token()
    console.http.post("/ui/clients", data={"q": "Koval", "form_token": token})
    console.page("/ui/audit")
    api = console.api
    feed = api.http.get("/events", params={"limit": 1000}, headers=api.auth("ada")).json()
    recorded = [
        (e["payload"]["kind"], e["payload"]["filters"].get("text"))
        for e in feed["items"]
        if e["event_type"] == "DataExported" and e["actor_id"] == "aud"
    ]
    assert recorded == [("clients", "(text)"), ("audit", None)]


def test_text_the_store_cannot_hold_is_refused_as_a_page(console: Console) -> None:
    console.sign_in("aud")
    answer = console.http.get("/ui/audit", params={"actor_id": "a\x00b"})
    assert answer.status_code == 400
    assert "text/html" in answer.headers["content-type"]


# ------------------------------------------------------------------- who sees what


def test_a_manager_sees_only_their_own_clients(console: Console) -> None:
    console.sign_in("mia")
    names = [row[0] for row in cells(console.page("/ui/clients"), "clients")]
    assert sorted(names) == ["Ivan Sirko", "Olena Koval"]
    assert console.http.get(f"/ui/clients/{console.story.script}").status_code == 404
    assert "Olena Koval" in console.page(f"/ui/clients/{console.story.olena}")


# The status of each console page for each role, from the API's permissions: the
# read models for everyone, the audit trail, its export and the chain for the roles
# that read the audit trail (admin, auditor), the read models' lag for those that
# read the metrics (admin, auditor, service).
# fmt: off
CONSOLE_MATRIX: list[tuple[str, int, int, int, int]] = [
    # page                        admin mgr  aud  svc
    ("/ui/",                        200, 200, 200, 200),
    ("/ui/clients",                 200, 200, 200, 200),
    ("/ui/clients/{olena}",         200, 200, 200, 200),
    ("/ui/clients/{script}",        200, 404, 200, 200),
    ("/ui/audit",                   200, 403, 200, 403),
    ("/ui/audit/export.csv",        200, 403, 200, 403),
    ("/ui/lifecycle",               200, 200, 200, 200),
    ("/ui/funnel",                  200, 200, 200, 200),
    ("/ui/chain",                   200, 403, 200, 403),
    ("/ui/projections",             200, 403, 200, 200),
]
# fmt: on


def test_each_role_gets_the_status_the_api_s_permissions_give_each_page(
    console: Console,
) -> None:
    story = console.story
    for column, user in enumerate(("ada", "mia", "aud", "svc")):
        console.sign_in(user)
        for page, *statuses in CONSOLE_MATRIX:
            path = page.format(olena=story.olena, script=story.script)
            status = console.http.get(path, follow_redirects=False).status_code
            assert status == statuses[column], f"{user} {path}: {status}"


def test_every_console_page_has_a_row(console: Console) -> None:
    pages = {
        (method, route.path_format)
        for route in console.http.app.routes
        if isinstance(route, HTTPRoute) and route.path_format.startswith("/ui")
        for method in route.methods - {"HEAD", "OPTIONS"}
    }
    in_matrix = {
        ("GET", page.replace("{olena}", "{client_id}").rstrip("/")) for page, *_ in CONSOLE_MATRIX
    } - {("GET", "/ui/clients/{script}")}
    public = {("GET", "/ui/login"), ("POST", "/ui/login"), ("GET", "/ui/static/{file_path}")}
    forms = {("POST", "/ui/logout"), ("POST", "/ui/clients"), ("POST", "/ui/chain/verify")}
    assert pages == in_matrix | public | forms  # the last two sets are tested one by one


@pytest.mark.parametrize("user", ["mia", "svc"])
def test_the_audit_trail_and_the_chain_need_the_audit_permission(
    console: Console, user: str
) -> None:
    console.sign_in(user)
    for path in ("/ui/audit", "/ui/audit/export.csv", "/ui/chain"):
        assert console.http.get(path).status_code == 403, path
    nav = console.page("/ui/")
    assert 'href="/ui/audit"' not in nav
    assert 'href="/ui/lifecycle"' in nav


def test_a_role_that_may_not_read_personal_values_sees_none(console: Console) -> None:
    console.sign_in("svc")
    card = console.page(f"/ui/clients/{console.story.olena}")
    for value in ("Olena", NEW_PHONE, OLD_PHONE, "Koval"):
        assert value not in card
    assert "(hidden)" in card
    assert "personal values hidden" in card
    assert "ClientDetailsChanged" in card  # who changed what, when: still there
    search = console.http.post(
        "/ui/clients", data={"q": "Koval", "form_token": console.form_token()}
    )
    assert "needs a role that may read them" in search.text
    assert "Koval" not in search.text.replace('value="Koval"', "")


# ------------------------------------------------------------------- the pages


def test_the_timeline_says_who_changed_the_phone_when_and_from_where(console: Console) -> None:
    console.sign_in("aud")
    html = console.page(f"/ui/clients/{console.story.olena}")
    change = re.search(
        r'<tr data-position="\d+">(?:(?!</tr>).)*ClientDetailsChanged.*?</tr>', html, re.S
    )
    assert change, "no change in the timeline"
    row = re.sub(r"<[^>]+>", " ", change[0])
    for text in ("ada", "admin", "api", OLD_PHONE, NEW_PHONE, "phones"):
        assert text in row, text
    stages = [row[0] for row in cells(html, "intervals")]
    assert stages == ["potential", "new", "loyal", "dead"]


def test_the_audit_trail_filters_by_client_field_source_and_dates(console: Console) -> None:
    console.sign_in("aud")
    olena = console.story.olena
    both = console.page("/ui/audit", client_id=olena, field="phones")
    assert both.count("<tr data-position=") == 2  # registered with one, changed to another
    today = console.page("/ui/audit", client_id=olena, field="phones", **{"from": "2025-01-01"})
    assert today.count("<tr data-position=") == 1
    assert (
        console.page("/ui/audit", client_id=olena, source="import").count("<tr data-position=") == 0
    )
    in_2024 = console.page(
        "/ui/audit", client_id=olena, **{"from": "2024-01-10", "to": "2024-01-10"}
    )
    assert in_2024.count("<tr data-position=") == 1  # registered (with mia as owner)


def test_the_audit_trail_pages_with_a_cursor(console: Console) -> None:
    console.sign_in("aud")
    first = console.page("/ui/audit", limit=5)
    positions = re.findall(r'<tr data-position="(\d+)"', first)
    assert len(positions) > 0
    following = re.search(r'href="(/ui/audit\?[^"]*cursor=[^"]+)" data-testid="next-page"', first)
    assert following, "no next page"
    second = console.page(following[1].replace("&amp;", "&"))
    later = re.findall(r'<tr data-position="(\d+)"', second)
    assert later
    assert int(later[0]) >= int(positions[-1])
    assert not set(later) & set(positions) - {positions[-1]}


@pytest.mark.parametrize("console", [2], indirect=True)  # two exports an hour
def test_a_csv_export_is_recorded_and_limited_as_one_over_the_api(console: Console) -> None:
    api = console.api
    over_api = api.http.get("/audit", params={"format": "csv"}, headers=api.auth("aud"))
    assert over_api.status_code == 200
    console.sign_in("aud")
    export = console.http.get(
        "/ui/audit/export.csv", params={"client_id": console.story.olena, "source": "api"}
    )
    assert export.status_code == 200
    assert export.headers["content-type"].startswith("text/csv")
    lines = export.text.strip().splitlines()
    assert lines[0].startswith("position,seq,event_id")
    assert all(console.story.olena in line for line in lines[1:])
    feed = api.http.get("/events", params={"limit": 1000}, headers=api.auth("ada")).json()
    exports = [e for e in feed["items"] if e["event_type"] == "DataExported"]
    assert [e["actor_id"] for e in exports] == ["aud", "aud"]
    assert exports[-1]["payload"]["filters"] == {
        "client_id": console.story.olena,
        "source": "api",
    }
    third = console.http.get("/ui/audit/export.csv")
    assert third.status_code == 429  # the same hourly limit as over the API
    assert "Retry-After" in third.headers


def test_the_dashboard_counts_the_clients_lost_in_a_quarter_and_why(console: Console) -> None:
    console.sign_in("aud")
    html = console.page("/ui/", as_of="2024-07-15")
    assert re.search(r'data-testid="lost-total">1<', html)
    assert cells(html, "lost-reasons") == [["inactivity", "1", "100.0 %"]]
    first_quarter = console.page(
        "/ui/", as_of="2024-07-15", lost_from="2024-01-01", lost_to="2024-03-31"
    )
    assert cells(first_quarter, "lost-reasons") == [["price", "1", "100.0 %"]]
    assert cells(first_quarter, "lost-by-month") == [
        ["2024-01", "0", "0"],
        ["2024-02", "0", "0"],
        ["2024-03", "1", "1"],
    ]
    assert cells(html, "stage-counts") == [
        ["potential", "1"], ["new", "0"], ["loyal", "0"], ["dead", "2"], ["returned", "0"]
    ]  # fmt: skip
    assert 'title="Clients in stage dead at the instant."' in html  # the definition on hover


def test_losses_of_a_period_that_runs_past_the_instant_stop_at_it(console: Console) -> None:
    console.sign_in("aud")
    html = console.page("/ui/", as_of="2024-06-01", lost_from="2024-04-01", lost_to="2024-06-30")
    assert re.search(r'data-testid="lost-total">0<', html)  # Olena dies on 06-13


def test_the_lifecycle_page_counts_each_month_at_its_end(console: Console) -> None:
    console.sign_in("aud")
    html = console.page("/ui/lifecycle", **{"from": "2024-01", "to": "2024-07"})
    rows = {row[0]: row[1:6] for row in cells(html, "lifecycle")}
    assert rows == {
        "2024-01": ["0", "1", "0", "0", "0"],
        "2024-02": ["0", "2", "0", "0", "0"],
        "2024-03": ["1", "0", "1", "1", "0"],
        "2024-04": ["1", "0", "1", "1", "0"],
        "2024-05": ["1", "0", "1", "1", "0"],
        "2024-06": ["1", "0", "0", "2", "0"],
        "2024-07": ["1", "0", "0", "2", "0"],
    }
    assert "<svg" in html
    assert "Clients per lifecycle stage" in html
    too_long = console.http.get("/ui/lifecycle", params={"from": "2020-01", "to": "2024-07"})
    assert too_long.status_code == 400


def test_the_funnel_page_shows_reached_conversions_win_rate_and_lost_reasons(
    console: Console,
) -> None:
    console.sign_in("aud")
    html = console.page("/ui/funnel")
    rows = {row[0]: row[1:5] for row in cells(html, "funnel")}
    assert rows["attraction"] == ["3", "1", "66.7 %", "100.0 %"]
    assert rows["interest"] == ["2", "0", "50.0 %", "66.7 %"]
    assert rows["evaluation"] == ["1", "0", "100.0 %", "33.3 %"]
    assert re.search(r'data-testid="win-rate">50.0 %<', html)
    assert cells(html, "lost-reasons") == [["price", "1"]]
    mia = console.page("/ui/funnel", owner_id="max")
    assert re.search(r'data-testid="won">0<', mia)


def test_verify_now_names_the_first_broken_position(console: Console) -> None:
    console.sign_in("aud")
    crm = console.api.crm
    crm.projector(["chain"]).catch_up()
    token = console.form_token()
    intact = console.http.post("/ui/chain/verify", data={"form_token": token})
    assert "Intact" in intact.text
    crm.db.execute("UPDATE events SET state = X'00' WHERE rowid = 5")
    broken = console.http.post("/ui/chain/verify", data={"form_token": token})
    assert re.search(r"Broken at position <strong>5</strong>", broken.text)


def test_the_projections_page_lists_every_read_model_and_its_lag(console: Console) -> None:
    console.sign_in("aud")
    head = console.api.head()
    rows = cells(console.page("/ui/projections"), "projections")
    assert {row[0] for row in rows} >= {"lifecycle", "audit", "funnel", "directory", "chain"}
    assert all(row[1] == f"{head:,}" and row[2] == "0" for row in rows)


# ----------------------------------------------------------------------- /schema


def test_the_openapi_pages_load_nothing_from_another_host(console: Console) -> None:
    for path in ("/schema", "/schema/swagger"):
        answer = console.http.get(path)
        assert answer.status_code == 200
        links = re.findall(r'(?:src|href)=["\']([^"\']+)', answer.text)
        assert links, path
        for link in links:
            assert not urlsplit(link).netloc, f"{path} loads {link}"
            assert console.http.get(link).status_code == 200, link
        policy = dict(
            directive.strip().split(" ", 1)
            for directive in answer.headers["content-security-policy"].split(";")
        )
        assert policy["script-src"] == "'self'"  # so the page may run no inline script
        assert "<script>" not in answer.text


def test_the_console_is_not_part_of_the_api_document(console: Console) -> None:
    document = console.http.get("/schema/openapi.json").json()
    assert not [path for path in document["paths"] if path.startswith("/ui")]


def test_every_page_answers_on_postgresql_too(tmp_path: Path) -> None:
    with (
        fresh_product(
            "postgresql", tmp_path, embedded_projector=False, default_country="UA"
        ) as crm,
        open_api(crm) as api,
    ):
        story = record_story(api.http, api.tokens["ada"])
        api.catch_up()
        console = Console(api, story)
        console.sign_in("aud")
        html = console.page("/ui/", as_of="2024-07-15")
        assert cells(html, "lost-reasons") == [["inactivity", "1", "100.0 %"]]
        rows = cells(
            console.page("/ui/lifecycle", **{"from": "2024-06", "to": "2024-06"}), "lifecycle"
        )
        assert rows[0][1:6] == ["1", "0", "0", "2", "0"]
        found = console.http.post(
            "/ui/clients", data={"q": NEW_PHONE_NATIONAL, "form_token": console.form_token()}
        )
        assert [row[0] for row in cells(found.text, "clients")] == ["Olena Koval"]
        for path in (f"/ui/clients/{story.olena}", "/ui/audit", "/ui/funnel", "/ui/chain"):
            console.page(path)
        assert console.http.get("/ui/projections").status_code == 200
        assert console.http.get("/ui/audit/export.csv").status_code == 200
