"""Dagster assets made from the declarations: one table factory, three kinds of input.

- reference tables from assets/infrastructure/*.yaml and assets/scenarios.yaml (whole-table),
- raw tables from source connectors (daily-partitioned),
- derived tables from a SQL file (daily-partitioned or whole-table).
Every one writes through `Warehouse.write`, so every table is created, validated and replaced the
same way, from its contract. Besides: views for analysts (assets/views/) and the quarantine table.
"""

import dataclasses
import datetime as dt
import inspect
import math
import re
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import polars as pl

from pipelines.batch import Part, Window
from pipelines.contracts import Contract, Rule, utc_day
from pipelines.declarations import Infrastructure, Source
from pipelines.errors import ContractViolation, DeclarationError, MegawattError, cut
from pipelines.lake import S3
from pipelines.lineage import column_lineage, lineage_table
from pipelines.plots import PlotSpec, markdown_image, render_png
from pipelines.settings import PROJECT_DIR
from pipelines.sources import PartConnector, build_connector
from pipelines.sources.errors import NotArrived
from pipelines.sql_assets import SqlAssetSpec
from pipelines.sqltext import quote
from pipelines.validation import Validation, combine
from pipelines.warehouse import Rollup, Warehouse, WriteReport, warehouse_of

REBUILD_TAG = "megawatt/rebuild"  # tables a run makes anew (a change of shape that drops history)
# The daily run's day D (the schedule's run for yesterday): its range reaches back over the
# sources' restatement windows, and each source re-reads only its own, [D - restatement_days, D]
DAILY_FOR_TAG = "megawatt/daily_for"
WRITER_POOL = "warehouse_writer"  # one writer at a time: DuckDB allows one writing process
# Dagster's eager condition without its latest-day limit: a late correction to an old day
# rebuilds that day downstream too.
EAGER_ANY_DAY = dg.AutomationCondition.eager().without(
    dg.AutomationCondition.in_latest_time_window()
)
# The check every partitioned table gets: its rows lie in the run's days.
WITHIN_PARTITION = Rule("within_partition", "rows lie within the partition's days", "error")


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse: its folder (setting MEGAWATT_WAREHOUSE_DIR), its DuckLake catalog and data
    path when not the embedded ones in that folder, and the writer's memory limit (all from
    assets/settings.yaml warehouse)."""

    directory: str
    memory_limit: str | None = None
    catalog: str | None = None  # sqlite:<file> or postgres:<libpq connection string>
    data_path: str | None = None  # a folder, or s3://bucket/prefix/
    s3: dict[str, Any] | None = None  # settings.yaml warehouse.s3, for an s3:// data path

    def get(self) -> Warehouse:
        return warehouse_of(self.directory, self.catalog, self.data_path, self.memory_limit,
                            S3(**self.s3) if self.s3 else None)  # fmt: skip

    @contextmanager
    def yield_for_execution(self, context: dg.InitResourceContext):
        """A run holds the warehouse from its start to its end (Warehouse.run_lock): runs
        started together, from `megawatt`, the UI or the schedule, run one after the other.
        A sensor's use (no run) takes nothing."""
        run = context.run
        if run is None:
            yield self
            return
        waiting = f"{run.job_name}: the warehouse is in use by %s; waiting for it to end"
        with self.get().run_lock(run.run_id, lambda holder: context.log.info(waiting % holder)):
            yield self


def check_results(validation: Validation, quarantined: bool, prefix: str = ""):
    """One AssetCheckResult per rule. A row-level failure whose rows were quarantined is a
    warning: the table itself only got rows that pass."""
    for result in validation.results:
        kept_out = quarantined and result.rule.row_level
        severity = (
            dg.AssetCheckSeverity.ERROR
            if result.rule.blocking and not kept_out
            else dg.AssetCheckSeverity.WARN
        )
        # a number on every result, 0 when passed, so that the UI plots it over time
        metadata = {"rule": result.rule.description, "failing_rows": 0}
        if not result.passed:
            metadata |= {
                "failing_rows": result.rows,
                "first_failure": result.example,
                "rows_quarantined": result.rows if kept_out else 0,
            }
            if result.sample:
                metadata["sample"] = rows_table(result.sample)
        yield dg.AssetCheckResult(
            check_name=prefix + result.rule.name,
            passed=result.passed,
            severity=severity,
            metadata=metadata,
        )


