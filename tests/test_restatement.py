"""Late data and revisions heal: the daily run re-reads each source's restatement window,
replaces only the days whose content changed (the derived days that read them too, in the same
run), says which, and writes nothing when nothing changed. Real DuckLake warehouses, real
Dagster runs of what the schedule asks for."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from pipelines.assets import DAILY_FOR_TAG
from pipelines.batch import Window
from pipelines.contracts import load_contracts
from pipelines.declarations import load_infrastructure, load_sources
from pipelines.definitions import DAILY_JOB
from pipelines.errors import DeclarationError
from pipelines.settings import ASSETS_DIR, SAMPLE_DATA_DIR
from pipelines.sources.sample import SampleConnector, SampleSettings
from pipelines.warehouse import Warehouse
from tests.conftest import QUIET, day

# The schedule's tick on the morning of 2024-04-11 runs for D = 2024-04-10. The sample declares
# restatement windows of 7 days (mining output), 5 (FX), 3 (GPU billing), 2 (energy prices),
# 1 (the network) and 0 (GPU market prices, telemetry): the run covers [D - 7, D].
MORNING = datetime(2024, 4, 11, 6, 30, tzinfo=UTC)
D = "2024-04-10"
RANGE_START = "2024-04-03"
FX_WINDOW_START = "2024-04-05"  # D - 5: a Friday, whose rate the weekend after it uses
FX = "SELECT date::VARCHAR, currency, usd_per_unit FROM fx_rates_daily ORDER BY ALL"
POWER = "SELECT ts, site_id, power_price_usd_per_mwh FROM site_power_price_hourly ORDER BY ALL"


def _tick(project, at: datetime = MORNING):
    schedule = project.definitions().resolve_schedule_def("daily_schedule")
    return schedule(dg.build_schedule_context(scheduled_execution_time=at))


def _morning(project, instance=None):
    """What the schedule runs on MORNING: its request's run of the daily job, published."""
    request = _tick(project)
    assert isinstance(request, dg.RunRequest), request
    job = project.definitions().resolve_job_def(DAILY_JOB)
    result = job.execute_in_process(
        instance=instance or dg.DagsterInstance.ephemeral(), tags=request.tags, run_config=QUIET
    )
    assert result.success
    project.warehouse.publish(result.run_id)
    return result


def _latest_snapshot(project) -> int:
    with project.warehouse.latest() as con:
        return con.execute("SELECT max(snapshot_id) FROM lake.snapshots()").fetchone()[0]


def _changes(project, table: str, column: str, after: int) -> dict:
    """{(change, UTC day): rows} that the snapshots after `after` made to `table`, from
    DuckLake's own change feed: what was deleted and inserted, day by day."""
    last = _latest_snapshot(project)
    if last == after:
        return {}
    day = f"(DATE '1970-01-01' + CAST(epoch_us({column}) // 86400000000 AS INTEGER))::VARCHAR"
    with project.warehouse.latest() as con:
        rows = con.execute(
            f"SELECT change_type, {day}, count(*) FROM "
            f"ducklake_table_changes('lake', 'main', '{table}', {after + 1}, {last}) GROUP BY ALL"
        ).fetchall()
    return {(change, d): n for change, d, n in rows}


def _materialisations(result) -> dict[str, dict]:
    """{table: the metadata of its materialisation of day D}."""
    return {
        e.asset_key.path[-1]: e.materialization.metadata
        for e in result.get_asset_materialization_events()
        if e.materialization.partition == D
    }


def _revise(folder: Path, table: str, revisions: dict[tuple[str, str], str]) -> None:
    """Set the last column of the rows of `table`'s sample CSV that start with (day, key)."""
    path = folder / f"{table}.csv"
    lines = path.read_text().splitlines()
    for (day_, key), value in revisions.items():
        (i,) = [i for i, line in enumerate(lines) if line.startswith(f"{day_},{key},")]
        lines[i] = ",".join([*lines[i].split(",")[:-1], value])
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def revisable(project, tmp_path) -> Path:
    """A copy of the sample that FX is read from, which a test may revise."""
    folder = tmp_path / "revisable"
    shutil.copytree(SAMPLE_DATA_DIR, folder)
    sources_file = project.assets_dir / "sources.yaml"
    declared = yaml.safe_load(sources_file.read_text())
    declared["sources"]["fx_rates_daily"]["connectors"] = {"sample": {"data_dir": str(folder)}}
    sources_file.write_text(yaml.safe_dump(declared, sort_keys=False))
    return folder


