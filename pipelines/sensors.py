"""File-drop sensors: a new or changed export in a source's drop folder runs that source for the
days the file holds, once per file version (path, modification time, size). Derived tables
follow through their automation conditions."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import polars as pl

from pipelines.sources.file_drop import FileDropSettings, drop_files


def days_in(path: Path) -> set[str]:
    """The UTC days (YYYY-MM-DD) of a drop file's rows, from its `date` or `ts` column."""
    columns = pl.read_csv(path, n_rows=0).columns
    column = next((c for c in ("date", "ts") if c in columns), None)
    if column is None:
        return set()
    days = pl.scan_csv(path, infer_schema=False).select(pl.col(column).str.slice(0, 10)).unique()
    return set(days.collect()[column].drop_nulls().to_list())


def drop_sensor(
    table: str, settings: FileDropSettings, partitions: dg.DailyPartitionsDefinition
) -> dg.SensorDefinition:
    @dg.sensor(
        name=f"{table}_drop_sensor",
        asset_selection=[table],
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Runs {table} for the days of each new or changed file in {settings.folder}.",
    )
    def _sensor(context: dg.SensorEvaluationContext):
        seen = json.loads(context.cursor or "{}")
        versions, changed_days = {}, {}
        for path in drop_files(settings, table):
            stat = path.stat()
            versions[str(path)] = f"{stat.st_mtime_ns}:{stat.st_size}"
            if seen.get(str(path)) != versions[str(path)]:
                for day in days_in(path):
                    changed_days.setdefault(day, []).append(f"{path.name}@{versions[str(path)]}")
        context.update_cursor(json.dumps(versions))
        requests = [
            dg.RunRequest(partition_key=day, run_key=f"{table}:{day}:{'+'.join(sorted(files))}")
            for day, files in sorted(changed_days.items())
            if partitions.has_partition_key(day)
        ]
        return requests or dg.SkipReason(f"no new or changed files in {settings.folder}")

    return _sensor