def rounded(value):
    """A value as the UI shows it: a number to 5 significant digits (77012.87097947075 -> 77013,
    112.843712 -> 112.84, 3.125 -> 3.125, 0.0123456 -> 0.012346), without decimals from 10,000 up
    (a difficulty of 86385317359414.2 -> 86385317359414); a date or time as text; ints, bools,
    text and None as they are."""
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, dt.date | dt.datetime | dt.time | dt.timedelta):
        return str(value)
    try:
        number = float(value)  # a float, a Decimal
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(number):  # not JSON: the UI could not read the row
        return str(number)
    if abs(number) >= 10_000:
        return float(round(number))
    return float(f"{number:.5g}")


def rows_table(rows: list[dict], contract: Contract | None = None) -> dg.TableMetadataValue:
    """Rows as a table the Dagster UI shows inline (a markdown table shows behind a button once it
    is over 1000 characters): every column, numbers rounded, the contract's column types and
    descriptions where it declares them (its "Show schema")."""
    declared = {c.name: c for c in column_schema(contract).columns} if contract else {}
    names = list(rows[0]) if rows else list(declared)
    return dg.MetadataValue.table(
        records=[dg.TableRecord({n: rounded(r.get(n)) for n in names}) for r in rows],
        schema=dg.TableSchema(columns=[declared.get(n) or dg.TableColumn(n) for n in names]),
    )


def contract_path(contract: Contract) -> dg.PathMetadataValue:
    """The contract's file, relative to the project's folder when in it."""
    path = Path(contract.path).resolve()
    return dg.MetadataValue.path(
        str(path.relative_to(PROJECT_DIR)) if path.is_relative_to(PROJECT_DIR) else str(path)
    )


def unit_of(parameter: str) -> str:
    """The unit a parameter's name says (the contracts' suffixes): capex_usd_per_gpu -> USD/GPU,
    kw_per_gpu -> kW/GPU, depreciation_years -> years, utilisation -> share (0-1)."""
    names = {"usd": "USD", "eur": "EUR", "kw": "kW", "mw": "MW", "kwh": "kWh", "mwh": "MWh",
             "gpu": "GPU", "ph": "PH", "th": "TH", "day": "day", "hour": "hour"}  # fmt: skip
    per = re.search(r"(?:^|_)([a-z]+)_per_([a-z]+)$", parameter)
    if per and per.group(1) in names:
        return f"{names[per.group(1)]}/{names.get(per.group(2), per.group(2))}"
    for suffix, unit in (("_years", "years"), ("_days", "days"), ("_hours", "hours"),
                         ("_pct", "%"), ("utilisation", "share (0-1)"), ("_share", "share (0-1)"),
                         ("_usd", "USD")):  # fmt: skip
        if parameter.endswith(suffix):
            return unit
    return ""


def assumptions_table(parameters: dict) -> dg.TableMetadataValue:
    """The settings a query uses (economics: in assets/settings.yaml), one row each."""
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord({"name": k, "value": rounded(v), "unit": unit_of(k)})
            for k, v in sorted(parameters.items())
        ],
        schema=dg.TableSchema(
            columns=[
                dg.TableColumn("name", description="$name in the SQL; economics: in settings.yaml"),
                dg.TableColumn("value"),
                dg.TableColumn("unit", description="as its name says"),
            ]
        ),
    )


def with_sql(description: str, query: str) -> str:
    """The asset's description with its SQL: the UI renders the description as markdown on the
    asset's page (a long one folds after a few lines, "Show more")."""
    return f"{description}\n\n```sql\n{query.strip()}\n```"


def column_schema(contract: Contract) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=c.name,
                type=c.type,
                description=c.description + (f" [{c.unit}]" if c.unit else ""),
                constraints=dg.TableColumnConstraints(nullable=not c.required),
            )
            for c in contract.columns
        ]
    )