def test_the_schedule_asks_for_one_ranged_run_over_the_longest_window(project):
    request = _tick(project)
    assert isinstance(request, dg.RunRequest)
    assert request.partition_key is None and request.run_key == D
    assert request.tags == {
        ASSET_PARTITION_RANGE_START_TAG: RANGE_START,
        ASSET_PARTITION_RANGE_END_TAG: D,
        DAILY_FOR_TAG: D,
    }
    assert request.partition_key_range == dg.PartitionKeyRange(RANGE_START, D)
    # clipped to the declared partitions' first day (2024-03-21)
    early = _tick(project, datetime(2024, 3, 23, 6, 30, tzinfo=UTC))
    assert early.partition_key_range == dg.PartitionKeyRange("2024-03-21", "2024-03-22")
    # without restatement windows, the run is yesterday's alone
    sources_file = project.assets_dir / "sources.yaml"
    declared = yaml.safe_load(sources_file.read_text())
    for source in declared["sources"].values():
        source.pop("restatement_days", None)
    sources_file.write_text(yaml.safe_dump(declared, sort_keys=False))
    assert _tick(project).partition_key_range == dg.PartitionKeyRange(D, D)


def test_a_restatement_window_is_declared_as_a_count_of_days(project):
    sources_file = project.assets_dir / "sources.yaml"
    declared = yaml.safe_load(sources_file.read_text())
    assert load_sources(project.assets_dir)["fx_rates_daily"].restatement_days == 5
    for bad, said in ((-1, "greater than or equal to 0"), ("5", "valid integer")):
        declared["sources"]["fx_rates_daily"]["restatement_days"] = bad
        sources_file.write_text(yaml.safe_dump(declared, sort_keys=False))
        with pytest.raises(DeclarationError, match=rf"source 'fx_rates_daily'.*{said}"):
            load_sources(project.assets_dir)
    declared["sources"]["fx_rates_daily"]["restatement_days"] = 5
    declared["sources"]["gpu_offers_observed"]["restatement_days"] = 1
    sources_file.write_text(yaml.safe_dump(declared, sort_keys=False))
    with pytest.raises(DeclarationError, match="restatement_days must be 0 for an observed"):
        load_sources(project.assets_dir)


