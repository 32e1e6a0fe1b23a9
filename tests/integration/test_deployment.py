"""What can be checked of the deployment files without a Docker engine."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import typer
import yaml

from api.cli import app

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
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = [
        name.rstrip("*") for name in project["tool"]["setuptools"]["packages"]["find"]["include"]
    ]
    assert "examples" in packages, "crm replay examples.kpis:… must work where crm is installed"
    for package in packages:
        assert f"COPY {package} {package}" in dockerfile
    assert 'ENTRYPOINT ["crm"]' in dockerfile


def test_the_cli_offers_the_commands_of_the_contract() -> None:
    # SPEC §7 names these; the CLI may have more.
    assert {"serve", "project", "replay", "import", "users", "audit", "demo"} <= set(cli_commands())
