"""file_drop connector: CSV exports in a folder -> every raw table (files written in tmp_path)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import dagster as dg
import pytest
import yaml

from pipelines.settings import ASSETS_DIR, PROJECT_DIR
from pipelines.sources import CONNECTORS, build_connector
from pipelines.sources.common import COLUMNS
from pipelines.sources.errors import SourceError
from pipelines.sources.file_drop import FileDropConnector, FileDropSettings, drop_files

from .conftest import window

SUBACCOUNTS = {
    "lulea-a": "se-lulea",
    "lulea-b": "se-lulea",
    "narvik": "no-narvik",
    "rockdale": "us-tx-rockdale",
}
POOL = """date,subaccount,earnings_btc
2024-04-01,lulea-a,0.50000000
2024-04-01,lulea-b,0.25000000
2024-04-01,narvik,0.40000000
2024-04-01,rockdale,3.00000000
2024-04-02,lulea-a,0.45000000
2024-04-02,lulea-b,0.20000000
2024-04-02,narvik,0.38000000
2024-04-02,rockdale,2.90000000
"""
FLEET = """date,site_id,hashrate_th_s,uptime_pct,energy_mwh
2024-04-01,se-lulea,790000.0,97.1,433.2
2024-04-01,no-narvik,520000.0,96.0,400.1
2024-04-01,us-tx-rockdale,4400000.0,98.2,2290.5
2024-04-02,se-lulea,795000.0,97.5,435.0
2024-04-02,no-narvik,515000.0,95.5,398.7
2024-04-02,us-tx-rockdale,4410000.0,98.0,2295.0
"""


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def fetch(folder: Path, table: str, start: str, end: str, partition_column="date", **settings):
    connector = build_connector("file_drop", {"folder": str(folder), **settings}, table, "t")
    return connector.fetch(table, window(start, end), partition_column)


def mining(folder: Path, start="2024-04-01", end="2024-04-03", **settings):
    return fetch(folder, "mining_output_daily", start, end, subaccounts=SUBACCOUNTS, **settings)


def test_registered_for_every_raw_table_but_telemetry():
    assert CONNECTORS["file_drop"] is FileDropConnector
    assert FileDropConnector.tables == set(COLUMNS) - {"miner_telemetry"}  # telemetry_drop's


def test_relative_folder_resolves_against_the_project():
    settings = FileDropSettings(folder="assets/examples/drop/fx_rates_daily")
    assert settings.folder == PROJECT_DIR / "assets" / "examples" / "drop" / "fx_rates_daily"


# --- generic tables -------------------------------------------------------------------------


def test_generic_table_and_lineage(tmp_path):
    path = write(
        tmp_path,
        "fx_2024-04-02.csv",
        "date,currency,usd_per_unit\n"
        "2024-04-01,EUR,1.0790\n2024-04-01,SEK,0.0935\n2024-04-02,EUR,1.0760\n",
    )
    frame = fetch(tmp_path, "fx_rates_daily", "2024-04-01", "2024-04-03")
    assert frame.columns == [*COLUMNS["fx_rates_daily"], "_source", "_row"]
    assert frame.rows() == [
        ("2024-04-01", "EUR", "1.0790", str(path), 2),  # header = line 1
        ("2024-04-01", "SEK", "0.0935", str(path), 3),
        ("2024-04-02", "EUR", "1.0760", str(path), 4),
    ]


def test_window_filtering_and_line_numbers_across_files(tmp_path):
    write(
        tmp_path, "a.csv", "date,currency,usd_per_unit\n2024-03-29,EUR,1.08\n2024-04-01,EUR,1.07\n"
    )
    b = write(
        tmp_path,
        "b.csv",
        "date,currency,usd_per_unit\n2024-04-02,NOK,0.092\n\n2024-04-03,NOK,0.093\n",
    )
    frame = fetch(tmp_path, "fx_rates_daily", "2024-04-02", "2024-04-04")
    # the blank line still counts: line numbers are the file's
    assert frame.select("date", "_source", "_row").rows() == [
        ("2024-04-02", str(b), 2),
        ("2024-04-03", str(b), 4),
    ]


def test_hourly_table_placed_by_utc_day(tmp_path):
    rows = "".join(f"2024-04-01T{h:02d}:00:00Z,SE1,{h}.5,EUR\n" for h in range(24))
    # local time with its offset: 00:30+01:00 is 2024-03-31T23:30Z, the day before
    rows += "2024-04-02T00:00:00+01:00,NO4,9.0,EUR\n2024-04-02T01:00:00+01:00,NO4,9.5,EUR\n"
    write(tmp_path, "prices.csv", "ts,bidding_zone,price_per_mwh,currency\n" + rows)
    frame = fetch(tmp_path, "energy_prices_hourly", "2024-04-01", "2024-04-02", "ts")
    assert frame.height == 25
    assert frame.filter(frame["bidding_zone"] == "NO4")["ts"].to_list() == [
        "2024-04-02T00:00:00+01:00"  # the text is kept; the warehouse casts it to UTC
    ]


def test_header_in_any_order_and_case(tmp_path):
    write(tmp_path, "x.csv", " Currency , DATE ,usd_per_unit\nEUR,2024-04-01,1.07\n")
    frame = fetch(tmp_path, "fx_rates_daily", "2024-04-01", "2024-04-02")
    assert frame.select(COLUMNS["fx_rates_daily"]).rows() == [("2024-04-01", "EUR", "1.07")]


def test_gpu_names_normalised(tmp_path):
    header = ",".join(c for c in COLUMNS["gpu_market_prices_daily"] if c != "observations")
    write(
        tmp_path,
        "quotes.csv",
        f"{header}\n"
        "2024-04-01,H100 SXM5 80GB,,contract,broker,2.10,1.90,2.30,7\n"
        "2024-04-01,NVIDIA H100 PCIe,,contract,broker,1.80,1.70,1.90,3\n"
        "2024-04-01,A100,SXM,contract,broker,1.20,1.10,1.30,2\n"  # a given variant is kept
        "2024-04-01,MI300X,OAM,contract,broker,2.50,,,1\n",  # unknown: kept as written
    )
    frame = fetch(tmp_path, "gpu_market_prices_daily", "2024-04-01", "2024-04-02")
    assert frame.select("gpu_model", "gpu_variant", "_row").rows() == [
        ("H100", "SXM", 2),
        ("H100", "PCIe", 3),
        ("A100", "SXM", 4),
        ("MI300X", "OAM", 5),
    ]


def test_gpu_prices_may_leave_out_variant_and_quartiles(tmp_path):
    write(
        tmp_path,
        "quotes.csv",
        "date,gpu_model,lease_type,source,price_usd_per_gpu_hour,offers\n"
        "2024-04-01,H100_SXM,contract,broker,2.10,1\n",
    )
    frame = fetch(tmp_path, "gpu_market_prices_daily", "2024-04-01", "2024-04-02")
    row = frame.row(0, named=True)
    assert (row["gpu_model"], row["gpu_variant"], row["p25_usd_per_gpu_hour"]) == (
        "H100",
        "SXM",
        None,
    )
    assert frame.columns == [*COLUMNS["gpu_market_prices_daily"], "_source", "_row"]


def test_gpu_usage_names_normalised(tmp_path):
    write(
        tmp_path,
        "billing.csv",
        "date,site_id,gpu_model,gpu_hours_sold,revenue_usd\n"
        "2024-04-01,se-lulea,NVIDIA H100 80GB HBM3,41000.5,98000.00\n"
        "2024-04-01,us-tx-rockdale,A100-SXM4-80GB,9800.0,10900.00\n",
    )
    frame = fetch(tmp_path, "gpu_usage_daily", "2024-04-01", "2024-04-02")
    assert frame.select("site_id", "gpu_model").rows() == [
        ("se-lulea", "H100"),
        ("us-tx-rockdale", "A100"),
    ]


def test_newest_file_wins_each_day(tmp_path):
    header = "date,site_id,gpu_model,gpu_hours_sold,revenue_usd\n"
    write(
        tmp_path,
        "billing_2024-04-02.csv",
        header + "2024-04-01,se-lulea,H100,100,250\n2024-04-01,us-tx-rockdale,A100,50,60\n"
        "2024-04-02,se-lulea,H100,110,270\n",
    )
    corrected = write(
        tmp_path,
        "billing_2024-04-02_corrected.csv",  # sorts after billing_2024-04-02.csv
        header + "2024-04-01,se-lulea,H100 SXM,120,300\n",
    )
    frame = fetch(tmp_path, "gpu_usage_daily", "2024-04-01", "2024-04-03")
    rows = {(r["date"], r["site_id"]): r for r in frame.to_dicts()}
    assert len(rows) == 3 and frame.height == 3
    # the correction replaces se-lulea's 2024-04-01 (its name normalised to the same model) ...
    assert rows[("2024-04-01", "se-lulea")]["gpu_hours_sold"] == "120"
    assert rows[("2024-04-01", "se-lulea")]["_source"] == str(corrected)
    # ... and leaves what it does not hold to the older file
    assert rows[("2024-04-01", "us-tx-rockdale")]["gpu_hours_sold"] == "50"
    assert rows[("2024-04-02", "se-lulea")]["gpu_hours_sold"] == "110"


def test_duplicate_key_in_one_file_left_to_the_contract(tmp_path):
    write(
        tmp_path,
        "fx.csv",
        "date,currency,usd_per_unit\n2024-04-01,EUR,1.07\n2024-04-01,EUR,1.08\n",
    )
    frame = fetch(tmp_path, "fx_rates_daily", "2024-04-01", "2024-04-02")
    assert frame["_row"].to_list() == [2, 3]  # both kept: key_unique stops the write


def test_wrong_header_is_refused(tmp_path):
    path = write(tmp_path, "fx.csv", "date,ccy,usd_per_unit,note\n2024-04-01,EUR,1.07,x\n")
    with pytest.raises(SourceError) as e:
        fetch(tmp_path, "fx_rates_daily", "2024-04-01", "2024-04-02")
    message = str(e.value)
    assert str(path) in message
    assert "missing column(s) ['currency']" in message
    assert "unexpected column(s) ['ccy', 'note']" in message


@pytest.mark.parametrize(
    ("table", "header", "column", "expected"),
    [
        ("energy_prices_hourly", "ts,bidding_zone,price_per_kwh,currency", "price_per_kwh",
         "'price_per_mwh' in the currency column's currency per MWh"),
        ("energy_prices_hourly", "ts,bidding_zone,price_eur_per_kwh,currency",
         "price_eur_per_kwh", "'price_per_mwh'"),
        ("btc_network_daily",
         "date,difficulty,hashrate_th_s,blocks,first_height,subsidy_btc,fees_btc,price_usd",
         "hashrate_th_s", "'hashrate_eh_s' in EH/s"),
        ("gpu_usage_daily", "date,site_id,gpu_model,gpu_hours_sold,revenue_eur", "revenue_eur",
         "'revenue_usd' in USD"),
    ],
)  # fmt: skip
def test_wrong_unit_is_refused_not_converted(tmp_path, table, header, column, expected):
    path = write(tmp_path, "x.csv", header + "\n")
    with pytest.raises(SourceError) as e:
        fetch(tmp_path, table, "2024-04-01", "2024-04-02", "ts" if "ts," in header else "date")
    message = str(e.value)
    assert str(path) in message and f"column {column!r} is in" in message
    assert f"expected {expected}" in message and "never converted" in message


def test_bad_day_names_file_and_line(tmp_path):
    path = write(
        tmp_path, "fx.csv", "date,currency,usd_per_unit\n2024-04-01,EUR,1\n01/04/24,SEK,1\n"
    )
    with pytest.raises(SourceError, match=rf"{path} line 3: date '01/04/24' is not a day"):
        fetch(tmp_path, "fx_rates_daily", "2024-04-01", "2024-04-02")


def test_unreadable_file_is_named(tmp_path):
    write(tmp_path, "a.csv", "date,currency,usd_per_unit\n2024-04-01,EUR,1.07\n")
    ragged = write(tmp_path, "b.csv", "date,currency,usd_per_unit\n2024-04-01,SEK,0.09,x\n")
    with pytest.raises(SourceError, match=rf"{ragged}: line 2 has 4 field\(s\), the header 3"):
        fetch(tmp_path, "fx_rates_daily", "2024-04-01", "2024-04-02")


def test_timestamp_without_offset_is_refused(tmp_path):
    write(tmp_path, "p.csv", "ts,bidding_zone,price_per_mwh,currency\n2024-04-01 00:00,SE1,1,EUR\n")
    with pytest.raises(SourceError, match="line 2: ts '2024-04-01 00:00' is not a UTC timestamp"):
        fetch(tmp_path, "energy_prices_hourly", "2024-04-01", "2024-04-02", "ts")


def test_empty_folder_is_an_error_but_a_quiet_window_is_empty(tmp_path):
    with pytest.raises(SourceError, match=r"no drop files matching '\*\.csv' in .*"):
        fetch(tmp_path, "fx_rates_daily", "2024-04-01", "2024-04-02")
    with pytest.raises(SourceError, match="drop folder .*missing does not exist"):
        fetch(tmp_path / "missing", "fx_rates_daily", "2024-04-01", "2024-04-02")
    write(tmp_path, "fx.csv", "date,currency,usd_per_unit\n2024-04-01,EUR,1.07\n")
    frame = fetch(tmp_path, "fx_rates_daily", "2024-05-01", "2024-05-02")
    assert frame.is_empty() and frame.columns == [*COLUMNS["fx_rates_daily"], "_source", "_row"]


# --- mining output: pool earnings + fleet exports ----------------------------------------------


def test_mining_joins_pool_and_fleet(tmp_path):
    write(tmp_path, "pool_2024-04-03.csv", POOL)
    fleet = write(tmp_path, "fleet_2024-04-03.csv", FLEET)
    frame = mining(tmp_path, "2024-04-02", "2024-04-03")
    assert frame.columns == [*COLUMNS["mining_output_daily"], "_source", "_row"]
    rows = {r["site_id"]: r for r in frame.to_dicts()}
    assert set(rows) == {"se-lulea", "no-narvik", "us-tx-rockdale"}
    lulea = rows["se-lulea"]
    assert lulea["btc_mined"] == pytest.approx(0.65)  # two sub-accounts summed
    assert (lulea["date"], lulea["hashrate_th_s"], lulea["uptime_pct"], lulea["energy_mwh"]) == (
        "2024-04-02",
        "795000.0",
        "97.5",
        "435.0",
    )
    assert (lulea["_source"], lulea["_row"]) == (str(fleet), 5)  # its fleet line
    assert rows["us-tx-rockdale"]["btc_mined"] == pytest.approx(2.9)


def test_mining_outage_without_pool_earnings_mined_zero(tmp_path):
    write(tmp_path, "pool_a.csv", POOL)
    write(
        tmp_path,
        "fleet_a.csv",
        FLEET + "2024-04-02,ca-baie-comeau,0.0,0.00,0.0\n",
    )
    frame = mining(tmp_path, "2024-04-02", "2024-04-03")
    outage = frame.filter(frame["site_id"] == "ca-baie-comeau").row(0, named=True)
    assert outage["btc_mined"] == 0.0 and outage["_row"] == 8


def test_mining_correction_newest_file_wins(tmp_path):
    write(tmp_path, "pool_2024-04-03.csv", POOL)
    write(tmp_path, "fleet_2024-04-03.csv", FLEET)
    corrected_pool = "date,subaccount,earnings_btc\n2024-04-02,lulea-a,0.50000000\n"
    corrected_fleet = "date,site_id,hashrate_th_s,uptime_pct,energy_mwh\n"
    corrected_fleet += "2024-04-02,no-narvik,516000.0,95.6,399.0\n"
    write(tmp_path, "pool_2024-04-03_corrected.csv", corrected_pool)
    fleet = write(tmp_path, "fleet_2024-04-04T0600Z.csv", corrected_fleet)
    rows = {r["site_id"]: r for r in mining(tmp_path, "2024-04-02", "2024-04-03").to_dicts()}
    # lulea-a corrected to 0.50, lulea-b still 0.20 from the first export
    assert rows["se-lulea"]["btc_mined"] == pytest.approx(0.70)
    assert (rows["no-narvik"]["hashrate_th_s"], rows["no-narvik"]["_source"]) == (
        "516000.0",
        str(fleet),
    )
    assert rows["us-tx-rockdale"]["hashrate_th_s"] == "4410000.0"


def test_mining_unknown_subaccount(tmp_path):
    pool = write(tmp_path, "pool_x.csv", POOL + "2024-04-02,tromso,0.1\n")
    write(tmp_path, "fleet_x.csv", FLEET)
    with pytest.raises(SourceError) as e:
        mining(tmp_path)
    assert f"{pool} line 10: unknown sub-account 'tromso'" in str(e.value)
    assert "`subaccounts`" in str(e.value)


def test_mining_pool_day_without_fleet_row(tmp_path):
    pool = write(tmp_path, "pool_x.csv", POOL)
    write(tmp_path, "fleet_x.csv", "\n".join(FLEET.splitlines()[:-1]) + "\n")  # no rockdale 04-02
    with pytest.raises(SourceError) as e:
        mining(tmp_path)
    assert (
        f"{pool} line 9: pool earnings of site 'us-tx-rockdale' on 2024-04-02 "
        "(sub-account(s) rockdale)"
    ) in str(e.value)
    assert "without a fleet row in fleet_*.csv" in str(e.value)


def test_mining_fleet_row_without_pool_earnings(tmp_path):
    write(tmp_path, "pool_x.csv", POOL)
    fleet = write(tmp_path, "fleet_x.csv", FLEET + "2024-04-02,ca-baie-comeau,1500000,99,830\n")
    with pytest.raises(SourceError) as e:
        mining(tmp_path)
    assert (
        f"{fleet} line 8: fleet row of site 'ca-baie-comeau' on 2024-04-02 "
        "(its sub-accounts: none mapped)"
    ) in str(e.value)


def test_mining_subaccount_twice_in_one_file(tmp_path):
    pool = write(tmp_path, "pool_x.csv", POOL + "2024-04-02,narvik,0.38000000\n")
    write(tmp_path, "fleet_x.csv", FLEET)
    with pytest.raises(SourceError, match=rf"{pool} lines \[8, 10\]: sub-account 'narvik'"):
        mining(tmp_path)


@pytest.mark.parametrize(
    ("name", "text", "column", "expected"),
    [
        ("pool_x.csv", "date,subaccount,earnings_sats\n", "earnings_sats", "'earnings_btc' in BTC"),
        ("fleet_x.csv", "date,site_id,hashrate_ph_s,uptime_pct,energy_mwh\n", "hashrate_ph_s",
         "'hashrate_th_s' in TH/s"),
        ("fleet_x.csv", "date,site_id,hashrate_th_s,uptime_pct,energy_kwh\n", "energy_kwh",
         "'energy_mwh' in MWh"),
        ("fleet_x.csv", "date,site_id,hashrate_th_s,uptime_ratio,energy_mwh\n", "uptime_ratio",
         "'uptime_pct' in % (0-100)"),
    ],
)  # fmt: skip
def test_mining_wrong_units(tmp_path, name, text, column, expected):
    write(tmp_path, "pool_x.csv", POOL)
    write(tmp_path, "fleet_x.csv", FLEET)
    path = write(tmp_path, name, text)
    with pytest.raises(SourceError) as e:
        mining(tmp_path)
    assert f"{path}: wrong header: column {column!r} is in" in str(e.value)
    assert f"expected {expected}" in str(e.value)


def test_mining_needs_both_exports(tmp_path):
    write(tmp_path, "pool_x.csv", POOL)
    with pytest.raises(SourceError, match=r"no drop files matching 'fleet_\*\.csv'"):
        mining(tmp_path)


def test_drop_files_lists_what_fetch_reads(tmp_path):
    for name in ["pool_b.csv", "fleet_a.csv", "pool_a.csv", "notes.txt", "other.csv"]:
        write(tmp_path, name, "x\n")
    settings = FileDropSettings(folder=tmp_path)
    names = [p.name for p in drop_files(settings, "mining_output_daily")]
    assert names == ["fleet_a.csv", "pool_a.csv", "pool_b.csv"]
    assert [p.name for p in drop_files(settings)] == [
        "fleet_a.csv",
        "other.csv",
        "pool_a.csv",
        "pool_b.csv",
    ]
    assert [p.name for p in drop_files(settings, "fx_rates_daily")] == [
        "fleet_a.csv",
        "other.csv",
        "pool_a.csv",
        "pool_b.csv",
    ]


# --- the examples, and through Dagster into the warehouse -----------------------------------


def test_examples_in_the_live_sources_file_read():
    declared = yaml.safe_load((ASSETS_DIR / "examples" / "sources.live.yaml").read_text())
    found = 0
    for table, source in declared["sources"].items():
        settings = source["connectors"].get("file_drop")
        if settings is None:
            continue
        connector = build_connector("file_drop", settings, table, "live example")
        frame = connector.fetch(table, window("2024-04-22", "2024-04-23"), "date")
        assert not frame.is_empty(), table
        found += 1
    assert found == 3


def test_mining_drop_materialises_one_day_and_quarantines_a_bad_row(project, tmp_path):
    drop = tmp_path / "drop"
    write(drop, "pool_2024-04-03.csv", POOL)
    bad = FLEET.replace("2024-04-02,no-narvik,515000.0,95.5", "2024-04-02,no-narvik,515000.0,140")
    fleet = write(drop, "fleet_2024-04-03.csv", bad)
    sources_file = project.assets_dir / "sources.yaml"
    declared = yaml.safe_load(sources_file.read_text())
    declared["sources"]["mining_output_daily"]["connectors"] = {
        "file_drop": {"folder": str(drop), "subaccounts": SUBACCOUNTS}
    }
    sources_file.write_text(yaml.safe_dump(declared, sort_keys=False))

    result = project.run(
        "2024-04-02",
        "2024-04-02",
        asset_selection=[dg.AssetKey("sites"), dg.AssetKey("mining_output_daily")],
    )
    assert result.success
    rows = project.query(
        "SELECT date::VARCHAR, site_id, round(btc_mined, 8), hashrate_th_s, uptime_pct, energy_mwh "
        "FROM mining_output_daily ORDER BY site_id"
    )
    assert rows == [
        ("2024-04-02", "se-lulea", 0.65, 795000.0, 97.5, 435.0),
        ("2024-04-02", "us-tx-rockdale", 2.9, 4410000.0, 98.0, 2295.0),
    ]
    quarantined = project.query(
        "SELECT table_name, day::VARCHAR, source, row_number, rules FROM quarantine"
    )
    assert quarantined == [("mining_output_daily", "2024-04-02", str(fleet), 6, "uptime_pct_range")]


def test_example_drop_files_pass_their_contracts(project):
    """Every example under assets/examples/drop/ loads into the warehouse without a quarantine."""
    declared = yaml.safe_load((ASSETS_DIR / "examples" / "sources.live.yaml").read_text())
    subaccounts = declared["sources"]["mining_output_daily"]["connectors"]["file_drop"][
        "subaccounts"
    ]
    sources_file = project.assets_dir / "sources.yaml"
    sources = yaml.safe_load(sources_file.read_text())
    # an observed source (vast.ai's offers) has no drop files: observed, never loaded by day
    by_day = {t: s for t, s in sources["sources"].items() if "observe_cron" not in s}
    for table, source in by_day.items():
        folder = ASSETS_DIR / "examples" / "drop" / table
        settings = {"folder": str(folder)}
        if table == "mining_output_daily":
            settings["subaccounts"] = subaccounts
        connector = "telemetry_drop" if table == "miner_telemetry" else "file_drop"
        source["connectors"] = {connector: settings}
    sources_file.write_text(yaml.safe_dump(sources, sort_keys=False))
    tables = [source.get("stored_as", table) for table, source in by_day.items()]
    keys = [*tables, "sites", "asic_fleet", "gpu_fleet"]
    result = project.run("2024-04-22", "2024-04-22", asset_selection=[dg.AssetKey(k) for k in keys])
    assert result.success
    counts = {table: project.query(f"SELECT count(*) FROM {table}")[0][0] for table in tables}
    assert counts == {
        "btc_network_daily": 1,
        "mining_output_daily": 4,
        "energy_prices_hourly": 24,
        "fx_rates_daily": 3,
        "gpu_market_prices_daily": 4,
        "gpu_usage_daily": 3,
        "miner_telemetry_daily": 8,
    }
    assert project.query("SELECT count(*) FROM quarantine") == [(0,)]


def test_file_path_is_a_sensor_version(tmp_path):
    """drop_files + mtime/size: a changed file is a new version."""
    path = write(tmp_path, "fx.csv", "date,currency,usd_per_unit\n")
    settings = FileDropSettings(folder=tmp_path)

    def versions():
        return {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for p in drop_files(settings)}

    before = versions()
    path.write_text("date,currency,usd_per_unit\n2024-04-01,EUR,1.07\n")
    os.utime(path, ns=(before[str(path)][0] + 10**9,) * 2)
    assert versions() != before
    shutil.rmtree(tmp_path)
    with pytest.raises(SourceError, match="does not exist"):
        drop_files(settings)


def test_same_line_in_two_files_quarantines_the_bad_one(project, tmp_path):
    drop = tmp_path / "drop"
    pool = "date,subaccount,earnings_btc\n{d},narvik,0.4\n{d},lulea-a,0.5\n"
    fleet = "date,site_id,hashrate_th_s,uptime_pct,energy_mwh\n"
    fleet += "{d},no-narvik,500000,{uptime},400\n{d},se-lulea,790000,97,433\n"
    write(drop, "pool_2024-04-02.csv", pool.format(d="2024-04-01"))
    write(drop, "pool_2024-04-03.csv", pool.format(d="2024-04-02"))
    bad = write(drop, "fleet_2024-04-02.csv", fleet.format(d="2024-04-01", uptime=140))
    write(drop, "fleet_2024-04-03.csv", fleet.format(d="2024-04-02", uptime=95))
    sources_file = project.assets_dir / "sources.yaml"
    declared = yaml.safe_load(sources_file.read_text())
    declared["sources"]["mining_output_daily"]["connectors"] = {
        "file_drop": {"folder": str(drop), "subaccounts": SUBACCOUNTS}
    }
    sources_file.write_text(yaml.safe_dump(declared, sort_keys=False))
    result = project.run(
        "2024-04-01",
        "2024-04-02",
        asset_selection=[dg.AssetKey("sites"), dg.AssetKey("mining_output_daily")],
    )
    assert result.success
    assert project.query("SELECT count(*) FROM mining_output_daily") == [(3,)]
    assert project.query("SELECT source, row_number FROM quarantine") == [(str(bad), 2)]
