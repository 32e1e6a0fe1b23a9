"""``POST /imports``: a spreadsheet as the body, the import's report as JSON."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import Api, assert_problem

CSV = "ПІБ;Телефон;Дата реєстрації\nІван;067 111 22 33;01.02.2024\nПетро;12;02.02.2024\n"


def post(api: Api, body: bytes, user: str = "admin", **query: Any) -> Any:
    return api.http.post(
        "/imports",
        content=body,
        params=query,
        headers=api.auth(user, **{"Content-Type": "text/csv"}),
    )


def test_an_admin_imports_a_file_and_gets_the_report_as_json(api: Api) -> None:
    before = api.head()
    refused = post(api, CSV.encode("cp1251"), country="UA")
    assert refused.status_code == 200, refused.text
    report = refused.json()
    assert (report["recorded"], report["rejected"]) == (False, 1)
    assert report["problems"] == [
        {
            "sheet": None,
            "line": 3,
            "column": "Телефон",
            "value": "12",
            "message": report["problems"][0]["message"],
        }
    ]
    assert api.head() == before

    partial = post(api, CSV.encode("cp1251"), country="UA", skip_invalid="true").json()
    assert (partial["recorded"], partial["accepted"], partial["rejected"]) == (
        True,
        {"clients": 1},
        1,
    )
    events = api.crm.app.recorder.select_notifications(before + 1, 10)
    assert events  # Іван's registration, attributed to the admin, from an import
    api.catch_up()
    (card,) = api.http.get("/clients", headers=api.auth("admin")).json()["items"]
    assert card["name"] == "Іван"


def test_only_an_admin_may_import(api: Api) -> None:
    assert_problem(post(api, CSV.encode(), user="manager"), 403)


def test_a_file_that_cannot_be_read_is_a_validation_problem(api: Api) -> None:
    assert_problem(post(api, b"PK\x03\x04 broken"), 400)
