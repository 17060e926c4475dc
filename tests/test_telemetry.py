"""Machine telemetry: the generator, the drop-file scan, validation where the files lie, the
daily rollup per machine and fleet health. Expected values are computed with Polars from the
files themselves, not taken from the pipeline."""

from __future__ import annotations

import logging
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import yaml

from pipelines.alerts import failure_message
from pipelines.batch import Window
from pipelines.declarations import load_infrastructure
from pipelines.settings import ASSETS_DIR
from pipelines.sources.errors import NotArrived, SourceError
from pipelines.sources.telemetry_drop import TelemetryDropConnector, TelemetryDropSettings
from pipelines.telemetry import write_files
from tests.conftest import Project

DAY = date(2024, 4, 1)
MACHINES = 300
FLEETS = [f.model_dump() for f in load_infrastructure(ASSETS_DIR).asic_fleet]


def _window(day: date, days: int = 1) -> Window:
    return Window(day, day + timedelta(days=days))


def _read(files: list[Path]) -> pl.DataFrame:
    return pl.concat([pl.read_parquet(f) for f in files]).sort("machine_id", "ts")


def _use_drop_folder(project: Project, folder: Path, glob: str = "telemetry_*.parquet") -> None:
    path = project.assets_dir / "sources.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["sources"]["miner_telemetry"]["connectors"] = {
        "telemetry_drop": {"folder": str(folder), "glob": glob}
    }
    doc["sources"]["miner_telemetry"]["days_per_write"] = 1
    path.write_text(yaml.safe_dump(doc))


TELEMETRY_ASSETS = ["sites", "asic_fleet", "miner_telemetry_daily", "fleet_health_daily"]


def _run(project: Project, start: date, end: date, **kwargs):
    return project.run(
        start.isoformat(),
        end.isoformat(),
        asset_selection=[dg.AssetKey(k) for k in TELEMETRY_ASSETS],
        raise_on_error=False,
        **kwargs,
    )


def test_generator_is_deterministic_and_spreads_machines_over_the_fleets(tmp_path):
    first = write_files(FLEETS, MACHINES, DAY, 2, tmp_path / "a")
    again = write_files(FLEETS, MACHINES, DAY, 2, tmp_path / "b")
    rows, same = _read(first), _read(again)
    assert rows.equals(same)
    assert rows.height == MACHINES * 144 * 2
    assert rows["machine_id"].n_unique() == MACHINES
    per_fleet = rows.group_by("site_id", "model").agg(pl.col("machine_id").n_unique())
    units = {(f["site_id"], f["model"]): f["units"] for f in FLEETS}
    for site, model, machines in per_fleet.iter_rows():  # in proportion to the declared units
        assert machines == pytest.approx(MACHINES * units[site, model] / sum(units.values()), abs=1)
    statuses = dict(rows.group_by("status").len().iter_rows())
    assert set(statuses) == {"hashing", "curtailed", "fault"}
    assert statuses["hashing"] > 0.9 * rows.height
    hashing = rows.filter(pl.col("status") == "hashing")
    nameplate = {(f["site_id"], f["model"]): f["th_per_unit"] for f in FLEETS}
    ratio = hashing["hashrate_th_s"] / pl.Series(
        [nameplate[k] for k in zip(hashing["site_id"], hashing["model"], strict=True)]
    )
    assert 0.96 < ratio.min() and ratio.max() < 1.04
    assert rows.filter(pl.col("status") != "hashing")["hashrate_th_s"].max() == 0
    other_seed = _read(write_files(FLEETS, MACHINES, DAY, 1, tmp_path / "c", seed=8))
    assert not other_seed.equals(
        rows.filter(pl.col("ts") < pl.datetime(2024, 4, 2, time_zone="UTC"))
    )


