"""The README's commands, run as a user runs them: real processes, a real Dagster instance."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import dagster as dg
import pytest
import yaml

from pipelines.settings import PROJECT_DIR
from pipelines.warehouse import Warehouse

DESIGN_TABLES = [
    "sites", "asic_fleet", "gpu_fleet", "btc_network_daily", "mining_output_daily",
    "energy_prices_hourly", "fx_rates_daily", "gpu_market_prices_daily", "gpu_usage_daily",
    "hashprice_daily", "mining_profitability_daily", "curtailment_hourly", "ai_capacity_daily",
    "site_economics_daily",
]  # fmt: skip


def _megawatt(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        cwd=PROJECT_DIR,
    )


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory) -> tuple[dict, subprocess.CompletedProcess]:
    """`megawatt run` of the whole sample, once for the tests that read what it built:
    (the environment of its warehouse and instance, the finished process)."""
    tmp_path = tmp_path_factory.mktemp("sample_run")
    env = {"MEGAWATT_WAREHOUSE_DIR": str(tmp_path / "wh"), "DAGSTER_HOME": str(tmp_path / "dh")}
    return env, _megawatt("run", env=env)


def test_main_job_builds_the_warehouse_and_prints_the_answer(sample_run, monkeypatch):
    env, run = sample_run
    assert run.returncode == 0, run.stderr[-3000:]
    for site in ("se-lulea", "no-narvik", "us-tx-rockdale", "ca-baie-comeau"):
        assert site in run.stdout
    assert "Margin per MWh, mean of UTC days 2024-03-21 to 2024-05-20" in run.stdout
    assert "! " not in run.stdout and "warning:" not in run.stderr  # the sample is clean
    # the answer says what its words mean: gross and net, the conversion, each scenario
    header = run.stdout.splitlines()[2:4]
    assert header[0].split() == ["--------", "gross", "---------", "----------", "net",
                                 "----------", "-", "1", "MW", "to", "GPUs", "--"]  # fmt: skip
    assert header[1].split()[-2:] == ["capex", "payback"]
    assert "\nbear: BTC 30% lower, difficulty +4% a month," in run.stdout
    # a line per table as it finished: its days, rows, time and checks
    lines = {line.split()[0]: line for line in run.stderr.splitlines() if line.startswith("  ")}
    with Warehouse(Path(env["MEGAWATT_WAREHOUSE_DIR"])).reader() as con:
        answer_rows = con.execute("SELECT count(*) FROM site_economics_daily").fetchone()[0]
    assert lines["site_economics_daily"].split()[1:5] == ["61", "days", f"{answer_rows:,}", "rows"]
    assert lines["site_economics_daily"].endswith(" checks passed")
    assert lines["sites"].split()[1:3] == ["whole", "table"]
    assert lines["v_site_answer"].split()[1] == "view"
    assert set(DESIGN_TABLES) <= set(lines)

    # a backfill of days the run did says so, rather than silently doing nothing
    backfill = _megawatt("backfill", "--start", "2024-04-01", "--end", "2024-04-02", env=env)
    assert backfill.returncode == 0, backfill.stderr[-3000:]
    assert "2 of 2 day(s) were already materialised and were skipped" in backfill.stderr
    # without a terminal, a plain line per run of days instead of a bar
    assert "backfill: 2024-04-01 to 2024-04-02 done, 2 of 2 days, " in backfill.stderr

    counts = _megawatt(
        "sql",
        " UNION ALL ".join(f"SELECT '{t}' AS t, count(*) AS n FROM {t}" for t in DESIGN_TABLES),
        env=env,
    )
    assert counts.returncode == 0, counts.stderr
    for table in DESIGN_TABLES:
        line = next(r for r in counts.stdout.splitlines() if f" {table} " in r)
        assert int(line.split("│")[2].strip()) > 0, line

    # the run and every day's materialisation are in the instance's history, in DAGSTER_HOME
    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs()
        assert [r.job_name for r in runs] == ["daily"]
        assert runs[0].status == dg.DagsterRunStatus.SUCCESS
        days = instance.get_materialized_partitions(dg.AssetKey("site_economics_daily"))
        assert len(days) == 61 and min(days) == "2024-03-21" and max(days) == "2024-05-20"


def test_ctrl_c_cancels_the_run_with_one_line_and_no_alert(tmp_path: Path, monkeypatch):
    """Ctrl-C (SIGINT to the process group, as a terminal sends it) during a run: the run is
    CANCELED, not failed; one line says so, the exit code is 130, no alert is written; what it
    finished is published, and the same command finishes the rest."""
    import signal

    env = {**os.environ, "MEGAWATT_WAREHOUSE_DIR": str(tmp_path / "wh"),
           "DAGSTER_HOME": str(tmp_path / "dh")}  # fmt: skip
    args = ["run", "--start", "2024-03-21", "--end", "2024-03-24"]
    process = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", *args], cwd=PROJECT_DIR, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    for line in process.stderr:  # interrupt once a table has been written
        if line.startswith("  btc_network_daily "):
            os.killpg(process.pid, signal.SIGINT)
            break
    else:
        pytest.fail(f"no table line before the run ended: {process.communicate()}")
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130
    (said,) = [line for line in err.splitlines() if not line.startswith("  ")]
    assert said.startswith("megawatt: interrupted: run ") and "was canceled" in said, err
    assert "Traceback" not in err and "FAILED" not in err and "Margin" not in out
    assert not (tmp_path / "dh" / "alerts.log").exists()
    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])  # dagster.yaml's storage reads it
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        (run,) = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.CANCELED
        assert said.split()[3] == run.run_id[:8]
    with Warehouse(tmp_path / "wh").reader() as con:  # what it finished was published
        assert con.execute("SELECT count(*) FROM btc_network_daily").fetchone() == (4,)

    again = _megawatt(*args, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Margin per MWh" in again.stdout


def _in_a_terminal(args: list[str], env: dict, columns: int) -> str:
    """What `megawatt` writes to a pseudo-terminal that says it is `columns` wide."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", *args], cwd=PROJECT_DIR,
        env={k: v for k, v in {**os.environ, **env}.items() if k != "COLUMNS"},
        stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
    )  # fmt: skip
    os.close(slave)
    written = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the process closed the terminal: it has ended
            break
        if not chunk:
            break
        written += chunk
    process.wait(timeout=300)
    os.close(master)
    assert process.returncode == 0, written.decode()[-3000:]
    return written.decode().replace("\r\n", "\n")


