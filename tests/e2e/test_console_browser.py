"""The console in a real browser: headless Chromium against ``crm serve`` on the
history of ``console_story``. An auditor who has never seen the API signs in, finds
a client by a national phone number, reads who changed the phone, when and from
where, filters the audit trail, and reads how many clients died in a quarter and
why, the lifecycle month by month and the funnel; nothing is loaded from another
host, and the OpenAPI page works offline too."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from selenium.webdriver.support.expected_conditions import staleness_of
from selenium.webdriver.support.wait import WebDriverWait

from tests.browser import console_messages, headless, requested_urls, require_browser
from tests.conftest import TEST_MASTER_KEY
from tests.e2e.console_story import (
    NEW_PHONE,
    NEW_PHONE_NATIONAL,
    OLD_PHONE,
    SCRIPT_NAME,
    Story,
    record_story,
)
from tests.e2e.server import Server, add_user, crm_environment, running_server

WAIT_SECONDS = 10


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Story, str]]:
    """``crm serve`` over the story, and the auditor's token."""
    require_browser()
    directory = tmp_path_factory.mktemp("console")
    environment = crm_environment(
        {
            "CRM_DATABASE_URL": f"sqlite:///{directory / 'crm.db'}",
            "CRM_MASTER_KEY": TEST_MASTER_KEY,
            "CRM_DEFAULT_COUNTRY": "UA",
        }
    )
    admin = add_user(environment, directory, "ada", "admin")
    for manager in ("mia", "max"):
        add_user(environment, directory, manager, "manager")
    auditor = add_user(environment, directory, "aud", "auditor")
    with running_server(environment, directory) as server:
        with httpx.Client(base_url=server.base_url, timeout=10, trust_env=False) as http:
            story = record_story(http, admin)
            caught_up = http.get(
                "/clients",
                params={"min_position": story.head},
                headers={"Authorization": f"Bearer {admin}"},
            )
            assert caught_up.status_code == 200, caught_up.text
        yield server, story, auditor


def sign_in(driver: Any, base: str, token: str) -> None:
    """Open the console and sign in through its form, as a person would."""
    driver.get(f"{base}/ui/")
    assert driver.current_url.startswith(f"{base}/ui/login")
    driver.find_element("id", "token").send_keys(token)
    click_and_wait(driver, "css selector", ".login button")
    assert driver.current_url == f"{base}/ui/"
    assert driver.find_element("css selector", "[data-testid=who]").text.startswith("aud")


@pytest.fixture(scope="module")
def browser(served: tuple[Server, Story, str]) -> Iterator[Any]:
    """One browser for the module, signed in as the auditor."""
    server, _, token = served
    with headless(require_browser()) as driver:
        driver.implicitly_wait(WAIT_SECONDS)
        sign_in(driver, server.base_url, token)
        yield driver


@pytest.fixture(autouse=True)
def offline(served: tuple[Server, Story, str], browser: Any) -> Iterator[None]:
    """After each test: the pages asked nothing of another host, and the browser
    refused nothing under the Content-Security-Policy (which would mean a page
    needs something the policy forbids)."""
    base = served[0].base_url
    yield
    urls = requested_urls(browser)
    assert urls, "the performance log saw no request"
    elsewhere = [u for u in urls if not u.startswith(f"{base}/") and not u.startswith("data:")]
    assert elsewhere == []
    refused = [m for m in console_messages(browser) if re.search(r"Content.Security.Policy", m)]
    assert refused == []


def click_and_wait(driver: Any, by: str, value: str) -> None:
    """Click what leads to another page, and wait until that page has replaced this
    one (reading it sooner reads the old page, or one going away: a stale element)."""
    page = driver.find_element("tag name", "html")
    driver.find_element(by, value).click()
    WebDriverWait(driver, 10).until(staleness_of(page))


def texts(driver: Any, selector: str) -> list[str]:
    return [element.text for element in driver.find_elements("css selector", selector)]


def table(driver: Any, testid: str) -> list[list[str]]:
    rows = driver.find_elements("css selector", f"[data-testid={testid}] tbody tr")
    return [[cell.text for cell in row.find_elements("css selector", "th, td")] for row in rows]


