"""Numbers the Dagster UI plots per partition, and what it shows of a derived table's lineage."""

from __future__ import annotations

import shutil

import dagster as dg
import pytest

from pipelines.settings import ASSETS_DIR, CONTRACTS_DIR
from tests.conftest import Project


@pytest.fixture(scope="module")
def ran(tmp_path_factory) -> tuple[Project, dg.ExecuteInProcessResult]:
    """One run of three days, for every test here: (its project, its result)."""
    tmp = tmp_path_factory.mktemp("metadata")
    shutil.copytree(ASSETS_DIR, tmp / "assets")
    shutil.copytree(CONTRACTS_DIR, tmp / "data_contracts")
    project = Project(tmp / "assets", tmp / "data_contracts", tmp / "warehouse")
    return project, project.run("2024-04-02", "2024-04-04")


@pytest.fixture
def project(ran) -> Project:
    return ran[0]


@pytest.fixture
def run(ran) -> dg.ExecuteInProcessResult:
    return ran[1]


def _materializations(result, table: str) -> dict[str, dict]:
    """{partition: {metadata key: value}} of `table`'s materialisations in the run."""
    return {
        event.materialization.partition: {
            key: entry.value for key, entry in event.materialization.metadata.items()
        }
        for event in result.get_asset_materialization_events()
        if event.asset_key == dg.AssetKey(table)
    }


def test_each_day_records_the_mean_of_its_figures_over_its_written_rows(project, run):
    days = ["2024-04-02", "2024-04-03", "2024-04-04"]
    hashprice = _materializations(run, "hashprice_daily")
    assert sorted(hashprice) == days
    stored = dict(
        project.query(
            "SELECT strftime(date, '%Y-%m-%d'), avg(hashprice_usd_per_ph_day) "
            "FROM hashprice_daily WHERE scenario = 'base' GROUP BY ALL"
        )
    )  # the plot's column, over the base scenario (the recorded truth)
    for day in days:
        figure = hashprice[day]["mean_hashprice_usd_per_ph_day"]
        assert isinstance(figure, float) and figure == pytest.approx(stored[day], rel=1e-12)
        assert hashprice[day]["rows_written"] > 0  # beside the counts there were

    economics = _materializations(run, "site_economics_daily")  # the plot's two columns
    assert all(
        {"mean_mining_margin_usd_per_mwh", "mean_ai_margin_usd_per_mwh"} <= set(economics[day])
        for day in days
    )
    # without a plot: the contract's first money rate (a unit of USD per something)
    (price,) = project.query(
        "SELECT avg(power_price_usd_per_mwh) FROM site_power_price_hourly "
        "WHERE ts >= TIMESTAMPTZ '2024-04-03 00:00:00+00' "
        "AND ts < TIMESTAMPTZ '2024-04-04 00:00:00+00'"
    )[0]
    hourly = _materializations(run, "site_power_price_hourly")["2024-04-03"]
    assert hourly["mean_power_price_usd_per_mwh"] == pytest.approx(price, rel=1e-12)
    assert not any(
        k.startswith("mean_") for k in _materializations(run, "btc_network_daily")["2024-04-03"]
    )  # raw tables record their counts only


def test_every_check_result_has_a_number_of_failing_rows(run):
    checks = run.get_asset_check_evaluations()
    assert len(checks) > 400
    for check in checks:
        failing = check.metadata["failing_rows"].value
        assert isinstance(failing, int)
        assert (failing == 0) == check.passed


def test_column_lineage_is_shown_as_a_table_too(run):
    last = _materializations(run, "hashprice_daily")["2024-04-04"]
    table = last["column_lineage"].splitlines()
    assert table[:2] == ["| column | upstream columns |", "|---|---|"]
    rows = {line.split(" | ")[0][2:].strip("`"): line for line in table[2:]}
    assert list(rows)[:3] == ["date", "scenario", "difficulty"]  # every column, in its order
    assert rows["difficulty"] == (
        "| `difficulty` | `btc_network_daily.difficulty`, "
        "`scenario_factors_daily.difficulty_factor` |"
    )
    lineage = last["dagster/column_lineage"].deps_by_column
    assert set(rows) == set(lineage)
    # a generated series (range(...) AS days(day)) is no upstream table
    factors = _materializations(run, "scenario_factors_daily")["2024-04-04"]
    assert "`.day`" not in factors["column_lineage"]
    assert all(
        dep.asset_key.path != [""]
        for deps in factors["dagster/column_lineage"].deps_by_column.values()
        for dep in deps
    )
    assert "| `date` | (no table column: " in factors["column_lineage"]