def test_backfill_progress_is_a_bar_in_a_terminal_and_lines_in_one_without_width(sample_run):
    """A terminal of no width (as some CI runners and `docker exec` give) would show a bar as
    nothing at all: there, as without a terminal, a line per run of days."""
    env, _ = sample_run
    args = ["backfill", "--start", "2024-04-01", "--end", "2024-04-04", "--chunk-days", "2"]
    bar = _in_a_terminal(args, env, columns=90)
    assert "backfill: 100%|" in bar and "| 4.0/4 days [" in bar
    assert "backfill: 2024-04-01" not in bar
    lines = _in_a_terminal(args, env, columns=0)
    assert "backfill: 2024-04-01 to 2024-04-02 done, 2 of 4 days, " in lines
    assert "backfill: 2024-04-03 to 2024-04-04 done, 4 of 4 days, " in lines
    assert "%|" not in lines


def test_workspace_loads_for_dagster_dev():
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "dagster"),
            "definitions",
            "validate",
            "-w",
            "workspace.yaml",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=PROJECT_DIR,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Validation successful" in result.stdout + result.stderr


def test_a_range_outside_the_partitions_is_one_clear_line(tmp_path: Path):
    env = {"MEGAWATT_WAREHOUSE_DIR": str(tmp_path / "wh"), "DAGSTER_HOME": str(tmp_path / "dh")}
    run = _megawatt("run", "--start", "2024-06-01", "--end", "2024-06-02", env=env)
    assert run.returncode == 1
    assert run.stderr.strip() == (
        "megawatt: cannot run UTC days 2024-06-01 to 2024-06-02: the declared partitions are "
        "2024-03-21 to 2024-05-20 (assets/settings.yaml partitions)"
    )
    run = _megawatt("run", "--start", "2024-04-10", "--end", "2024-04-01", env=env)
    assert run.returncode == 1
    assert run.stderr.strip() == (
        "megawatt: cannot run UTC days 2024-04-10 to 2024-04-01: start is after end"
    )
    run = _megawatt("run", "--select", "btc_network_dayly", "quarantine", env=env)
    assert run.returncode == 1
    assert run.stderr.startswith(
        "megawatt: no table named btc_network_dayly, quarantine to run; the tables: "
        "ai_capacity_daily, asic_fleet, btc_network_daily, "
    )  # quarantine is written by the writes of the others, never run on its own
    run = _megawatt("run", "--select", "site_power_price_hourly", env=env)  # no sites yet
    assert run.returncode == 1
    assert run.stderr.splitlines()[0] == (
        "FAILED site_power_price_hourly: its query cannot run: Table with name sites does not "
        "exist! (build its inputs first: `megawatt run` builds every table)"
    )
    query = _megawatt("sql", "SELECT 1", env=env)
    assert query.returncode == 1
    assert "has no published run yet: run `megawatt run`" in query.stderr
    assert "Traceback" not in query.stderr


