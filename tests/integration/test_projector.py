"""The projector on real stores: crash safety, concurrent writers, two projectors,
lag, and rebuilds that resume or are discarded."""

from __future__ import annotations

import multiprocessing
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from adapters import projector as projector_module
from adapters.projector import Projector, discard_rebuild, rebuild, wait_for
from adapters.read_models import registry
from adapters.read_models.base import REBUILD_PREFIX, SqlReadModel
from adapters.read_models.lifecycle import LifecycleReadModel
from api.bootstrap import Crm
from api.demo import load_demo
from api.rebuild import rebuild_groups
from application import clients
from application.settings import Settings
from domain.envelope import Envelope
from tests.conftest import fresh_product, table_rows

BACKENDS = pytest.mark.parametrize("backend", ["sqlite", "postgresql"])


def rebuilt_copy(crm: Crm, prefix: str = "check_") -> list[SqlReadModel]:
    """Every read model rebuilt from position zero into ``prefix``ed tables."""
    models = [crm.read_model(name, prefix) for name in registry.NAMES]
    projector = Projector(crm.app, crm.db, models, batch_size=500)
    projector.setup()
    projector.catch_up()
    return models


def assert_same_as_a_clean_rebuild(crm: Crm) -> None:
    for model in rebuilt_copy(crm):
        for table in model.tables:
            live = model.physical(table.logical)
            assert table_rows(crm, live) == table_rows(crm, "check_" + live), live


