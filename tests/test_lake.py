"""The warehouse as a DuckLake: snapshots, published runs, history kept on a change of shape,
hand-opened sessions that cannot change what readers read, writers killed mid-write, upkeep and
the migration of an old warehouse file. Real files and, where it matters, real processes."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import date, timedelta

import dagster as dg
import duckdb
import pytest
import yaml

from pipelines.batch import Window
from pipelines.contracts import Column, load_contracts
from pipelines.errors import DeclarationError, MegawattError
from pipelines.settings import PROJECT_DIR
from pipelines.sources.sample import SampleConnector
from pipelines.warehouse import Warehouse
from tests.conftest import QUIET

BTC = "btc_network_daily"
FIRST_DAYS = Window(date(2024, 4, 1), date(2024, 4, 6))


def _write(warehouse: Warehouse, window: Window, contract=None, *, frame=None, **kwargs):
    contract = contract or load_contracts()[BTC]
    if frame is None:
        frame = SampleConnector().fetch(BTC, window, "date")
    return warehouse.write(
        contract, frame, origin="test", window=window, partition_column="date", **kwargs
    )


def _days(warehouse: Warehouse, sql: str = f"SELECT count(*) FROM {BTC}"):
    with warehouse.reader() as con:
        return con.execute(sql).fetchall()


# -- readers see whole runs --------------------------------------------------------------------
def test_readers_see_the_published_run_not_a_run_in_progress(tmp_path):
    warehouse = Warehouse(tmp_path / "wh")
    _write(warehouse, FIRST_DAYS)  # a write outside a run publishes itself
    assert _days(warehouse) == [(5,)]
    held = warehouse.reader()  # a reader that stays connected keeps its snapshot
    later = Window(date(2024, 4, 6), date(2024, 4, 9))
    _write(warehouse, later, run_id="run-in-progress")
    assert _days(warehouse) == [(5,)]  # not published yet: readers see the last run
    with warehouse.latest() as con:  # the pipeline itself reads on
        assert con.execute(f"SELECT count(*) FROM {BTC}").fetchall() == [(8,)]
    warehouse.publish("run-in-progress")
    assert _days(warehouse) == [(8,)]
    assert held.execute(f"SELECT count(*) FROM {BTC}").fetchall() == [(5,)]
    held.close()


def test_as_of_returns_what_an_earlier_run_published_after_a_correction(tmp_path):
    warehouse = Warehouse(tmp_path / "wh")
    frame = SampleConnector().fetch(BTC, FIRST_DAYS, "date")
    _write(warehouse, FIRST_DAYS, frame=frame, run_id="morning-run-1")
    first = warehouse.publish("morning-run-1")
    time.sleep(0.01)
    corrected = frame.with_columns(frame["price_usd"].cast(float) * 2)
    _write(warehouse, FIRST_DAYS, frame=corrected, run_id="correction-run-2")
    warehouse.publish("correction-run-2")
    sql = f"SELECT price_usd FROM {BTC} WHERE date = DATE '2024-04-02'"
    (now,) = _days(warehouse, sql)
    with warehouse.reader(as_of="morning-run-1") as con:
        (before,) = con.execute(sql).fetchall()
    with warehouse.reader(as_of="morning-") as con:  # a prefix, as the UI shows run ids
        assert con.execute(sql).fetchall() == [before]
    moment = first.published_at.isoformat()
    with warehouse.reader(as_of=moment) as con:  # or the time it was published
        assert con.execute(sql).fetchall() == [before]
    assert now[0] == pytest.approx(2 * before[0])
    with pytest.raises(MegawattError, match="nothing was published by run or at time"):
        warehouse.reader(as_of="2001-01-01")
    with warehouse.reader(as_of="morning-run-1") as con:  # the audit trail, as it stands now
        assert [r for (r,) in con.execute("SELECT run_id FROM published_runs").fetchall()] == [
            "morning-run-1",
            "correction-run-2",
        ]


def test_a_reader_attach_is_read_only(tmp_path):
    warehouse = Warehouse(tmp_path / "wh")
    _write(warehouse, FIRST_DAYS)
    with warehouse.reader() as con, pytest.raises(duckdb.Error, match="read-only"):
        con.execute(f"DELETE FROM {BTC}")


def test_a_writable_session_opened_by_hand_changes_nothing_readers_read(tmp_path):
    warehouse = Warehouse(tmp_path / "wh")
    _write(warehouse, FIRST_DAYS)
    before = _days(warehouse, f"SELECT * FROM {BTC} ORDER BY date")
    # someone attaches the lake writable, by hand, and deletes and inserts rows
    hand = warehouse.lake.connect(read_only=False)
    hand.execute(f"DELETE FROM {BTC} WHERE date > DATE '2024-04-02'")
    hand.execute(f"INSERT INTO {BTC} SELECT * REPLACE (DATE '2030-01-01' AS date) FROM {BTC} "
                 "LIMIT 1")  # fmt: skip
    hand.close()
    assert _days(warehouse, f"SELECT * FROM {BTC} ORDER BY date") == before
    # and the next run does not publish it: it names the snapshots and says how to undo them
    later = Window(date(2024, 4, 6), date(2024, 4, 7))
    _write(warehouse, later, run_id="next-run")
    with pytest.raises(MegawattError, match=r"not published: .*not made by the pipeline.*snapshot"):
        warehouse.publish("next-run")
    assert _days(warehouse, f"SELECT * FROM {BTC} ORDER BY date") == before


# -- writers -----------------------------------------------------------------------------------
WRITER = textwrap.dedent(
    """
    import sys
    from datetime import date, timedelta
    from pipelines.batch import Window
    from pipelines.contracts import load_contracts
    from pipelines.sources.sample import SampleConnector
    from pipelines.warehouse import Warehouse

    warehouse, table, writes = Warehouse(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    contract = load_contracts()[table]
    column = "ts" if table == "energy_prices_hourly" else "date"
    for n in range(writes):
        start = date(2024, 3, 21) + timedelta(days=n % 20)
        window = Window(start, start + timedelta(days=20))
        frame = SampleConnector().fetch(table, window, column)
        warehouse.write(contract, frame, origin="test", window=window, partition_column=column,
                        run_id=f"{table}-{n}")
        print(n, flush=True)
    """
)


def _writer(warehouse: Warehouse, table: str, writes: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(warehouse.directory), table, str(writes)],
        cwd=PROJECT_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


@pytest.mark.parametrize("tables", [(BTC, "fx_rates_daily"), (BTC, BTC)], ids=["two", "same"])
def test_writer_processes_at_once_never_fail_on_a_lock(tmp_path, tables):
    """Writers of different tables, or of the same one, in two processes at once: none fails
    with a lock error, and every table holds each day once."""
    warehouse = Warehouse(tmp_path / "wh")
    writers = [_writer(warehouse, table, 8) for table in tables]
    for writer in writers:
        out, err = writer.communicate(timeout=300)
        assert writer.returncode == 0, err[-2000:]
        assert out.split() == [str(n) for n in range(8)]
    warehouse.publish(None)
    written = Window(date(2024, 3, 21), date(2024, 3, 21) + timedelta(days=27))
    for table in set(tables):
        expected = SampleConnector().fetch(table, written, "date")
        assert _days(warehouse, f"SELECT count(*), count(DISTINCT date) FROM {table}") == [
            (expected.height, expected["date"].n_unique())
        ]


def test_a_writer_killed_mid_write_leaves_the_last_commit_and_the_next_write_completes(tmp_path):
    warehouse = Warehouse(tmp_path / "wh")
    _write(warehouse, Window(date(2024, 3, 21), date(2024, 5, 21)))
    expected = _days(warehouse, f"SELECT * FROM {BTC} ORDER BY date")
    # killed at several points: before, during and after its transactions
    for delay in (0.5, 1.2, 2.0, 3.5):
        writer = _writer(warehouse, BTC, 1000)
        time.sleep(delay)
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        with warehouse.latest() as con:  # the last committed snapshot reads whole
            rows = con.execute(f"SELECT * FROM {BTC} ORDER BY date").fetchall()
        assert rows == expected  # every write of the killed writer wrote the sample's rows
        assert _days(warehouse, f"SELECT * FROM {BTC} ORDER BY date") == expected
    _write(warehouse, FIRST_DAYS, run_id="after-the-kills")
    warehouse.publish("after-the-kills")
    assert _days(warehouse, f"SELECT * FROM {BTC} ORDER BY date") == expected


# -- a change of shape keeps history -----------------------------------------------------------
def _contract_with(columns):
    """The btc_network_daily contract with `columns`, without the rules of columns it drops."""
    contract = load_contracts()[BTC]
    names = {c.name for c in columns}
    dropped = [c.name for c in contract.columns if c.name not in names]
    rules = [r for r in contract.rules
             if not any(d in f"{r.column} {r.condition} {r.query}" for d in dropped)]  # fmt: skip
    return dataclasses.replace(contract, columns=tuple(columns), rules=tuple(rules))


def test_an_added_column_is_added_and_past_days_read_null(tmp_path):
    warehouse = Warehouse(tmp_path / "wh")
    _write(warehouse, FIRST_DAYS)
    contract = load_contracts()[BTC]
    added = Column("pool_share_pct", "DOUBLE", "Share of the largest pool", required=False)
    wider = _contract_with([*contract.columns, added])
    day = Window(date(2024, 4, 5), date(2024, 4, 6))
    frame = SampleConnector().fetch(BTC, day, "date").with_columns(pool_share_pct=31.5)
    _write(warehouse, day, wider, frame=frame)
    rows = _days(warehouse, f"SELECT date, pool_share_pct FROM {BTC} ORDER BY date")
    assert rows == [(date(2024, 4, d), None) for d in range(1, 5)] + [(date(2024, 4, 5), 31.5)]


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        ("narrow", "changes the type of blocks from BIGINT to INTEGER"),
        ("drop", "drops column fees_btc"),
        ("required", "adds required column pool_share_pct"),
        ("key", "changes the key from (date) to (date, blocks)"),
    ],
)
def test_a_change_that_cannot_keep_history_is_refused_unless_rebuilt(tmp_path, change, refusal):
    warehouse = Warehouse(tmp_path / "wh")
    _write(warehouse, FIRST_DAYS)
    contract = load_contracts()[BTC]
    columns = list(contract.columns)
    frame = SampleConnector().fetch(BTC, FIRST_DAYS, "date")
    if change == "narrow":
        columns = [dataclasses.replace(c, type="INTEGER") if c.name == "blocks" else c
                   for c in columns]  # fmt: skip
    elif change == "drop":
        columns = [c for c in columns if c.name != "fees_btc"]
        frame = frame.drop("fees_btc")
    elif change == "required":
        columns.append(Column("pool_share_pct", "DOUBLE", "Largest pool's share", required=True))
        frame = frame.with_columns(pool_share_pct=31.5)
    else:
        columns = [dataclasses.replace(c, key_position=2) if c.name == "blocks" else c
                   for c in columns]  # fmt: skip
    changed = _contract_with(columns)
    day = Window(date(2024, 4, 5), date(2024, 4, 6))
    with pytest.raises(DeclarationError) as refused:
        _write(warehouse, day, changed, frame=frame.filter(frame["date"] == "2024-04-05"))
    message = str(refused.value)
    assert f"{contract.path}: table {BTC}: {refusal}" in message
    assert f"megawatt run --rebuild {BTC}" in message
    assert _days(warehouse) == [(5,)]  # nothing dropped
    # a rebuild of every partition makes the table anew
    _write(warehouse, FIRST_DAYS, changed, frame=frame, rebuild=True)
    assert _days(warehouse) == [(5,)]
    assert _days(warehouse, f"SELECT count(*) FROM {BTC} WHERE date < DATE '2024-04-01'") == [(0,)]


def test_a_derived_table_gets_a_new_column_without_losing_its_other_days(project):
    """The bug this replaces: a new column dropped the table and kept only the run's days,
    while Dagster showed them all as materialised."""
    assert project.run("2024-04-08", "2024-04-12").success
    path = project.contracts_dir / "hashprice_daily.odcs.yaml"
    contract = yaml.safe_load(path.read_text())
    properties = contract["schema"][0]["properties"]
    scenario = next(p for p in properties if p["name"] == "scenario")  # a VARCHAR column
    note = {k: v for k, v in scenario.items() if not k.startswith("primaryKey")}
    properties.append(note | {"name": "note", "required": False, "description": "A note."})
    path.write_text(yaml.safe_dump(contract, sort_keys=False))
    sql = project.assets_dir / "sql" / "hashprice_daily.sql"
    query = sql.read_text()
    last_select = query.rindex("SELECT")
    sql.write_text(query[:last_select] + "SELECT 'new' AS note, " + query[last_select + 6 :])
    assert project.run("2024-04-12", "2024-04-12").success
    assert project.query(
        "SELECT date, note FROM hashprice_daily WHERE scenario = 'base' ORDER BY date"
    ) == [(date(2024, 4, d), None) for d in range(8, 12)] + [(date(2024, 4, 12), "new")]


# -- upkeep and migration ----------------------------------------------------------------------
def test_upkeep_merges_small_files_and_keeps_the_published_snapshot(tmp_path):
    warehouse = Warehouse(tmp_path / "wh")
    contract = load_contracts()["energy_prices_hourly"]
    for offset in range(6):  # daily writes: a few small files each
        day = date(2024, 4, 1) + timedelta(days=offset)
        window = Window(day, day + timedelta(days=1))
        frame = SampleConnector().fetch(contract.table, window, "ts")
        warehouse.write(contract, frame, origin="test", window=window, partition_column="ts")
    sql = "SELECT * FROM energy_prices_hourly ORDER BY ALL"
    before = _days(warehouse, sql)
    files_before = warehouse.data_files()[0]
    published = warehouse.published()
    done = warehouse.upkeep(timedelta(0))  # expire every snapshot it may
    assert done["files_before"] == files_before > done["files_after"] >= 1
    assert done["snapshots_expired"] > 0 and done["files_deleted"] > 0
    assert _days(warehouse, sql) == before  # the published data is kept...
    # ...in the compacted files: only compaction came after, so that snapshot is published
    republished = warehouse.published()
    assert republished.snapshot > published.snapshot
    assert republished.run_id == published.run_id
    assert warehouse.upkeep(timedelta(0))["files_after"] == done["files_after"]  # settled


def test_upkeep_does_not_publish_a_run_in_progress(tmp_path):
    warehouse = Warehouse(tmp_path / "wh")
    _write(warehouse, FIRST_DAYS)
    published = warehouse.published()
    _write(warehouse, Window(date(2024, 4, 6), date(2024, 4, 9)), run_id="run-in-progress")
    warehouse.upkeep(timedelta(0))
    assert warehouse.published() == published  # not republished: data changed since
    assert _days(warehouse) == [(5,)]


def test_an_old_warehouse_file_is_never_ignored_and_migrates(tmp_path):
    directory = tmp_path / "wh"
    directory.mkdir()
    frame = SampleConnector().fetch(BTC, FIRST_DAYS, "date")  # noqa: F841 (read by DuckDB)
    with duckdb.connect(str(directory / "pipeline.duckdb")) as old:
        old.execute(load_contracts()[BTC].create_table_sql())
        old.execute(f"INSERT INTO {BTC} SELECT * EXCLUDE (_source, _row) FROM frame")
    warehouse = Warehouse(directory)
    with pytest.raises(
        MegawattError, match="pipeline.duckdb is a warehouse of an earlier.*migrate"
    ):
        warehouse.reader()
    with pytest.raises(MegawattError, match="megawatt migrate"):
        _write(warehouse, FIRST_DAYS)
    assert warehouse.migrate_legacy() == [BTC]
    assert _days(warehouse) == [(5,)]
    assert (directory / "pipeline.duckdb.migrated").exists()
    assert not (directory / "pipeline.duckdb").exists()


def test_the_attach_script_opens_the_published_snapshot_in_another_process(tmp_path):
    warehouse = Warehouse(tmp_path / "wh")
    _write(warehouse, FIRST_DAYS)
    _write(warehouse, Window(date(2024, 4, 6), date(2024, 4, 8)), run_id="unpublished")
    script = (warehouse.directory / "attach.sql").read_text()
    reader = f"import duckdb; con = duckdb.connect(); con.execute({script!r}); " + (
        f"print(con.execute('SELECT count(*) FROM {BTC}').fetchone()[0])"
    )
    out = subprocess.run([sys.executable, "-c", reader], capture_output=True, text=True,
                         env={**os.environ}, cwd=PROJECT_DIR, check=True).stdout  # fmt: skip
    assert out.strip() == "5"
    assert "READ_ONLY" in script


def test_the_run_sensors_publish_a_run_the_ui_started(project):
    """Runs of the UI and the schedule are published by a run-status sensor (in the daemon)."""
    defs = project.definitions()
    job = defs.resolve_job_def("daily")
    instance = dg.DagsterInstance.ephemeral()
    result = job.execute_in_process(
        instance=instance, partition_key="2024-04-08", run_config=QUIET,
        asset_selection=[dg.AssetKey("btc_network_daily")],
    )  # fmt: skip
    with pytest.raises(MegawattError, match="no published run yet"):
        project.warehouse.reader()  # not published by the run itself
    sensor = next(s for s in defs.sensors if s.name == "publish_succeeded_run")
    with dg.build_run_status_sensor_context(
        sensor_name=sensor.name,
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_success_event(),
        resources={"warehouse": defs.resources["warehouse"]},
    ) as context:  # the resource is a context manager (a run's turn on the warehouse)
        sensor(context)
    assert project.warehouse.published().run_id == result.run_id
    assert project.query("SELECT count(*) FROM btc_network_daily") == [(1,)]
