"""The cluster profile end to end: `megawatt run` of the whole sample with MEGAWATT_PROFILE=cluster,
against real services started by the tests (tests/services.py): PostgreSQL holds the lake's
catalog and Dagster's instance (dagster-postgres, deploy/cluster/dagster.yaml), moto's S3 server
the lake's data; each step runs in a process of its own, two at once. Its warehouse must equal the
local profile's, table by table. Nothing in the code changes between the two: only the
environment."""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from pipelines.declarations import load_settings
from pipelines.settings import ASSETS_DIR, PROJECT_DIR
from pipelines.warehouse import warehouse_for
from tests.services import (
    S3_KEY_ID,
    S3_SECRET,
    Postgres,
    S3Server,
    free_port,
    postgres,
    s3_server,
)
from tests.webserver import JOB_RUNS, MEGAWATT_RUNS, graphql, wait_for, webserver

__all__ = ["postgres", "s3_server"]  # the session's services, as fixtures of this module


def _megawatt(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=1200, cwd=PROJECT_DIR,
    )  # fmt: skip


def cluster_environment(postgres: Postgres, s3_server: S3Server, root) -> dict[str, str]:
    """What deploy/cluster.env lists, pointed at the tests' servers: a new database for the
    lake's catalog and one for Dagster's instance."""
    lake_db, dagster_db = postgres.create_database("lake"), postgres.create_database("dagster")
    return {
        "MEGAWATT_PROFILE": "cluster",
        "MEGAWATT_LAKE_DB": lake_db,
        "PGHOST": "127.0.0.1", "PGPORT": str(postgres.port), "PGUSER": "postgres",
        "MEGAWATT_S3_BUCKET": s3_server.bucket,
        "MEGAWATT_S3_ENDPOINT": f"http://{s3_server.endpoint}",
        "MEGAWATT_S3_KEY_ID": S3_KEY_ID, "MEGAWATT_S3_SECRET": S3_SECRET,
        "DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": str(postgres.port),
        "DAGSTER_PG_USER": "postgres", "DAGSTER_PG_PASSWORD": "unused-under-trust",
        "DAGSTER_PG_DB": dagster_db,
        "DAGSTER_HOME": str(root / "dagster_home"),
        "MEGAWATT_WAREHOUSE_DIR": str(root / "warehouse"),
    }  # fmt: skip


@pytest.fixture(scope="module")
def sample_in_both(postgres: Postgres, s3_server: S3Server, tmp_path_factory):
    """The whole sample run by `megawatt run` in each profile: {profile: (environment, process)}."""
    root = tmp_path_factory.mktemp("profiles")
    cluster = cluster_environment(postgres, s3_server, root / "cluster")
    local = {
        "MEGAWATT_PROFILE": "local",
        "DAGSTER_HOME": str(root / "local" / "dagster_home"),
        "MEGAWATT_WAREHOUSE_DIR": str(root / "local" / "warehouse"),
    }
    return {name: (env, _megawatt("run", env=env)) for name, env in
            (("cluster", cluster), ("local", local))}  # fmt: skip


@contextmanager
def _published(profile: str, env: dict, assets_dir: Path = ASSETS_DIR):
    """A reader of what the profile's warehouse published, in environment `env`."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        settings = load_settings(assets_dir, profile)
        with warehouse_for(settings, env["MEGAWATT_WAREHOUSE_DIR"]).reader() as con:
            yield con


def _tables(profile: str, env: dict) -> dict[str, list[tuple]]:
    """Every table and view the profile's warehouse published, its rows in order."""
    with _published(profile, env) as con:
        names = [n for (n,) in con.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_catalog = current_database() AND table_schema = 'main' ORDER BY 1"
        ).fetchall()]  # fmt: skip
        return {n: con.execute(f'SELECT * FROM "{n}" ORDER BY ALL').fetchall() for n in names}


