"""The warehouse's code unchanged on a PostgreSQL catalog and an S3-compatible data path: real
servers started by the tests (tests/services.py) on 127.0.0.1. Each test has a database of its
own and an S3 prefix of its own. Writers are real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import date, timedelta

import pytest

from pipelines.batch import Window
from pipelines.contracts import load_contracts
from pipelines.errors import MegawattError
from pipelines.lake import S3, Lake
from pipelines.settings import PROJECT_DIR
from pipelines.sources.sample import SampleConnector
from pipelines.warehouse import Warehouse
from tests.services import S3_KEY_ID, S3_SECRET, Postgres, S3Server, postgres, s3_server

__all__ = ["postgres", "s3_server"]  # the session's services, as fixtures of this module

BTC, FX, ENERGY = "btc_network_daily", "fx_rates_daily", "energy_prices_hourly"
FIRST_DAYS = Window(date(2024, 4, 1), date(2024, 4, 6))
SAMPLE_DAYS = Window(date(2024, 3, 21), date(2024, 5, 21))  # every day of the sample
KEY_VARIABLE, SECRET_VARIABLE = "MEGAWATT_TEST_S3_KEY_ID", "MEGAWATT_TEST_S3_SECRET"


def _column(table: str) -> str:
    return "ts" if table == ENERGY else "date"


@pytest.fixture
def warehouse(postgres: Postgres, s3_server: S3Server, monkeypatch, tmp_path) -> Warehouse:
    """A warehouse whose catalog is a new PostgreSQL database and whose data lies under a new
    prefix of the bucket; its folder (tmp_path) holds only attach.sql."""
    monkeypatch.setenv(KEY_VARIABLE, S3_KEY_ID)
    monkeypatch.setenv(SECRET_VARIABLE, S3_SECRET)
    database = postgres.create_database()
    lake = Lake(
        catalog=f"postgres:{postgres.dsn(database)}",
        data_path=f"s3://{s3_server.bucket}/lake/{database}/",
        s3=S3(endpoint=s3_server.endpoint, use_ssl=False, url_style="path",
              key_id_variable=KEY_VARIABLE, secret_variable=SECRET_VARIABLE),
    )  # fmt: skip
    return Warehouse(tmp_path / "wh", lake=lake)


def _prefix(warehouse: Warehouse) -> str:
    return warehouse.lake.data_path.split("/", 3)[3]


def _write(warehouse: Warehouse, window: Window, table: str = BTC, *, frame=None, **kwargs):
    contract = load_contracts()[table]
    column = _column(table)
    if frame is None:
        frame = SampleConnector().fetch(table, window, column)
    return warehouse.write(
        contract, frame, origin="test", window=window, partition_column=column, **kwargs
    )


def _read(warehouse: Warehouse, sql: str = f"SELECT count(*) FROM {BTC}", **kwargs):
    with warehouse.reader(**kwargs) as con:
        return con.execute(sql).fetchall()


def test_services_start_and_report_their_time(postgres: Postgres, s3_server: S3Server):
    print(f"\nPostgreSQL started in {postgres.started_in:.2f}s, "
          f"moto's S3 server in {s3_server.started_in:.2f}s")  # fmt: skip
    assert postgres.psql("SHOW listen_addresses").strip() == "127.0.0.1"
    assert "PostgreSQL 15" in postgres.psql("SELECT version()")


# -- write, publish, read ----------------------------------------------------------------------
def test_a_write_is_published_and_read_back_from_the_cluster(warehouse, s3_server, postgres):
    began = time.monotonic()
    first = _write(warehouse, SAMPLE_DAYS, ENERGY)  # the first: connects, makes the lake
    first_took = time.monotonic() - began
    began = time.monotonic()
    second = _write(warehouse, FIRST_DAYS)
    second_took = time.monotonic() - began
    print(
        f"\na write of {first.rows_written} rows (connecting, making the lake): "
        f"{first_took:.2f}s; a write of 5 rows on the open connection: {second_took:.2f}s"
    )
    assert _read(warehouse) == [(5,)]
    expected = SampleConnector().fetch(ENERGY, SAMPLE_DAYS, "ts").height
    assert _read(warehouse, f"SELECT count(*) FROM {ENERGY}") == [(expected,)]
    assert warehouse.published().snapshot == second.snapshot  # published itself (no run)
    # the catalog is in PostgreSQL, the Parquet files in the bucket
    database = warehouse.lake.catalog.split("dbname=")[1].split()[0]
    assert "ducklake_snapshot" in postgres.psql(
        "SELECT table_name FROM information_schema.tables", database
    )
    keys = s3_server.keys(_prefix(warehouse))
    assert keys and all(k.endswith(".parquet") for k in keys)
    assert warehouse.data_files()[0] == len(keys)  # a glob over the bucket


def test_as_of_reads_what_an_earlier_run_published_after_a_correction(warehouse):
    frame = SampleConnector().fetch(BTC, FIRST_DAYS, "date")
    _write(warehouse, FIRST_DAYS, frame=frame, run_id="morning-run-1")
    first = warehouse.publish("morning-run-1")
    time.sleep(0.01)
    corrected = frame.with_columns(frame["price_usd"].cast(float) * 2)
    _write(warehouse, FIRST_DAYS, frame=corrected, run_id="correction-run-2")
    warehouse.publish("correction-run-2")
    sql = f"SELECT price_usd FROM {BTC} WHERE date = DATE '2024-04-02'"
    (now,) = _read(warehouse, sql)
    (before,) = _read(warehouse, sql, as_of="morning-run-1")
    assert _read(warehouse, sql, as_of="morning-") == [before]
    assert _read(warehouse, sql, as_of=first.published_at.isoformat()) == [before]
    assert now[0] == pytest.approx(2 * before[0])
    with pytest.raises(MegawattError, match="nothing was published by run or at time"):
        warehouse.reader(as_of="2001-01-01")


def test_a_reader_is_read_only(warehouse):
    _write(warehouse, FIRST_DAYS)
    with warehouse.reader() as con, pytest.raises(Exception, match="read-only"):
        con.execute(f"DELETE FROM {BTC}")


# -- writer processes --------------------------------------------------------------------------
WRITER = textwrap.dedent(
    """
    import json
    import sys
    import time
    from datetime import date, timedelta

    import polars as pl

    from pipelines.batch import Window
    from pipelines.contracts import load_contracts
    from pipelines.lake import S3, Lake
    from pipelines.sources.sample import SampleConnector
    from pipelines.warehouse import Warehouse

    spec, table, writes = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    start_at, mode = float(sys.argv[4]), sys.argv[5]
    bad_row, revise = mode == "bad-row" and table == "fx_rates_daily", mode == "revise"
    lake = Lake(spec["catalog"], spec["data_path"], S3(**spec["s3"]))
    warehouse = Warehouse(spec["directory"], lake=lake)
    contract = load_contracts()[table]
    column = "ts" if table == "energy_prices_hourly" else "date"
    time.sleep(max(0.0, start_at - time.time()))  # the writers start together
    for n in range(writes):
        # a revising writer rewrites one window, its prices a dollar up every other write (a
        # write of what is stored already commits nothing)
        start = date(2024, 3, 21) + timedelta(days=0 if revise else n % 20)
        window = Window(start, start + timedelta(days=20))
        frame = SampleConnector().fetch(table, window, column)
        if bad_row:  # its first row's last value does not cast: quarantined
            value, first = frame.columns[-2], frame["_row"][0]
            frame = frame.with_columns(pl.when(pl.col("_row") == first).then(pl.lit("oops"))
                                       .otherwise(pl.col(value)).alias(value))
        if revise and n % 2:
            frame = frame.with_columns(
                (pl.col("price_usd").cast(pl.Float64) + 1).round(2).cast(pl.String)
            )
        began = time.time()
        report = warehouse.write(contract, frame, origin="test", window=window,
                                 partition_column=column, run_id=f"{table}-{n}")
        print(json.dumps({"n": n, "began": began, "ended": time.time(),
                          "retries": report.retries}), flush=True)
    """
)


def _writer(
    warehouse: Warehouse, table: str, writes: int, start_at: float = 0.0, bad_row: bool = False,
    revise: bool = False,
):  # fmt: skip
    lake = warehouse.lake
    spec = {"catalog": lake.catalog, "data_path": lake.data_path, "s3": vars(lake.s3),
            "directory": str(warehouse.directory)}  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, json.dumps(spec), table, str(writes), str(start_at),
         "bad-row" if bad_row else "revise" if revise else "-"],
        cwd=PROJECT_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ),  # the S3 credentials' variables, set by the fixture
    )  # fmt: skip


def _run_at_once(warehouse: Warehouse, tables: tuple[str, str], writes: int, bad_row=False):
    """Two writer processes that begin writing at the same moment: their writes, and stderr."""
    start_at = time.time() + 8  # both have imported and are waiting by then
    writers = [_writer(warehouse, table, writes, start_at, bad_row) for table in tables]
    results = []
    for writer in writers:
        out, err = writer.communicate(timeout=300)
        assert writer.returncode == 0, err[-3000:]
        results.append(([json.loads(line) for line in out.splitlines()], err))
    for writes_done, _ in results:
        assert [w["n"] for w in writes_done] == list(range(writes))
    return results


def _assert_each_day_once(warehouse: Warehouse, tables, writes: int) -> None:
    """Each table holds each day its writers wrote (windows of 20 days, a day later each
    time) once."""
    warehouse.publish(None)
    written = Window(date(2024, 3, 21), date(2024, 3, 21) + timedelta(days=20 + writes - 1))
    for table in set(tables):
        expected = SampleConnector().fetch(table, written, "date")
        assert _read(warehouse, f"SELECT count(*), count(DISTINCT date) FROM {table}") == [
            (expected.height, expected["date"].n_unique())
        ]


def test_writers_of_two_tables_commit_at_once_without_waiting(warehouse):
    """No lock: their writes overlap in time, and neither conflicts, not even on the quarantine
    table that both write to (the fx writer quarantines a row in each write)."""
    _write(warehouse, FIRST_DAYS)  # the lake made, its bookkeeping tables too
    (a, err_a), (b, err_b) = _run_at_once(warehouse, (BTC, FX), 6, bad_row=True)
    # one began before the other's ended, both ways
    overlaps = [(x, y) for x in a for y in b
                if x["began"] < y["ended"] and y["began"] < x["ended"]]  # fmt: skip
    print(f"\n{len(overlaps)} overlapping pairs of writes; writes of {BTC}: "
          + ", ".join(f"{w['ended'] - w['began']:.2f}s" for w in a)
          + f"; retries: {[w['retries'] for w in a]} and {[w['retries'] for w in b]}")  # fmt: skip
    assert len(overlaps) >= len(a)  # each write overlaps at least one of the other's
    assert sum(w["retries"] for w in a + b) == 0, err_a + err_b
    _assert_each_day_once(warehouse, (BTC,), 6)  # publishes
    assert _read(warehouse, "SELECT DISTINCT table_name FROM quarantine") == [(FX,)]


def test_writers_of_the_same_table_both_succeed_retrying_a_conflict(warehouse):
    """The second writer's commit conflicts while the first writes on; it writes again (up to
    3 times) and succeeds once the first is done. A few writes each: see the next test."""
    _write(warehouse, FIRST_DAYS)
    (a, err_a), (b, err_b) = _run_at_once(warehouse, (BTC, BTC), 3)
    retries = sum(w["retries"] for w in a + b)
    warnings = (err_a + err_b).count("the commit conflicted with another writer's")
    print(f"\nretries: {[w['retries'] for w in a]} and {[w['retries'] for w in b]}; "
          f"warnings on stderr: {warnings}")  # fmt: skip
    assert warnings == retries  # every conflict retried said so
    _assert_each_day_once(warehouse, (BTC,), 3)


def test_writers_of_the_same_table_writing_on_for_long_both_succeed(warehouse):
    _write(warehouse, FIRST_DAYS)
    _run_at_once(warehouse, (BTC, BTC), 10)
    _assert_each_day_once(warehouse, (BTC,), 10)


def test_a_writer_killed_mid_write_leaves_the_last_commit_and_the_next_write_completes(warehouse):
    _write(warehouse, SAMPLE_DAYS)
    expected = _read(warehouse, f"SELECT * FROM {BTC} ORDER BY date")
    # what the killed writers write: the window's days, as they are or each a dollar up
    window = {date(2024, 3, 21) + timedelta(days=d) for d in range(20)}
    revised = [(*r[:-1], round(r[-1] + 1, 2)) if r[0] in window else r for r in expected]
    snapshot = warehouse.latest_snapshot()
    # killed during its first write (imports take about 3s, its first write as long), then
    # at points in and between its later writes (each about 0.3s)
    for after_a_commit, delay in ((False, 4.5), (True, 0.1), (True, 0.25), (True, 0.4)):
        writer = _writer(warehouse, BTC, 1000, revise=True)
        if after_a_commit:
            assert writer.stdout.readline()  # a write committed
        time.sleep(delay)
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        writer.stdout.close()
        writer.stderr.close()
        with warehouse.latest() as con:  # the last committed snapshot reads whole
            rows = con.execute(f"SELECT * FROM {BTC} ORDER BY date").fetchall()
        assert rows in (expected, revised)  # one write whole, never a part of one
        assert _read(warehouse, f"SELECT * FROM {BTC} ORDER BY date") in (expected, revised)
    assert warehouse.latest_snapshot() > snapshot  # the killed writers did commit some writes
    # the re-run heals: the window's days as the source has them
    _write(warehouse, Window(min(window), max(window) + timedelta(days=1)), run_id="re-run")
    warehouse.publish("re-run")
    assert _read(warehouse, f"SELECT * FROM {BTC} ORDER BY date") == expected


PART_WRITER = textwrap.dedent(
    """
    import json, sys, time
    from contextlib import contextmanager
    from datetime import date, timedelta

    from pipelines.batch import Part, Window
    from pipelines.contracts import load_contracts
    from pipelines.lake import S3, Lake
    from pipelines.settings import ASSETS_DIR
    from pipelines.sources.sample import SampleConnector, SampleSettings
    from pipelines.sql_assets import parse_sql_asset
    from pipelines.warehouse import Rollup, Warehouse

    spec, site, start_at = json.loads(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    warehouse = Warehouse(spec["directory"], lake=Lake(spec["catalog"], spec["data_path"],
                                                       S3(**spec["s3"])))
    contracts = load_contracts()
    rollup_sql = parse_sql_asset(ASSETS_DIR / "rollups" / "miner_telemetry_daily.sql")
    rollup = Rollup(contracts["miner_telemetry_daily"], rollup_sql.query, "date", rollup_sql.path)

    def timed(name, method):  # when each stage of the write began and ended, on stdout
        @contextmanager
        def wrapped(*args, **kwargs):
            began = time.time()
            with method(*args, **kwargs) as value:
                print(json.dumps({"site": site, "what": name, "began": began}), flush=True)
                yield value
            print(json.dumps({"site": site, "what": name, "ended": time.time()}), flush=True)
        return wrapped

    stage = Warehouse._stage
    def staged(self, *args):
        began = time.time()
        try:
            return stage(self, *args)
        finally:
            print(json.dumps({"site": site, "what": "stage", "began": began,
                              "ended": time.time()}), flush=True)
    Warehouse._stage = staged
    Warehouse._table_lock = timed("lock", Warehouse._table_lock)

    window = Window(date(2024, 4, 1), date(2024, 4, 2))
    sample = SampleConnector(SampleSettings(telemetry_machines=20_000))
    query = sample.fetch_part("miner_telemetry", window, "ts", Part("site_id", site))
    time.sleep(max(0.0, start_at - time.time()))  # the writers start together
    report = warehouse.write(contracts["miner_telemetry"], query, origin="test", window=window,
                             partition_column="ts", rollup=rollup, run_id=site,
                             answered_only=True, part=Part("site_id", site))
    print(json.dumps({"site": site, "what": "report", "rows": report.rows_written,
                      "retries": report.retries}), flush=True)
    """
)


def test_writers_of_two_parts_of_a_table_stage_at_once_and_take_turns_to_commit(warehouse):
    """Two sites' telemetry of one day, written by two processes: each validates and rolls up
    its site (the long part) while the other does, then they commit one after the other (a
    table's writers take turns: DuckLake would refuse the second commit otherwise), and both
    parts are stored, each whole."""
    from pipelines.declarations import load_infrastructure
    from pipelines.settings import ASSETS_DIR

    tables = load_infrastructure(ASSETS_DIR).tables()
    contracts = load_contracts()
    for name in ("sites", "asic_fleet"):  # what the telemetry's rules read
        warehouse.write(contracts[name], tables[name], origin="test")
    lake = warehouse.lake
    spec = {"catalog": lake.catalog, "data_path": lake.data_path, "s3": vars(lake.s3),
            "directory": str(warehouse.directory)}  # fmt: skip
    sites = ["se-lulea", "us-tx-rockdale"]
    start_at = time.time() + 8
    writers = [
        subprocess.Popen([sys.executable, "-c", PART_WRITER, json.dumps(spec), site,
                          str(start_at)], cwd=PROJECT_DIR, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=dict(os.environ))
        for site in sites
    ]  # fmt: skip
    events = []
    for writer in writers:
        out, err = writer.communicate(timeout=600)
        assert writer.returncode == 0, err[-3000:]
        events += [json.loads(line) for line in out.splitlines()]

    def span(site, what):
        began = next(e["began"] for e in events if e["site"] == site and e["what"] == what)
        ended = next(e["ended"] for e in events
                     if e["site"] == site and e["what"] == what and "ended" in e)  # fmt: skip
        return began, ended

    (stage_a, stage_b), (lock_a, lock_b) = ([span(s, w) for s in sites] for w in ("stage", "lock"))
    print(
        f"\nstaged {stage_a[1] - stage_a[0]:.1f}s and {stage_b[1] - stage_b[0]:.1f}s; "
        f"committed {lock_a[1] - lock_a[0]:.1f}s and {lock_b[1] - lock_b[0]:.1f}s"
    )
    assert stage_a[0] < stage_b[1] and stage_b[0] < stage_a[1]  # staged at the same time
    assert lock_a[1] <= lock_b[0] or lock_b[1] <= lock_a[0]  # committed one after the other
    reports = [e for e in events if e["what"] == "report"]
    assert all(r["rows"] > 0 and r["retries"] == 0 for r in reports), reports
    warehouse.publish(None)
    stored = _read(warehouse, "SELECT site_id, count(*) FROM miner_telemetry_daily "
                              "GROUP BY ALL ORDER BY ALL")  # fmt: skip
    assert stored == sorted((r["site"], r["rows"]) for r in reports)


# -- upkeep ------------------------------------------------------------------------------------
def test_upkeep_merges_small_files_on_s3_and_keeps_the_published_snapshot(warehouse, s3_server):
    for offset in range(6):  # daily writes: a few small files each
        day = date(2024, 4, 1) + timedelta(days=offset)
        _write(warehouse, Window(day, day + timedelta(days=1)), ENERGY)
    sql = f"SELECT * FROM {ENERGY} ORDER BY ALL"
    before = _read(warehouse, sql)
    files_before = warehouse.data_files()[0]
    done = warehouse.upkeep(timedelta(0))
    print(f"\nupkeep: {done}")
    assert done["files_before"] == files_before > done["files_after"] >= 1
    assert done["snapshots_expired"] > 0 and done["files_deleted"] > 0
    assert len(s3_server.keys(_prefix(warehouse))) == done["files_after"]
    assert _read(warehouse, sql) == before


ATTACHING = 6  # processes attaching a new catalog at once


def test_processes_attaching_a_new_catalog_at_once_all_succeed(
    postgres: Postgres, s3_server: S3Server, monkeypatch, tmp_path
):
    """A cluster's first run starts steps in parallel on an empty catalog database: each
    attaches it and all create DuckLake's tables. Before, the later CREATEs failed their steps
    ("Failed to initialize DuckLake: ... duplicate key value violates unique constraint")."""
    monkeypatch.setenv(KEY_VARIABLE, S3_KEY_ID)
    monkeypatch.setenv(SECRET_VARIABLE, S3_SECRET)
    database = postgres.create_database()  # empty: no process has attached it yet
    catalog, data_path = (
        f"postgres:{postgres.dsn(database)}",
        f"s3://{s3_server.bucket}/{database}/",
    )
    child = textwrap.dedent(f"""
        from pipelines.lake import Lake, S3
        lake = Lake(catalog={catalog!r}, data_path={data_path!r}, s3=S3(
            endpoint={s3_server.endpoint!r}, use_ssl=False, key_id_variable={KEY_VARIABLE!r},
            secret_variable={SECRET_VARIABLE!r}))
        lake.connect(read_only=False).close()
    """)
    attaching = [
        subprocess.Popen(
            [sys.executable, "-c", child],
            cwd=PROJECT_DIR,
            env=dict(os.environ),
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for _ in range(ATTACHING)
    ]
    errors = [p.communicate(timeout=120)[1] for p in attaching]
    assert [p.returncode for p in attaching] == [0] * ATTACHING, errors
    # the lake they made is whole: written and read back
    s3 = S3(endpoint=s3_server.endpoint, use_ssl=False, key_id_variable=KEY_VARIABLE,
            secret_variable=SECRET_VARIABLE)  # fmt: skip
    warehouse = Warehouse(tmp_path / "wh", lake=Lake(catalog, data_path, s3))
    _write(warehouse, FIRST_DAYS)
    assert _read(warehouse) == [(len(FIRST_DAYS.days()),)]


# -- attach.sql --------------------------------------------------------------------------------
def _attach_in_another_process(script: str, table: str) -> subprocess.CompletedProcess:
    reader = f"import duckdb; con = duckdb.connect(); con.execute({script!r}); " + (
        f"print(con.execute('SELECT count(*) FROM {table}').fetchone()[0])"
    )
    return subprocess.run([sys.executable, "-c", reader], capture_output=True, text=True,
                          cwd=PROJECT_DIR, timeout=120)  # fmt: skip


def test_the_attach_script_reads_the_bucket_given_a_secret(warehouse, s3_server):
    """attach.sql loads the extensions and attaches the catalog; the bucket's credentials are
    not in it (nor anywhere in a file): a reader creates an S3 secret first."""
    _write(warehouse, SAMPLE_DAYS, ENERGY)  # enough rows to be a Parquet file, not inlined
    script = (warehouse.directory / "attach.sql").read_text()
    assert "READ_ONLY" in script and S3_SECRET not in script
    without = _attach_in_another_process(script, ENERGY)
    print(f"\nattach.sql without a secret: exit {without.returncode}: "
          f"{without.stderr.strip().splitlines()[-1:]}")  # fmt: skip
    assert without.returncode != 0
    secret = (
        f"CREATE SECRET (TYPE s3, KEY_ID '{S3_KEY_ID}', SECRET '{S3_SECRET}', "
        f"ENDPOINT '{s3_server.endpoint}', URL_STYLE 'path', USE_SSL false);\n"
    )
    loads, rest = script.split("SET TimeZone", 1)
    with_secret = _attach_in_another_process(f"{loads}{secret}SET TimeZone{rest}", ENERGY)
    assert with_secret.returncode == 0, with_secret.stderr[-2000:]
    assert with_secret.stdout.strip() == str(
        SampleConnector().fetch(ENERGY, SAMPLE_DAYS, "ts").height
    )