@dataclasses.dataclass(frozen=True)
class Figures:
    """Domain figures of a derived table, recorded per partition as numbers (which the Dagster UI
    plots over its materialisations): the mean of `columns` over the day's rows where `where`."""

    columns: tuple[str, ...]
    where: str | None = None

    @classmethod
    def of(cls, contract: Contract, plot: PlotSpec | None) -> "Figures | None":
        """The plot's y columns, else the contract's first money rate (a column whose unit is USD
        per something: a price, a margin per MWh); over the plot's rows (its `where`), else over
        the base scenario where the table has scenarios (the recorded truth)."""
        if plot is not None:
            columns = tuple(plot.y)
        else:
            rates = [c.name for c in contract.columns if (c.unit or "").startswith("USD/")]
            columns = tuple(rates[:1])
        if not columns:
            return None
        base = "scenario = 'base'" if "scenario" in contract.column_names else None
        return cls(columns, plot.where if plot is not None and plot.where else base)

    def keys(self) -> list[str]:
        return [f"mean_{c}" for c in self.columns]

    def per_day(self, con, table: str, column: str, window: Window) -> dict[str, dict]:
        """{UTC day: {mean_<column>: value}} for the days of `window` that have rows."""
        day = utc_day(quote(column))
        means = ", ".join(f"avg({quote(c)})" for c in self.columns)
        where = f" AND ({self.where})" if self.where else ""  # SQL of the header, like a rule's
        rows = con.execute(
            f"SELECT {day} AS day, {means} FROM {quote(table)} "
            f"WHERE {day} >= $start AND {day} < $end{where} GROUP BY ALL",
            {"start": window.start, "end": window.end},
        ).fetchall()
        return {
            d.isoformat(): {
                k: rounded(v) for k, v in zip(self.keys(), values, strict=True) if v is not None
            }
            for d, *values in rows
        }

    def of_table(self, con, table: str) -> dict:
        """{mean_<column>: value} over the whole (unpartitioned) table."""
        means = ", ".join(f"avg({quote(c)})" for c in self.columns)
        where = f" WHERE {self.where}" if self.where else ""
        values = con.execute(f"SELECT {means} FROM {quote(table)}{where}").fetchone()
        return {k: rounded(v) for k, v in zip(self.keys(), values, strict=True) if v is not None}


# What an asset writes for a window (and a source's, for a part of it): the data (frame or SQL),
# where it came from, SQL parameters.
Compute = Callable[..., tuple[pl.DataFrame | str, str, dict]]


def restatement_window(window: Window, tags: dict, restatement_days: int | None) -> Window:
    """The days a source reads in a run over `window`: in the daily run for day D (the
    DAILY_FOR_TAG), [D - restatement_days, D] within the run's days (the days before keep what is
    stored); in any other run (a user's run or backfill), and for a derived table (None), the
    whole window."""
    daily_for = tags.get(DAILY_FOR_TAG)
    if restatement_days is None or not daily_for:
        return window
    try:
        day = dt.date.fromisoformat(daily_for)
    except ValueError:
        raise MegawattError(
            f"the run's tag {DAILY_FOR_TAG}={daily_for!r} is not a UTC day (YYYY-MM-DD)"
        ) from None
    if not window.start <= day < window.end:
        raise MegawattError(
            f"the run's tag {DAILY_FOR_TAG}={daily_for} names a day outside its range "
            f"[{window.start}, {window.end - dt.timedelta(days=1)}]"
        )
    return Window(max(window.start, day - dt.timedelta(days=restatement_days)),
                  day + dt.timedelta(days=1))  # fmt: skip


