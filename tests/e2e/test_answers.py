"""Answers a new user expects (issue 26): what came back when the API was tried as a
newcomer would try it, each finding with the answer it gives now."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Api, assert_problem


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/lifecycle", "as_of"),
        ("/kpis", "as_of"),
        ("/funnel", "as_of"),
        ("/clients", "as_of"),
        ("/audit", "from"),
        ("/audit", "to"),
        ("/activity", "until"),
    ],
)
def test_a_date_where_an_instant_is_expected_means_its_midnight_utc(
    api: Api, path: str, parameter: str
) -> None:
    api.catch_up()  # the default pipeline's definition reaches the funnel
    response = api.http.get(path, params={parameter: "2026-03-01"}, headers=api.auth("admin"))
    assert response.status_code == 200, response.text
    if parameter == "as_of" and path != "/clients":
        assert response.json()["as_of"] == "2026-03-01T00:00:00Z"


def test_an_instant_with_an_offset_is_answered_in_utc(api: Api) -> None:
    response = api.http.get(
        "/lifecycle", params={"as_of": "2026-03-01T11:30:00+02:00"}, headers=api.auth("admin")
    )
    assert response.json()["as_of"] == "2026-03-01T09:30:00Z"


def test_a_bad_instant_is_refused_naming_the_parameter_as_the_client_sent_it(api: Api) -> None:
    response = api.http.get("/audit", params={"from": "last week"}, headers=api.auth("admin"))
    body = assert_problem(response, 422)
    (error,) = body["errors"]
    assert (error["field"], error["source"]) == ("from", "query")
    assert "ISO 8601" in error["message"]


def test_the_funnel_of_an_unknown_pipeline_is_a_404_naming_it(api: Api) -> None:
    admin = api.auth("admin")
    defined = api.http.post(
        "/pipelines", json={"name": "Fitting", "stages": ["measure", "fit"]}, headers=admin
    )
    assert defined.status_code == 201, defined.text
    api.catch_up()
    body = assert_problem(api.http.get("/funnel", params={"pipeline": "nope"}, headers=admin), 404)
    assert "'nope'" in body["detail"]
    for known in ("default", "fitting", defined.json()["id"]):
        response = api.http.get("/funnel", params={"pipeline": known}, headers=admin)
        assert response.status_code == 200, (known, response.text)
    stages = api.http.get("/funnel", params={"pipeline": "Fitting"}, headers=admin).json()["stages"]
    assert [stage["stage"] for stage in stages] == ["measure", "fit"]
