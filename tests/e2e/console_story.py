"""A small history whose figures are known by hand, recorded over the HTTP API, for
the console's tests (in process and in a browser).

Three clients (times UTC; dormancy 90 days, loyal at 3 purchases in 365 days):

* Olena Koval (owner mia), registered 2024-01-10, phone 067 111 22 33; buys on
  2024-01-15 and 2024-02-15; a deal opened 2024-03-01 goes attraction → interest
  (03-05) → evaluation (03-10) and is won on 2024-03-15 (her third purchase: loyal).
  No purchase after: dead by inactivity from 2024-06-13 10:00 (+1 µs). Today an admin
  changes her phone to +380 50 123 45 67.
* ``<script>alert(1)</script>`` (owner max), registered 2024-02-01, buys on
  2024-02-10, lost on 2024-03-01 for ``price``: dead from then.
* Ivan Sirko (owner mia), registered 2024-03-05, never buys: potential. A deal opened
  2024-03-06 reaches interest (03-08) and is lost (03-20, ``price``); another opened
  2024-03-07 stays in attraction.

So at the end of each month: 2024-01 new 1; 2024-02 new 2; 2024-03 to 2024-05
potential 1, loyal 1, dead 1; 2024-06 and 2024-07 potential 1, dead 2. Lost in Q1
2024: 1 (price); in Q2 2024: 1 (inactivity). The default funnel now: reached
attraction 3, interest 2, evaluation 1; won 1, lost 1 (price); win rate 50 %; one
deal in attraction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

SCRIPT_NAME = "<script>alert(1)</script>"
NEW_PHONE = "+380501234567"
NEW_PHONE_NATIONAL = "050 123 45 67"
OLD_PHONE = "+380671112233"


@dataclass(frozen=True)
class Story:
    olena: str
    script: str
    ivan: str
    head: int
    """The store's position after the last write (for ``min_position``)."""


def record_story(http: httpx.Client, admin_token: str) -> Story:
    """Record the history above as the admin whose token is given."""
    headers = {"Authorization": f"Bearer {admin_token}"}
    last = 0

    def write(method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        nonlocal last
        answer = http.request(method, path, json=body, headers=headers)
        assert answer.status_code in (200, 201), f"{method} {path}: {answer.text}"
        written: dict[str, Any] = answer.json()
        last = max(last, int(written["position"]))
        return written

    def client(name: str, owner: str, at: str, phones: list[str] | None = None) -> str:
        body = {"name": name, "owner_id": owner, "occurred_at": at, "phones": phones or []}
        return str(write("POST", "/clients", body)["id"])

    def buy(client_id: str, at: str) -> None:
        write("POST", f"/clients/{client_id}/purchases", {"amount": "100.00", "occurred_at": at})

    def deal(client_id: str, at: str, *moves: tuple[str, str, str]) -> None:
        body = {"client_id": client_id, "title": "Windows", "amount": "100.00", "occurred_at": at}
        deal_id = write("POST", "/deals", body)["id"]
        for kind, value, when in moves:
            if kind == "stage":
                write("POST", f"/deals/{deal_id}/stage", {"stage": value, "occurred_at": when})
            elif kind == "win":
                write("POST", f"/deals/{deal_id}/win", {"occurred_at": when})
            else:
                write("POST", f"/deals/{deal_id}/lose", {"reason": value, "occurred_at": when})

    olena = client("Olena Koval", "mia", "2024-01-10T10:00:00Z", ["067 111 22 33"])
    buy(olena, "2024-01-15T10:00:00Z")
    buy(olena, "2024-02-15T10:00:00Z")
    deal(
        olena,
        "2024-03-01T10:00:00Z",
        ("stage", "interest", "2024-03-05T10:00:00Z"),
        ("stage", "evaluation", "2024-03-10T10:00:00Z"),
        ("win", "", "2024-03-15T10:00:00Z"),
    )
    script = client(SCRIPT_NAME, "max", "2024-02-01T10:00:00Z")
    buy(script, "2024-02-10T10:00:00Z")
    write(
        "POST",
        f"/clients/{script}/loss",
        {"reason": "price", "occurred_at": "2024-03-01T10:00:00Z"},
    )
    ivan = client("Ivan Sirko", "mia", "2024-03-05T10:00:00Z")
    deal(
        ivan,
        "2024-03-06T10:00:00Z",
        ("stage", "interest", "2024-03-08T10:00:00Z"),
        ("lose", "price", "2024-03-20T10:00:00Z"),
    )
    deal(ivan, "2024-03-07T10:00:00Z")
    write("PATCH", f"/clients/{olena}", {"phones": [NEW_PHONE]})
    return Story(olena, script, ivan, last)