def table_asset(
    contract: Contract,
    *,
    group: str,
    description: str,
    deps: list[str | dg.AssetDep],
    partitions_def: dg.PartitionsDefinition | None,
    partition_column: str | None,
    compute: Compute,
    owner: str,
    metadata: dict | None = None,
    automation_condition: dg.AutomationCondition | None = None,
    plot: PlotSpec | None = None,
    lineage_of: Callable[[], dg.TableColumnLineage] | None = None,
    rollup: Rollup | None = None,
    figures: Figures | None = None,
    answered_only: bool = False,
    append: bool = False,
    observations: SqlAssetSpec | None = None,
    restatement_days: int | None = None,
    parts: list[Part] | None = None,
) -> dg.AssetsDefinition:
    """The asset writing `contract.table` with the rows `compute` gives; with `rollup`, the asset
    of the rollup's table instead, fed `days_per_write` days at a time with rows that `contract`
    validates. With `answered_only` (a source), a day without rows keeps what is stored; when
    no day has rows and the contract wants rows every day, nothing is materialised (the table
    goes stale if that persists, and the tables built from it wait). With `append`, the rows
    are added to the window's (observations). With `observations`, the rows of each day also
    include that query's summary of the observations made during it. With `restatement_days`
    (a source), the daily run reads only the days it may still revise (`restatement_window`).
    Only the days whose content changed are written (Warehouse.write); the materialisation
    records how many (`days_changed`) and which. With `parts` (a rolled-up source split by
    site), each part of each day is read, validated and written on its own."""
    within = [WITHIN_PARTITION] if partitions_def is not None else []
    # a source whose contract wants rows every day publishes every day: a day it did not answer
    # is an outage, not a day without rows
    daily_rows = answered_only and any(
        r.row_count_between and r.row_count_between[0] >= 1 for r in contract.rules
    )
    checks = [(rule, "") for rule in [*contract.rules, *within]]
    rows_contract = contract
    if rollup is not None:  # its checks: the rollup's rules, then the rows' (prefixed)
        prefix = f"{contract.table}_"
        checks = [(rule, "") for rule in [*rollup.contract.rules, *within]]
        checks += [(rule, prefix) for rule in [*rows_contract.rules, *within]]
        contract = rollup.contract

    spec = dict(  # what the asset declares, however it is computed
        name=contract.table,
        group_name=group,
        description=description,
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run() if partitions_def else None,
        kinds={"duckdb"},
        owners=[owner],
        metadata={
            "dagster/column_schema": column_schema(contract),
            "dagster/table_name": contract.table,
            **({"contract": contract_path(contract)} if contract.path else {}),
            "quarantines_bad_rows": contract.quarantine,
            **(metadata or {}),
        },
        check_specs=[
            dg.AssetCheckSpec(
                prefix + rule.name,
                asset=contract.table,
                description=(f"{rows_contract.table}: " if prefix else "") + rule.description,
                blocking=rule.blocking,
            )
            for rule, prefix in checks
        ],
    )
    freshness = (
        dg.FreshnessPolicy.time_window(fail_window=contract.max_staleness)
        if contract.max_staleness
        else None
    )

    def window_of(context) -> Window | None:
        """The run's days (a source's: those it reads in this run)."""
        if partitions_def is None:
            return None
        time_window = context.partition_time_window
        window = Window(time_window.start.date(), time_window.end.date())
        return restatement_window(window, context.run.tags, restatement_days)

    def rebuilds(context) -> bool:
        return contract.table in context.run.tags.get(REBUILD_TAG, "").split(",")

    def failed(violation: ContractViolation):
        """The check results of a violation (which rules failed), then the step's failure."""
        if violation.validation is not None:
            of_rows = rollup is not None and violation.contract.table == rows_contract.table
            yield from check_results(violation.validation, violation.contract.quarantine,
                                     f"{rows_contract.table}_" if of_rows else "")  # fmt: skip
        raise dg.Failure(description=str(violation)) from None

    def materialised(context, warehouse: WarehouseResource, report, checked, window):
        """The materialisation of a write: its checks, and the metadata of the run and table."""
        validation = report.validation
        # Of the table as a whole, not of a day: on the run's last day only (the asset's latest
        # materialisation), not copied into each of a backfill's days (a plot is ~100 KB).
        # The asset's page lists its latest materialisation's metadata in their order: the plot
        # first (an image: the UI shows a markdown value over 1000 characters behind a button,
        # "[Show Markdown]"), then the tables, which it shows inline, then the numbers.
        of_table = {}
        if plot is not None:
            with warehouse.get().latest() as con:
                of_table["plot"] = dg.MetadataValue.md(
                    markdown_image(render_png(con, contract.table, plot), plot.title)
                )
        of_table["preview"] = rows_table(report.preview, contract) if report.preview else "no rows"
        if lineage_of is not None:
            lineage = lineage_of()
            of_table["dagster/column_lineage"] = lineage
            of_table["column_lineage"] = lineage_table(lineage, contract.column_names)
        if report.answered:
            changes = report.changes(most=10)
            if report.wrote:
                context.log.info(f"{contract.table}: {changes or 'replaced'}")
            else:
                context.log.info(f"{contract.table}: {changes or 'unchanged'}; nothing written")
        of_run = {
            **({"dagster/row_count": report.rows_in_table} if report.answered else {}),
            "rows_written": report.rows_written,
            "rows_quarantined": validation.rows_quarantined,
            # the days replaced because their content changed (a number, which the UI plots)
            "days_changed": len(report.days_changed),
            "days_changed_list": ", ".join(map(str, report.days_changed)) or "none",
            "days_unchanged": len(report.days_unchanged),
            # the lake's snapshot of this write (time travel); none when nothing changed
            "snapshot": report.snapshot,
            # the days read: in the daily run, a source's restatement window
            "window": f"[{window.start}, {window.end})" if window else "whole table",
            **(
                {"days_without_data": ", ".join(map(str, report.days_without_data))}
                if report.days_without_data
                else {}
            ),
        }
        per_day = {}
        if figures is not None:  # numbers of each day, on that day's materialisation
            with warehouse.get().latest() as con:
                if partitions_def is None:
                    of_run |= figures.of_table(con, contract.table)
                else:
                    per_day = figures.per_day(con, contract.table, partition_column, window)
        for failure in validation.failures:
            context.log.warning(f"{contract.table}: {failure}")
        if partitions_def is None:
            yield dg.MaterializeResult(metadata=of_table | of_run, check_results=checked)
            return
        # each day's materialisation: the run's metadata and the day's figures (the last day
        # the table's first); the result's own metadata would come before a day's
        last = context.partition_keys[-1]
        for key in context.partition_keys:
            context.add_asset_metadata(
                (of_table if key == last else {}) | of_run | per_day.get(key, {}),
                partition_key=key,
            )
        yield dg.MaterializeResult(check_results=checked)

    if parts is not None:
        return _by_parts(spec, freshness, deps, parts, window_of, rebuilds, failed, materialised,
                         rows_contract, rollup, partition_column, compute)  # fmt: skip

    @dg.asset(
        **spec,
        deps=deps,
        output_required=not answered_only,
        pool=WRITER_POOL,
        automation_condition=automation_condition,
        freshness_policy=freshness,
    )
    def _table(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        rebuild = rebuilds(context)
        try:
            window = window_of(context)
            if rollup is None:
                data, origin, params = compute(window)
                if observations is not None:
                    observed = _observed(warehouse.get(), observations, window, context.log)
                    data = pl.concat([data, observed], how="diagonal_relaxed")
                    origin += f" + {observations.path.name}"
                report = warehouse.get().write(
                    contract,
                    data,
                    origin=origin,
                    window=window,
                    partition_column=partition_column,
                    params=params,
                    run_id=context.run.run_id,
                    rebuild=rebuild,
                    answered_only=answered_only,
                    append=append,
                )
                checked = list(check_results(report.validation, contract.quarantine))
                if report.days_without_data:
                    days = ", ".join(map(str, report.days_without_data))
                    said = f"{contract.table}: no data from {origin} for {days}"
                    if daily_rows:  # days it should have had
                        context.log.warning(f"{said}: the stored rows of those days are kept "
                                            "(no data is not zero rows)")  # fmt: skip
                    else:
                        context.log.info(f"{said} (it has days without rows)")
                if not report.answered:  # no day answered: no rule ran
                    checked = [
                        dg.AssetCheckResult(
                            check_name=prefix + rule.name,
                            passed=True,
                            metadata={"not_evaluated": "no data from the source: nothing written"},
                        )
                        for rule, prefix in checks
                    ]
                    if daily_rows:  # not materialised: the table goes stale if this persists
                        yield from checked
                        return
            else:
                written = _write_daily(warehouse.get(), rows_contract, rollup, window,
                                       partition_column, compute, context.run.run_id, rebuild,
                                       None, context.log)  # fmt: skip
                report, checked = _combined([written], rows_contract, rollup, window)
        except ContractViolation as violation:  # show which rules failed, then fail the step
            yield from failed(violation)
        except MegawattError as error:  # our own message, without a traceback
            raise dg.Failure(description=str(error)) from None
        yield from materialised(context, warehouse, report, checked, window)

    return _table


def _observed(warehouse: Warehouse, spec: SqlAssetSpec, window: Window, log) -> pl.DataFrame:
    """The rows `spec` makes of the observations of `window`'s days (its latest snapshot)."""
    params = {"start_date": window.start, "end_date": window.end}
    with warehouse.latest() as con:
        try:
            frame = con.execute(spec.query, params).pl()
        except duckdb.CatalogException as e:  # nothing observed yet: no table
            log.warning(f"{spec.path.name}: no observations to summarise ({cut(str(e))})")
            return pl.DataFrame()
    return frame.with_columns(
        pl.lit(f"{spec.path} over [{window.start}, {window.end})").alias("_source"),
        pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("_row"),
    )


@dataclass
class Written:
    """What the writes of a rolled-up source did: the reports of the writes that had data, the
    parts that had none (why), and the contract violations of the parts that failed."""

    reports: list[WriteReport] = field(default_factory=list)
    missing: list[NotArrived] = field(default_factory=list)
    violations: list[ContractViolation] = field(default_factory=list)


def _write_daily(warehouse: Warehouse, rows_contract: Contract, rollup: Rollup, window: Window,
                 partition_column: str, compute: Compute, run_id: str, rebuild: bool,
                 part: Part | None, log) -> Written:  # fmt: skip
    """Write a rolled-up source `rollup.days_per_write` days per transaction, so that a backfill
    holds that many days in memory; with `part`, that part of those days only, and a day without
    its data (no file arrived, or no rows) keeps its stored rows, and a day that breaks the
    contract fails alone (the others are written, each is a transaction). With `rebuild`, the
    first write (of any part) to find the table's shape changed makes it anew; the later ones
    find it as the contract declares it."""
    written = Written()
    for day in window.chunks(rollup.days_per_write):
        try:
            data, origin, params = compute(day, part)
            report = warehouse.write(
                rows_contract, data, origin=origin, window=day, partition_column=partition_column,
                params=params, rollup=rollup, run_id=run_id, answered_only=part is not None,
                rebuild=rebuild, part=part,
            )  # fmt: skip
        except NotArrived as error:
            if part is None:
                raise
            written.missing.append(error)
            log.warning(f"{rows_contract.table}: {error}; the part's stored rows are kept")
            continue
        except ContractViolation as violation:
            if part is None:
                raise
            written.violations.append(violation)
            log.error(str(violation))
            continue
        if report.answered:
            written.reports.append(report)
        else:
            log.warning(f"{rows_contract.table}: no rows for {part} in [{day.start}, {day.end}) "
                        f"from {origin}; the part's stored rows are kept")  # fmt: skip
    return written


def _combined(written: list[Written], rows_contract: Contract, rollup: Rollup,
              window: Window) -> tuple[WriteReport, list]:  # fmt: skip
    """The writes of a rolled-up source (of each of its parts) as one report (the last write's,
    with the rows written by all) and the check results of all; raises the first part's
    violation, or when no part had data, why."""
    reports = [r for w in written for r in w.reports]
    violations = [v for w in written for v in w.violations]
    missing = [m for w in written for m in w.missing]
    if violations:
        raise violations[0]
    if not reports:  # no part of any day had data: as a source without its files
        if missing:
            raise missing[0]
        raise NotArrived(f"{rows_contract.table}: no rows in [{window.start}, {window.end})")
    rows = combine([r.validation for r in reports])
    stored = combine([r.rollup_validation for r in reports])
    checked = [
        *check_results(stored, rollup.contract.quarantine),
        *check_results(rows, rows_contract.quarantine, f"{rows_contract.table}_"),
    ]
    last = reports[-1]
    snapshots = [r.snapshot for r in reports if r.snapshot is not None]
    combined = dataclasses.replace(
        last,
        rows_written=sum(r.rows_written for r in reports),
        validation=rows,
        snapshot=snapshots[-1] if snapshots else None,
        days_changed=tuple(c for r in reports for c in r.days_changed),
        days_unchanged=tuple(d for r in reports for d in r.days_unchanged),
    )
    return combined, checked


REPORT_STEP = "report"  # a source split by parts: the step of its materialisation


def _node_name(part: Part) -> str:
    """The part's step within its asset's graph (step key `<table>.<node>`): its value as an
    identifier."""
    return re.sub(r"[^A-Za-z0-9_]", "_", part.value)


def _by_parts(spec: dict, freshness, deps: list, parts: list[Part], window_of, rebuilds, failed,
              materialised, rows_contract: Contract, rollup: Rollup, partition_column: str,
              compute: Compute) -> dg.AssetsDefinition:  # fmt: skip
    """The asset of a rolled-up source split by `parts`: a graph of one step per part, each
    writing its part of the run's days (the cluster's workers run them at once), and a step that
    reports them as the asset's materialisation and checks."""
    table = spec["name"]
    names = [dg.AssetKey.from_coercible(d).to_python_identifier() for d in deps]

    def part_step(part: Part) -> dg.OpDefinition:
        @dg.op(
            name=f"{table}__{_node_name(part)}",
            description=f"Writes {table}'s part {part}.",
            ins={name: dg.In(dg.Nothing) for name in names},  # after the tables it reads
            pool=WRITER_POOL,
        )
        def _part(context: dg.OpExecutionContext, warehouse: WarehouseResource):
            try:
                written = _write_daily(warehouse.get(), rows_contract, rollup, window_of(context),
                                       partition_column, compute, context.run.run_id,
                                       rebuilds(context), part, context.log)  # fmt: skip
            except MegawattError as error:  # our own message, without a traceback
                raise dg.Failure(description=f"{table} ({part}): {error}") from None
            return dg.Output(written, metadata={  # for the run's progress lines
                "part": str(part),
                "days_written": len({c.day for r in written.reports for c in r.days_changed}),
                "rows_written": sum(r.rows_written for r in written.reports),
                "rows_quarantined": sum(r.validation.rows_quarantined for r in written.reports),
            })  # fmt: skip

        return _part

    check_outputs = [c.get_python_identifier() for c in spec["check_specs"]]

    @dg.op(
        name=f"{table}__{REPORT_STEP}",
        description=f"Reports the parts written as {table}'s materialisation and checks.",
        out={"result": dg.Out(dg.Nothing), **{name: dg.Out(dg.Nothing) for name in check_outputs}},
    )
    def _report(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                written: list[Written]):  # fmt: skip
        window = window_of(context)
        try:
            report, checked = _combined(written, rows_contract, rollup, window)
        except ContractViolation as violation:
            yield from failed(violation)
        except MegawattError as error:
            raise dg.Failure(description=str(error)) from None
        yield from materialised(context, warehouse, report, checked, window)

    def compose(**upstream):
        written = [part_step(p).alias(_node_name(p))(**upstream) for p in parts]
        out = _report.alias(REPORT_STEP)(written)
        return {"result": out.result, **{name: getattr(out, name) for name in check_outputs}}

    compose.__signature__ = inspect.Signature(
        [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY) for n in names]
    )
    ins = {n: dg.AssetIn(key=d, dagster_type=dg.Nothing) for n, d in zip(names, deps, strict=True)}
    asset = dg.graph_asset(**spec, ins=ins)(compose)
    if freshness is None:
        return asset
    (asset,) = dg.map_asset_specs(lambda a: a.replace_attributes(freshness_policy=freshness),
                                  [asset])  # fmt: skip
    return asset


