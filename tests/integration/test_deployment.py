"""What can be checked of the deployment without a Docker engine: the compose file, its
.env.example, the Dockerfile and requirements.lock as files, and the first admin that
``crm serve`` creates (``CRM_BOOTSTRAP_ADMIN``). ``.ci/image-check`` runs what the image
runs, outside Docker."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import typer
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from api.bootstrap import Crm
from api.cli import app
from api.http.app import create_app
from application.settings import Settings
from tests.conftest import POSTGRES_URL, fresh_product, require_postgres
from tests.e2e.server import crm_environment, running_server
from tests.integration.test_concurrency import race

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("postgres", "api", "projector")
TESTED_POSTGRES_MAJOR = 15
"""The PostgreSQL major version CI runs the test suite on."""


def cli_commands() -> dict[str, Any]:
    group: Any = typer.main.get_command(app)  # a click-style group of commands
    return dict(group.commands)


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions, in order: (INSTRUCTION, arguments), continuation
    lines joined and comments dropped."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, arguments = line.strip().partition(" ")
            instructions.append((name.upper(), " ".join(arguments.split())))
    return instructions


def arguments_of(instruction: str) -> list[str]:
    return [arguments for name, arguments in dockerfile() if name == instruction]


def locked() -> dict[str, str]:
    """requirements.lock as canonical name → version (every line must be name==version)."""
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)", line.strip())
        assert match, f"requirements.lock: {line!r} is not pinned as name==version"
        pins[canonicalize_name(match[1])] = match[2]
    return pins


def runtime_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(text) for text in project["dependencies"]]


# docker-compose.yml and .env.example


def test_docker_compose_runs_postgres_the_api_and_the_projector_from_crm_database_url() -> None:
    services = compose()["services"]
    assert set(services) == set(SERVICES)
    postgres = services["postgres"]
    assert any(volume.endswith(":/var/lib/postgresql/data") for volume in postgres["volumes"])
    for name in ("api", "projector"):
        service = services[name]
        assert service["environment"]["CRM_DATABASE_URL"].startswith("postgresql://")
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_docker_compose_runs_the_postgresql_major_version_the_tests_run_on() -> None:
    image = compose()["services"]["postgres"]["image"]
    assert image.startswith("postgres:")
    assert int(image.removeprefix("postgres:").split(".")[0]) == TESTED_POSTGRES_MAJOR


@pytest.mark.postgres
def test_the_tests_run_on_the_postgresql_major_version_docker_compose_pins() -> None:
    require_postgres()
    with psycopg.connect(POSTGRES_URL) as connection:
        row = connection.execute("SHOW server_version_num").fetchone()
    assert row is not None
    assert int(row[0]) // 10_000 == TESTED_POSTGRES_MAJOR


def test_every_service_restarts_unless_stopped_and_has_a_healthcheck() -> None:
    for name, service in compose()["services"].items():
        assert service.get("restart") == "unless-stopped", name
        test = service["healthcheck"]["test"]
        assert test[0] in ("CMD", "CMD-SHELL"), name
        assert len(test) > 1, name


def test_the_api_healthcheck_asks_its_own_port_with_the_images_python() -> None:
    api = compose()["services"]["api"]
    command = api["healthcheck"]["test"]
    assert command[:3] == ["CMD", "python", "-c"]
    port = api["environment"]["CRM_PORT"]
    assert f"urlopen('http://127.0.0.1:{port}/health/live'" in command[3]


# The next two need ``crm health --ready`` and ``/health/live``, which another branch adds:
# they fail on this branch alone and pass once both are merged.


def test_the_projectors_healthcheck_runs_a_crm_command_that_exists() -> None:
    name, command, *options = compose()["services"]["projector"]["healthcheck"]["test"][1:]
    assert name == "crm"
    cli = cli_commands()
    assert command in cli, f"the projector's healthcheck runs crm {command}, which does not exist"
    known = {opt for param in cli[command].params for opt in param.opts + param.secondary_opts}
    assert {o for o in options if o.startswith("--")} <= known


def test_the_apis_healthcheck_asks_a_route_the_api_has(tmp_path: Path) -> None:
    script = compose()["services"]["api"]["healthcheck"]["test"][3]
    path = re.search(r"http://127\.0\.0\.1:\d+(/[^'\"]*)", script)
    assert path, script
    with fresh_product("memory", tmp_path) as crm:
        paths = {route.path for route in create_app(crm).routes}
    assert path[1] in paths, f"the api's healthcheck asks {path[1]}, which is not a route"


def test_every_command_docker_compose_runs_exists_in_the_cli() -> None:
    services = compose()["services"]
    assert services["api"]["command"] == ["serve", "--no-projector"]
    assert services["projector"]["command"] == ["project"]
    commands = cli_commands()
    for service in ("api", "projector"):
        name, *options = services[service]["command"]
        assert name in commands, f"{service} runs crm {name}, which does not exist"
        known = {
            opt for param in commands[name].params for opt in param.opts + param.secondary_opts
        }
        assert {o for o in options if o.startswith("--")} <= known


def test_the_cli_offers_the_commands_of_the_contract() -> None:
    # SPEC §7 names these; the CLI may have more.
    assert {"serve", "project", "replay", "import", "users", "audit", "demo"} <= set(cli_commands())


def test_only_the_api_creates_the_first_admin() -> None:
    services = compose()["services"]
    assert "CRM_BOOTSTRAP_ADMIN" in services["api"]["environment"]
    assert "CRM_BOOTSTRAP_ADMIN" not in services["projector"]["environment"]


def test_env_example_lists_exactly_the_variables_docker_compose_reads() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    interpolated = set(re.findall(r"(?<!\$)\$\{?([A-Za-z_][A-Za-z0-9_]*)", text))
    example = (ROOT / ".env.example").read_text().splitlines()
    listed = {
        line.split("=", 1)[0].strip()
        for line in example
        if "=" in line and not line.lstrip().startswith("#")
    }
    assert interpolated == listed
    assert {"CRM_MASTER_KEY", "POSTGRES_PASSWORD", "CRM_BOOTSTRAP_ADMIN"} <= listed


def test_docker_compose_refuses_to_start_without_the_master_key_or_the_database_password() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    for secret in ("CRM_MASTER_KEY", "POSTGRES_PASSWORD"):
        uses = re.findall(r"\$\{" + secret + r"([^}]*)\}", text)
        assert uses, secret
        assert all(use.startswith(":?") for use in uses), f"{secret} has a default: {uses}"
    assert "crm keys generate" in (ROOT / ".env.example").read_text()


def test_the_dot_env_file_with_the_secrets_is_not_committed_nor_sent_to_docker() -> None:
    assert ".env" in (ROOT / ".gitignore").read_text().split()
    assert ".env" in (ROOT / ".dockerignore").read_text().split()


# Dockerfile and requirements.lock


def test_the_dockerfile_copies_every_package_of_the_project() -> None:
    """Every package pyproject.toml ships, examples/ included (``crm replay
    examples.kpis:…`` in the container)."""
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = [pattern.removesuffix("*") for pattern in include["packages"]["find"]["include"]]
    assert "examples" in packages
    copies = arguments_of("COPY")
    for package in packages:
        assert f"{package} {package}" in copies, f"the Dockerfile does not copy {package}/"
    assert arguments_of("ENTRYPOINT") == ['["crm"]']
    assert arguments_of("CMD") == ['["serve"]']


def test_the_image_serves_on_every_interface_of_an_exposed_port() -> None:
    assert arguments_of("EXPOSE") == ["8000"]
    assert "CRM_HOST=0.0.0.0" in " ".join(arguments_of("ENV")).split()


def test_the_image_runs_as_a_non_root_user_who_owns_its_data_directory() -> None:
    (user,) = arguments_of("USER")
    assert user not in ("root", "0", "nobody"), user
    *_, workdir = arguments_of("WORKDIR")
    assert arguments_of("VOLUME") == [workdir]
    creates_it = [run for run in arguments_of("RUN") if f"chown {user}:{user} {workdir}" in run]
    assert creates_it, f"no RUN gives {workdir} to {user}"
    assert f"--uid 10001 --gid {user}" in creates_it[0]
    instructions = [name for name, _ in dockerfile()]
    last_run = max(i for i, name in enumerate(instructions) if name == "RUN")
    assert instructions.index("USER") > last_run, "the installs would run as the user"


def test_the_image_installs_its_dependencies_from_the_lock_file_only() -> None:
    installs = [
        command.strip()
        for run in arguments_of("RUN")
        for command in run.split("&&")
        if command.strip().startswith("pip install")
    ]
    assert installs == [
        "pip install --no-cache-dir -r requirements.lock",
        "pip install --no-cache-dir --no-deps .",
    ]
    assert "requirements.lock ./" in arguments_of("COPY")


def test_the_lock_file_was_made_with_the_python_of_the_image() -> None:
    (base,) = arguments_of("FROM")
    version = re.fullmatch(r"python:(\d+\.\d+)-slim", base)
    assert version, base
    assert f"Made with Python {version[1]} " in (ROOT / "requirements.lock").read_text()


def test_the_lock_file_pins_every_runtime_dependency_to_a_version_pyproject_allows() -> None:
    pins = locked()
    assert "crm-core" not in pins
    for requirement in runtime_requirements():
        if requirement.marker and not requirement.marker.evaluate({"sys_platform": "linux"}):
            continue
        name = canonicalize_name(requirement.name)
        assert name in pins, f"requirements.lock lacks {requirement.name}"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"requirements.lock pins {name}=={pins[name]}, outside {requirement.specifier}"
        )
        # and what the extras asked for bring (psycopg[binary,pool]: psycopg-binary, …)
        for extra in requirement.extras:
            for text in importlib.metadata.requires(requirement.name) or []:
                brought = Requirement(text)
                if brought.marker and brought.marker.evaluate({"extra": extra}):
                    assert canonicalize_name(brought.name) in pins, (
                        f"requirements.lock lacks {brought.name} ({requirement.name}[{extra}])"
                    )


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
