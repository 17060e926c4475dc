"""Bad-input corpus: every raw table's drop files with one defect each (tests/bad_inputs/).

Each case loads the reference tables and the good sample day of its table, snapshots every table
of the published copy, then fetches the case's folder with FileDropConnector and writes it. It
asserts the outcome (quarantined / blocked / rejected / accepted), the exact rule(s), what changed
(only the bad rows, or nothing), and last that the message names the file (and the line).
cases.yaml describes the format; a case marked `xfail` is a pipeline bug (strict).
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml

from pipelines.batch import Window
from pipelines.contracts import load_contracts
from pipelines.declarations import load_infrastructure, load_settings
from pipelines.errors import ContractViolation
from pipelines.settings import ASSETS_DIR
from pipelines.sources.errors import SourceError
from pipelines.sources.file_drop import FileDropConnector, FileDropSettings
from pipelines.sources.sample import SampleConnector
from pipelines.sqltext import quote
from pipelines.warehouse import QUARANTINE_TABLE, Warehouse

CORPUS = Path(__file__).parent / "bad_inputs"
MANIFEST = yaml.safe_load((CORPUS / "cases.yaml").read_text())
SOURCES = yaml.safe_load((ASSETS_DIR / "sources.yaml").read_text())["sources"]
REFERENCE = ("sites", "asic_fleet", "gpu_fleet", "scenarios")
BASELINE_DAY = date(2024, 4, 2)
KINDS = {"quarantined", "blocked", "rejected", "accepted"}


def _cases():
    for case in MANIFEST["cases"]:
        marks = [pytest.mark.xfail(strict=True, reason=case["xfail"])] if "xfail" in case else []
        yield pytest.param(case, id=f"{case['table']}/{case['case']}", marks=marks)


def _rules(text: str) -> list[str]:
    return [r.strip() for r in text.split(",")]


def _window(day: date) -> Window:
    return Window(day, day + timedelta(days=1))


def _snapshot(warehouse: Warehouse) -> dict[str, list[tuple]]:
    """Every table of the published copy, its rows in a stable order."""
    with warehouse.reader() as con:
        names = [
            n
            for (n,) in con.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'main' AND table_catalog = current_database() "
                "ORDER BY table_name"
            ).fetchall()
        ]
        return {n: con.execute(f"SELECT * FROM {quote(n)} ORDER BY ALL").fetchall() for n in names}


def _removed_keys(warehouse: Warehouse, contract, also_removed: list[list]) -> set[tuple]:
    """The keys (typed) of the quarantined rows of `contract.table`, and of `also_removed`."""
    types = {c.name: c.type for c in contract.columns}
    keys = ", ".join(
        f"TRY_CAST(json_extract_string(row_json, '$.{k}') AS {types[k]})" for k in contract.key
    )
    typed = ", ".join(f"TRY_CAST(? AS {types[k]})" for k in contract.key)
    with warehouse.reader() as con:
        rows = con.execute(
            f"SELECT {keys} FROM {QUARANTINE_TABLE} WHERE table_name = ?", [contract.table]
        ).fetchall()
        rows += [
            con.execute(f"SELECT {typed}", [str(v) for v in k]).fetchone() for k in also_removed
        ]
    return set(rows)


@pytest.fixture
def baseline(tmp_path):
    """A warehouse with the reference tables; the good sample day is loaded per test."""
    warehouse = Warehouse(tmp_path / "warehouse")
    contracts = load_contracts()
    start = load_settings(ASSETS_DIR).partitions.start_date
    tables = load_infrastructure(ASSETS_DIR, start).tables()
    for name in REFERENCE:
        warehouse.write(contracts[name], tables[name], origin=f"{name}.yaml")
    return warehouse, contracts


@pytest.mark.parametrize("case", list(_cases()))
def test_bad_input(baseline, case):
    warehouse, contracts = baseline
    table = case["table"]
    contract = contracts[table]
    partition_column = SOURCES[table]["partition_column"]
    (kind, expected), *rest = case["expect"].items()
    assert kind in KINDS and not rest, case["expect"]
    day = date.fromisoformat(str(case["day"]))
    folder = CORPUS / case["folder"]
    bad_path = str(folder / case["file"]) if "file" in case else None
    lines = case.get("lines", [])
    also = set(case.get("also_failed", []))

    # the baseline: the good sample day of the same table
    good_window = _window(BASELINE_DAY)
    good = SampleConnector().fetch(table, good_window, partition_column)
    warehouse.write(
        contract,
        good,
        origin="sample",
        window=good_window,
        partition_column=partition_column,
    )
    before = _snapshot(warehouse)
    assert before[table] and not before[QUARANTINE_TABLE]

    settings = FileDropSettings(folder=folder, subaccounts=MANIFEST["subaccounts"])
    window = _window(day)

    def load():
        frame = FileDropConnector(settings).fetch(table, window, partition_column)
        return warehouse.write(
            contract,
            frame,
            origin=str(folder),
            window=window,
            partition_column=partition_column,
        )

    if kind == "rejected":
        with pytest.raises(SourceError) as raised:
            load()
        message = str(raised.value)
        assert expected in message, message
        assert _snapshot(warehouse) == before
        assert bad_path in message, message
        return

    if kind == "blocked":
        with pytest.raises(ContractViolation) as raised:
            load()
        message = str(raised.value)
        validation = raised.value.validation
        blocking = {r.rule.name for r in validation.blocking(quarantined=contract.quarantine)}
        assert blocking == set(_rules(expected)), message
        assert {r.rule.name for r in validation.failures} == blocking | also
        for rule in blocking:
            assert f"rule {rule!r}" in message, message
        assert _snapshot(warehouse) == before  # nothing written, quarantine included
        named = str(folder) if case.get("names") == "folder" else bad_path
        assert named in message, message  # the file (the folder, for a batch of no rows)...
        for line in lines:  # ...and the line of a row-level defect behind the block
            assert f"row {line}" in message, message
        return

    report = load()
    failures = {r.rule.name: r for r in report.validation.failures}
    after = _snapshot(warehouse)
    unchanged = {n for n in before if n not in (table, QUARANTINE_TABLE)}
    assert {n: after[n] for n in unchanged} == {n: before[n] for n in unchanged}
    assert set(after) == set(before)

    if kind == "accepted":
        assert not failures, [str(f) for f in failures.values()]
        assert after[QUARANTINE_TABLE] == before[QUARANTINE_TABLE]
        if expected == "unchanged":
            assert after[table] == before[table]
        else:
            assert expected == "day_emptied" and report.rows_written == 0
            with warehouse.reader() as con:
                (n,) = con.execute(
                    f"SELECT count(*) FROM {quote(table)} "
                    f"WHERE CAST({quote(partition_column)} AS DATE) = ?",
                    [day],
                ).fetchone()
            assert n == 0
        return

    # quarantined: the write went on without the bad row(s)
    rules = _rules(expected)
    assert set(failures) == set(rules) | also, [str(f) for f in failures.values()]
    assert report.validation.rows_quarantined == len(lines)
    with warehouse.reader() as con:
        quarantined = con.execute(
            f"SELECT table_name, day, source, row_number, rules FROM {QUARANTINE_TABLE} "
            "ORDER BY row_number"
        ).fetchall()
    assert quarantined == [(table, day, bad_path, line, expected) for line in lines]
    # the target differs from the baseline only by the quarantined rows' keys
    bad_keys = _removed_keys(warehouse, contract, case.get("also_removed", []))
    positions = [contract.column_names.index(k) for k in contract.key]
    kept = [r for r in before[table] if tuple(r[i] for i in positions) not in bad_keys]
    assert after[table] == kept
    # the kept rows replace the day, unless they are what it holds already (a bad row with a
    # key of its own): then the day is unchanged and nothing is committed
    if after[table] == before[table]:
        assert (report.rows_written, report.days_changed) == (0, ())
    else:
        assert report.rows_written == report.validation.rows_in - len(lines)
        assert report.days_changed and report.days_changed[0].day == day
    # every failure names the file and the first bad line
    for rule in rules:
        assert f"{bad_path} row {lines[0]}" in str(failures[rule]), str(failures[rule])
