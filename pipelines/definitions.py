"""The code location: everything here is built from assets/ and data_contracts/."""

from __future__ import annotations

import os
import warnings
from datetime import UTC, timedelta
from pathlib import Path

import dagster as dg

from pipelines.alerts import ALERT_LOG, WEBHOOK_VARIABLE, AlertResource, alert_on_run_failure
from pipelines.assets import (
    DAILY_FOR_TAG,
    WarehouseResource,
    quarantine_asset,
    reference_assets,
    source_asset,
    sql_asset,
    view_asset,
)
from pipelines.batch import Part
from pipelines.contracts import load_contracts
from pipelines.declarations import Profile, load_infrastructure, load_settings, load_sources
from pipelines.errors import DeclarationError
from pipelines.rule_plan import bind_rules
from pipelines.sensors import drop_sensor
from pipelines.settings import ASSETS_DIR, CONTRACTS_DIR, WAREHOUSE_DIR
from pipelines.sources.file_drop import FileDropSettings
from pipelines.sql_assets import (
    SqlAssetSpec,
    check_reads,
    flatten,
    load_sql_assets,
    load_views,
    parse_sql_asset,
)
from pipelines.upkeep import publish_sensors, upkeep_job, upkeep_schedule
from pipelines.warehouse import QUARANTINE_TABLE, Rollup

DAILY_JOB = "daily"

# Single-run backfills (one run for a range of days) are what make backfills fast here.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)


def daily_schedule(
    job,
    days: dg.DailyPartitionsDefinition,
    cron: str,
    timezone: str,
    restatement_days: int = 0,
) -> dg.ScheduleDefinition:
    """Run `job` for yesterday's UTC day D, at `cron` in `timezone` (settings.yaml): one run
    (a single-run backfill, as `megawatt run --start --end` makes) over [D - restatement_days, D]
    (the longest restatement window of the sources, from the first declared day), tagged as the
    daily run for D, so that each source re-reads only its own window and the derived tables
    rebuild the days that changed."""
    from dagster._core.storage.tags import (
        ASSET_PARTITION_RANGE_END_TAG,
        ASSET_PARTITION_RANGE_START_TAG,
    )

    @dg.schedule(
        name=f"{DAILY_JOB}_schedule", job=job, cron_schedule=cron, execution_timezone=timezone
    )
    def _schedule(context: dg.ScheduleEvaluationContext):
        now_utc = context.scheduled_execution_time.astimezone(UTC)
        yesterday = (now_utc - timedelta(days=1)).date()
        if not days.has_partition_key(yesterday.isoformat()):
            return dg.SkipReason(
                f"{yesterday} is not a declared partition (assets/settings.yaml partitions)"
            )
        first = max(yesterday - timedelta(days=restatement_days), days.start.date())
        return dg.RunRequest(
            run_key=yesterday.isoformat(),
            tags={
                ASSET_PARTITION_RANGE_START_TAG: first.isoformat(),
                ASSET_PARTITION_RANGE_END_TAG: yesterday.isoformat(),
                DAILY_FOR_TAG: yesterday.isoformat(),
            },
        )

    return _schedule


def observe_schedule(table: str, cron: str, days: dg.DailyPartitionsDefinition):
    """A job observing `table` (a source read as it is now) into today's UTC partition, and its
    schedule at `cron` (UTC): stopped by default, as the daily schedule is."""
    job = dg.define_asset_job(
        f"observe_{table}",
        selection=[table],
        description=f"An observation of {table}, appended to today's UTC partition.",
    )

    @dg.schedule(name=f"observe_{table}_schedule", job=job, cron_schedule=cron)
    def _schedule(context: dg.ScheduleEvaluationContext):
        now_utc = context.scheduled_execution_time.astimezone(UTC)
        today = now_utc.date().isoformat()
        if not days.has_partition_key(today):
            return dg.SkipReason(f"{today} is not a declared partition (assets/settings.yaml)")
        return dg.RunRequest(run_key=now_utc.isoformat(), partition_key=today)

    return job, _schedule


def automation_sensor() -> dg.AutomationConditionSensorDefinition:
    """Evaluates the derived tables' eager conditions: running by default, as settings.yaml
    `automation.derived_tables: eager` promises (Dagster's own sensor starts stopped)."""
    return dg.AutomationConditionSensorDefinition(
        "derived_tables_automation",
        target=dg.AssetSelection.all(),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Rebuilds the days of derived tables whose inputs changed (eager).",
    )


def drop_sensors(sources: dict, days: dg.DailyPartitionsDefinition) -> list:
    """A sensor for every source that reads a drop folder."""
    return [
        drop_sensor(table, FileDropSettings.model_validate(source.connectors["file_drop"]), days)
        for table, source in sources.items()
        if "file_drop" in source.connectors
    ]


def rollup(spec: SqlAssetSpec, contracts: dict, days_per_write: int) -> Rollup:
    if spec.header.partition_column is None or spec.parameters_used():
        raise DeclarationError(f"{spec.path}: a rollup has a partition_column and no parameters")
    return Rollup(
        contracts[spec.table], spec.query, spec.header.partition_column, spec.path, days_per_write
    )