def quarantine_asset(contract: Contract) -> dg.AssetSpec:
    """The quarantine table, written by the raw assets beside their own tables."""
    return dg.AssetSpec(
        contract.table,
        group_name="quality",
        description=contract.description,
        kinds={"duckdb"},
        metadata={
            "dagster/column_schema": column_schema(contract),
            "dagster/table_name": contract.table,
            **({"contract": contract_path(contract)} if contract.path else {}),
        },
    )


def reference_assets(
    infrastructure: Infrastructure, contracts: dict[str, Contract], assets_dir: Path, owner: str
) -> list[dg.AssetsDefinition]:
    tables = infrastructure.tables()
    origins = {name: str(assets_dir / "infrastructure" / f"{name}.yaml") for name in tables}
    origins["scenarios"] = str(assets_dir / "scenarios.yaml")
    order = {"sites": [], "asic_fleet": ["sites"], "gpu_fleet": ["sites"], "scenarios": []}
    return [
        table_asset(
            contracts[name],
            group="reference",
            description=contracts[name].description,
            deps=deps,
            partitions_def=None,
            partition_column=None,
            compute=lambda _w, name=name: (tables[name], origins[name], {}),
            owner=owner,
        )
        for name, deps in order.items()
    ]


def source_asset(
    name: str,
    source: Source,
    contract: Contract,
    partitions_def: dg.PartitionsDefinition,
    sources_file: Path,
    owner: str,
    rollup: Rollup | None = None,
    observations: SqlAssetSpec | None = None,
    parts: list[Part] | None = None,
) -> dg.AssetsDefinition:
    """The asset of a source: its connectors' rows of each window (and, with `observations`,
    the day's summary of the observations made during it); an observed source (`observe_cron`)
    appends each observation to its day. With `parts` (its `split_by`), each part of a window
    is read on its own."""
    where = f"{sources_file}: source {name!r}"
    connectors = {
        connector: build_connector(connector, settings, name, where)
        for connector, settings in source.connectors.items()
    }

    if source.split_by and (
        len(connectors) > 1 or not all(isinstance(c, PartConnector) for c in connectors.values())
    ):
        raise DeclarationError(
            f"{where}: split_by {source.split_by!r} needs one connector that reads a part on its "
            f"own (fetch_part): {', '.join(connectors)} cannot"
        )

    def compute(window: Window, part: Part | None = None):
        if part is not None:  # one connector (checked above)
            (connector,) = connectors.values()
            return connector.fetch_part(name, window, source.partition_column, part), \
                " + ".join(connectors), {}  # fmt: skip
        frames = [c.fetch(name, window, source.partition_column) for c in connectors.values()]
        if any(isinstance(f, str) for f in frames):  # a scan in DuckDB: the rows stay there
            if len(frames) > 1:
                raise DeclarationError(f"{where}: a source read by a query has one connector")
            return frames[0], " + ".join(connectors), {}
        # connectors may type a column differently (text from files, numbers from APIs)
        frame = pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else frames[0]
        return frame, " + ".join(connectors), {}

    return table_asset(
        contract,
        group=source.group,
        description=with_sql(source.description, rollup.query) if rollup else source.description,
        deps=[*source.deps, *(observations.header.dep_names() if observations else [])],
        partitions_def=partitions_def,
        partition_column=source.partition_column,
        compute=compute,
        owner=source.owner or owner,
        metadata={"connectors": ", ".join(connectors)},
        rollup=rollup,
        answered_only=rollup is None,
        append=source.observe_cron is not None,
        observations=observations,
        restatement_days=source.restatement_days,
        parts=parts,
    )


