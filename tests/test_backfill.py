"""A year of the sample, backfilled with the README's command as real processes: interrupted,
resumed, never duplicating a row, while another process reads the warehouse in a loop."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import date
from pathlib import Path

import yaml

from pipelines.settings import PROJECT_DIR

FIRST, LAST = date(2024, 1, 2), date(2024, 12, 31)  # the first day needs an FX rate: a weekday

READER = textwrap.dedent(
    """
    import json, sys, time
    from pipelines.warehouse import Warehouse

    warehouse, stop = Warehouse(sys.argv[1]), sys.argv[2]
    import os
    reads, errors, bad = 0, [], []
    while not os.path.exists(stop):
        try:
            con = warehouse.reader()
        except Exception as e:  # before the first run is published
            if "no published run yet" not in str(e):
                errors.append(repr(e))
            time.sleep(0.2)
            continue
        try:
            with con:
                names = con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
                tables = {t for (t,) in names}
                if "site_economics_daily" in tables:
                    # every day of the answer has every site in every scenario, once
                    bad += con.execute(
                        "SELECT date, count(*) FROM site_economics_daily GROUP BY date "
                        "HAVING count(*) <> 8").fetchall()
                if "btc_network_daily" in tables:
                    bad += con.execute(
                        "SELECT date, count(*) FROM btc_network_daily GROUP BY date "
                        "HAVING count(*) > 1").fetchall()
            reads += 1
        except Exception as e:
            errors.append(repr(e))
        time.sleep(0.1)
    print(json.dumps({"reads": reads, "errors": errors[:5], "bad": [str(b) for b in bad[:5]]}))
    """
)


def _generate_year(folder: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        "generate_sample", PROJECT_DIR / "scripts" / "generate_sample.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.generate(FIRST, LAST, folder)


def test_a_year_backfill_resumes_after_being_killed_and_readers_never_see_half(project, tmp_path):
    sample = tmp_path / "year"
    _generate_year(sample)
    settings_path = project.assets_dir / "settings.yaml"
    settings = yaml.safe_load(settings_path.read_text())
    settings["partitions"] = {"start_date": FIRST.isoformat(), "end_date": LAST.isoformat()}
    settings_path.write_text(yaml.safe_dump(settings))
    sources_path = project.assets_dir / "sources.yaml"
    sources_path.write_text(
        sources_path.read_text().replace("sample: {}", f"sample: {{data_dir: {sample}}}")
    )
    env = {
        **os.environ,
        "MEGAWATT_ASSETS_DIR": str(project.assets_dir),
        "MEGAWATT_CONTRACTS_DIR": str(project.contracts_dir),
        "MEGAWATT_WAREHOUSE_DIR": str(project.warehouse_dir),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
    }
    backfill = [
        sys.executable, "-m", "pipelines.cli", "backfill",
        "--start", FIRST.isoformat(), "--end", LAST.isoformat(), "--chunk-days", "61",
    ]  # fmt: skip
    stop = tmp_path / "stop-reader"
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(project.warehouse_dir), str(stop)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=PROJECT_DIR,
    )  # fmt: skip

    # interrupted: killed once the first chunk of days is in the warehouse
    first = subprocess.Popen(
        backfill, env=env, cwd=PROJECT_DIR, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 600
    while not _has_days(project, 61):
        assert first.poll() is None and time.monotonic() < deadline, first.stderr.read()
        time.sleep(1)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()

    # resumed: the same command finishes the year
    second = subprocess.run(backfill, env=env, cwd=PROJECT_DIR, capture_output=True, text=True,
                            timeout=1200)  # fmt: skip
    assert second.returncode == 0, second.stderr[-3000:]
    # the progress, a line per run of days (no terminal here): the skipped first, then the rest
    assert f"done, 61 of {(LAST - FIRST).days + 1} days, " in second.stderr
    assert f"to {LAST} done, {(LAST - FIRST).days + 1} of {(LAST - FIRST).days + 1} days, " in (
        second.stderr
    )

    stop.touch()
    out, err = reader.communicate(timeout=60)
    report = json.loads(out.strip().splitlines()[-1])
    assert report["errors"] == [] and report["bad"] == [], report
    assert report["reads"] > 10

    days = (LAST - FIRST).days + 1
    assert project.query("SELECT count(*), count(DISTINCT date) FROM btc_network_daily") == [
        (days, days)
    ]
    assert project.query(
        "SELECT count(*), count(DISTINCT (date, site_id, scenario)) FROM site_economics_daily"
    ) == [(days * 8, days * 8)]


def _has_days(project, n: int) -> bool:
    try:
        return project.query("SELECT count(*) FROM site_economics_daily")[0][0] >= n * 8
    except Exception:
        return False
