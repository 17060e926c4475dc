"""Values, paths and identifiers with quotes, semicolons and newlines: every one reaches SQL bound
or quoted, so it is stored and read back as written and nothing else in the warehouse changes; or
it is refused when it loads, naming the file, the entry and the value."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest
import yaml

from pipelines.batch import Window
from pipelines.contracts import load_contracts
from pipelines.declarations import load_infrastructure
from pipelines.errors import DeclarationError
from pipelines.settings import ASSETS_DIR, CONTRACTS_DIR, PROJECT_DIR, SAMPLE_DATA_DIR
from pipelines.sources.telemetry_drop import TelemetryDropConnector, TelemetryDropSettings
from pipelines.telemetry import write_files
from tests.conftest import Project

SITE = "o'brien; DROP TABLE sites;--"  # replaces ca-baie-comeau
ZONE = "NO'4\"; DROP TABLE energy_prices_hourly;--"  # replaces NO4 (no-narvik)
NAME = "Baie-Comeau\n'); DROP TABLE sites;--"  # free text: a newline is kept
DESCRIPTION = 'Base case; it\'s "as is"\nsecond line'
FOLDER = 'it\'s; a "dir"'


def _csv(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new))


def _edit(path: Path, edit) -> None:
    doc = yaml.safe_load(path.read_text())
    edit(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))


@pytest.fixture
def hostile(tmp_path: Path) -> Project:
    """The project copied into a folder named `it's; a "dir"`, its warehouse there too, with a
    site id, a bidding zone, a site name and a scenario description full of SQL, in the
    declarations and in a copy of the sample data the sources read."""
    root = tmp_path / FOLDER
    project = Project(root / "assets", root / "data_contracts", root / "warehouse")
    shutil.copytree(ASSETS_DIR, project.assets_dir)
    shutil.copytree(CONTRACTS_DIR, project.contracts_dir)
    sample = root / "sample"
    shutil.copytree(SAMPLE_DATA_DIR, sample)
    infrastructure = project.assets_dir / "infrastructure"

    def sites(doc):
        for site in doc["sites"]:
            if site["site_id"] == "ca-baie-comeau":
                site.update(site_id=SITE, name=NAME)
            if site["bidding_zone"] == "NO4":
                site["bidding_zone"] = ZONE

    def fleets(doc):
        for fleet in doc["asic_fleet"]:
            if fleet["site_id"] == "ca-baie-comeau":
                fleet["site_id"] = SITE

    _edit(infrastructure / "sites.yaml", sites)
    _edit(infrastructure / "asic_fleet.yaml", fleets)
    _edit(
        project.assets_dir / "scenarios.yaml",
        lambda d: next(s for s in d["scenarios"] if s["scenario"] == "base").update(
            description=DESCRIPTION
        ),
    )
    _replace(sample / "mining_output_daily.csv", ",ca-baie-comeau,", f",{_csv(SITE)},")
    _replace(sample / "energy_prices_hourly.csv", ",NO4,", f",{_csv(ZONE)},")

    def sources(doc):
        for source in doc["sources"].values():
            if "sample" in source["connectors"]:
                settings = source["connectors"]["sample"] or {}
                source["connectors"]["sample"] = {**settings, "data_dir": str(sample)}

    _edit(project.assets_dir / "sources.yaml", sources)
    return project


def test_hostile_names_are_stored_and_read_back_as_written(hostile: Project):
    result = hostile.run("2024-04-02", "2024-04-03")
    assert result.success

    tables = {t for (t,) in hostile.query("SELECT table_name FROM information_schema.tables")}
    contracts = load_contracts(hostile.contracts_dir)
    views = {p.stem for p in (hostile.assets_dir / "views").glob("*.sql")}
    # nothing dropped (telemetry is stored as its rollup; the observed offers by their schedule)
    assert set(contracts) - {"miner_telemetry", "gpu_offers_observed"} | views <= tables

    sites = hostile.query("SELECT site_id, name, bidding_zone FROM sites ORDER BY site_id")
    assert sites == [
        ("no-narvik", "Narvik", ZONE),
        (SITE, NAME, "CA_QC"),
        ("se-lulea", "Luleå", "SE1"),
        ("us-tx-rockdale", "Rockdale", "ERCOT_HB_WEST"),
    ]
    (description,) = hostile.query("SELECT description FROM scenarios WHERE scenario = 'base'")[0]
    assert description == DESCRIPTION

    # the site id flows through raw and derived tables as a value, like any other site's
    for table, rows in [
        ("mining_output_daily", 2),
        ("mining_profitability_daily", 4),  # 2 days x 2 scenarios
        ("site_economics_daily", 4),
        ("site_power_price_hourly", 48),
    ]:
        counts = dict(hostile.query(f"SELECT site_id, count(*) FROM {table} GROUP BY ALL"))
        assert counts == dict.fromkeys(["no-narvik", SITE, "se-lulea", "us-tx-rockdale"], rows), (
            table
        )
    (machines,) = hostile.query(
        "SELECT count(DISTINCT machine_id) FROM miner_telemetry_daily WHERE site_id = ?", [SITE]
    )[0]
    assert machines > 0
    # the zone's prices are stored under its name and priced the site in it
    assert hostile.query(
        "SELECT count(*) FROM energy_prices_hourly WHERE bidding_zone = ?", [ZONE]
    ) == [(48,)]
    assert hostile.query(
        "SELECT count(*) FROM site_power_price_hourly "
        "WHERE site_id = 'no-narvik' AND market_price_per_mwh IS NOT NULL"
    ) == [(48,)]
    assert hostile.query("SELECT count(*) FROM quarantine") == [(0,)]

    # readers outside the pipeline: the duckdb CLI's attach.sql and `megawatt sql`
    script = (hostile.warehouse_dir / "attach.sql").read_text()
    con = duckdb.connect()
    con.execute(script)
    assert con.execute("SELECT site_id FROM sites WHERE name = ?", [NAME]).fetchall() == [(SITE,)]
    con.close()
    env = {**os.environ, "MEGAWATT_WAREHOUSE_DIR": str(hostile.warehouse_dir)}
    answer = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "sql", "--json",
         "SELECT site_id, bidding_zone FROM sites ORDER BY site_id"],
        env=env, cwd=PROJECT_DIR, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert answer.returncode == 0, answer.stderr
    assert {r["site_id"]: r["bidding_zone"] for r in json.loads(answer.stdout)} == {
        "no-narvik": ZONE,
        SITE: "CA_QC",
        "se-lulea": "SE1",
        "us-tx-rockdale": "ERCOT_HB_WEST",
    }


@pytest.mark.parametrize("file_format", ["csv", "parquet"])
def test_telemetry_drop_files_in_a_hostile_folder(tmp_path: Path, file_format: str):
    """Telemetry exports of a site named with SQL, in a folder named with quotes: the scan names
    each file as `_source` and reads the site id as written."""
    folder = tmp_path / FOLDER / "drop"
    day = date(2024, 4, 2)
    fleet = {"site_id": SITE, "model": "S21", "units": 10, "th_per_unit": 200.0,
             "watts_per_unit": 3500.0}  # fmt: skip
    (written,) = write_files([fleet], 5, day, 1, folder, file_format=file_format)
    assert SITE in written.name
    settings = TelemetryDropSettings(folder=folder, glob=f"telemetry_*.{file_format}")
    scan = TelemetryDropConnector(settings).fetch(
        "miner_telemetry", Window(day, day + timedelta(days=1)), "ts"
    )
    rows = duckdb.sql(f"SELECT DISTINCT site_id, _source FROM ({scan})").fetchall()
    assert rows == [(SITE, str(written))]


def _break_site(tmp_path: Path, field: str, value: str) -> str:
    assets = tmp_path / "assets"
    shutil.copytree(ASSETS_DIR, assets)
    _edit(
        assets / "infrastructure" / "sites.yaml",
        lambda d: d["sites"][3].update({field: value}),
    )
    with pytest.raises(DeclarationError) as error:
        load_infrastructure(assets)
    return str(error.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("site_id", "ca-baie\ncomeau"),
        ("site_id", "ca-baie-comeau\t"),
        ("site_id", " ca-baie-comeau"),
        ("bidding_zone", "CA_QC\n'; DROP TABLE sites;--"),
    ],
)
def test_an_identifier_on_two_lines_is_refused_at_load(tmp_path: Path, field: str, value: str):
    """Quotes and semicolons are fine in an identifier (above); a newline, a tab or spaces
    around it are not: an id is one line in exports, drop files and the answer's table."""
    message = _break_site(tmp_path, field, value)
    site_id = value if field == "site_id" else "ca-baie-comeau"
    expected = (
        f"sites.yaml: entry 4 (site_id {site_id!r}): field {field!r}: Value error, an "
        f"identifier is one line of printable text"
    )
    assert expected in message and f"(value {value!r})" in message, message


