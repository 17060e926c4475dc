"""The Dagster UI, as a person sees it: a real webserver on 127.0.0.1 and headless Chromium;
after a `megawatt run` into its instance, what an asset's page shows of it.

Skipped only when no Chromium is installed; .ci/run installs Debian's."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from pipelines.settings import PROJECT_DIR
from tests.webserver import JOB_RUNS, MEGAWATT_RUNS, graphql
from tests.webserver import webserver as start_webserver

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed")


@pytest.fixture(scope="module")
def ui_env(tmp_path_factory) -> dict[str, str]:
    """The environment of the webserver and of the runs it shows: its own instance and lake."""
    home = tmp_path_factory.mktemp("dagster_home")
    shutil.copyfile(PROJECT_DIR / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    return {**os.environ, "DAGSTER_HOME": str(home), "MEGAWATT_PROFILE": "local",
            "MEGAWATT_WAREHOUSE_DIR": str(tmp_path_factory.mktemp("warehouse"))}  # fmt: skip


@pytest.fixture(scope="module")
def webserver(ui_env):
    with start_webserver(ui_env) as url:
        yield url


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
    assert graphql(webserver, "{ shouldShowNux }") == {"shouldShowNux": False}
    page.goto(f"{webserver}/asset-groups")
    page.get_by_text("economics", exact=True).first.wait_for()
    page.wait_for_timeout(2000)  # the modal would open once the app has asked the server
    assert page.get_by_role("dialog").count() == 0


RUN_DAYS = ("2024-04-02", "2024-04-04")


@pytest.fixture(scope="module")
def materialized(webserver, ui_env) -> str:
    """`megawatt run` of three days, recorded in the webserver's instance: the UI's URL."""
    subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run",
         "--start", RUN_DAYS[0], "--end", RUN_DAYS[1]],
        cwd=PROJECT_DIR, env=ui_env, check=True, timeout=600,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    return webserver


def _metadata_table(page, key: str):
    """The table a metadata value of the asset's page renders as, in the row of `key`."""
    row = page.locator("tr", has=page.get_by_text(key, exact=True)).first
    row.wait_for()
    return row.locator("table").first


def _columns(table: str) -> list[str]:
    from pipelines.contracts import load_contracts
    from pipelines.settings import CONTRACTS_DIR

    return load_contracts(CONTRACTS_DIR)[table].column_names


def test_asset_page_shows_sql_lineage_and_preview_as_rendered_tables(materialized, page):
    page.goto(f"{materialized}/assets/hashprice_daily")
    # the SQL in the description, rendered (highlighted code) on the page at once
    code = page.locator("pre code").filter(has_text="scenario_days AS (").first
    code.wait_for()
    assert code.is_visible()
    columns = _columns("hashprice_daily")
    # the lineage: an HTML table, a row per column of the table, in its order
    lineage = _metadata_table(page, "column_lineage")
    assert lineage.locator("thead th").all_inner_texts() == ["column", "upstream columns"]
    rows = lineage.locator("tbody tr")
    assert rows.locator("td:first-child").all_inner_texts() == columns
    difficulty = rows.filter(has=page.get_by_text("difficulty", exact=True)).first
    assert "btc_network_daily.difficulty" in difficulty.inner_text()
    lineage.scroll_into_view_if_needed()
    page.screenshot(path=str(PROJECT_DIR / ".pytest_cache" / "ui_lineage.png"))
    # the preview: every column, numbers rounded (5 significant digits, none below 10,000 up)
    preview = _metadata_table(page, "preview")
    assert preview.locator("thead th").all_inner_texts() == columns
    records = preview.locator("tbody tr")
    assert records.count() == 5
    for cells in (records.nth(i).locator("td").all_inner_texts() for i in range(5)):
        assert RUN_DAYS[0] <= cells[0] <= RUN_DAYS[1]
        for name in ("difficulty", "price_usd", "hashprice_usd_per_ph_day", "fee_share"):
            shown = cells[columns.index(name)]
            digits = shown.replace("-", "").replace(".", "").lstrip("0")
            assert float(shown) >= 10_000 and "." not in shown or len(digits) <= 5, (name, shown)