def test_a_revised_day_heals_in_the_daily_run_and_only_it(project, revisable):
    # the days the run covers, and the 7 before them that site_power_price_hourly reads FX of
    assert project.run("2024-03-27", D).success

    # 1. an unchanged morning writes nothing: no snapshot, for any table
    before, fx_before, power_before = (
        _latest_snapshot(project),
        project.query(FX),
        project.query(POWER),
    )
    instance = dg.DagsterInstance.ephemeral()
    result = _morning(project, instance)
    assert _latest_snapshot(project) == before
    metadata = _materialisations(result)
    assert metadata["fx_rates_daily"]["days_changed"].value == 0
    assert metadata["fx_rates_daily"]["days_unchanged"].value == 4  # its publication days
    assert metadata["site_power_price_hourly"]["days_changed"].value == 0
    assert metadata["site_power_price_hourly"]["days_unchanged"].value == 8  # the run's days
    logged = [r.user_message for r in instance.all_logs(result.run_id)]
    assert "fx_rates_daily: 4 day(s) unchanged; nothing written" in logged

    # 2. the ECB revises Friday 2024-04-05 (in FX's window) and Thursday 2024-04-04 (before it)
    _revise(revisable, "fx_rates_daily", {
        (FX_WINDOW_START, "EUR"): "1.085052", ("2024-04-04", "EUR"): "1.083765",
    })  # fmt: skip
    instance = dg.DagsterInstance.ephemeral()
    result = _morning(project, instance)

    fx_after = project.query(FX)
    changed = sorted(set(fx_after) - set(fx_before))
    assert changed == [(FX_WINDOW_START, "EUR", 1.085052)]  # 2024-04-04 was not read
    assert len(fx_after) == len(fx_before)
    # the day was replaced, and only it: its 3 rates deleted and written again, nothing else
    assert _changes(project, "fx_rates_daily", "date", before) == {
        ("delete", FX_WINDOW_START): 3,
        ("insert", FX_WINDOW_START): 3,
    }
    # the derived hours that read Friday's rate: Friday and the weekend that takes it, all
    # sites' hours of those days rewritten (4 sites x 24), in the same run; no other day
    assert _changes(project, "site_power_price_hourly", "ts", before) == {
        (change, d): 96
        for change in ("delete", "insert")
        for d in (FX_WINDOW_START, "2024-04-06", "2024-04-07")
    }
    power_after = project.query(POWER)
    moved = {(ts.date().isoformat(), site) for ts, site, _ in set(power_after) - set(power_before)}
    assert moved == {  # the sites priced in EUR
        (d, site)
        for d in (FX_WINDOW_START, "2024-04-06", "2024-04-07")
        for site in ("no-narvik", "se-lulea")
    }
    # the tables whose data did not change were not written
    for table, column in (("mining_output_daily", "date"), ("energy_prices_hourly", "ts"),
                          ("btc_network_daily", "date"), ("gpu_usage_daily", "date"),
                          ("miner_telemetry_daily", "date"), ("quarantine", "day"),
                          ("hashprice_daily", "date")):  # fmt: skip
        assert _changes(project, table, column, before) == {}, table

    # it says which days changed, with their rows: in the log and on the materialisation
    logged = [r.user_message for r in instance.all_logs(result.run_id)]
    said = "fx_rates_daily: restated 2024-04-05 (3 rows); 3 day(s) unchanged"
    assert said in logged, [m for m in logged if "fx_rates_daily" in m]
    metadata = _materialisations(result)
    fx = metadata["fx_rates_daily"]
    assert fx["days_changed"].value == 1 and fx["days_changed_list"].value == "2024-04-05 (3 rows)"
    assert fx["window"].value == f"[{FX_WINDOW_START}, 2024-04-11)"  # its own window
    power = metadata["site_power_price_hourly"]
    assert power["days_changed"].value == 3
    assert power["days_changed_list"].value == (
        "2024-04-05 (96 rows), 2024-04-06 (96 rows), 2024-04-07 (96 rows)"
    )
    assert power["window"].value == f"[{RANGE_START}, 2024-04-11)"  # the run's range
    assert metadata["mining_output_daily"]["days_changed"].value == 0

    # 3. a user's run of the same days (not the daily run) reads them all: 2024-04-04 too
    before = _latest_snapshot(project)
    assert project.run(RANGE_START, D).success
    assert sorted(set(project.query(FX)) - set(fx_after)) == [("2024-04-04", "EUR", 1.083765)]
    assert _changes(project, "fx_rates_daily", "date", before) == {
        ("delete", "2024-04-04"): 3,
        ("insert", "2024-04-04"): 3,
    }


@pytest.fixture
def warehouse(tmp_path) -> Warehouse:
    """A warehouse with the sites (the mining output's rule refers to them)."""
    warehouse = Warehouse(tmp_path / "warehouse")
    sites = load_infrastructure(ASSETS_DIR).tables()["sites"]
    warehouse.write(load_contracts()["sites"], sites, origin="sites.yaml")
    return warehouse


def _write_mining(warehouse: Warehouse, folder: Path, window: Window):
    frame = SampleConnector(SampleSettings(data_dir=folder)).fetch(
        "mining_output_daily", window, "date"
    )
    return warehouse.write(load_contracts()["mining_output_daily"], frame, origin="test",
                           window=window, partition_column="date", answered_only=True)  # fmt: skip


def _quarantined(warehouse: Warehouse) -> list[tuple]:
    with warehouse.latest() as con:
        return con.execute(
            "SELECT day::VARCHAR, quarantined_at, rules FROM quarantine ORDER BY day"
        ).fetchall()