def test_an_auditor_traces_a_phone_change_and_a_quarter_s_losses(
    served: tuple[Server, Story, str], browser: Any
) -> None:
    server, story, _ = served
    base = server.base_url
    browser.get(f"{base}/ui/")

    # who changed this client's phone, when, from where
    click_and_wait(browser, "link text", "Clients")
    browser.find_element("id", "q").send_keys(NEW_PHONE_NATIONAL)
    click_and_wait(browser, "css selector", "form[role=search] button")
    assert browser.current_url == f"{base}/ui/clients"  # the number is in no URL
    assert [row[0] for row in table(browser, "clients")] == ["Olena Koval"]
    click_and_wait(browser, "link text", "Olena Koval")
    assert browser.current_url == f"{base}/ui/clients/{story.olena}"
    assert browser.find_element("css selector", "[data-testid=phones]").text == NEW_PHONE
    change = browser.find_element(
        "xpath", "//table[@data-testid='events']//tr[td[contains(., 'ClientDetailsChanged')]]"
    )
    cells = [cell.text for cell in change.find_elements("css selector", "td")]
    assert cells[4] == "ada admin"
    assert cells[5] == "api"
    assert f"phones: {OLD_PHONE} → {NEW_PHONE}" in cells[6]
    assert [row[0] for row in table(browser, "intervals")] == ["potential", "new", "loyal", "dead"]

    # the audit trail, filtered with its form
    click_and_wait(browser, "link text", "Audit trail")
    browser.find_element("name", "client_id").send_keys(story.olena)
    browser.find_element("name", "field").send_keys("phones")
    click_and_wait(browser, "css selector", "form.filters button")
    rows = table(browser, "events")
    assert [row[3] for row in rows] == [
        f"ClientRegistered\nclient {story.olena[:8]}",
        f"ClientDetailsChanged\nclient {story.olena[:8]}",
    ]
    assert OLD_PHONE in rows[1][6]
    assert NEW_PHONE in rows[1][6]

    # how many clients died last quarter, and why (as seen in mid-July 2024)
    browser.get(f"{base}/ui/?as_of=2024-07-15")
    assert browser.find_element("css selector", "[data-testid=lost-total]").text == "1"
    assert table(browser, "lost-reasons") == [["inactivity", "1", "100.0 %"]]
    definition = browser.find_element("css selector", "[data-kpi=dead_clients]")
    assert definition.get_attribute("title") == "Clients in stage dead at the instant."
    click_and_wait(browser, "link text", "Last quarter")
    assert table(browser, "lost-reasons") == [["inactivity", "1", "100.0 %"]]


def test_the_lifecycle_and_funnel_charts_show_the_known_figures(
    served: tuple[Server, Story, str], browser: Any
) -> None:
    base = served[0].base_url
    browser.get(f"{base}/ui/lifecycle?from=2024-01&to=2024-07")
    months = {row[0]: row[1:6] for row in table(browser, "lifecycle")}
    assert months["2024-02"] == ["0", "2", "0", "0", "0"]
    assert months["2024-03"] == ["1", "0", "1", "1", "0"]
    assert months["2024-07"] == ["1", "0", "0", "2", "0"]
    chart = browser.find_element("css selector", "figure svg.chart")
    labels = texts(chart, "text")
    assert {"2024-01", "2024-07", "potential", "dead", "clients"} <= set(labels)
    assert chart.size["width"] > 300
    assert chart.size["height"] > 200

    browser.get(f"{base}/ui/funnel")
    stages = {row[0]: row[1:5] for row in table(browser, "funnel")}
    assert stages["attraction"] == ["3", "1", "66.7 %", "100.0 %"]
    assert stages["evaluation"] == ["1", "0", "100.0 %", "33.3 %"]
    assert browser.find_element("css selector", "[data-testid=win-rate]").text == "50.0 %"
    bars = texts(browser.find_element("css selector", "figure svg.chart"), "text")
    assert "3 (100.0 % of the first)" in bars
    assert "1 (33.3 % of the first)" in bars


def test_a_client_named_like_a_script_is_text_and_nothing_runs(
    served: tuple[Server, Story, str], browser: Any
) -> None:
    server, story, _ = served
    browser.get(f"{server.base_url}/ui/clients/{story.script}")
    assert browser.find_element("css selector", "[data-testid=client-name]").text == SCRIPT_NAME
    assert browser.execute_script("return document.querySelectorAll('main script').length") == 0
    from selenium.common.exceptions import NoAlertPresentException

    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.accept()


def test_the_openapi_page_renders_from_the_app_s_own_files(
    served: tuple[Server, Story, str], browser: Any
) -> None:
    browser.get(f"{served[0].base_url}/schema")
    title = browser.find_element("css selector", ".swagger-ui .info .title")
    assert "crm-core" in title.text
    assert browser.find_elements("css selector", ".opblock-tag")  # the routes, grouped


def test_signing_out_closes_the_pages(served: tuple[Server, Story, str], browser: Any) -> None:
    server, _, token = served
    browser.get(f"{server.base_url}/ui/projections")
    click_and_wait(browser, "css selector", ".signout button")
    assert browser.current_url == f"{server.base_url}/ui/login"
    browser.get(f"{server.base_url}/ui/projections")
    assert browser.current_url.startswith(f"{server.base_url}/ui/login?next=/ui/projections")
    sign_in(browser, server.base_url, token)  # as the other tests expect
