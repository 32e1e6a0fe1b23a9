"""Screenshots of the console for the README, taken with headless Chromium.

    python docs/screenshots/make.py [--out docs/screenshots]

Records the demo history (``crm demo``) in a store of its own under a temporary
directory, changes one client's phone over the API (so the audit trail has a change
to show), serves it with ``crm serve``, signs in as an auditor and saves a PNG of
each main page. Needs Debian's ``chromium`` and ``chromium-driver``.
"""

from __future__ import annotations

import argparse
import base64
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from tests.browser import binaries, headless  # noqa: E402
from tests.conftest import TEST_MASTER_KEY  # noqa: E402
from tests.e2e.server import add_user, crm_environment, run_cli, running_server  # noqa: E402

WIDTH = 1280
PAGES = (
    ("dashboard", "/ui/"),
    ("lifecycle", "/ui/lifecycle"),
    ("funnel", "/ui/funnel"),
    ("projections", "/ui/projections"),
)


def shoot(driver: Any, path: Path, *, most: int = 1800) -> None:
    """The whole page (up to ``most`` pixels high) as a PNG."""
    driver.set_window_size(WIDTH, 900)
    height = min(most, int(driver.execute_script("return document.documentElement.scrollHeight")))
    driver.set_window_size(WIDTH, height + 100)
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": WIDTH, "height": height, "scale": 1},
        },
    )
    path.write_bytes(base64.b64decode(shot["data"]))
    sys.stdout.write(f"{path}: {path.stat().st_size // 1024} KiB\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    out = parser.parse_args().out
    found = binaries()
    if found is None:
        sys.exit("needs chromium and chromium-driver (apt-get install -y chromium chromium-driver)")
    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder)
        environment = crm_environment(
            {
                "CRM_DATABASE_URL": f"sqlite:///{directory / 'crm.db'}",
                "CRM_MASTER_KEY": TEST_MASTER_KEY,
                "CRM_DEFAULT_COUNTRY": "UA",
                "CRM_ACCESS_LOG": "false",
            }
        )
        run_cli(environment, directory, "demo", "--clients", "150", "--seed", "7")
        admin = add_user(environment, directory, "ada", "admin")
        auditor = add_user(environment, directory, "anna", "auditor")
        with running_server(environment, directory) as server:
            bearer = {"Authorization": f"Bearer {admin}"}
            with httpx.Client(base_url=server.base_url, headers=bearer, trust_env=False) as api:
                query = {"stage": "returned", "limit": 1}  # a client with a story to tell
                client = api.get("/clients", params=query).json()["items"][0]
                api.patch(f"/clients/{client['id']}", json={"phones": ["+380501234567"]})
                api.get("/clients", params={"min_position": 1}).raise_for_status()
            with headless(found, width=WIDTH, height=900) as driver:
                base = server.base_url
                driver.get(f"{base}/ui/login")
                shoot(driver, out / "login.png")
                driver.find_element("id", "token").send_keys(auditor)
                driver.find_element("css selector", "form button").click()
                for name, path in PAGES:
                    driver.get(base + path)
                    shoot(driver, out / f"{name}.png")
                driver.get(f"{base}/ui/clients")
                driver.find_element("id", "q").send_keys("050 123 45 67")
                driver.find_element("css selector", "form[role=search] button").click()
                shoot(driver, out / "clients.png")
                driver.find_element("css selector", "table[data-testid=clients] a").click()
                shoot(driver, out / "client.png", most=1300)
                driver.get(f"{base}/ui/audit?client_id={client['id']}&field=phones")
                shoot(driver, out / "audit.png")
                driver.get(f"{base}/ui/chain")
                driver.find_element("css selector", "[data-testid=verify]").click()
                shoot(driver, out / "chain.png")


if __name__ == "__main__":
    main()