def environment(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    env.update(
        CRM_DATABASE_URL=settings.database_url,
        CRM_DATABASE_SCHEMA=settings.database_schema,
        CRM_MASTER_KEY=settings.master_key or "",
        CRM_KEY_FILE=settings.key_file,
        CRM_PROJECTION_BATCH_SIZE="7",
        CRM_LOG_LEVEL="warning",
    )
    return env


@contextmanager
def projected_demo(backend: str, directory: Path, *, clients: int) -> Iterator[Crm]:
    """A new product holding a demo history of ``clients`` clients, every read model
    caught up with it."""
    with fresh_product(backend, directory) as crm:
        load_demo(crm, clients_count=clients)
        crm.projector().catch_up()
        yield crm


def crm_cli(crm: Crm, directory: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """``crm ARGUMENTS`` on ``crm``'s store, in a process of its own."""
    return subprocess.run(
        [sys.executable, "-c", "from api.cli import main; main()", *arguments],
        env=environment(crm.settings),
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@BACKENDS
def test_a_projector_killed_mid_batch_resumes_to_what_a_clean_rebuild_gives(
    backend: str, tmp_path: Path
) -> None:
    with fresh_product(backend, tmp_path) as crm:
        load_demo(crm, clients_count=120)
        head = crm.projector().head()
        worker = subprocess.Popen(
            [sys.executable, "-c", "from api.cli import main; main()", "project"],
            env=environment(crm.settings),
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            positions: dict[str, int] = {}
            while time.monotonic() < deadline:
                rows = crm.db.query("SELECT name, position FROM projection_tracking")
                positions = {str(name): int(p) for name, p in rows}
                if positions and min(positions.values()) > 0:
                    break
                time.sleep(0.005)
            worker.send_signal(signal.SIGKILL)
        finally:
            worker.wait(timeout=30)
        assert positions, "the worker never started"
        assert min(positions.values()) < head, "the worker finished before it was killed"
        crm.projector().catch_up()
        assert_same_as_a_clean_rebuild(crm)


@BACKENDS
def test_writers_on_several_threads_while_the_projector_follows_lose_nothing(
    backend: str, tmp_path: Path, envelope: Envelope
) -> None:
    with fresh_product(backend, tmp_path) as crm:
        projector = crm.projector()
        stop = threading.Event()
        follower = threading.Thread(
            target=projector.follow, args=(stop,), kwargs={"idle_wait": 0.05}
        )
        follower.start()

        def write(worker: int) -> int:
            purchases = 0
            for n in range(8):
                command = clients.RegisterClient(name=f"writer {worker} client {n}")
                client_id = crm.app.execute(command, replace(envelope, actor_id=f"w{worker}")).id
                for amount in range(1, n % 3 + 2):
                    crm.app.execute(
                        clients.RecordPurchase(
                            client_id=client_id, amount=Decimal(amount), currency="EUR"
                        ),
                        envelope,
                    )
                    purchases += 1
            return purchases

        try:
            with ThreadPoolExecutor(4) as pool:
                acknowledged = sum(pool.map(write, range(4)))
            assert wait_for(projector, projector.head(), timeout=30)
        finally:
            stop.set()
            follower.join(timeout=30)
        (purchases,) = crm.db.query("SELECT COUNT(*) FROM lifecycle_facts WHERE kind = 'purchase'")[
            0
        ]
        assert purchases == acknowledged
        (registered,) = crm.db.query("SELECT COUNT(*) FROM lifecycle_clients")[0]
        assert registered == 32
        assert_same_as_a_clean_rebuild(crm)


@BACKENDS
def test_two_projectors_at_once_apply_each_event_once(backend: str, tmp_path: Path) -> None:
    with fresh_product(backend, tmp_path, projection_batch_size=5) as crm:
        load_demo(crm, clients_count=40)
        first, second = crm.projector(), crm.projector()
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda p: p.catch_up(), [first, second]))
        assert min(first._read_positions().values()) == first.head()
        assert_same_as_a_clean_rebuild(crm)


def test_a_read_model_reports_its_lag_in_events_and_seconds(crm: Crm, envelope: Envelope) -> None:
    projector = crm.projector(["lifecycle"])
    projector.catch_up()
    crm.app.execute(clients.RegisterClient(name="Ann"), envelope)
    crm.app.execute(clients.RegisterClient(name="Bob"), envelope)
    time.sleep(0.05)
    (behind,) = projector.status()
    assert (behind.name, behind.lag_events, behind.head - behind.position) == ("lifecycle", 2, 2)
    assert behind.lag_seconds >= 0.05
    projector.catch_up()
    (current,) = projector.status()
    assert (current.lag_events, current.lag_seconds) == (0, 0.0)


def test_an_interrupted_rebuild_resumes_and_is_never_half_visible(
    crm: Crm, envelope: Envelope
) -> None:
    load_demo(crm, clients_count=30)
    crm.projector().catch_up()
    before = table_rows(crm, "lifecycle_intervals")

    def make(prefix: str) -> SqlReadModel:
        return crm.read_model("lifecycle", prefix)

    partial = Projector(crm.app, crm.db, [make(REBUILD_PREFIX)], batch_size=10)
    partial.setup()
    partial.catch_up(until=partial.head() // 2)  # then the process "dies"
    assert table_rows(crm, "lifecycle_intervals") == before  # the live model is untouched
    crm.app.execute(clients.RegisterClient(name="Late"), envelope)
    position = rebuild(crm.app, crm.db, make)
    assert position == crm.projector().head()
    crm.projector().catch_up()  # the other read models too, before comparing them all
    assert len(table_rows(crm, "lifecycle_clients")) == 31
    tracked = {str(n) for (n, _) in crm.db.query("SELECT name, position FROM projection_tracking")}
    assert "rebuild_lifecycle" not in tracked
    assert_same_as_a_clean_rebuild(crm)


def test_a_discarded_rebuild_leaves_nothing_behind(crm: Crm) -> None:
    load_demo(crm, clients_count=10)

    def make(prefix: str) -> SqlReadModel:
        return crm.read_model("lifecycle", prefix)

    partial = Projector(crm.app, crm.db, [make(REBUILD_PREFIX)], batch_size=10)
    partial.setup()
    partial.catch_up(until=20)
    discard_rebuild(crm.db, make)
    tracked = {str(n) for (n, _) in crm.db.query("SELECT name, position FROM projection_tracking")}
    assert "rebuild_lifecycle" not in tracked
    with pytest.raises(Exception, match=r"(?i)rebuild_lifecycle_clients|does not exist|no such"):
        crm.db.query("SELECT COUNT(*) FROM rebuild_lifecycle_clients")


@BACKENDS
def test_every_model_rebuilt_in_two_processes_matches_a_clean_rebuild(
    backend: str, tmp_path: Path, envelope: Envelope
) -> None:
    with projected_demo(backend, tmp_path, clients=40) as crm:
        crm.db.execute("DELETE FROM lifecycle_intervals")  # damage two live models,
        crm.db.execute("DELETE FROM audit_entries")  # so the rebuild has work to show
        crm.app.execute(clients.RegisterClient(name="Late"), envelope)  # and a newer event
        groups = registry.groups(registry.NAMES, 2)
        seen: dict[int, int] = {}

        def progress(group: int, position: int, head: int) -> None:
            seen[group] = max(seen.get(group, 0), position)

        results = rebuild_groups(crm, groups, progress=progress, batch_size=50)
        head = crm.projector().head()
        assert sorted(name for r in results for name in r.names) == sorted(registry.NAMES)
        assert [r.position for r in results] == [head, head]
        assert seen == {0: head, 1: head}  # each process reported its batches
        tracked = dict(crm.db.query("SELECT name, position FROM projection_tracking"))
        assert tracked == dict.fromkeys(registry.NAMES, head)  # no rebuild_ rows left
        assert table_rows(crm, "lifecycle_intervals")
        assert table_rows(crm, "audit_entries")
        assert_same_as_a_clean_rebuild(crm)


@pytest.mark.parametrize("store", ["postgresql"])
def test_the_tables_a_rebuild_swaps_in_are_vacuumed_for_index_only_reads(crm: Crm) -> None:
    load_demo(crm, clients_count=10)
    rebuild(crm.app, crm.db, lambda prefix: crm.read_model("lifecycle", prefix))

    tables = LifecycleReadModel.physical("intervals"), LifecycleReadModel.physical("day_deltas")
    rows = crm.db.query(
        "SELECT relname, last_vacuum IS NOT NULL, last_analyze IS NOT NULL"
        " FROM pg_stat_user_tables WHERE schemaname = current_schema() AND relname = ANY(%s)",
        (list(tables),),
    )
    assert sorted(rows) == sorted((table, True, True) for table in tables)


def histogram_sizes(crm: Crm, tables: list[str], column: str) -> dict[str, int]:
    """How many bounds PostgreSQL's statistics hold for ``column`` of each table (at
    most the statistics target + 1)."""
    rows = crm.db.query(
        "SELECT tablename, cardinality(histogram_bounds::text::text[]) FROM pg_stats"
        " WHERE schemaname = current_schema() AND tablename = ANY(%s) AND attname = %s",
        (tables, column),
    )
    return {str(table): int(size) for table, size in rows}


@pytest.mark.parametrize("store", ["postgresql"])
def test_a_growing_rebuild_is_analysed_from_a_small_sample_and_fully_once_swapped_in(
    crm: Crm, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_demo(crm, clients_count=30)
    monkeypatch.setattr(projector_module, "ANALYZE_AFTER", 40)
    growing = [crm.read_model("chain", REBUILD_PREFIX), crm.read_model("chain", "check_")]
    projector = Projector(crm.app, crm.db, growing, batch_size=40)
    projector.setup()
    projector.catch_up()
    assert crm.db.query(f"SELECT COUNT(*) FROM {growing[0].t['links']}")[0][0] > 200
    rebuilding, live = (model.t["links"] for model in growing)
    # every position is distinct: the histogram has as many bounds as the target allows
    assert histogram_sizes(crm, [rebuilding, live], "position") == {
        rebuilding: projector_module.REBUILD_STATISTICS_TARGET + 1,
        live: 101,  # PostgreSQL's default target, 100
    }
    rebuild(crm.app, crm.db, lambda prefix: crm.read_model("chain", prefix))  # resumes, swaps
    swapped_in = crm.read_model("chain").t["links"]
    assert histogram_sizes(crm, [swapped_in], "position") == {swapped_in: 101}


def index_columns(crm: Crm, prefix: str) -> dict[str, str]:
    """The declared-style indexes (``<table>_i<n>``) of the ``prefix``ed read-model
    tables: name -> column list."""
    rows = crm.db.query(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
    )
    tables = {
        crm.read_model(name, prefix).t[t.logical]
        for name in registry.NAMES
        for t in crm.read_model(name).tables
    }
    return {
        str(name): str(definition).rpartition("(")[2].rstrip(")").replace('"', "")
        for name, definition in rows
        if re.fullmatch(r"(.+)_i\d+", str(name)) and str(name).rpartition("_i")[0] in tables
    }


def declared_indexes(crm: Crm, prefix: str, *, query_only: bool) -> dict[str, str]:
    """The indexes the read models declare (those only queries use if ``query_only``)."""
    models = [crm.read_model(name) for name in registry.NAMES]
    return {
        f"{model.physical(table.logical, prefix)}_i{n}": columns
        for model in models
        for table in model.tables
        for n, columns in enumerate(table.indexes)
        if query_only or columns not in table.query_only
    }


@pytest.mark.parametrize("store", ["postgresql"])
def test_a_rebuild_makes_the_indexes_only_queries_use_at_its_end(crm: Crm) -> None:
    load_demo(crm, clients_count=10)
    crm.projector().catch_up()
    # midway, the rebuilt tables have the indexes their own writes use, no others
    partial = Projector(
        crm.app, crm.db, [crm.read_model(name, REBUILD_PREFIX) for name in registry.NAMES]
    )
    partial.setup()
    partial.catch_up(until=partial.head() // 2)
    assert index_columns(crm, REBUILD_PREFIX) == declared_indexes(
        crm, REBUILD_PREFIX, query_only=False
    )
    # swapped in, they have them all, as tables that were never rebuilt do
    rebuild_groups(crm, [registry.NAMES])
    live = index_columns(crm, "")
    assert {name: live.get(name) for name in declared_indexes(crm, "", query_only=True)} == (
        declared_indexes(crm, "", query_only=True)
    )
    assert not index_columns(crm, REBUILD_PREFIX)


def test_crm_project_rebuild_all_with_jobs_swaps_every_model_in(
    tmp_path: Path, envelope: Envelope
) -> None:
    with projected_demo("sqlite", tmp_path, clients=20) as crm:
        crm.db.execute("DELETE FROM directory_cards")
        done = crm_cli(crm, tmp_path, "project", "--rebuild", "all", "--jobs", "2")
        assert done.returncode == 0, done.stderr
        assert done.stdout.count("swapped in") == 2
        assert len(table_rows(crm, "directory_cards")) == 20
        assert_same_as_a_clean_rebuild(crm)


def test_crm_project_rebuild_of_an_unknown_model_fails_and_changes_nothing(
    tmp_path: Path,
) -> None:
    with projected_demo("sqlite", tmp_path, clients=5) as crm:
        before = table_rows(crm, "projection_tracking")
        done = crm_cli(crm, tmp_path, "project", "--rebuild", "lifecycle,nosuch")
        assert done.returncode != 0
        assert "'nosuch'" in done.stderr
        assert "known: lifecycle" in done.stderr
        assert table_rows(crm, "projection_tracking") == before


def test_models_are_shared_out_in_groups_of_about_equal_cost() -> None:
    for count in range(1, 9):
        groups = registry.groups(registry.NAMES, count)
        assert sorted(n for group in groups for n in group) == sorted(registry.NAMES)
        assert len(groups) == min(count, len(registry.NAMES))
        assert all(groups)
        costs = [sum(registry.REBUILD_COST[n] for n in group) for group in groups]
        # greedy: no group exceeds the cheapest by more than its own dearest model
        for group, cost in zip(groups, costs, strict=True):
            assert cost - min(costs) <= max(registry.REBUILD_COST[n] for n in group)
    assert registry.groups(["deals", "audit"], 2) == [["audit"], ["deals"]]


def test_an_interrupted_parallel_rebuild_stops_every_process_and_resumes(
    tmp_path: Path,
) -> None:
    with projected_demo("postgresql", tmp_path, clients=40) as crm:
        groups = registry.groups(registry.NAMES, 2)

        def interrupt(group: int, position: int, head: int) -> None:
            raise KeyboardInterrupt  # Ctrl-C (or SIGTERM, which the CLI turns into it)

        with pytest.raises(KeyboardInterrupt):
            rebuild_groups(crm, groups, progress=interrupt, batch_size=7)
        assert multiprocessing.active_children() == []  # no process left rebuilding
        halfway = dict(crm.db.query("SELECT name, position FROM projection_tracking"))
        assert any(name.startswith(REBUILD_PREFIX) for name in halfway)  # work to resume
        results = rebuild_groups(crm, groups, batch_size=7)
        assert [r.position for r in results] == [crm.projector().head()] * 2
        assert_same_as_a_clean_rebuild(crm)


@BACKENDS
def test_an_index_whose_columns_changed_is_made_again_on_setup(
    backend: str, tmp_path: Path
) -> None:
    with projected_demo(backend, tmp_path, clients=10) as crm:
        counts = crm.model(LifecycleReadModel).stage_counts(datetime.now(UTC))
        crm.db.execute("DROP INDEX lifecycle_intervals_i1")  # as an older version made it
        crm.db.execute("CREATE INDEX lifecycle_intervals_i1 ON lifecycle_intervals (valid_to)")
        assert index_definition(crm, "lifecycle_intervals_i1").endswith("(valid_to)")
        crm.projector(["lifecycle"])  # set up again
        assert index_definition(crm, "lifecycle_intervals_i1").endswith("(valid_to, stage)")
        assert index_definition(crm, "lifecycle_intervals_i0").endswith(
            "(valid_from, valid_to, stage)"
        )  # one already as declared is left alone
        assert crm.model(LifecycleReadModel).stage_counts(datetime.now(UTC)) == counts


@BACKENDS
def test_an_index_the_model_no_longer_declares_is_dropped_on_setup(
    backend: str, tmp_path: Path
) -> None:
    with projected_demo(backend, tmp_path, clients=10) as crm:
        crm.db.execute("CREATE INDEX lifecycle_intervals_i7 ON lifecycle_intervals (stage)")
        crm.db.execute("CREATE INDEX users_own_index ON lifecycle_intervals (stage)")
        crm.projector(["lifecycle"])  # set up again
        assert index_names(crm, "lifecycle_intervals") == {
            "lifecycle_intervals_i0",
            "lifecycle_intervals_i1",
            "users_own_index",  # not one of the model's names: left alone
        }


def index_names(crm: Crm, table: str) -> set[str]:
    if crm.db.dialect == "postgresql":
        sql = (
            "SELECT indexname FROM pg_indexes"
            " WHERE schemaname = current_schema() AND tablename = %s"
        )
    else:
        sql = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = %s"
    return {str(name) for (name,) in crm.db.query(sql, (table,))} - {
        f"{table}_pkey",
        f"sqlite_autoindex_{table}_1",
    }


def index_definition(crm: Crm, name: str) -> str:
    if crm.db.dialect == "postgresql":
        sql = (
            "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND indexname = %s"
        )
    else:
        sql = "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = %s"
    (row,) = crm.db.query(sql, (name,))
    return str(row[0])