def view_asset(spec: SqlAssetSpec, owner: str, eager: bool) -> dg.AssetsDefinition:
    """A view for analysts, recreated whenever its tables are rebuilt."""

    @dg.asset(
        name=spec.table,
        group_name=spec.header.group,
        description=with_sql(spec.header.description, spec.query),  # the UI shows it at once
        deps=spec.header.dep_names(),
        pool=WRITER_POOL,
        kinds={"duckdb", "view"},
        owners=[spec.header.owner or owner],
        automation_condition=dg.AutomationCondition.eager() if eager else None,
    )
    def _view(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        columns = warehouse.get().create_view(
            spec.table, spec.query, spec.header.description, context.run.run_id
        )
        schema = dg.TableSchema(
            columns=[dg.TableColumn(name, str(type_)) for name, type_, *_ in columns]
        )
        return dg.MaterializeResult(metadata={"dagster/column_schema": schema})

    return _view


def sql_asset(
    spec: SqlAssetSpec,
    contracts: dict[str, Contract],
    partitions_def: dg.PartitionsDefinition,
    parameters: dict,
    owner: str,
    eager: bool,
) -> dg.AssetsDefinition:
    contract = contracts[spec.table]
    unknown = spec.parameters_used() - set(parameters) - {"start_date", "end_date"}
    if unknown:
        raise DeclarationError(f"{spec.path}: unknown query parameter(s) {sorted(unknown)}")
    used = {k: v for k, v in parameters.items() if k in spec.parameters_used()}
    partitioned = spec.header.partition_column is not None
    lookbacks = spec.header.lookbacks()
    deps = [
        dg.AssetDep(
            name, partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-lookbacks[name])
        )
        if name in lookbacks and partitioned
        else name
        for name in spec.header.dep_names()
    ]

    def compute(window: Window | None):
        params = dict(used)
        if window is not None:
            params.update(
                {
                    k: v
                    for k, v in {"start_date": window.start, "end_date": window.end}.items()
                    if k in spec.parameters_used()
                }
            )
        return spec.query, f"the result of {spec.path}", params  # its rows, not its lines

    return table_asset(
        contract,
        group=spec.header.group,
        description=with_sql(spec.header.description, spec.query),  # the UI shows it at once
        deps=deps,
        partitions_def=partitions_def if partitioned else None,
        partition_column=spec.header.partition_column,
        compute=compute,
        owner=spec.header.owner or owner,
        automation_condition=EAGER_ANY_DAY if eager else None,
        plot=spec.header.plot,
        figures=Figures.of(contract, spec.header.plot),
        lineage_of=lambda: column_lineage(
            spec.query,
            tuple(contract.column_names),
            tuple((t, tuple(c.column_names)) for t, c in sorted(contracts.items())),
        ),
        metadata={"assumptions": assumptions_table(used)} if used else None,
    )
