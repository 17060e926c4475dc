"""Writes are atomic and validated: a failure leaves the previous table, in the pipeline's file
and in the published copy, and a bad row is reported with its file, row, column, value and rule."""

from __future__ import annotations

import dataclasses
import shutil
from datetime import date

import pytest

from pipelines.batch import Window
from pipelines.contracts import Rule, load_contracts
from pipelines.declarations import load_infrastructure, load_settings
from pipelines.errors import ContractViolation, DeclarationError, RuleError
from pipelines.settings import ASSETS_DIR, SAMPLE_DATA_DIR
from pipelines.sources.sample import SampleConnector, SampleSettings
from pipelines.warehouse import Warehouse

WINDOW = Window(date(2024, 4, 1), date(2024, 4, 3))


@pytest.fixture
def warehouse(tmp_path) -> Warehouse:
    return Warehouse(tmp_path / "warehouse")


@pytest.fixture
def sample_dir(tmp_path):
    """A copy of the sample data that a test may spoil."""
    folder = tmp_path / "sample"
    shutil.copytree(SAMPLE_DATA_DIR, folder)
    return folder


def _write_source(warehouse, table, data_dir, partition_column="date", window=WINDOW):
    contract = load_contracts()[table]
    frame = SampleConnector(SampleSettings(data_dir=data_dir)).fetch(
        table, window, partition_column
    )
    return warehouse.write(
        contract,
        frame,
        origin="test",
        window=window,
        partition_column=partition_column,
    )


def _published(warehouse, sql):
    with warehouse.reader() as con:
        return con.execute(sql).fetchall()


def _spoil(path, line_number: int, column: str, value: str) -> None:
    """Set `column` on line `line_number` (1 = header) of the CSV at `path` to `value`."""
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[line_number - 1].split(",")
    cells[header.index(column)] = value
    lines[line_number - 1] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")


def _line_of(path, prefix: str) -> int:
    return next(
        i for i, line in enumerate(path.read_text().splitlines(), 1) if line.startswith(prefix)
    )


@pytest.fixture
def with_sites(warehouse):
    tables = load_infrastructure(ASSETS_DIR).tables()
    for name in ("sites", "asic_fleet", "gpu_fleet"):
        warehouse.write(load_contracts()[name], tables[name], origin=f"{name}.yaml")
    return warehouse


@pytest.mark.parametrize(
    ("column", "value", "rule", "detail"),
    [
        ("hashrate_th_s", "lots", "types_match_contract (every value casts to its column's type)",
         "column 'hashrate_th_s', value 'lots' is not DOUBLE"),
        ("uptime_pct", "140", "uptime_pct_range (uptime_pct >= 0 and uptime_pct <= 100)",
         "column 'uptime_pct', value 140.0"),
        ("hashrate_th_s", "-5", "hashrate_th_s_range (hashrate_th_s >= 0)",
         "column 'hashrate_th_s', value -5.0"),
        ("btc_mined", "", "btc_mined_not_null (btc_mined is required)",
         "column 'btc_mined', value None"),
    ],
)  # fmt: skip
def test_bad_row_is_quarantined_with_file_row_column_value_and_rule(
    with_sites, sample_dir, column, value, rule, detail
):
    path = sample_dir / "mining_output_daily.csv"
    line = _line_of(path, "2024-04-02,no-narvik,")
    _spoil(path, line, column, value)
    report = _write_source(with_sites, "mining_output_daily", sample_dir)
    (failure,) = report.validation.failures
    where = f"{path} row {line} (date=2024-04-02"
    assert f"rule '{rule.split(' ')[0]}' {rule[rule.index(' ') + 1 :]}" in str(failure)
    assert f"first at {where}" in str(failure) and detail in str(failure), str(failure)
    # the other rows went on; the bad one is in quarantine, with its rule, file and row
    assert report.rows_written == 2 * 4 - 1 and report.validation.rows_quarantined == 1
    quarantined = _published(
        with_sites, "SELECT source, row_number, rules, row_json FROM quarantine"
    )
    assert quarantined[0][:3] == (str(path), line, rule.split(" ")[0])
    # the row as it arrived where a value did not cast, else as typed
    shown = f'"{value}"' if "types" in rule else "null" if value == "" else str(float(value))
    assert f'"{column}":{shown}' in quarantined[0][3], quarantined[0][3]
    assert _published(
        with_sites,
        "SELECT count(*) FROM mining_output_daily WHERE site_id = 'no-narvik' "
        "AND date = '2024-04-02'",
    ) == [(0,)]


def test_the_batch_rules_judge_the_rows_it_keeps(with_sites, sample_dir):
    """A second copy of a site-day that breaks a row rule is quarantined, so the key is unique
    among the rows kept; a second copy that passes them all makes the key not unique."""
    path = sample_dir / "mining_output_daily.csv"
    line = _line_of(path, "2024-04-02,no-narvik,")
    good = path.read_text().splitlines()[line - 1]
    path.write_text(path.read_text() + good.replace(",97.10,", ",140,") + "\n")
    report = _write_source(with_sites, "mining_output_daily", sample_dir)
    assert [f.rule.name for f in report.validation.failures] == ["uptime_pct_range"]
    assert report.rows_written == 2 * 4 and report.validation.rows_quarantined == 1

    path.write_text(path.read_text() + good + "\n")
    last = len(path.read_text().splitlines())  # the good copy; the one before it is quarantined
    with pytest.raises(ContractViolation, match=rf"rule 'key_unique'.* rows \[{line}, {last}\]"):
        _write_source(with_sites, "mining_output_daily", sample_dir)


