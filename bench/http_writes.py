"""writes: commands over HTTP against raw inserts, in the same run.

A fresh store with one client per sender; ``crm serve`` as a subprocess on a free
port, in four variants (1 worker with its embedded projector, 1 without, 2 workers
with, 2 without); ``SENDERS`` threads, each with its own keep-alive connection,
each sending ``POST /clients/{id}/contacts`` on a client of its own. The baseline,
in the same run: as many writers each doing psycopg ``INSERT`` + ``COMMIT`` of a row
the size of a stored ``ContactMade`` (``bench.append``'s raw variant). Targets
(issue 23): one worker with its projector at least 0.5x raw; two workers 1.3x one.
"""

from __future__ import annotations

import json
import uuid

from application.clients import RecordContact, RegisterClient
from bench.append import ENVELOPE, drive, raw_postgres
from bench.common import HOST, Histories, Options, note, place, ratio, table, title
from bench.http_load import CLI, Load, Request, load, server
from domain.client import Client

SENDERS = 8
VARIANTS = {
    "1 worker, embedded projector": ("1", []),
    "1 worker, no projector": ("1", ["--no-projector"]),
    "2 workers, embedded projector": ("2", []),
    "2 workers, no projector": ("2", ["--no-projector"]),
}


def run(options: Options, _: Histories) -> None:
    per_variant = 400 if options.quick else 4000
    warm_up = 8 if options.quick else 40
    budget = 10.0 if options.quick else 30.0
    title(
        "writes",
        {
            "backend": "postgresql",
            "senders": f"{SENDERS}, each with its own client and keep-alive connection",
            "requests per variant": f"{per_variant:,}, or as many as fit in {budget:.0f} s",
            "command": "POST /clients/{id}/contacts",
            "baseline": f"{SENDERS} psycopg writers: INSERT + COMMIT of a row of the same size",
        },
    )
    with place("postgresql") as where:
        from api.bootstrap import bootstrap

        with bootstrap(where.settings()) as crm:
            clients = [
                crm.app.execute(RegisterClient(name=f"Sender {n}"), ENVELOPE).id
                for n in range(SENDERS)
            ]
            crm.app.execute(
                RecordContact(
                    client_id=clients[0], channel="call", direction="outbound", summary="ring"
                ),
                ENVELOPE,
            )
            stored = crm.app.mapper.to_stored_event(list(crm.app.events.get(clients[0]))[-1])
            assert stored.topic.endswith(Client.ContactMade.__name__)
            crm.projector()  # the read models' tables, for the API's first requests
            token = crm.users.add(f"bench{uuid.uuid4().hex[:8]}", "admin")
        raw = drive(
            SENDERS,
            per_variant // SENDERS,
            raw_postgres(where, stored.state, stored.topic),
            budget=budget,
        )
        auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        body = json.dumps({"channel": "call", "direction": "outbound", "summary": "ring"})
        requests = [
            Request("POST", f"/clients/{clients[i % SENDERS]}/contacts", body.encode())
            for i in range(per_variant + warm_up * SENDERS)
        ]
        results: dict[str, Load] = {}
        log = where.directory / "server.log"
        for name, (workers, extra) in VARIANTS.items():
            environment = where.environment(CRM_WORKERS=workers)
            command = [*CLI, "serve", "--host", HOST, *extra]
            with server(command, environment, log) as port:
                load(port, requests[: warm_up * SENDERS], auth, senders=SENDERS)
                results[name] = load(
                    port, requests[warm_up * SENDERS :], auth, budget, senders=SENDERS
                )
    one = results["1 worker, embedded projector"].per_second
    table(
        ["variant", "requests", "commands/s", "vs raw", "p50 ms", "p99 ms", "errors"],
        [
            ["raw INSERT + COMMIT", raw.ops, raw.per_second, "1.00x", "-", "-", raw.failed],
            *(
                [
                    name,
                    r.requests,
                    r.per_second,
                    ratio(r.per_second, raw.per_second),
                    r.p(50),
                    r.p(99),
                    r.errors,
                ]
                for name, r in results.items()
            ),
        ],
    )
    two = results["2 workers, embedded projector"].per_second
    note(
        f"targets: 1 worker with its projector >= 0.5x raw (here {one / raw.per_second:.2f}x);"
        f" 2 workers >= 1.3x one ({two / one:.2f}x)"
        if one and raw.per_second
        else "no figure"
    )
    for name, r in results.items():
        if r.first_error:
            note(f"{name}: first error: {r.first_error}")
