"""The instance's event log (pipelines/dagster_storage.py): Dagster reads back what it stored, and
the UI, which follows a run by watching its database file, finds the run's events in that file."""

import shutil
import sqlite3
from pathlib import Path

import dagster as dg

from pipelines.settings import PROJECT_DIR

DAYS = dg.DailyPartitionsDefinition(start_date="2024-04-01", end_date="2024-04-04")


@dg.asset(partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run())
def daily_thing(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"days": len(context.partition_keys)})


@dg.asset_check(asset=daily_thing)
def thing_is_fine() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


def test_the_project_instance_records_runs_partitions_and_checks(tmp_path: Path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(PROJECT_DIR / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        assert type(instance.event_log_storage).__name__ == "KeptOpenSqliteEventLogStorage"
        result = dg.materialize(
            [daily_thing, thing_is_fine],
            instance=instance,
            tags={"dagster/asset_partition_range_start": "2024-04-01",
                  "dagster/asset_partition_range_end": "2024-04-03"},
        )  # fmt: skip
        assert result.success
        run_id = result.run_id
        # while this process keeps the log open, the run's end is in its database file itself
        # (what the UI watches), not only in the WAL beside it
        alone = tmp_path / "run_alone.db"
        shutil.copyfile(home / "history" / "runs" / f"{run_id}.db", alone)
        events = sqlite3.connect(alone).execute("SELECT dagster_event_type FROM event_logs")
        assert ("PIPELINE_SUCCESS",) in events.fetchall()

    # a new process's view: the history read back from the files
    with dg.DagsterInstance.get() as instance:
        assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.SUCCESS
        assert instance.get_materialized_partitions(dg.AssetKey("daily_thing")) == {
            "2024-04-01", "2024-04-02", "2024-04-03"
        }  # fmt: skip
        check = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(dg.AssetKey("daily_thing"), "thing_is_fine")]
        )
        assert len(check) == 1