def build_definitions(
    assets_dir: Path = ASSETS_DIR,
    contracts_dir: Path = CONTRACTS_DIR,
    warehouse_dir: Path = WAREHOUSE_DIR,
) -> dg.Definitions:
    settings = load_settings(assets_dir)
    infrastructure = load_infrastructure(assets_dir, settings.partitions.start_date)
    sources = load_sources(assets_dir)
    sql_specs = load_sql_assets(assets_dir)
    views = load_views(assets_dir)

    contracts = load_contracts(contracts_dir)
    bind_rules(contracts)

    observations = {  # what a daily source summarises of an observed one
        name: parse_sql_asset(assets_dir / "observations" / f"{source.observations}.sql")
        for name, source in sources.items()
        if source.observations
    }
    rollups = {  # what is stored of the sources too big to store row by row
        name: parse_sql_asset(assets_dir / "rollups" / f"{source.stored_as}.sql")
        for name, source in sources.items()
        if source.stored_as
    }
    tables = [
        *infrastructure.tables(),
        *sources,
        *(r.table for r in rollups.values()),
        *(s.table for s in sql_specs),
        QUARANTINE_TABLE,
    ]
    without_contract = [t for t in tables if t not in contracts]
    without_table = [c for c in contracts if c not in tables]
    if without_contract or without_table:
        raise DeclarationError(
            f"every table needs a contract in {contracts_dir} and every contract a table: "
            f"no contract for {without_contract}, no table for {without_table}"
        )
    # a name no table or view has would pass as an external asset: a typo, refused here
    check_reads([*sql_specs, *views, *observations.values()], {*tables, *(v.table for v in views)})

    partitions = settings.partitions
    end_date = (
        (partitions.end_date + timedelta(days=1)).isoformat() if partitions.end_date else None
    )
    daily = dg.DailyPartitionsDefinition(
        start_date=partitions.start_date.isoformat(), end_date=end_date
    )
    # an observed source's days run up to today: each observation is appended to its day
    observed_days = dg.DailyPartitionsDefinition(
        start_date=partitions.start_date.isoformat(),
        end_date=end_date,
        end_offset=0 if end_date else 1,
    )
    observed = {name: s for name, s in sources.items() if s.observe_cron}
    # the longest restatement window of the sources the daily job reads
    restating = max((s.restatement_days for s in sources.values() if not s.observe_cron), default=0)
    parameters = flatten(settings.economics.model_dump())
    lake = settings.profile.warehouse
    eager = settings.automation.derived_tables == "eager"
    assets = [
        quarantine_asset(contracts[QUARANTINE_TABLE]),
        *reference_assets(infrastructure, contracts, assets_dir, settings.default_owner),
        *(
            source_asset(
                name,
                s,
                contracts[name],
                observed_days if name in observed else daily,
                assets_dir / "sources.yaml",
                settings.default_owner,
                rollup(rollups[name], contracts, s.days_per_write) if name in rollups else None,
                observations.get(name),
                [Part(s.split_by, site.site_id) for site in infrastructure.sites]
                if s.split_by
                else None,
            )
            for name, s in sources.items()
        ),
        *(
            sql_asset(spec, contracts, daily, parameters, settings.default_owner, eager)
            for spec in sql_specs
        ),
        *(view_asset(view, settings.default_owner, eager) for view in views),
    ]
    daily_job = dg.define_asset_job(
        DAILY_JOB,
        # not the observed sources: a past day cannot be observed, only summarised
        selection=dg.AssetSelection.all() - dg.AssetSelection.assets(*observed),
        description="Every table for a range of UTC days: sources, then derived tables.",
    )
    observing = [observe_schedule(n, s.observe_cron, observed_days) for n, s in observed.items()]
    lake_upkeep = upkeep_job(settings.warehouse.snapshot_retention_days)
    return dg.Definitions(
        assets=assets,
        jobs=[daily_job, lake_upkeep, *(job for job, _ in observing)],
        schedules=[
            *(schedule for _, schedule in observing),
            daily_schedule(
                daily_job,
                daily,
                settings.schedule.cron,
                settings.schedule.timezone,
                restating,
            ),
            upkeep_schedule(lake_upkeep, settings.warehouse.upkeep_cron),
        ],
        sensors=[
            alert_on_run_failure,
            *publish_sensors,
            *([automation_sensor()] if eager else []),
            *drop_sensors(sources, daily),
        ],
        resources={
            "warehouse": WarehouseResource(
                directory=str(warehouse_dir),
                memory_limit=settings.warehouse.memory_limit,
                catalog=lake.catalog,
                data_path=lake.data_path,
                s3=lake.s3.model_dump() if lake.s3 else None,
            ),
            "alerts": AlertResource(
                log_path=str(ALERT_LOG),
                # an EnvVar keeps the URL (a secret) out of the UI's resource config
                webhook_url=dg.EnvVar(WEBHOOK_VARIABLE) if WEBHOOK_VARIABLE in os.environ else None,
            ),
        },
        executor=executor(settings.profile),
    )


PRELOADED = ["dagster", "great_expectations", "pipelines.assets"]


def executor(profile: Profile) -> dg.ExecutorDefinition:
    """In process for an embedded lake (it has one writer anyway); else a process per step,
    `max_concurrent` at once: the writers of a PostgreSQL catalog commit in parallel."""
    if profile.executor == "in_process":
        return dg.in_process_executor
    return dg.multiprocess_executor.configured({
        "max_concurrent": profile.max_concurrent,
        # a step's process forks from a server that imported the libraries once: a spawned
        # one spends ~6 s importing Dagster and Great Expectations first. Not this module: it
        # builds the definitions, and a process forked after DuckDB or Polars started their
        # threads may hang
        "start_method": {"forkserver": {"preload_modules": PRELOADED}},
    })  # fmt: skip


defs = build_definitions()


def daily_job() -> dg.JobDefinition:
    """The daily job, for `dg.reconstructable`: each step process of an out-of-process run
    imports this module and builds it again."""
    return defs.resolve_job_def(DAILY_JOB)
