"""`megawatt`: run the pipeline, read the warehouse, open the UI.

megawatt run [--start D --end D]   materialise every table for a range of UTC days
                                   (default: the embedded sample period) and print the answer
megawatt sql "SELECT ..."          query the published warehouse (never blocked by a run)
megawatt ui                        start the Dagster UI on this project (dagster dev)
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from datetime import date
from pathlib import Path

from pipelines.settings import ASSETS_DIR, DAGSTER_HOME, PROJECT_DIR, WAREHOUSE_DIR


def prepare_dagster_home() -> Path:
    """DAGSTER_HOME (default ./dagster_home) with its dagster.yaml, so history survives restarts."""
    DAGSTER_HOME.mkdir(parents=True, exist_ok=True)
    config = DAGSTER_HOME / "dagster.yaml"
    if not config.exists():  # a DAGSTER_HOME of the user's own starts from the project's config
        shutil.copyfile(PROJECT_DIR / "dagster_home" / "dagster.yaml", config)
    os.environ["DAGSTER_HOME"] = str(DAGSTER_HOME)
    return DAGSTER_HOME


def run(start: date, end: date) -> bool:
    """Materialise every table for UTC days [start, end] in one run recorded in DAGSTER_HOME."""
    prepare_dagster_home()
    import dagster as dg
    from dagster._core.storage.tags import (
        ASSET_PARTITION_RANGE_END_TAG,
        ASSET_PARTITION_RANGE_START_TAG,
    )

    from pipelines.definitions import DAILY_JOB, defs

    job = defs.resolve_job_def(DAILY_JOB)
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(
            instance=instance,
            tags={
                ASSET_PARTITION_RANGE_START_TAG: start.isoformat(),
                ASSET_PARTITION_RANGE_END_TAG: end.isoformat(),
            },
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            raise_on_error=False,
        )
    if not result.success:
        for event in result.all_events:
            if event.is_step_failure:
                error = event.step_failure_data.error
                cause = error.cause or error
                while cause.cause:
                    cause = cause.cause
                print(f"FAILED {event.step_key}: {cause.message.strip()}", file=sys.stderr)
    return result.success


def print_summary(start: date, end: date) -> None:
    from pipelines.warehouse import Warehouse

    with Warehouse(WAREHOUSE_DIR).reader() as con:
        rows = con.execute(
            """
            SELECT site_id,
                   avg(mining_margin_usd_per_mwh) AS mining,
                   avg(ai_margin_usd_per_mwh) AS ai,
                   any_value(ai_basis) AS ai_basis,
                   count(*) FILTER (WHERE better_use = 'ai') AS ai_days,
                   count(*) AS days,
                   avg(ai_uplift_usd_per_mw_day) AS uplift
            FROM site_economics_daily
            WHERE date BETWEEN $start AND $end
            GROUP BY site_id ORDER BY uplift DESC
            """,
            {"start": start, "end": end},
        ).fetchall()
    print(f"\nMargin per MWh by site, mean of UTC days {start} to {end} (USD):")
    print(f"{'site':<16}{'mining':>10}{'ai':>10}  {'better':<7}{'ai days':>9}{'uplift/MW-day':>15}")
    for site, mining, ai, basis, ai_days, days, uplift in rows:
        better = "ai" if ai > mining else "mining"
        note = "" if basis == "own_fleet" else "  (AI at market reference)"
        print(
            f"{site:<16}{mining:>10.2f}{ai:>10.2f}  {better:<7}{ai_days:>4}/{days:<4}"
            f"{uplift:>15,.0f}{note}"
        )
    print(f"\nWarehouse for SQL: {WAREHOUSE_DIR / 'megawatt.duckdb'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="megawatt", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="materialise every table for a range of days")
    run_parser.add_argument("--start", type=date.fromisoformat, help="first UTC day (inclusive)")
    run_parser.add_argument("--end", type=date.fromisoformat, help="last UTC day (inclusive)")
    sql_parser = commands.add_parser("sql", help="query the published warehouse")
    sql_parser.add_argument("query")
    commands.add_parser("ui", help="start the Dagster UI (dagster dev)")
    args = parser.parse_args(argv)

    if args.command == "run":
        from pipelines.declarations import load_settings

        period = load_settings(ASSETS_DIR).sample_period
        start = args.start or period.start_date
        end = args.end or period.end_date
        if not run(start, end):
            return 1
        print_summary(start, end)
        return 0
    if args.command == "sql":
        from pipelines.warehouse import Warehouse

        with Warehouse(WAREHOUSE_DIR).reader() as con:
            con.sql(args.query).show(max_rows=100, max_width=200)
        return 0
    if args.command == "ui":
        prepare_dagster_home()
        os.chdir(PROJECT_DIR)
        os.execvp("dagster", ["dagster", "dev", "-w", str(PROJECT_DIR / "workspace.yaml")])
    return 2


if __name__ == "__main__":
    sys.exit(main())