def test_asset_page_plot_image_loads(materialized, page):
    """A runtime image is markdown over 1000 characters: the UI shows it behind [Show Markdown]
    (first of the latest materialisation's metadata), in a dialog."""
    page.goto(f"{materialized}/assets/site_economics_daily")
    row = page.locator("tr", has=page.get_by_text("plot", exact=True)).first
    row.get_by_text("[Show Markdown]").click()
    image = page.get_by_role("dialog").locator("img").first
    image.wait_for()
    page.wait_for_function("i => i.complete && i.naturalWidth > 0", arg=image.element_handle())
    assert image.evaluate("i => i.naturalWidth") > 300
    assert image.get_attribute("alt").startswith("Margin per MWh by site")
    page.screenshot(path=str(PROJECT_DIR / ".pytest_cache" / "ui_plot.png"))
    page.get_by_role("dialog").get_by_role("button", name="Close").click()
    # the assumptions: one table (name | value | unit), and the contract's path in the project
    assumptions = _metadata_table(page, "assumptions")
    assert assumptions.locator("thead th").all_inner_texts() == ["name", "value", "unit"]
    capex = assumptions.locator("tr", has=page.get_by_text("reference_gpu_capex_usd_per_gpu"))
    assert capex.locator("td").all_inner_texts()[2] == "USD/GPU"
    page.get_by_text("data_contracts/site_economics_daily.odcs.yaml", exact=True).first.wait_for()


def test_metadata_plots_chart_the_numbers_of_each_materialisation(materialized, page):
    """The Metadata section's "Plots" charts numeric metadata (chart.js, a canvas each). Its
    "Partitions" view is empty here: Dagster 1.13.27 asks for the latest 120 partition keys
    counting back from now, past the sample's end_date (TimeWindowPartitionsDefinition.
    get_paginated_partition_keys, ascending=False), so it finds none materialised; its "Events"
    view (by time) charts them."""
    page.goto(f"{materialized}/assets/hashprice_daily")
    page.get_by_text("column_lineage", exact=True).first.wait_for()
    page.get_by_role("button", name="Plots").first.click()
    page.get_by_role("button", name="Events").first.click()
    title = page.get_by_text("mean_hashprice_usd_per_ph_day", exact=True).first
    title.wait_for()
    chart = page.locator("canvas").first
    chart.wait_for()
    assert page.locator("canvas").count() >= 2  # rows_written among them
    assert chart.evaluate("c => c.width > 100 && c.height > 50")
    page.screenshot(path=str(PROJECT_DIR / ".pytest_cache" / "ui_plots.png"))


def test_megawatt_runs_are_in_the_jobs_runs_tab_and_the_timeline(materialized, page):
    """A run `megawatt` started in its own process is the code location's, as a UI-launched run
    is: the job's Runs tab lists a job's runs by the repository tag (the query below is the
    tab's filter), the timeline places them by their origin's location."""
    runs = graphql(materialized, JOB_RUNS, {"filter": MEGAWATT_RUNS})["runsOrError"]["results"]
    # the days it read back to (FX before 2024-04-02), then the range: newest first
    assert [r["status"] for r in runs] == ["SUCCESS", "SUCCESS"]
    assert {r["repositoryOrigin"]["repositoryLocationName"] for r in runs} == {"megawatt"}
    run_id = runs[0]["runId"]

    page.goto(f"{materialized}/locations/megawatt/jobs/daily/runs")
    page.get_by_role("link", name=run_id[:8]).first.wait_for()  # its row in the tab's table
    page.goto(f"{materialized}/overview/activity/timeline")
    page.get_by_text("daily", exact=True).first.wait_for()  # the job's row
    page.get_by_text(str(len(runs)), exact=True).first.wait_for()  # its runs' bar, with their count
    page.screenshot(path=str(PROJECT_DIR / ".pytest_cache" / "ui_timeline.png"))
