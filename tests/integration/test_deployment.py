"""What can be checked of the deployment without a Docker engine: the deployment files,
and the first admin that ``crm serve`` creates (``CRM_BOOTSTRAP_ADMIN``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
import yaml

from api.bootstrap import Crm
from api.cli import app
from application.settings import Settings
from tests.e2e.server import crm_environment, running_server
from tests.integration.test_concurrency import race

ROOT = Path(__file__).resolve().parents[2]


def cli_commands() -> dict[str, Any]:
    group: Any = typer.main.get_command(app)  # a click-style group of commands
    return dict(group.commands)


def test_docker_compose_runs_postgres_the_api_and_the_projector_from_crm_database_url() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "api", "projector"}
    postgres = services["postgres"]
    assert int(postgres["image"].split(":")[1]) >= 15
    assert "healthcheck" in postgres
    assert any(volume.endswith(":/var/lib/postgresql/data") for volume in postgres["volumes"])
    for name in ("api", "projector"):
        service = services[name]
        assert service["environment"]["CRM_DATABASE_URL"].startswith("postgresql://")
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_every_command_docker_compose_runs_exists_in_the_cli() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    commands = cli_commands()
    for service in ("api", "projector"):
        name, *options = compose["services"][service]["command"]
        assert name in commands, f"{service} runs crm {name}, which does not exist"
        known = {
            opt for param in commands[name].params for opt in param.opts + param.secondary_opts
        }
        assert {o for o in options if o.startswith("--")} <= known


def test_the_dockerfile_copies_every_package_of_the_project() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("domain", "application", "projections", "adapters", "api"):
        assert f"COPY {package} {package}" in dockerfile
    assert 'ENTRYPOINT ["crm"]' in dockerfile


def test_the_cli_offers_the_commands_of_the_contract() -> None:
    # SPEC §7 names these; the CLI may have more.
    assert {"serve", "project", "replay", "import", "users", "audit", "demo"} <= set(cli_commands())


# The first admin (CRM_BOOTSTRAP_ADMIN)


def test_the_first_admin_is_named_by_crm_bootstrap_admin_and_an_empty_name_means_none() -> None:
    assert Settings.from_env({}).bootstrap_admin is None
    assert Settings.from_env({"CRM_BOOTSTRAP_ADMIN": "root"}).bootstrap_admin == "root"
    assert Settings.from_env({"CRM_BOOTSTRAP_ADMIN": ""}).bootstrap_admin is None


def test_the_first_start_creates_the_admin_and_returns_a_token_that_authenticates(
    crm: Crm,
) -> None:
    token = crm.users.add_if_missing("root", "admin")
    assert token is not None
    user = crm.users.authenticate(token)
    assert user is not None
    assert (user.user_id, user.role) == ("root", "admin")


def test_a_later_start_creates_nothing_and_the_first_token_keeps_working(crm: Crm) -> None:
    token = crm.users.add_if_missing("root", "admin")
    assert token is not None
    assert crm.users.add_if_missing("root", "admin") is None
    assert [user.user_id for user in crm.users.list()] == ["root"]
    assert crm.users.authenticate(token) is not None


def test_a_user_of_that_name_is_left_as_it_is_whatever_its_role_or_state(crm: Crm) -> None:
    crm.users.add("maria", "manager")
    crm.users.add("ivan", "admin")
    crm.users.revoke("ivan")
    assert crm.users.add_if_missing("maria", "admin") is None
    assert crm.users.add_if_missing("ivan", "admin") is None
    assert {(u.user_id, u.role, u.active) for u in crm.users.list()} == {
        ("maria", "manager", True),
        ("ivan", "admin", False),
    }


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_processes_starting_together_create_the_admin_once(crm: Crm) -> None:
    results = race(lambda _: crm.users.add_if_missing("root", "admin"))
    tokens = [result for result in results if isinstance(result, str)]
    assert len(tokens) == 1, results
    assert results.count(None) == len(results) - 1
    assert crm.users.authenticate(tokens[0]) is not None


def test_crm_serve_prints_the_first_admins_token_once(tmp_path: Path) -> None:
    """On the default store (./crm.db, ./crm.key), as the image runs it."""
    environment = crm_environment({"CRM_BOOTSTRAP_ADMIN": "admin", "CRM_LOG_LEVEL": "warning"})
    with running_server(environment, tmp_path) as first:
        lines = re.findall(
            r"^created admin 'admin'; its token \(shown once\): (\S+)$",
            first.output(),
            flags=re.MULTILINE,
        )
        assert len(lines) == 1, first.output()
        token = lines[0]
        assert clients_status(first.base_url, token) == 200

    with running_server(environment, tmp_path) as second:  # its log replaces the first's
        assert "created admin" not in second.output()
        assert token not in second.output()
        assert clients_status(second.base_url, token) == 200
    assert (tmp_path / "crm.db").exists()
    assert (tmp_path / "crm.key").exists()


def clients_status(base_url: str, token: str) -> int:
    with httpx.Client(base_url=base_url, timeout=10, trust_env=False) as http:
        return http.get("/clients", headers={"Authorization": f"Bearer {token}"}).status_code
