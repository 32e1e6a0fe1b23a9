"""``python -m bench import``: a firm's whole spreadsheet imported in one go.

One ``.xlsx`` workbook with a clients sheet (Ukrainian headers, national phone
numbers, dotted dates, an owner column) and a purchases sheet (each naming its
client by phone, amounts with comma decimals and the hryvnia sign), written with
openpyxl beforehand (not timed), then ``import_file`` on a fresh store: reading,
mapping, checking every row with the command handlers and recording everything in
one transaction. Default 100,000 clients and 300,000 purchases (``--quick``: 1,000
and 3,000). Prints the time, rows/s and the process's peak memory.
"""

from __future__ import annotations

import random
import resource
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from adapters.csv_import import Options, import_file
from api.bootstrap import bootstrap
from bench.common import Options as BenchOptions
from bench.common import note, place, table, title

MANAGERS = ("maria", "ivan", "olga", "pavel")


def write_workbook(path: Path, clients: int, purchases: int, seed: int = 1) -> None:
    from openpyxl import Workbook  # a development dependency, like the benchmarks

    rng = random.Random(seed)
    start = date(2021, 1, 1)
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Клієнти")
    sheet.append(["ПІБ", "Телефон", "Ел. пошта", "Дата реєстрації", "Менеджер", "Місто"])
    registered = []
    numbers = []
    for n in range(clients):
        day = start + timedelta(days=rng.randrange(900))
        registered.append(day)
        phone = f"0{rng.choice((50, 63, 66, 67, 68, 73, 93, 95, 96, 97, 98, 99))}{n:07d}"
        numbers.append(phone)
        sheet.append(
            [
                f"Клієнт {n}",
                f"{phone[:3]} {phone[3:6]} {phone[6:8]} {phone[8:]}",
                f"client{n}@example.com" if n % 3 == 0 else None,
                day.strftime("%d.%m.%Y"),
                MANAGERS[n % len(MANAGERS)],
                rng.choice(("Київ", "Львів", "Одеса", "Харків")),
            ]
        )
    sheet = workbook.create_sheet("Покупки")
    sheet.append(["Телефон", "Сума", "Собівартість", "Дата покупки"])
    for _ in range(purchases):
        n = rng.randrange(clients)
        day = registered[n] + timedelta(days=rng.randrange(1, 400))
        cents = rng.randrange(10_000, 10_000_000)
        whole = f"{cents // 100:,}".replace(",", " ")
        sheet.append(
            [
                numbers[n],
                f"{whole},{cents % 100:02d} грн",
                round(cents * 0.006, 2),
                day.strftime("%d.%m.%Y"),
            ]
        )
    workbook.save(path)


def run(options: BenchOptions, _: object = None) -> None:
    clients, purchases = (1_000, 3_000) if options.quick else (100_000, 300_000)
    title("import", {"clients": clients, "purchases": purchases, "backend": options.backend})
    with tempfile.TemporaryDirectory(prefix="crm-bench-import-") as directory:
        path = Path(directory) / "firm.xlsx"
        started = time.perf_counter()
        write_workbook(path, clients, purchases)
        note(
            f"   workbook written in {time.perf_counter() - started:.1f} s "
            f"({path.stat().st_size / 1e6:.1f} MB; not timed)"
        )
        with place(options.backend) as where, bootstrap(where.settings(currency="UAH")) as crm:
            for manager in MANAGERS:
                crm.users.add(manager, "manager")
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            started = time.perf_counter()
            cpu = time.process_time()
            report = import_file(
                crm.app, path, options=Options(country="UA", columns={"місто": "attr.місто"})
            )
            seconds = time.perf_counter() - started
            cpu = time.process_time() - cpu
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            if not report.recorded:
                raise SystemExit(f"the import failed: {report.problems[:5]}")
            rows = clients + purchases
            table(
                ["what", "rows", "seconds", "rows/s", "CPU s", "peak RSS MB", "RSS growth MB"],
                [
                    [
                        "xlsx → store",
                        rows,
                        round(seconds, 1),
                        round(rows / seconds),
                        round(cpu, 1),
                        round(peak / 1024),
                        round((peak - before) / 1024),
                    ]
                ],
            )
