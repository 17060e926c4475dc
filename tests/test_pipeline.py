"""The whole path on the embedded sample: every table built, numbers by the field's formulas,
and re-running a partition replaces it."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime

import dagster as dg
import yaml

from pipelines.contracts import load_contracts
from pipelines.declarations import load_sources
from pipelines.settings import SAMPLE_DATA_DIR

DESIGN_TABLES = [
    "sites", "asic_fleet", "gpu_fleet",
    "btc_network_daily", "mining_output_daily", "energy_prices_hourly", "fx_rates_daily",
    "gpu_market_prices_daily", "gpu_usage_daily",
    "hashprice_daily", "mining_profitability_daily", "curtailment_hourly", "ai_capacity_daily",
    "site_economics_daily",
]  # fmt: skip


def _sample_row(table: str, **match) -> dict:
    with open(SAMPLE_DATA_DIR / f"{table}.csv") as f:
        return next(r for r in csv.DictReader(f) if all(r[k] == v for k, v in match.items()))


def test_every_table_is_built_and_non_empty(project):
    assert project.run("2024-04-18", "2024-04-22").success
    for table in DESIGN_TABLES:
        (rows,) = project.query(f"SELECT count(*) FROM {table}")[0]
        assert rows > 0, table
    # and each has its contract's columns, in order, with the contract's comments; a source
    # stored as a rollup (telemetry) has a contract for its rows but no table of them
    contracts = load_contracts(project.contracts_dir)
    # (an observed source, vast.ai's offers, is built by its own schedule, not the daily run)
    sources = load_sources(project.assets_dir).items()
    not_built = {n for n, s in sources if s.stored_as or s.observe_cron}
    assert project.query("SELECT count(*) FROM miner_telemetry_daily")[0][0] > 0
    for table, contract in contracts.items():
        if table in not_built:
            assert not project.query("SELECT * FROM duckdb_tables() WHERE table_name = ?", [table])
            continue
        columns = project.query(
            "SELECT column_name, comment FROM duckdb_columns() WHERE table_name = ? "
            "ORDER BY column_index",
            [table],
        )
        assert [c for c, _ in columns] == contract.column_names, table
        assert all(comment for _, comment in columns), table


def test_fixed_contract_energy_cost_is_energy_times_contract_price(project):
    assert project.run("2024-04-10", "2024-04-10").success
    sites = yaml.safe_load((project.assets_dir / "infrastructure" / "sites.yaml").read_text())
    fixed = next(s for s in sites["sites"] if s["power_contract"]["type"] == "fixed")
    raw = _sample_row("mining_output_daily", date="2024-04-10", site_id=fixed["site_id"])
    ((cost,),) = project.query(
        "SELECT energy_cost_usd FROM mining_profitability_daily "
        "WHERE site_id = ? AND scenario = 'base'",
        [fixed["site_id"]],
    )
    price = fixed["power_contract"]["fixed_price_usd_per_mwh"]
    assert abs(cost - float(raw["energy_mwh"]) * price) < 1e-6


def test_rerunning_a_partition_replaces_it(project):
    assert project.run("2024-04-02", "2024-04-04").success
    before = {t: project.query(f"SELECT count(*) FROM {t}")[0][0] for t in DESIGN_TABLES}
    assert project.run("2024-04-03", "2024-04-03").success
    after = {t: project.query(f"SELECT count(*) FROM {t}")[0][0] for t in DESIGN_TABLES}
    assert after == before
    # widening the range adds exactly the new days
    assert project.run("2024-04-05", "2024-04-05").success
    days = project.query("SELECT count(DISTINCT date), count(*) FROM btc_network_daily")[0]
    assert days == (4, 4)


def test_daily_schedule_runs_yesterday_and_skips_undeclared_days(project):
    schedule = project.definitions().resolve_schedule_def("daily_schedule")

    def tick(at: datetime):
        return schedule(dg.build_schedule_context(scheduled_execution_time=at))

    # yesterday, with the days before it that the sources may still revise (the sample's
    # longest restatement window: 7 days), as one ranged run (tests/test_restatement.py)
    request = tick(datetime(2024, 4, 2, 6, 30, tzinfo=UTC))
    assert isinstance(request, dg.RunRequest) and request.run_key == "2024-04-01"
    assert request.partition_key_range == dg.PartitionKeyRange("2024-03-25", "2024-04-01")
    skip = tick(datetime(2026, 11, 25, 6, 30, tzinfo=UTC))
    assert isinstance(skip, dg.SkipReason)
    assert "2026-11-24 is not a declared partition" in skip.skip_message


def test_analyst_views_answer_from_the_latest_day(project):
    assert project.run("2024-04-02", "2024-04-04").success
    rows = project.query("SELECT site_id, date, better_use FROM v_site_answer ORDER BY site_id")
    sites = project.query("SELECT site_id FROM sites ORDER BY site_id")
    assert [r[0] for r in rows] == [s[0] for s in sites]
    assert {r[1] for r in rows} == {date(2024, 4, 4)}
    expected = project.query(
        "SELECT site_id, better_use FROM site_economics_daily "
        "WHERE date = '2024-04-04' AND scenario = 'base' ORDER BY site_id"
    )
    assert [(r[0], r[2]) for r in rows] == expected
    (comment,) = project.query(
        "SELECT comment FROM duckdb_views() WHERE view_name = 'v_site_answer'"
    )[0]
    assert comment.startswith("The morning answer for analysts")
