"""``/subscriptions`` over HTTP, the work queue's items and the KPIs' new keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID

from adapters.webhooks import secret_of
from application.clients import RegisterClient, ScheduleFollowUp
from tests.e2e.conftest import Api, admin_envelope, assert_problem

HOOK = "http://127.0.0.1:9/hook"  # nothing delivers here: no delivery process runs


def test_an_admin_subscribes_sees_the_secret_once_and_removes_it(api: Api) -> None:
    answer = api.http.post(
        "/subscriptions",
        json={"url": HOOK, "events": ["Client.PurchaseMade", "Deal.*"], "description": "shop"},
        headers=api.auth("admin", **{"Idempotency-Key": "sub-1"}),
    )
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert created["secret"].startswith("whsec_")
    assert answer.headers["location"] == f"/subscriptions/{created['id']}"
    again = api.http.post(
        "/subscriptions",
        json={"url": HOOK, "events": ["Client.PurchaseMade", "Deal.*"], "description": "shop"},
        headers=api.auth("admin", **{"Idempotency-Key": "sub-1"}),
    )
    assert (again.json()["id"], again.json()["secret"]) == (created["id"], created["secret"])

    api.catch_up()
    listed = api.http.get("/subscriptions", headers=api.auth("admin")).json()
    assert [s["id"] for s in listed] == [created["id"]]
    (shown,) = listed
    assert "secret" not in shown
    assert shown["events"] == ["Client.PurchaseMade", "Deal.*"]
    assert shown["status"] == "active"
    assert shown["delivered_position"] == created["position"]
    assert shown["lag"] == 0
    assert (shown["failures"], shown["last_error"]) == (0, None)

    paused = api.http.post(f"/subscriptions/{created['id']}/pause", headers=api.auth("admin"))
    assert paused.status_code == 200
    api.catch_up()
    one = api.http.get(f"/subscriptions/{created['id']}", headers=api.auth("admin")).json()
    assert one["status"] == "paused"

    removed = api.http.delete(f"/subscriptions/{created['id']}", headers=api.auth("admin"))
    assert removed.status_code == 200
    api.catch_up()
    gone = api.http.get(f"/subscriptions/{created['id']}", headers=api.auth("admin"))
    assert_problem(gone, 404)
    assert secret_of(api.crm.keys, gone_id(created)) is None  # its secret is destroyed
    assert_problem(
        api.http.post(f"/subscriptions/{created['id']}/resume", headers=api.auth("admin")), 422
    )


def gone_id(created: dict[str, str]) -> UUID:
    return UUID(created["id"])


def test_bad_subscriptions_are_problems_naming_the_field(api: Api) -> None:
    for body, field in (
        ({"url": "ftp://example.org/x"}, "url"),
        ({"url": HOOK, "events": ["purchases"]}, "events"),
        ({"url": HOOK, "events": []}, "events"),
    ):
        problem = assert_problem(
            api.http.post("/subscriptions", json=body, headers=api.auth("admin")), 422
        )
        assert field in str(problem["errors"]), problem
    replay = api.http.post(
        f"/subscriptions/{gone_id({'id': '00000000-0000-0000-0000-000000000009'})}/replay",
        json={"from_position": 1},
        headers=api.auth("admin"),
    )
    assert_problem(replay, 404)


def test_work_queue_items_show_name_phone_and_note_to_those_who_may_read_them(
    api: Api,
) -> None:
    envelope = admin_envelope()
    mine = api.crm.app.execute(
        RegisterClient(name="Ann Lee", phones=("+49301234567",), owner_id="mia"), envelope
    ).id
    theirs = api.crm.app.execute(RegisterClient(name="Bo Chen", owner_id="max"), envelope).id
    due = datetime.now(UTC) + timedelta(hours=2)
    local = due.astimezone(timezone(timedelta(hours=2)))
    for client in (mine, theirs):  # both follow-ups are mia's to do
        api.crm.app.execute(
            ScheduleFollowUp(client_id=client, due_at=local, assignee_id="mia", note="call"),
            envelope,
        )
    api.catch_up()

    items = api.http.get("/work-queue", headers=api.auth("manager")).json()["items"]
    by_client = {item["client_id"]: item for item in items}
    own = by_client[str(mine)]
    assert own["kind"] == "FollowUpScheduled"
    assert (own["client_name"], own["phones"], own["note"]) == ("Ann Lee", ["+49301234567"], "call")
    assert own["due_at"].endswith("+02:00")  # the offset it was given
    other = by_client[str(theirs)]  # max's client: mia may not read it
    assert (other["client_name"], other["phones"], other["note"]) == (None, None, None)
    assert other["redacted"] == ["client_name", "note", "phones"]
    everything = api.http.get("/work-queue", headers=api.auth("admin")).json()["items"]
    assert {item["client_name"] for item in everything} == {"Ann Lee", "Bo Chen"}


def test_the_kpis_include_the_lead_figures(api: Api) -> None:
    body = api.http.get("/kpis", headers=api.auth("admin")).json()
    assert body["unanswered_leads"] == 0
    assert body["median_first_response_minutes"] is None
