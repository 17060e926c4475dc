"""The instance's event log (pipelines/dagster_storage.py): Dagster reads back what it stored, and
the UI's way of following a run (a watcher on the run's database file) sees each new event."""

import shutil
import threading
import time
from pathlib import Path

import dagster as dg
import pytest

from pipelines.settings import PROJECT_DIR

DAYS = dg.DailyPartitionsDefinition(start_date="2024-04-01", end_date="2024-04-04")


@dg.asset(partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run())
def daily_thing(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"days": len(context.partition_keys)})


@dg.asset_check(asset=daily_thing)
def thing_is_fine() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


@pytest.fixture
def home(tmp_path: Path, monkeypatch) -> Path:
    """A DAGSTER_HOME with the project's dagster.yaml."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(PROJECT_DIR / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


def _run_three_days(instance) -> str:
    result = dg.materialize(
        [daily_thing, thing_is_fine],
        instance=instance,
        tags={"dagster/asset_partition_range_start": "2024-04-01",
              "dagster/asset_partition_range_end": "2024-04-03"},
    )  # fmt: skip
    assert result.success
    return result.run_id


def test_the_project_instance_records_runs_partitions_and_checks(home: Path):
    with dg.DagsterInstance.get() as instance:
        assert type(instance.event_log_storage).__name__ == "KeptOpenSqliteEventLogStorage"
        run_id = _run_three_days(instance)

    with dg.DagsterInstance.get() as instance:  # a new instance reads the history from the files
        assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.SUCCESS
        assert instance.get_materialized_partitions(dg.AssetKey("daily_thing")) == {
            "2024-04-01", "2024-04-02", "2024-04-03"
        }  # fmt: skip
        check = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(dg.AssetKey("daily_thing"), "thing_is_fine")]
        )
        assert len(check) == 1


def test_a_watcher_of_the_run_sees_each_event_while_the_writer_keeps_its_log_open(home: Path):
    """As the UI follows a run another process writes: each event stored reaches the watcher
    on its own, not only when the run ends or the writer closes its connections."""
    with dg.DagsterInstance.get() as writer, dg.DagsterInstance.get() as ui:
        run_id = _run_three_days(writer)
        run = writer.get_run_by_id(run_id)
        seen = threading.Event()

        def on_event(entry, _cursor) -> None:
            if entry.message == "a step is still working":
                seen.set()

        ui.event_log_storage.watch(run_id, None, on_event)
        try:
            time.sleep(0.5)  # the watcher is started
            writer.report_engine_event("a step is still working", run)
            assert seen.wait(timeout=10), "the watcher never saw the event"
        finally:
            ui.event_log_storage.end_watch(run_id, on_event)