def test_a_day_whose_every_row_is_quarantined_has_no_rows(with_sites, sample_dir):
    """Rows per day counts the rows kept: a day all of whose rows break a row rule is empty."""
    path = sample_dir / "mining_output_daily.csv"
    for site in ("ca-baie-comeau", "no-narvik", "se-lulea", "us-tx-rockdale"):
        _spoil(path, _line_of(path, f"2024-04-02,{site},"), "uptime_pct", "140")
    with pytest.raises(ContractViolation, match=r"rule 'rows_per_day'.*2024-04-02 has 0 row"):
        _write_source(with_sites, "mining_output_daily", sample_dir)


def test_rerun_after_fixing_the_source_clears_its_quarantine(with_sites, sample_dir):
    path = sample_dir / "mining_output_daily.csv"
    _spoil(path, _line_of(path, "2024-04-02,no-narvik,"), "uptime_pct", "140")
    _write_source(with_sites, "mining_output_daily", sample_dir)
    assert _published(with_sites, "SELECT count(*) FROM quarantine") == [(1,)]
    report = _write_source(with_sites, "mining_output_daily", SAMPLE_DATA_DIR)  # fixed
    # only the fixed day is written again: its 4 sites, of which 3 were stored
    assert report.validation.rows_quarantined == 0 and report.rows_written == 4
    assert [(c.day, c.rows, c.stored_rows) for c in report.days_changed] == [
        (date(2024, 4, 2), 4, 3)
    ]
    assert report.days_unchanged == (date(2024, 4, 1),)
    assert _published(with_sites, "SELECT count(*) FROM quarantine") == [(0,)]


def test_without_quarantine_a_bad_row_blocks_the_write(with_sites):
    """A derived table's contract has no quarantine: a bad row means a bug, and stops it."""
    contract = load_contracts()["sites"]
    bad = load_infrastructure(ASSETS_DIR).tables()["sites"].with_columns(pue=0.5)
    before = _published(with_sites, "SELECT * FROM sites ORDER BY site_id")
    with pytest.raises(ContractViolation, match=r"rule 'pue_range' \(pue >= 1 and pue <= 2\)"):
        with_sites.write(contract, bad, origin="sites.yaml")
    assert _published(with_sites, "SELECT * FROM sites ORDER BY site_id") == before


def test_duplicate_key_names_both_rows(warehouse, sample_dir):
    path = sample_dir / "btc_network_daily.csv"
    lines = path.read_text().splitlines()
    line = _line_of(path, "2024-04-02,")
    lines.insert(line, lines[line - 1])  # the 2024-04-02 row twice
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        ContractViolation,
        match=rf"rule 'key_unique' .*\(date=2024-04-02\) in "
        rf"{path} rows \[{line}, {line + 1}\]",
    ):
        _write_source(warehouse, "btc_network_daily", sample_dir)


def test_failed_write_leaves_previous_table_everywhere(warehouse, sample_dir):
    _write_source(warehouse, "btc_network_daily", SAMPLE_DATA_DIR)
    before = _published(warehouse, "SELECT * FROM btc_network_daily ORDER BY date")
    path = sample_dir / "btc_network_daily.csv"
    _spoil(path, _line_of(path, "2024-04-02,"), "price_usd", "-1")
    # the bad row is quarantined, which leaves 2024-04-02 without its one row: that blocks
    with pytest.raises(ContractViolation, match="one_row_per_day.*first: 2024-04-02 has 0 row"):
        _write_source(warehouse, "btc_network_daily", sample_dir)
    assert _published(warehouse, "SELECT * FROM btc_network_daily ORDER BY date") == before
    with warehouse.latest() as con:  # and in the lake's latest snapshot
        assert con.execute("SELECT * FROM btc_network_daily ORDER BY date").fetchall() == before


def test_query_that_raises_halfway_rolls_back(warehouse):
    contract = load_contracts()["btc_network_daily"]
    _write_source(warehouse, "btc_network_daily", SAMPLE_DATA_DIR)
    before = _published(warehouse, "SELECT * FROM btc_network_daily ORDER BY date")
    assert len(before) == 2
    # rebuild the table from itself, failing on its second day: DuckDB's error() raises
    # mid-execution, inside the write's transaction
    failing = (
        "SELECT * REPLACE (CASE WHEN date = DATE '2024-04-02' THEN error('feed broke') "
        "ELSE price_usd * 2 END AS price_usd) FROM btc_network_daily"
    )
    with pytest.raises(Exception, match="feed broke"):
        warehouse.write(contract, failing, origin="test", window=WINDOW, partition_column="date")
    assert _published(warehouse, "SELECT * FROM btc_network_daily ORDER BY date") == before
    with warehouse.latest() as con:  # and in the lake's latest snapshot
        assert con.execute("SELECT * FROM btc_network_daily ORDER BY date").fetchall() == before


