"""Numbers the Dagster UI plots per partition, and what it shows of a table: its lineage, a
preview, its contract, its SQL and assumptions, in the forms the UI shows at once."""

from __future__ import annotations

import shutil

import dagster as dg
import pytest

from pipelines.contracts import load_contracts
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
        # rounded to 5 significant digits, as the UI shows it
        assert isinstance(figure, float) and figure == pytest.approx(stored[day], rel=1e-4)
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
    assert hourly["mean_power_price_usd_per_mwh"] == pytest.approx(price, rel=1e-4)
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


def _records(table: dg.TableMetadataValue) -> list[dict]:
    return [record.data for record in table.records]


def test_column_lineage_is_shown_as_a_table_too(run):
    last = _materializations(run, "hashprice_daily")["2024-04-04"]
    table = last["column_lineage"]  # a table value: the UI shows it inline, at any length
    assert isinstance(table, dg.TableMetadataValue)
    assert [c.name for c in table.schema.columns] == ["column", "upstream columns"]
    rows = {r["column"]: r["upstream columns"] for r in _records(table)}
    assert list(rows)[:3] == ["date", "scenario", "difficulty"]  # every column, in its order
    assert rows["difficulty"] == (
        "btc_network_daily.difficulty, scenario_factors_daily.difficulty_factor"
    )
    lineage = last["dagster/column_lineage"].deps_by_column
    assert set(rows) == set(lineage)
    # a generated series (range(...) AS days(day)) is no upstream table
    factors = _materializations(run, "scenario_factors_daily")["2024-04-04"]
    factor_rows = {r["column"]: r["upstream columns"] for r in _records(factors["column_lineage"])}
    assert not any(upstream.startswith(".") for upstream in factor_rows.values())
    assert all(
        dep.asset_key.path != [""]
        for deps in factors["dagster/column_lineage"].deps_by_column.values()
        for dep in deps
    )
    assert factor_rows["date"].startswith("(no table column: ")


def test_preview_is_a_table_of_every_column_with_rounded_numbers(project, run):
    days = _materializations(run, "hashprice_daily")
    preview = days["2024-04-04"]["preview"]
    assert isinstance(preview, dg.TableMetadataValue)
    contract = load_contracts(project.contracts_dir)["hashprice_daily"]
    # every column of the contract, with its type and description (the UI's "Show schema")
    assert [c.name for c in preview.schema.columns] == contract.column_names
    price = next(c for c in preview.schema.columns if c.name == "hashprice_usd_per_ph_day")
    assert price.type == "DOUBLE" and price.description.endswith("[USD/(PH/s)/day]")
    records = _records(preview)
    assert records and all(list(r) == contract.column_names for r in records)
    assert {r["date"] for r in records} <= {"2024-04-02", "2024-04-03", "2024-04-04"}
    for record in records:
        for name in ("hashprice_usd_per_ph_day", "hashvalue_btc_per_ph_day", "difficulty"):
            value = record[name]
            assert value == float(f"{value:.5g}") or value == round(value)  # 5 digits at most
    # what is of the whole table, on the run's last day only; the plot first of its metadata
    assert "preview" not in days["2024-04-02"]
    assert list(days["2024-04-04"])[:2] == ["plot", "preview"]
    assert days["2024-04-04"]["plot"].startswith("![Hashprice")


def test_contract_path_is_relative_to_the_project_and_sql_is_in_the_description():
    from pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    node = graph.get(dg.AssetKey("site_economics_daily"))
    assert node.metadata["contract"] == dg.MetadataValue.path(
        "data_contracts/site_economics_daily.odcs.yaml"
    )
    # the SQL where the UI renders markdown at once: the asset's description (not the metadata)
    description = node.description
    first, sql = description.split("\n\n```sql\n", 1)
    assert "```" not in first and sql.endswith("\n```") and "FROM" in sql
    assert "sql" not in node.metadata
    # the assumptions as one table: name | value | unit
    assumptions = node.metadata["assumptions"]
    assert [c.name for c in assumptions.schema.columns] == ["name", "value", "unit"]
    rows = {r["name"]: (r["value"], r["unit"]) for r in _records(assumptions)}
    assert rows["reference_gpu_capex_usd_per_gpu"][1] == "USD/GPU"
    assert rows["reference_gpu_kw_per_gpu"][1] == "kW/GPU"
    assert rows["reference_gpu_utilisation"][1] == "share (0-1)"
    assert rows["reference_gpu_depreciation_years"][1] == "years"
    assert not any(key.startswith("assumption/") for key in node.metadata)
    view = graph.get(dg.AssetKey("quarantine"))
    assert not str(view.metadata["contract"].value).startswith("/")