def test_drop_files_are_rolled_up_per_machine_and_into_fleet_health(project, tmp_path):
    files = write_files(FLEETS, MACHINES, DAY, 2, tmp_path / "drop")
    _use_drop_folder(project, tmp_path / "drop")
    assert _run(project, DAY, DAY + timedelta(days=1)).success

    rows = _read(files).with_columns(date=pl.col("ts").dt.date())
    expected = (
        rows.group_by("date", "machine_id")
        .agg(
            samples=pl.len(),
            hashing_samples=(pl.col("status") == "hashing").sum(),
            hashrate_th_s=pl.col("hashrate_th_s").sum() / 144,
            energy_kwh=pl.col("power_w").sum() / 6 / 1000,
            over_temp_samples=(pl.col("chip_temp_c") > 85).sum(),
        )
        .sort("date", "machine_id")
    )
    stored = pl.DataFrame(
        project.query(
            "SELECT date, machine_id, samples, hashing_samples, hashrate_th_s, energy_kwh, "
            "over_temp_samples FROM miner_telemetry_daily ORDER BY date, machine_id"
        ),
        schema=expected.columns,
        orient="row",
    )
    assert stored.height == MACHINES * 2
    for column in ("samples", "hashing_samples", "over_temp_samples"):
        assert stored[column].to_list() == expected[column].to_list()
    for column in ("hashrate_th_s", "energy_kwh"):
        assert stored[column].to_list() == pytest.approx(expected[column].to_list())

    # fleet health: machines that never hashed (not for curtailment), and measured efficiency
    per_machine = rows.group_by("date", "site_id", "model", "machine_id").agg(
        hashed=(pl.col("status") == "hashing").any(),
        only_curtailed=(pl.col("status") == "curtailed").all(),
        joules=pl.col("power_w").filter(pl.col("status") == "hashing").sum() * 600,
        terahashes=pl.col("hashrate_th_s").sum() * 600,
    )
    health = per_machine.group_by("date", "site_id", "model").agg(
        down=(~pl.col("hashed") & ~pl.col("only_curtailed")).sum(),
        j_per_th=pl.col("joules").sum() / pl.col("terahashes").sum(),
    )
    for day, site, model, down, j_per_th in health.iter_rows():
        (got,) = project.query(
            "SELECT machines_down, efficiency_j_per_th FROM fleet_health_daily "
            "WHERE date = ? AND site_id = ? AND model = ?",
            [day, site, model],
        )
        assert got[0] == down
        assert got[1] == pytest.approx(j_per_th)
    assert project.query("SELECT count(*) FROM quarantine") == [(0,)]


def _bad_day(tmp_path: Path) -> tuple[Path, pl.DataFrame]:
    """One site's good day, then the same file with defects at known rows."""
    good = write_files(FLEETS, 20, DAY, 1, tmp_path / "made")
    frame = pl.read_parquet(next(f for f in good if "se-lulea" in f.name))
    defects = {
        3: {"power_w": -40.0},  # row 4 of the file
        10: {"status": "rebooting"},
        25: {"model": "Antminer S9"},
    }
    rows = frame.to_dicts()
    for index, change in defects.items():
        rows[index] |= change
    rows.append(rows[50])  # a duplicated (machine_id, ts)
    drop = tmp_path / "drop"
    drop.mkdir()
    path = drop / f"telemetry_se-lulea_{DAY}.parquet"
    pl.DataFrame(rows, schema=frame.schema).write_parquet(path)
    return path, frame


def test_bad_rows_are_quarantined_with_file_row_column_and_rule(project, tmp_path):
    path, frame = _bad_day(tmp_path)
    # the duplicate stops the write: a key twice is not a row to keep out, it is a broken export
    _use_drop_folder(project, path.parent)
    result = _run(project, DAY, DAY)
    assert not result.success
    message = failure_message(next(e for e in result.all_events if e.is_step_failure))
    assert "key_unique" in message and str(path) in message
    assert "machine_id=se-lulea" in message
    with pytest.raises(Exception, match="miner_telemetry_daily"):
        project.query("SELECT count(*) FROM miner_telemetry_daily")  # nothing was written

    # without the duplicate, the three bad rows are quarantined and the rest rolled up
    pl.read_parquet(path).head(frame.height).write_parquet(path)
    assert _run(project, DAY, DAY).success
    quarantined = project.query(
        "SELECT source, row_number, rules, row_json FROM quarantine "
        "WHERE table_name = 'miner_telemetry' ORDER BY row_number"
    )
    assert [(q[0], q[1], q[2]) for q in quarantined] == [
        (str(path), 4, "power_w_range, hashing_has_hashrate"),
        (str(path), 11, "status_valid_values"),
        (str(path), 26, "fleet_declared"),
    ]
    assert "-40.0" in quarantined[0][3] and "rebooting" in quarantined[1][3]
    (machines, samples) = project.query("SELECT count(*), sum(samples) FROM miner_telemetry_daily")[
        0
    ]
    assert samples == frame.height - 3
    assert machines == frame["machine_id"].n_unique()


def test_a_value_that_is_not_a_number_in_a_csv_names_file_line_column_and_value(project, tmp_path):
    drop = tmp_path / "drop"
    write_files(FLEETS, 10, DAY, 1, drop, file_format="csv")
    path = next(drop.glob("telemetry_no-narvik_*.csv"))
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[7].split(",")
    cells[header.index("chip_temp_c")] = "hot"
    lines[7] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    _use_drop_folder(project, drop, glob="telemetry_*.csv")
    result = _run(project, DAY, DAY)
    assert result.success  # the bad row is quarantined, the others go on
    (check,) = [
        e
        for e in result.get_asset_check_evaluations()
        if e.check_name == "miner_telemetry_types_match_contract"
    ]
    assert not check.passed and check.metadata["failing_rows"].value == 1
    ((source, line, rules, row),) = project.query(
        "SELECT source, row_number, rules, row_json FROM quarantine "
        "WHERE table_name = 'miner_telemetry'"
    )
    assert (source, line, rules) == (str(path), 8, "types_match_contract")
    assert '"chip_temp_c":"hot"' in row.replace(" ", "")