def test_rows_outside_the_partition_are_kept_out(with_sites):
    frame = SampleConnector().fetch("mining_output_daily", WINDOW, "date")
    narrower = Window(date(2024, 4, 1), date(2024, 4, 2))
    report = with_sites.write(
        load_contracts()["mining_output_daily"],
        frame,
        origin="test",
        window=narrower,
        partition_column="date",
    )
    (failure,) = report.validation.failures
    assert failure.rule.name == "within_partition" and failure.rows == 4
    assert "column 'date', value datetime.date(2024, 4, 2)" in failure.example
    assert report.rows_written == 4 and report.validation.rows_quarantined == 4


def test_the_writer_works_within_the_declared_memory_limit(project):
    """settings.yaml's warehouse memory limit reaches the writer's DuckDB connection; a limit
    DuckDB cannot read is refused when the declarations load, naming the field."""
    path = project.assets_dir / "settings.yaml"
    settings = path.read_text()
    assert 'memory_limit: "1GB"' in settings
    path.write_text(settings.replace('memory_limit: "1GB"', 'memory_limit: "512mb"'))
    resource = project.definitions().resources["warehouse"]
    with resource.get().transaction("probe the writer", None) as con:
        (limit,) = con.execute("SELECT current_setting('memory_limit')").fetchone()
    assert limit == "488.2 MiB"  # DuckDB shows 512 MB (10^6 bytes each) in MiB

    path.write_text(settings.replace('memory_limit: "1GB"', 'memory_limit: "1 gig"'))
    with pytest.raises(DeclarationError, match=r"settings\.yaml.*warehouse.*memory_limit"):
        load_settings(project.assets_dir)


@pytest.mark.parametrize("value", ["136.5", "0x7a", "1_000", " 136", "1e2"])
def test_an_integer_column_refuses_what_is_not_an_integer(warehouse, sample_dir, value):
    """TRY_CAST would store 136.5 as 137 and 0x7a as 122: a type check refuses them instead."""
    path = sample_dir / "gpu_market_prices_daily.csv"
    line = _line_of(path, "2024-04-02,A100,PCIe,on-demand,")
    _spoil(path, line, "offers", value)
    report = _write_source(warehouse, "gpu_market_prices_daily", sample_dir)
    (failure,) = report.validation.failures
    assert failure.rule.name == "types_match_contract" and failure.rows == 1
    assert f"row {line} " in failure.example
    assert f"column 'offers', value {value!r} is not BIGINT" in failure.example


def test_a_long_value_is_cut_in_the_message(warehouse, sample_dir):
    path = sample_dir / "gpu_market_prices_daily.csv"
    line = _line_of(path, "2024-04-02,A100,PCIe,on-demand,")
    _spoil(path, line, "offers", "9" * 100_000 + "x")
    report = _write_source(warehouse, "gpu_market_prices_daily", sample_dir)
    (failure,) = report.validation.failures
    assert "… (100,001 characters) is not BIGINT" in failure.example
    assert len(str(failure)) < 1000


def test_a_folder_with_a_quote_in_its_name_is_written_and_named(tmp_path):
    """The origin of a frame without lineage is a SQL literal, quoted, not spliced."""
    warehouse = Warehouse(tmp_path / "it's here; DROP TABLE x" / "warehouse")
    contract = load_contracts()["btc_network_daily"]
    frame = SampleConnector().fetch("btc_network_daily", WINDOW, "date").drop("_source", "_row")
    origin = str(tmp_path / "it's here'; DROP TABLE sites; --")
    report = warehouse.write(contract, frame, origin=origin, window=WINDOW, partition_column="date")
    assert report.rows_written == 2
    assert _published(warehouse, "SELECT count(*) FROM btc_network_daily") == [(2,)]


def test_a_rule_that_cannot_be_evaluated_is_an_error_not_a_failure(with_sites):
    """Great Expectations reports the error of a rule's SQL nested per metric; it surfaces as an
    error of the write, naming the rule and the contract, and nothing is written."""
    contract = load_contracts()["mining_output_daily"]
    broken = Rule("site_id_is_a_number", "a rule whose SQL fails on the data", "warning",
                  condition="CAST(site_id AS INTEGER) > 0")  # fmt: skip
    contract = dataclasses.replace(contract, rules=(*contract.rules, broken))
    frame = SampleConnector().fetch("mining_output_daily", WINDOW, "date")
    with pytest.raises(RuleError, match=r"mining_output_daily: rule 'site_id_is_a_number' could "
                       r"not be evaluated: .*Could not convert.*nothing was written"):  # fmt: skip
        with_sites.write(contract, frame, origin="test", window=WINDOW, partition_column="date")
    with with_sites.latest() as con:
        assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = "
                           "'mining_output_daily'").fetchone() == (0,)  # fmt: skip
