"""The Dagster UI, as a person sees it: a real webserver on 127.0.0.1 and headless Chromium.

Skipped only when no Chromium is installed; .ci/run installs Debian's."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from pipelines.settings import PROJECT_DIR

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def webserver(tmp_path_factory):
    """dagster-webserver on the project's workspace, in its own process group."""
    home = tmp_path_factory.mktemp("dagster_home")
    shutil.copyfile(PROJECT_DIR / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home),
           "MEGAWATT_WAREHOUSE_DIR": str(tmp_path_factory.mktemp("warehouse"))}  # fmt: skip
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-webserver"), "-w", "workspace.yaml",
         "-h", "127.0.0.1", "-p", str(port)],
        cwd=PROJECT_DIR, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/server_info", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("dagster-webserver did not start") from None
                time.sleep(0.5)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def page(webserver):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"],
        )  # fmt: skip
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(60_000)
        yield page
        browser.close()


def test_asset_graph_shows_the_groups_and_assets(webserver, page):
    page.goto(f"{webserver}/asset-groups")
    for group in ("economics", "network", "energy", "reference", "quality", "serving"):
        page.get_by_text(group, exact=True).first.wait_for()
    page.goto(f"{webserver}/assets")
    for asset in ("site_economics_daily", "hashprice_daily", "btc_network_daily", "quarantine"):
        page.get_by_text(asset, exact=True).first.wait_for()


def test_asset_page_shows_column_schema_and_checks(webserver, page):
    page.goto(f"{webserver}/assets/mining_output_daily")
    page.get_by_text("uptime_pct", exact=True).first.wait_for()  # the column schema
    page.get_by_text("Share of the day the fleet was hashing. [%]").first.wait_for()
    page.goto(f"{webserver}/assets/mining_output_daily?view=checks")
    for check in ("uptime_pct_range", "site_declared", "key_unique", "within_partition"):
        page.get_by_text(check, exact=True).first.wait_for()
    page.screenshot(path=str(PROJECT_DIR / ".pytest_cache" / "ui_checks.png"))


def test_no_newsletter_modal_on_first_visit(webserver, page):
    """dagster.yaml turns `nux` off: a new instance's first visit opens no modal over the UI."""
    import json

    request = urllib.request.Request(
        f"{webserver}/graphql",
        data=json.dumps({"query": "{ shouldShowNux }"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert json.load(response) == {"data": {"shouldShowNux": False}}
    page.goto(f"{webserver}/asset-groups")
    page.get_by_text("economics", exact=True).first.wait_for()
    page.wait_for_timeout(2000)  # the modal would open once the app has asked the server
    assert page.get_by_role("dialog").count() == 0
