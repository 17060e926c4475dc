"""Two `megawatt run` started together on one warehouse: the second waits for the first, so
each run's writes are contiguous and what each publishes is its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pipelines.settings import PROJECT_DIR
from pipelines.warehouse import Warehouse


def _start(*args: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", *args],
        env={**os.environ, **env}, cwd=PROJECT_DIR, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def test_two_runs_started_together_run_one_after_the_other(tmp_path: Path):
    env = {"MEGAWATT_WAREHOUSE_DIR": str(tmp_path / "wh"), "DAGSTER_HOME": str(tmp_path / "dh")}
    # one day each, reading back days before it: both write most tables, the same ones
    runs = [
        _start("run", "--start", day, "--end", day, env=env) for day in ("2024-04-10", "2024-04-11")
    ]
    for run in runs:
        out, err = run.communicate(timeout=600)
        assert run.returncode == 0, err[-3000:]

    warehouse = Warehouse(tmp_path / "wh")
    with warehouse.latest() as con:
        commits = con.execute(
            "SELECT commit_extra_info FROM lake.snapshots() "
            "WHERE commit_extra_info IS NOT NULL AND commit_message <> 'publish' "
            "ORDER BY snapshot_id"
        ).fetchall()
    order = [json.loads(info)["run_id"] for (info,) in commits]
    # the writes of runs (a publish record follows its run, maybe after the next run started)
    order = [r for r in order if r]
    changes = [r for i, r in enumerate(order) if i == 0 or r != order[i - 1]]
    assert len(set(order)) >= 2  # both runs wrote (and the read-back runs before them)
    assert len(changes) == len(set(order)), changes  # never interleaved: each run in one stretch
    with warehouse.reader() as con:  # and every run was published
        published = {r for (r,) in con.execute("SELECT run_id FROM published_runs").fetchall()}
    assert set(order) <= published