def _close(a, b) -> bool:
    """Equal, floats to 1e-9 relative: the sums of a parallel aggregation may differ in the last
    bits from one run to the next, whatever the profile."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(a) and math.isnan(b))
    return a == b


def test_the_sample_in_the_cluster_profile_equals_the_local_profile(sample_in_both):
    for name, (_, run) in sample_in_both.items():
        assert run.returncode == 0, f"{name}: {run.stderr[-3000:]}"
    cluster = _tables("cluster", sample_in_both["cluster"][0])
    local = _tables("local", sample_in_both["local"][0])
    assert sorted(cluster) == sorted(local)
    assert "site_economics_daily" in cluster and "miner_telemetry_daily" in cluster
    for table, rows in local.items():
        assert len(cluster[table]) == len(rows), table
        for got, want in zip(cluster[table], rows, strict=True):
            assert all(map(_close, got, want)), (table, got, want)
    # the answer is printed the same (but for where each profile's attach script lies)
    answers = {
        name: run.stdout.replace(env["MEGAWATT_WAREHOUSE_DIR"], "<warehouse>")
        for name, (env, run) in sample_in_both.items()
    }
    assert answers["cluster"] == answers["local"]


def test_the_cluster_run_is_in_postgres_with_its_steps_in_processes_two_at_once(
    sample_in_both, postgres: Postgres
):
    env, run = sample_in_both["cluster"]
    database = env["DAGSTER_PG_DB"]
    runs = postgres.psql("SELECT status, count(*) FROM runs GROUP BY 1", database).split()
    assert runs and all(r.startswith("SUCCESS|") for r in runs), runs
    # no SQLite instance was made: the history is the server's
    assert not (PROJECT_DIR / env["DAGSTER_HOME"] / "history").exists()
    rows = postgres.psql(
        "SELECT step_key, dagster_event_type, timestamp FROM event_logs WHERE dagster_event_type "
        "IN ('STEP_WORKER_STARTED', 'STEP_START', 'STEP_SUCCESS') ORDER BY id",
        database,
    ).split("\n")
    events = [r.split("|") for r in rows if r]
    workers = {step for step, kind, _ in events if kind == "STEP_WORKER_STARTED"}
    started = {step for step, kind, _ in events if kind == "STEP_START"}
    assert started and workers == started  # every step in a process of its own
    spans = {}
    for step, kind, at in events:
        if kind != "STEP_WORKER_STARTED":
            spans.setdefault(step, []).append(datetime.fromisoformat(at))
    # writers of different tables at once: some step starts before another has ended
    overlapping = {
        (a, b)
        for a, (a_start, a_end) in spans.items()
        for b, (b_start, _) in spans.items()
        if a != b and a_start <= b_start < a_end
    }
    assert overlapping, spans
    # the telemetry's sites: a step each, two of them at once
    parts = {s for s in spans if s.startswith("miner_telemetry_daily.") and "report" not in s}
    assert len(parts) == 4, sorted(spans)
    assert {(a, b) for a in parts for b in parts} & overlapping, spans
    assert max(sum(s <= t < e for s, e in spans.values())
               for t, _ in spans.values()) == 2  # fmt: skip  # the profile's max_concurrent
    # it printed a line per table as its step ended, read from the server's event log
    assert "  site_economics_daily" in run.stderr and "checks passed" in run.stderr
    assert "DEBUG" not in run.stderr  # no line of Dagster's own console logger


def test_the_ui_shows_the_cluster_runs_from_postgres(sample_in_both, postgres: Postgres):
    """The webserver on the cluster profile's instance (dagster-postgres) lists the run
    `megawatt run` made as the code location's, in the job's Runs tab, as a UI-launched one."""
    env, _ = sample_in_both["cluster"]
    stored = set(postgres.psql("SELECT run_id FROM runs", env["DAGSTER_PG_DB"]).split())
    with webserver({**os.environ, **env}) as url:
        runs = graphql(url, JOB_RUNS, {"filter": MEGAWATT_RUNS})["runsOrError"]["results"]
    assert {r["runId"] for r in runs} == stored
    assert {(r["status"], r["repositoryOrigin"]["repositoryLocationName"]) for r in runs} == {
        ("SUCCESS", "megawatt")
    }


LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchPipelineExecution(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on PythonError { message }
  }
}"""
RUN_STATUS = "query Status($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"


def test_a_run_launched_in_dg_dev_is_queued_and_run_by_its_daemon(sample_in_both):
    """`megawatt ui` (dg dev: webserver, daemon, code server) on the cluster profile: a run
    launched from the UI is queued (QueuedRunCoordinator), started by the daemon in a process of
    its own, and its steps in their workers, as `megawatt run`'s."""
    env, _ = sample_in_both["cluster"]
    port = free_port()
    ui = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "ui", "--port", str(port)],
        env={**os.environ, **env}, cwd=PROJECT_DIR, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(url, ui, timeout_s=180)
        params = {
            "selector": {"repositoryLocationName": "megawatt",
                         "repositoryName": "__repository__", "pipelineName": "daily"},
            "executionMetadata": {"tags": [{"key": "dagster/partition", "value": "2024-04-02"}]},
        }  # fmt: skip
        deadline = time.monotonic() + 120
        while True:  # the code server may still be loading the location
            launched = graphql(url, LAUNCH, {"params": params})["launchPipelineExecution"]
            if launched["__typename"] == "LaunchRunSuccess" or time.monotonic() > deadline:
                break
            time.sleep(2)
        assert launched["__typename"] == "LaunchRunSuccess", launched
        assert launched["run"]["status"] == "QUEUED"
        run_id, deadline = launched["run"]["runId"], time.monotonic() + 600
        while (status := graphql(url, RUN_STATUS, {"id": run_id})["runOrError"]["status"]) not in (
            "SUCCESS",
            "FAILURE",
            "CANCELED",
        ) and time.monotonic() < deadline:
            time.sleep(2)
        assert status == "SUCCESS"
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(timeout=60)


