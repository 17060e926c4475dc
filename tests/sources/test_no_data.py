"""No data is not zero rows: a source's empty answer for a day keeps what is stored for it."""

from __future__ import annotations

import shutil

import dagster as dg
import yaml
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)
from pytest_httpserver import HTTPServer

from pipelines.definitions import DAILY_JOB
from pipelines.settings import SAMPLE_DATA_DIR
from tests.conftest import QUIET

from .conftest import FAST, recorded

PATH = "/service/data/EXR/D.NOK+SEK+USD.EUR.SP00.A"
CSV = "ecb/EXR_D.NOK+SEK+USD.EUR.SP00.A_2024-04-19_2024-04-23.csv"
RATES = "SELECT date::VARCHAR, currency, usd_per_unit FROM fx_rates_daily ORDER BY ALL"


def _live_ecb(project, server: HTTPServer) -> None:
    sources_file = project.assets_dir / "sources.yaml"
    declared = yaml.safe_load(sources_file.read_text())
    declared["sources"]["fx_rates_daily"]["connectors"] = {
        "ecb": {"base_url": server.url_for(""), **FAST}
    }
    sources_file.write_text(yaml.safe_dump(declared, sort_keys=False))


def _run(project, start: str, end: str, instance=None, tables=("fx_rates_daily",)):
    """A run of `tables` for [start, end], as Project.run, on `instance` (for its log)."""
    job = project.definitions().resolve_job_def(DAILY_JOB)
    tags = {ASSET_PARTITION_RANGE_START_TAG: start, ASSET_PARTITION_RANGE_END_TAG: end}
    result = job.execute_in_process(
        instance=instance or dg.DagsterInstance.ephemeral(), tags=tags, run_config=QUIET,
        asset_selection=[dg.AssetKey(t) for t in tables],
    )  # fmt: skip
    project.warehouse.publish(result.run_id)
    return result


def _rates_of_the_week(project, server: HTTPServer) -> list[tuple]:
    """The ECB's rates of 2024-04-19 to 2024-04-23, loaded from the local server."""
    _live_ecb(project, server)
    server.expect_oneshot_request(PATH).respond_with_data(recorded(CSV), content_type="text/csv")
    assert _run(project, "2024-04-19", "2024-04-23").success
    return project.query(RATES)


def test_a_header_only_answer_keeps_the_stored_day(project, httpserver: HTTPServer):
    stored = _rates_of_the_week(project, httpserver)
    assert {d for d, *_ in stored} == {"2024-04-19", "2024-04-22", "2024-04-23"}

    header = recorded(CSV).splitlines()[0] + "\n"  # the publication day answered with no rows
    httpserver.expect_oneshot_request(PATH).respond_with_data(header, content_type="text/csv")
    instance = dg.DagsterInstance.ephemeral()
    result = _run(project, "2024-04-23", "2024-04-23", instance)
    assert result.success
    assert project.query(RATES) == stored  # the day's 3 rates are kept, not deleted
    # the ECB has days without rates (weekends, holidays): the day is materialised, written empty
    (event,) = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    assert metadata["rows_written"].value == 0
    assert metadata["days_without_data"].value == "2024-04-23"
    logged = [r.user_message for r in instance.all_logs(result.run_id)]
    assert any("fx_rates_daily: no data from ecb for 2024-04-23" in m for m in logged), logged
    checks = result.get_asset_check_evaluations()
    assert checks and all(c.metadata["not_evaluated"] for c in checks)  # no rule ran on nothing


def test_days_with_data_replace_and_days_without_keep(project, httpserver: HTTPServer):
    before = _rates_of_the_week(project, httpserver)

    # a revision of 2024-04-22 only: the other publication days answer nothing this time
    lines = recorded(CSV).splitlines()
    revised = [lines[0]] + [line.replace("11.6230", "11.7000") for line in lines[1:]
                            if "2024-04-22" in line]  # fmt: skip
    assert len(revised) == 4
    httpserver.expect_oneshot_request(PATH).respond_with_data(
        "\n".join(revised) + "\n", content_type="text/csv"
    )
    result = _run(project, "2024-04-19", "2024-04-23")
    assert result.success
    after = project.query(RATES)
    assert [r for r in after if r[0] != "2024-04-22"] == [r for r in before if r[0] != "2024-04-22"]
    changed = {r for r in after if r[0] == "2024-04-22"} - set(before)
    assert [c for _, c, _ in changed] == ["SEK"]
    events = result.get_asset_materialization_events()  # a backfill's days are materialised
    assert len(events) == 5  # (a single run's result covers its range, answered or not)
    days = events[-1].materialization.metadata["days_without_data"].value
    assert days == "2024-04-19, 2024-04-20, 2024-04-21, 2024-04-23"


def test_a_day_a_daily_source_did_not_answer_is_kept_and_goes_stale(project, tmp_path):
    """Energy prices come every day (24 rows per zone): a day without them is an outage."""
    tables = ("energy_prices_hourly", "fx_rates_daily", "sites", "site_power_price_hourly")
    assert _run(project, "2024-04-02", "2024-04-02", tables=tables).success
    prices = "SELECT * FROM energy_prices_hourly ORDER BY ALL"
    power = "SELECT count(*) FROM site_power_price_hourly"
    stored, powered = project.query(prices), project.query(power)

    data = tmp_path / "outage"  # the sample, without 2024-04-02's prices
    shutil.copytree(SAMPLE_DATA_DIR, data)
    csv = data / "energy_prices_hourly.csv"
    lines = csv.read_text().splitlines(keepends=True)
    csv.write_text("".join(line for line in lines if not line.startswith("2024-04-02")))
    sources_file = project.assets_dir / "sources.yaml"
    declared = yaml.safe_load(sources_file.read_text())
    declared["sources"]["energy_prices_hourly"]["connectors"] = {"sample": {"data_dir": str(data)}}
    sources_file.write_text(yaml.safe_dump(declared, sort_keys=False))

    instance = dg.DagsterInstance.ephemeral()
    result = _run(project, "2024-04-02", "2024-04-02", instance, tables)
    assert result.success
    assert project.query(prices) == stored  # kept, not emptied
    materialised = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    assert "energy_prices_hourly" not in materialised  # so its freshness goes stale
    assert "site_power_price_hourly" not in materialised  # waits for its prices
    assert project.query(power) == powered
    logged = [r.user_message for r in instance.all_logs(result.run_id)]
    said = "energy_prices_hourly: no data from sample for 2024-04-02: the stored rows"
    assert any(said in m for m in logged), logged