def _snapshots(warehouse: Warehouse) -> int:
    with warehouse.latest() as con:
        return con.execute("SELECT count(*) FROM lake.snapshots()").fetchone()[0]


def test_only_changed_days_and_their_quarantine_are_rewritten(warehouse, tmp_path):
    folder = tmp_path / "sample"
    shutil.copytree(SAMPLE_DATA_DIR, folder)
    window = Window(day("2024-04-01"), day("2024-04-04"))
    path = folder / "mining_output_daily.csv"
    original = path.read_text().splitlines()
    lines = list(original)
    header = lines[0].split(",")
    for prefix in ("2024-04-01,no-narvik,", "2024-04-03,se-lulea,"):  # bad uptimes: quarantined
        (i,) = [i for i, line in enumerate(lines) if line.startswith(prefix)]
        cells = lines[i].split(",")
        cells[header.index("uptime_pct")] = "140"
        lines[i] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    first = _write_mining(warehouse, folder, window)
    assert [(str(c.day), c.rows, c.stored_rows) for c in first.days_changed] == [
        ("2024-04-01", 3, 0), ("2024-04-02", 4, 0), ("2024-04-03", 3, 0),
    ]  # fmt: skip
    quarantined = _quarantined(warehouse)
    assert [(d, r) for d, _, r in quarantined] == [
        ("2024-04-01", "uptime_pct_range"), ("2024-04-03", "uptime_pct_range"),
    ]  # fmt: skip

    # the source fixes the 3rd: only the 3rd is replaced, and only its quarantined row goes
    fixed = [line for line in lines if not line.startswith("2024-04-03,se-lulea,")]
    fixed += [line for line in original if line.startswith("2024-04-03,se-lulea,")]
    path.write_text("\n".join(fixed) + "\n")
    report = _write_mining(warehouse, folder, window)
    assert [(str(c.day), c.rows, c.stored_rows) for c in report.days_changed] == [
        ("2024-04-03", 4, 3)
    ]
    assert report.days_unchanged == (day("2024-04-01"), day("2024-04-02"))
    assert report.rows_written == 4 and report.wrote
    assert report.changes() == "restated 2024-04-03 (4 rows); 2 day(s) unchanged"
    # the 1st's quarantined row is the one stored before, not rewritten (same time stamp)
    assert _quarantined(warehouse) == quarantined[:1]
    with warehouse.latest() as con:
        changes = con.execute(
            "SELECT change_type, date::VARCHAR, count(*) FROM ducklake_table_changes('lake', "
            "'main', 'mining_output_daily', ?, ?) GROUP BY ALL ORDER BY ALL",
            [report.snapshot, report.snapshot],
        ).fetchall()
    assert changes == [("delete", "2024-04-03", 3), ("insert", "2024-04-03", 4)]

    # the same data again: nothing written, nothing committed
    snapshots = _snapshots(warehouse)
    again = _write_mining(warehouse, folder, window)
    assert not again.wrote and again.snapshot is None and again.rows_written == 0
    assert again.days_changed == () and len(again.days_unchanged) == 3
    assert _snapshots(warehouse) == snapshots
    assert _quarantined(warehouse) == quarantined[:1]

    # a day emptied (a table with days without rows, written without answered_only, as a
    # derived table is) is a change too
    fx = load_contracts()["fx_rates_daily"]
    rates = SampleConnector(SampleSettings()).fetch("fx_rates_daily", window, "date")
    warehouse.write(fx, rates, origin="test", window=window, partition_column="date")
    emptied = warehouse.write(fx, rates.filter(rates["date"] != "2024-04-02"), origin="test",
                              window=window, partition_column="date")  # fmt: skip
    assert [str(c) for c in emptied.days_changed] == ["2024-04-02 (0 rows, emptied)"]
    assert emptied.days_unchanged == (day("2024-04-03"),)  # (the 1st: Easter Monday, no rates)
    with warehouse.latest() as con:
        days = con.execute("SELECT DISTINCT date::VARCHAR FROM fx_rates_daily ORDER BY 1")
        assert days.fetchall() == [("2024-04-03",)]