def test_two_runs_at_once_and_a_worker_killed_mid_write(postgres, s3_server, tmp_path):
    """Two runs of the telemetry at once, two days of 40,000 machines; one site's worker of one
    of them is killed (SIGKILL) as it writes its part: that run fails and names the step, the
    other succeeds, no snapshot of the killed part appears, and a re-run of the day heals it."""
    env = cluster_environment(postgres, s3_server, tmp_path)
    assets = tmp_path / "assets"
    shutil.copytree(ASSETS_DIR, assets)
    sources = yaml.safe_load((assets / "sources.yaml").read_text())
    sources["sources"]["miner_telemetry"]["connectors"] = {"sample": {"telemetry_machines": 40000}}
    (assets / "sources.yaml").write_text(yaml.safe_dump(sources, sort_keys=False))
    env["MEGAWATT_ASSETS_DIR"] = str(assets)
    days = ["2024-04-01", "2024-04-02"]

    def run(day: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "pipelines.cli", "run", "--start", day, "--end", day,
             "--select", "sites", "asic_fleet", "miner_telemetry_daily"],
            env={**os.environ, **env}, cwd=PROJECT_DIR, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip

    runs = {day: run(day) for day in days}
    step = "miner_telemetry_daily.se_lulea"
    deadline = time.monotonic() + 300
    query = (
        "SELECT run_id, event::json->'dagster_event'->>'pid' FROM event_logs WHERE step_key = "
        f"'{step}' AND dagster_event_type = 'STEP_START' ORDER BY id LIMIT 1"
    )
    started = ""
    while not started:
        assert time.monotonic() < deadline and all(r.poll() is None for r in runs.values())
        time.sleep(0.2)
        with suppress(subprocess.CalledProcessError):  # no event_logs table before the first
            started = postgres.psql(query, env["DAGSTER_PG_DB"]).strip()
    killed_run, pid = started.split("|")
    # into its write (generating, validating and rolling up the site's machines): once its
    # step has used a second of CPU
    at_start = _cpu_seconds(int(pid))
    while _cpu_seconds(int(pid)) < at_start + 1:
        time.sleep(0.05)
    os.kill(int(pid), signal.SIGKILL)
    ended = {day: (r.wait(timeout=900), r.stderr.read()) for day, r in runs.items()}
    statuses = dict(
        line.split("|")
        for line in postgres.psql("SELECT run_id, status FROM runs", env["DAGSTER_PG_DB"]).split()
    )
    assert sorted(statuses.values()) == ["FAILURE", "SUCCESS"], (statuses, ended)
    assert statuses[killed_run] == "FAILURE"
    failed_day = next(d for d, (code, _) in ended.items() if code)
    assert step in ended[failed_day][1]  # the run names the step whose worker died
    print(next(line for line in ended[failed_day][1].splitlines() if step in line))
    snapshots = postgres.psql(
        "SELECT commit_message, commit_extra_info FROM ducklake_snapshot_changes",
        env["MEGAWATT_LAKE_DB"],
    )
    of_killed = [s for s in snapshots.splitlines() if killed_run in s]
    assert of_killed and not any("site_id=se-lulea" in s for s in of_killed), of_killed
    # the re-run heals the day: every site of both days
    rerun = _megawatt("run", "--start", failed_day, "--end", failed_day, "--select", "sites",
                      "asic_fleet", "miner_telemetry_daily", env=env)  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    with _published("cluster", env, assets) as con:
        stored = con.execute(
            "SELECT CAST(date AS VARCHAR), count(DISTINCT site_id), count(*) "
            "FROM miner_telemetry_daily GROUP BY 1 ORDER BY 1"
        ).fetchall()
    assert [(d, sites) for d, sites, _ in stored] == [(d, 4) for d in days]
    assert stored[0][2] == stored[1][2] == 40000


def _cpu_seconds(pid: int) -> float:
    """User and system CPU seconds process `pid` has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