@pytest.mark.parametrize(
    "column",
    ["na'me", 'na"me', "name; DROP TABLE sites;--", "na\nme"],
)
def test_a_contract_column_named_with_sql_is_refused_at_load(tmp_path: Path, column: str):
    contracts = tmp_path / "data_contracts"
    shutil.copytree(CONTRACTS_DIR, contracts)

    def rename(doc):
        (prop,) = (p for p in doc["schema"][0]["properties"] if p["name"] == "name")
        prop["name"] = column

    _edit(contracts / "sites.odcs.yaml", rename)
    with pytest.raises(DeclarationError) as error:
        load_contracts(contracts)
    message = str(error.value)
    assert str(contracts / "sites.odcs.yaml") in message, message
    assert re.search(rf"{re.escape(repr(column))} is not a plain lower-case name", message), message


def test_attach_script_with_a_quote_in_the_extension_path(tmp_path: Path, monkeypatch):
    """As if the project and its .venv lay under `it's; a "dir"`: extensions copied there."""
    import pipelines.warehouse
    from pipelines.lake import extension_path
    from pipelines.warehouse import Warehouse

    folder = tmp_path / FOLDER / "extensions"
    folder.mkdir(parents=True)

    def moved(name: str) -> str:
        path = folder / Path(extension_path(name)).name
        if not path.exists():
            shutil.copy(extension_path(name), path)
        return str(path)

    monkeypatch.setattr(pipelines.warehouse, "extension_path", moved)
    warehouse = Warehouse(tmp_path / "warehouse")
    tables = load_infrastructure(ASSETS_DIR).tables()
    warehouse.write(load_contracts()["sites"], tables["sites"], origin="sites.yaml")
    warehouse.publish(None)
    con = duckdb.connect()
    con.execute((tmp_path / "warehouse" / "attach.sql").read_text())
    assert con.execute("SELECT count(*) FROM sites").fetchone() == (len(tables["sites"]),)
