"""The warehouse's own jobs: publishing each run's last snapshot, and weekly upkeep of the lake.

`megawatt` publishes the runs it starts itself; these sensors publish the runs that the UI, the
schedule and the daemon start. Publishing twice is harmless.
"""

from datetime import timedelta

import dagster as dg

from pipelines.assets import WarehouseResource

UPKEEP_JOB = "lake_upkeep"


def _publish(context: dg.RunStatusSensorContext, warehouse: WarehouseResource):
    published = warehouse.get().publish(context.dagster_run.run_id)
    if published is not None:
        context.log.info(f"published snapshot {published.snapshot} of run {published.run_id}")


# A run that ends, well or not (failed, or canceled from the UI), is what readers see next: its
# failed tables kept their rows.
publish_sensors = [
    dg.run_status_sensor(
        run_status=status,
        name=f"publish_{ended}_run",
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Records the last snapshot of each {ended} run as the one readers read.",
    )(_publish)
    for status, ended in [(dg.DagsterRunStatus.SUCCESS, "succeeded"),
                          (dg.DagsterRunStatus.FAILURE, "failed"),
                          (dg.DagsterRunStatus.CANCELED, "canceled")]
]  # fmt: skip


def upkeep_job(retention_days: int) -> dg.JobDefinition:
    @dg.op(name="upkeep")
    def _upkeep(context: dg.OpExecutionContext, warehouse: WarehouseResource):
        """Merge small files, expire old snapshots, delete files no snapshot needs."""
        done = warehouse.get().upkeep(timedelta(days=retention_days))
        context.log.info(
            f"upkeep: {done['files_before']} data files ({done['bytes_before']:,} bytes) -> "
            f"{done['files_after']} ({done['bytes_after']:,} bytes); "
            f"{done['snapshots_expired']} snapshot(s) expired, {done['files_deleted']} file(s) "
            "deleted"
        )
        return dg.Output(done, metadata=done)

    @dg.job(
        name=UPKEEP_JOB,
        description=f"Weekly upkeep of the lake: merge small files, expire snapshots older "
        f"than {retention_days} days (never the published one), delete unreferenced files.",
    )
    def _job():
        _upkeep()

    return _job


def upkeep_schedule(job: dg.JobDefinition, cron: str) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name=f"{UPKEEP_JOB}_schedule",
        job=job,
        cron_schedule=cron,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