def _with_edited_sample(tmp_path: Path, table: str, edit) -> tuple[Path, dict]:
    """A copy of the sample whose file for `table` went through `edit` (lines -> lines), with
    declarations that read it: (the edited file, the environment of a run on it)."""
    data, assets = tmp_path / "data", tmp_path / "assets"
    shutil.copytree(PROJECT_DIR / "pipelines" / "sample_data", data)
    shutil.copytree(PROJECT_DIR / "assets", assets)
    edited = data / f"{table}.csv"
    edited.write_text("\n".join(edit(edited.read_text().splitlines())) + "\n")
    sources = yaml.safe_load((assets / "sources.yaml").read_text())
    sources["sources"][table]["connectors"] = {"sample": {"data_dir": str(data)}}
    (assets / "sources.yaml").write_text(yaml.safe_dump(sources))
    env = {"MEGAWATT_WAREHOUSE_DIR": str(tmp_path / "wh"), "DAGSTER_HOME": str(tmp_path / "dh"),
           "MEGAWATT_ASSETS_DIR": str(assets)}  # fmt: skip
    return edited, env


def test_a_quarantined_row_is_reported_and_the_answer_says_which_site_lacks_a_day(tmp_path: Path):
    """Text in a number column is quarantined, not fatal: the run goes on, but says so with the
    file, row, column, value and rule, and the answer names the site that lacks that day."""

    def text_in_a_number(lines: list[str]) -> list[str]:
        assert lines[6].startswith("2024-03-22,no-narvik,")  # file row 7
        lines[6] = lines[6].replace(",97.23,", ",abc,")
        return lines

    bad, env = _with_edited_sample(tmp_path, "mining_output_daily", text_in_a_number)

    run = _megawatt("run", "--start", "2024-03-21", "--end", "2024-03-22", env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (
        "warning: mining_output_daily: check 'types_match_contract' failed for 1 row(s), "
        f"1 quarantined (table quarantine); first at {bad} row 7 (date=2024-03-22, "
        "site_id=no-narvik), column 'uptime_pct', value 'abc' is not DOUBLE"
    ) in run.stderr
    assert "! no-narvik: 1 of 2 days" in run.stdout
    assert "! se-lulea" not in run.stdout


def test_a_range_on_an_empty_warehouse_first_runs_the_days_it_reads_back_to(tmp_path: Path):
    """2024-04-01 is Easter Monday: its FX rate is the Thursday's, which a run of April alone
    would not have loaded (the power price reads FX 7 days back)."""
    env = {"MEGAWATT_WAREHOUSE_DIR": str(tmp_path / "wh"), "DAGSTER_HOME": str(tmp_path / "dh")}
    run = _megawatt("run", "--start", "2024-04-01", "--end", "2024-04-01", env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (
        "fx_rates_daily: the days before 2024-04-01 that the range reads back to "
        "(2024-03-25 to 2024-03-31) were never materialised; running them first"
    ) in run.stderr
    with Warehouse(tmp_path / "wh").reader() as con:
        fx_days = con.execute("SELECT min(date), max(date) FROM fx_rates_daily").fetchone()
        answer = con.execute("SELECT DISTINCT date FROM site_economics_daily").fetchall()
    assert fx_days == (date(2024, 3, 25), date(2024, 3, 28))  # Good Friday to Monday: none
    assert answer == [(date(2024, 4, 1),)]  # the derived tables for the range only
    again = _megawatt("run", "--start", "2024-04-01", "--end", "2024-04-01", env=env)
    assert again.returncode == 0 and "running them first" not in again.stderr


def test_a_blocking_rule_fails_the_run_with_one_line_per_failed_step(tmp_path: Path):
    def a_day_twice(lines: list[str]) -> list[str]:
        return [*lines[:3], lines[2], *lines[3:]]  # the day of file row 3, again as row 4

    network, env = _with_edited_sample(tmp_path, "btc_network_daily", a_day_twice)

    run = _megawatt("run", "--start", "2024-03-21", "--end", "2024-03-23", env=env)
    assert run.returncode == 1
    failed = [line for line in run.stderr.splitlines() if line.startswith("FAILED ")]
    assert failed == [
        f"FAILED btc_network_daily: 2 blocking rule(s) of {PROJECT_DIR}/data_contracts/"
        "btc_network_daily.odcs.yaml failed, nothing was written:"
    ]
    assert (
        "- rule 'key_unique' (one row per (date)) failed for 1 row(s); first: (date=2024-03-22) "
        f"in {network} rows [3, 4]"
    ) in run.stderr
    assert "Margin per MWh" not in run.stdout  # no answer from a run that failed
    (alert,) = (tmp_path / "dh" / "alerts.log").read_text().splitlines()
    assert "RUN FAILED job=daily" in alert and "days=2024-03-21..2024-03-23" in alert
    assert "| btc_network_daily: 2 blocking rule(s) of " in alert


def _dg(*args: str, home: Path) -> subprocess.CompletedProcess:
    """`dg` of the project's environment, from the repo root, as a user runs it: DAGSTER_HOME
    holds the project's dagster.yaml (telemetry off), HOME is `home` (where dg would log it)."""
    dagster_home = home / "dagster_home"
    dagster_home.mkdir(exist_ok=True)
    shutil.copyfile(PROJECT_DIR / "dagster_home" / "dagster.yaml", dagster_home / "dagster.yaml")
    return subprocess.run(
        [str(Path(sys.executable).parent / "dg"), *args],
        env={
            **os.environ,
            "DAGSTER_HOME": str(dagster_home),
            "HOME": str(home),
            "VIRTUAL_ENV": sys.prefix,
            "COLUMNS": "200",
        },
        capture_output=True,
        text=True,
        timeout=300,
        cwd=PROJECT_DIR,
    )


def test_dg_checks_and_lists_the_definitions(tmp_path: Path):
    """The repo is a dg project: `dg check defs` loads it, `dg list defs` lists what it holds."""
    import json

    from pipelines.definitions import defs

    check = _dg("check", "defs", home=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "All definitions loaded successfully." in check.stdout + check.stderr
    assert "Traceback" not in check.stderr

    listed = _dg("list", "defs", "--json", home=tmp_path)
    assert listed.returncode == 0, listed.stderr
    found = json.loads(listed.stdout)
    assets = {a["asset_key"] for a in found["assets"]}
    tables = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert set(DESIGN_TABLES) <= tables  # every table, view and the quarantine
    assert assets == tables
    assert "daily" in {j["name"] for j in found["jobs"]}
    schedules = {s["name"] for s in found["schedules"]}
    assert schedules == {s.name for s in defs.schedules} >= {"daily_schedule"}
    sensors = {s["name"] for s in found["sensors"]}
    assert sensors >= {s.name for s in defs.sensors} >= {
        "publish_succeeded_run", "publish_failed_run", "publish_canceled_run",
        "alert_on_run_failure",
    }  # fmt: skip

    table = _dg("list", "defs", home=tmp_path)  # the table a person reads
    assert table.returncode == 0, table.stderr
    for name in ["daily", *sorted(tables), *sorted(schedules), *sorted(sensors)]:
        assert f"│ {name} " in table.stdout, name
    # telemetry is off: dg logged no event under HOME (it would be ~/.dagster/logs/event.log)
    assert not (tmp_path / ".dagster").exists()


def test_megawatt_ui_starts_dg_dev_and_stops_on_ctrl_c(tmp_path: Path):
    import signal
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "ui.log"
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dh"),
           "MEGAWATT_WAREHOUSE_DIR": str(tmp_path / "wh")}  # fmt: skip
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "pipelines.cli", "ui", "--port", str(port)],
            cwd=PROJECT_DIR, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline and process.poll() is None, log.read_text()
                time.sleep(0.5)
    finally:
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C
        process.wait(timeout=60)
    text = log.read_text()
    assert "Serving dagster-webserver" in text
    assert "SupersessionWarning" not in text and "Traceback" not in text, text[-3000:]
    assert (tmp_path / "dh" / "dagster.yaml").exists()  # the project's instance config


def _sql(*args: str, env: dict, columns: int = 100) -> subprocess.CompletedProcess:
    """`megawatt sql` on the sample's warehouse, in a terminal `columns` wide."""
    result = _megawatt("sql", *args, env={**env, "COLUMNS": str(columns)})
    assert result.returncode == 0, result.stderr
    return result


def test_sql_csv_writes_every_row_unless_max_rows(sample_run):
    import csv
    from datetime import datetime

    env, run = sample_run
    assert run.returncode == 0, run.stderr[-3000:]
    with Warehouse(env["MEGAWATT_WAREHOUSE_DIR"]).reader() as con:
        ((n,),) = con.execute("SELECT count(*) FROM curtailment_hourly").fetchall()
    assert n > 10_000  # far past the table view's 100

    every = _sql(
        "--csv", "SELECT * FROM curtailment_hourly ORDER BY ts, site_id, scenario", env=env
    )
    rows = list(csv.DictReader(every.stdout.splitlines()))
    assert len(rows) == n and every.stderr == ""
    assert list(rows[0]) == [
        "ts", "site_id", "scenario", "power_price_usd_per_mwh", "breakeven_usd_per_mwh",
        "run_miners", "energy_mwh", "flat_out_margin_usd", "margin_usd", "curtailment_saving_usd",
    ]  # fmt: skip
    assert datetime.fromisoformat(rows[0]["ts"]) == datetime.fromisoformat("2024-03-21T00:00Z")
    assert {r["run_miners"] for r in rows} == {"true", "false"}
    float(rows[-1]["margin_usd"])

    cut = _sql("--csv", "--max-rows", "5", "SELECT * FROM curtailment_hourly", env=env)
    assert len(cut.stdout.splitlines()) == 1 + 5
    assert cut.stderr.strip() == f"megawatt: {n - 5} more row(s) not written (--max-rows 5)"


def test_sql_json_is_one_array_of_objects_with_iso_dates(sample_run):
    import json

    env, run = sample_run
    assert run.returncode == 0, run.stderr[-3000:]
    query = (
        "SELECT date, scenario, hashprice_usd_per_ph_day, subsidy_btc > 5 AS before_halving, "
        "NULL::DOUBLE AS nothing FROM hashprice_daily ORDER BY date, scenario"
    )
    rows = json.loads(_sql("--json", query, env=env).stdout)
    with Warehouse(env["MEGAWATT_WAREHOUSE_DIR"]).reader() as con:
        stored = con.execute(query).fetchall()
    assert len(rows) == len(stored) == 61 * 2  # every row, though more than the table's 100
    assert rows[0] == {
        "date": "2024-03-21",
        "scenario": "base",
        "hashprice_usd_per_ph_day": stored[0][2],  # the same double, exactly
        "before_halving": True,
        "nothing": None,
    }
    assert [(date.fromisoformat(r["date"]), r["scenario"]) for r in rows] == [s[:2] for s in stored]
    ts = json.loads(_sql("--json", "SELECT min(ts) AS ts FROM curtailment_hourly", env=env).stdout)
    assert ts == [{"ts": "2024-03-21T00:00:00+00:00"}]
    assert len(json.loads(_sql("--json", "--max-rows", "3", query, env=env).stdout)) == 3
    assert json.loads(_sql("--json", "SELECT 1 AS one WHERE false", env=env).stdout) == []


def test_sql_table_shows_100_rows_by_default_and_says_how_many_were_cut(sample_run):
    env, run = sample_run
    assert run.returncode == 0, run.stderr[-3000:]
    query = "SELECT date, scenario, hashprice_usd_per_ph_day FROM hashprice_daily ORDER BY ALL"
    table = _sql(query, env=env).stdout.splitlines()
    assert table[1].split("│")[1:4] == [" date       ", " scenario ", " hashprice_usd_per_ph_day "]
    assert table[2].split("│")[1:4] == [" DATE       ", " VARCHAR  ", " DOUBLE                   "]
    body = [line for line in table if line.startswith("│ 2024-")]
    assert len(body) == 100 and body[0].startswith("│ 2024-03-21 │ base     │")
    assert table[-1] == (
        "122 row(s), 3 column(s); the first 100 shown, 22 cut "
        "(--max-rows N shows more; --csv and --json write every row)"
    )
    more = _sql("--max-rows", "120", query, env=env).stdout.splitlines()
    assert len([line for line in more if line.startswith("│ 2024-")]) == 120
    assert more[-1].startswith("122 row(s), 3 column(s); the first 120 shown, 2 cut ")
    every = _sql("--max-rows", "1000", query, env=env).stdout.splitlines()
    assert every[-1] == "122 row(s), 3 column(s)"


def test_sql_wider_than_the_terminal_shows_each_column_on_its_own_line(sample_run):
    env, run = sample_run
    assert run.returncode == 0, run.stderr[-3000:]
    query = "SELECT * FROM site_economics_daily ORDER BY date, site_id, scenario LIMIT 2"
    with Warehouse(env["MEGAWATT_WAREHOUSE_DIR"]).reader() as con:
        stored = con.execute(query)
        names = [d[0] for d in stored.description]
        values = stored.fetchall()
    assert len(names) > 15

    lines = _sql(query, env=env, columns=120).stdout.splitlines()
    assert lines[-1] == f"2 row(s), {len(names)} column(s)"
    records = "\n".join(lines[:-1]).split("\n\n")  # a blank line between rows
    assert len(records) == 2
    for record, row in zip(records, values, strict=True):
        pairs = [line.split(" = ", 1) for line in record.splitlines()]
        assert [name.strip() for name, _ in pairs] == names  # every column, in order
        assert len({len(name) for name, _ in pairs}) == 1  # the names right-aligned
        assert all(len(line) <= 120 for line in record.splitlines())
        shown = dict((name.strip(), value) for name, value in pairs)
        assert shown["date"] == row[names.index("date")].isoformat()
        assert shown["site_id"] == row[names.index("site_id")]
        margin = names.index("mining_margin_usd_per_mwh")
        assert float(shown["mining_margin_usd_per_mwh"]) == row[margin]

    wide = _sql(query, env=env, columns=2000).stdout.splitlines()  # a terminal wide enough
    assert all(f" {name} " in wide[1] for name in names)  # one table: every column
    assert len(wide[3]) == len(wide[1]) and len(wide[1]) <= 2000


def test_sql_from_a_file_as_of_a_run_and_its_errors(sample_run, tmp_path: Path, monkeypatch):
    env, run = sample_run
    assert run.returncode == 0, run.stderr[-3000:]
    script = tmp_path / "sites.sql"
    script.write_text("-- the sites\nSELECT site_id\nFROM sites\nORDER BY site_id;\n")
    from_file = _sql("-f", str(script), "--csv", env=env)
    assert from_file.stdout.splitlines() == [
        "site_id", "ca-baie-comeau", "no-narvik", "se-lulea", "us-tx-rockdale"
    ]  # fmt: skip

    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])
    with dg.DagsterInstance.get() as instance:
        (only,) = instance.get_runs()
    as_of = _sql("--as-of", only.run_id[:8], "-f", str(script), "--json", env=env)
    assert '"site_id": "se-lulea"' in as_of.stdout

    for args, message in [
        (["SELECT 1", "-f", str(script)], "give the SQL as an argument or in a file"),
        ([], "give the SQL as an argument or in a file"),
        (["--csv", "--json", "SELECT 1"], "not allowed with argument"),
        (["--max-rows", "-1", "SELECT 1"], "not a number of rows: '-1'"),
    ]:
        wrong = _megawatt("sql", *args, env=env)
        assert wrong.returncode == 2 and message in wrong.stderr, wrong.stderr
    missing = _megawatt("sql", "-f", str(tmp_path / "nowhere.sql"), env=env)
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        f"megawatt: cannot read the SQL in {tmp_path / 'nowhere.sql'}: No such file or directory"
    )
    bad = _megawatt("sql", "SELECT * FROM no_such_table", env=env)
    assert bad.returncode == 1 and bad.stderr.startswith("megawatt: Catalog Error: ")
    assert "Traceback" not in bad.stderr