def test_a_missing_column_refuses_the_day_and_keeps_the_previous_version(project, tmp_path):
    drop = tmp_path / "drop"
    files = write_files(FLEETS, 20, DAY, 1, drop)
    _use_drop_folder(project, drop)
    assert _run(project, DAY, DAY).success
    before = project.query("SELECT * FROM miner_telemetry_daily ORDER BY ALL")
    pl.read_parquet(files[0]).drop("power_w").write_parquet(files[0])
    result = _run(project, DAY, DAY)
    assert not result.success
    message = failure_message(next(e for e in result.all_events if e.is_step_failure))
    assert f"{files[0]}: wrong header: missing column(s) ['power_w']" in message
    assert project.query("SELECT * FROM miner_telemetry_daily ORDER BY ALL") == before


def test_the_drop_connector_names_the_folder_when_a_day_has_not_arrived(tmp_path):
    write_files(FLEETS, 5, DAY, 1, tmp_path)
    connector = TelemetryDropConnector(TelemetryDropSettings(folder=tmp_path))
    assert len(connector.files(_window(DAY))) == 4  # one file per site
    with pytest.raises(SourceError, match=rf"no file .* in {tmp_path} holds a day in \[2024-04-02"):
        connector.fetch("miner_telemetry", _window(DAY + timedelta(days=1)), "ts")
    (tmp_path / "telemetry_latest.parquet").touch()
    with pytest.raises(SourceError, match="telemetry_latest.parquet has no UTC day"):
        connector.files(_window(DAY))


def test_a_window_is_written_a_site_day_per_transaction(project, tmp_path):
    """A failing site-day leaves every other written: each site's day is its own transaction,
    and the run fails naming the site, file and row."""
    drop = tmp_path / "drop"
    files = write_files(FLEETS, 10, DAY, 2, drop)
    second = next(f for f in files if f.name.endswith(f"{DAY + timedelta(days=1)}.parquet"))
    frame = pl.read_parquet(second)
    pl.concat([frame, frame.head(1)]).write_parquet(second)  # a duplicated key on day 2
    _use_drop_folder(project, drop)
    result = _run(project, DAY, DAY + timedelta(days=1))
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error
    assert "miner_telemetry (site_id=ca-baie-comeau): 1 blocking rule(s)" in failure.message
    assert f"{second} rows [1, " in failure.message
    sites = sorted({f["site_id"] for f in FLEETS})
    written = project.query(
        "SELECT date, site_id FROM miner_telemetry_daily GROUP BY ALL ORDER BY ALL"
    )
    assert written == [(DAY, s) for s in sites] + [
        (DAY + timedelta(days=1), s) for s in sites if s != "ca-baie-comeau"
    ]
    with project.warehouse.reader() as con:  # the failed run is published with what it wrote
        (at_ca,) = con.execute("SELECT count(*) FROM miner_telemetry_daily WHERE date = ? AND "
                               "site_id = 'ca-baie-comeau'", [DAY]).fetchone()  # fmt: skip
        assert con.execute("SELECT count(*) FROM miner_telemetry_daily").fetchone() == (
            10 + 10 - at_ca,
        )
        assert at_ca > 0


def test_a_site_whose_files_have_not_arrived_keeps_its_rows_and_holds_back_no_other(
    project, tmp_path
):
    """Written site by site: a day without one site's file writes the other sites, keeps what
    is stored of the missing one, and says which; the file arriving later fills it in. A file
    of a site whose id ends another's (`lulea`, `se-lulea`) is not taken for it."""
    drop = tmp_path / "drop"
    files = write_files(FLEETS, 10, DAY, 1, drop)
    late = next(f for f in files if "_no-narvik_" in f.name)
    held = late.rename(tmp_path / late.name)
    _use_drop_folder(project, drop)
    instance = dg.DagsterInstance.ephemeral()
    result = _run(project, DAY, DAY, instance=instance)
    assert result.success
    warnings = [r.user_message for r in instance.all_logs(result.run_id)
                if r.level == logging.WARNING]  # fmt: skip
    assert any("of site no-narvik: the export has not arrived" in w for w in warnings), warnings
    sites = sorted({f["site_id"] for f in FLEETS})
    stored = "SELECT DISTINCT site_id FROM miner_telemetry_daily ORDER BY 1"
    assert project.query(stored) == [(s,) for s in sites if s != "no-narvik"]
    held.rename(late)  # it arrives: the day's re-run adds it, the others unchanged
    assert _run(project, DAY, DAY).success
    assert project.query(stored) == [(s,) for s in sites]
    connector = TelemetryDropConnector(TelemetryDropSettings(folder=drop))
    day = Window(DAY, DAY + timedelta(days=1))
    assert [f.name for f in connector.files(day, "se-lulea")] == [
        f"telemetry_se-lulea_{DAY}.parquet"
    ]
    with pytest.raises(NotArrived, match="of site lulea: the export has not arrived"):
        connector.files(day, "lulea")
