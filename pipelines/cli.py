"""`megawatt`: run the pipeline, read the warehouse, open the UI.

megawatt run [--start D --end D]   materialise every table for a range of UTC days (default:
             [--select TABLE ...]  the embedded sample period), a line per table as it ends,
             [--rebuild TABLE ...] and print the answer; --select runs only those tables, e.g.
                                   to backfill one source; --rebuild makes tables anew after a
                                   change of their shape; Ctrl-C cancels the run (exit 130)
megawatt backfill --start D --end D
                 [--chunk-days N]  the same in runs of N days (default 30), with a progress bar
                                   (a line per run without a terminal); run it again after an
                                   interruption and it resumes
megawatt sql "SELECT ..." | -f FILE  query the published warehouse (never blocked by a run):
             [--csv | --json]      a table (a column per line per row when too wide for the
             [--max-rows N]        terminal), CSV, or one JSON array of objects; --max-rows
             [--as-of RUN_OR_TIME] cuts (the table shows 100 by default), --as-of reads as
                                   published by an earlier run or at an earlier time
megawatt migrate                   move an old warehouse/pipeline.duckdb into the lake
megawatt ui                        start the Dagster UI on this project (dg dev)
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from datetime import date
from pathlib import Path

from pipelines.errors import MegawattError
from pipelines.runs import INTERRUPTED_EXIT, RunCanceled
from pipelines.settings import ASSETS_DIR, DAGSTER_HOME, PROFILE_HOME, PROJECT_DIR, WAREHOUSE_DIR


def prepare_dagster_home() -> Path:
    """DAGSTER_HOME (default ./dagster_home) with its dagster.yaml, so history survives restarts."""
    DAGSTER_HOME.mkdir(parents=True, exist_ok=True)
    config = DAGSTER_HOME / "dagster.yaml"
    if not config.exists():  # a DAGSTER_HOME of the user's own starts from the project's config
        shutil.copyfile(PROFILE_HOME / "dagster.yaml", config)
    os.environ["DAGSTER_HOME"] = str(DAGSTER_HOME)
    return DAGSTER_HOME


def run(
    start: date,
    end: date,
    tables: list[str] | None = None,
    chunk_days: int | None = None,
    rebuild: list[str] | None = None,
) -> bool:
    """Materialise every table (or `tables`) for UTC days [start, end], recorded in DAGSTER_HOME.

    One run for the whole range; or, with `chunk_days`, a backfill: one run per chunk of days,
    with a progress bar, skipping chunks that earlier runs completed (so it resumes). Tables in
    `rebuild` are made anew from their contracts (a change of shape that drops their history):
    the run then covers every declared day.
    """
    prepare_dagster_home()
    import dagster as dg
    from tqdm import tqdm

    from pipelines.definitions import DAILY_JOB, defs

    job = defs.resolve_job_def(DAILY_JOB)
    days = job.partitions_def.get_partition_keys()
    if start.isoformat() not in days or end.isoformat() not in days:
        raise MegawattError(
            f"cannot run UTC days {start} to {end}: the declared partitions are {days[0]} to "
            f"{days[-1]} (assets/settings.yaml partitions)"
        )
    if start > end:
        raise MegawattError(f"cannot run UTC days {start} to {end}: start is after end")
    graph = defs.resolve_asset_graph()
    runnable = {key.to_user_string() for key in graph.materializable_asset_keys}
    unknown = sorted(set((tables or []) + (rebuild or [])) - runnable)
    if unknown:
        raise MegawattError(
            f"no table named {', '.join(unknown)} to run; the tables: {', '.join(sorted(runnable))}"
        )
    if rebuild and (start.isoformat() != days[0] or end.isoformat() != days[-1]):
        raise MegawattError(
            f"--rebuild {' '.join(rebuild)} makes the table(s) anew: it runs every declared day, "
            f"{days[0]} to {days[-1]} (give no --start and --end, or those)"
        )
    wanted = days[days.index(start.isoformat()) : days.index(end.isoformat()) + 1]
    size = chunk_days or len(wanted)
    chunks = [wanted[i : i + size] for i in range(0, len(wanted), size)]
    selection = [dg.AssetKey(t) for t in tables] if tables else None

    from pipelines.runs import Progress, open_instance, release_interrupted_runs

    skipped = 0
    with open_instance() as instance:
        release_interrupted_runs(instance)
        read_back = missing_lookback_days(instance, graph, selection, start, days)
        if read_back:  # e.g. the FX rate of the Thursday before an Easter Monday
            read_days = sorted(set().union(*read_back.values()))
            first, last = read_days[0], read_days[-1]
            names = ", ".join(key.to_user_string() for key in read_back)
            print(f"{names}: the days before {start} that the range reads back to "
                  f"({first} to {last}) were never materialised; running them first",
                  file=sys.stderr)  # fmt: skip
            # with what they are built from, should one of them be a derived table
            upstream = dg.AssetSelection.assets(*read_back).upstream().resolve(graph)
            runnable_upstream = sorted(upstream & graph.materializable_asset_keys)
            read_range = days[days.index(first) : days.index(last) + 1]
            progress = Progress(steps=len(runnable_upstream))
            if not execute(job, instance, read_range, runnable_upstream, progress):
                return False
        in_job = selection or job.asset_layer.selected_asset_keys  # not the observed sources
        steps = len([key for key in in_job if graph.has(key) and graph.get(key).is_executable])
        if not chunk_days:
            return execute(job, instance, wanted, selection, Progress(steps=steps), rebuild)
        done = completed_days(instance, graph, in_job)
        # in a terminal a bar, moved as each table of a run ends; else (or in a terminal that
        # says it has no width, where a bar draws nothing) a line per run
        width = _stderr_width()
        bar = tqdm(
            total=len(wanted), desc="backfill", disable=not width, file=sys.stderr,
            ncols=min(width, 100) or None,
            bar_format="{l_bar}{bar}| {n:.1f}/{total_fmt} days [{elapsed}<{remaining}]",
        )  # fmt: skip
        progress = Progress(bar=None if bar.disable else bar, steps=steps, tables=False)
        began, finished = time.monotonic(), 0
        for chunk in chunks:
            if set(chunk) <= done:  # an earlier (interrupted) backfill or run did these
                skipped += len(chunk)
            elif not execute(job, instance, chunk, selection, progress, rebuild):
                bar.close()
                return False
            finished += len(chunk)
            bar.n = finished  # exact, whatever the share of a run each table had
            bar.refresh()
            if bar.disable:
                elapsed = time.monotonic() - began
                ran = finished - skipped  # days run (not skipped) so far: the pace
                left = elapsed / ran * (len(wanted) - finished) if ran else None
                print(f"backfill: {chunk[0]} to {chunk[-1]} done, {finished} of {len(wanted)} "
                      f"days, {_duration(elapsed)} elapsed"
                      + (f", about {_duration(left)} left" if left is not None else ""),
                      file=sys.stderr, flush=True)  # fmt: skip
        bar.close()
    if skipped:
        print(
            f"{skipped} of {len(wanted)} day(s) were already materialised and were skipped; "
            "`megawatt run --start D --end D` runs days again",
            file=sys.stderr,
        )
    return True


def _stderr_width() -> int:
    """The width of the terminal stderr is, 0 if it is none."""
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns if sys.stderr.isatty() else 0
    except (OSError, ValueError):
        return 0


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes}:{seconds:02d}"


def execute(job, instance, chunk: list[str], assets: list | None, progress, rebuild=None) -> bool:
    """One run of `assets` (None: all) for the days of `chunk`, printed by `progress` as it
    goes; its last snapshot published for readers, whatever its end."""
    from dagster._core.storage.tags import (
        ASSET_PARTITION_RANGE_END_TAG,
        ASSET_PARTITION_RANGE_START_TAG,
    )

    from pipelines.assets import REBUILD_TAG
    from pipelines.runs import execute as execute_run

    tags = {ASSET_PARTITION_RANGE_START_TAG: chunk[0], ASSET_PARTITION_RANGE_END_TAG: chunk[-1]}
    if rebuild:
        tags[REBUILD_TAG] = ",".join(rebuild)
    progress.days = len(chunk)
    return execute_run(job, instance, tags, assets, progress, publish)


def publish(run_id: str | None) -> bool:
    """What readers see next: the run's tables, the failed ones as they were."""
    try:
        open_warehouse().publish(run_id)
    except MegawattError as e:
        print(f"FAILED {e}", file=sys.stderr)
        return False
    return True


def missing_lookback_days(instance, graph, selection, start: date, days: list[str]) -> dict:
    """Per upstream asset, the days before `start` that a selected asset reads back to
    (a `lookback_days` dependency) and no run has materialised: {asset key: {day, ...}}."""
    import dagster as dg

    first = days.index(start.isoformat())
    missing = {}
    for key in selection or graph.get_all_asset_keys():
        for parent in graph.get(key).parent_keys:
            mapping = graph.get_partition_mapping(key, parent)
            if (
                not isinstance(mapping, dg.TimeWindowPartitionMapping)
                or not mapping.start_offset
                or graph.get(parent).partitions_def is None
            ):
                continue
            before = days[max(0, first + mapping.start_offset) : first]
            absent = set(before) - instance.get_materialized_partitions(parent)
            if absent:
                missing.setdefault(parent, set()).update(absent)
    return missing


def completed_days(instance, graph, selection) -> set[str]:
    """Days every selected partitioned asset has materialised."""
    keys = [
        key for key in selection if graph.has(key) and graph.get(key).partitions_def is not None
    ]
    done = [instance.get_materialized_partitions(key) for key in keys]
    return set.intersection(*done) if done else set()


SUMMARY_SQL = """
SELECT scenario, site_id,
       avg(mining_margin_usd_per_mwh) AS mining,
       avg(ai_margin_usd_per_mwh) AS ai,
       avg(mining_margin_after_depreciation_usd_per_mwh) AS mining_net,
       avg(ai_margin_after_depreciation_usd_per_mwh) AS ai_net,
       any_value(ai_capex_usd_per_mw) / (avg(ai_uplift_usd_per_mw_day) * 365) AS payback_years,
       any_value(ai_capex_usd_per_mw) AS ai_capex_usd_per_mw,
       any_value(ai_basis) AS ai_basis,
       count(DISTINCT date) AS days
FROM site_economics_daily
WHERE date BETWEEN $start AND $end
GROUP BY ALL
ORDER BY scenario, site_id
"""


def open_warehouse():
    """The warehouse as assets/settings.yaml's profile declares it, in MEGAWATT_WAREHOUSE_DIR."""
    from pipelines.declarations import load_settings
    from pipelines.warehouse import warehouse_for

    return warehouse_for(load_settings(ASSETS_DIR), WAREHOUSE_DIR)


def print_summary(start: date, end: date) -> None:
    """Per scenario and site: mean margin per MWh of mining and AI, gross and net, which is
    better, and the payback of converting a megawatt to GPUs; then what the words mean."""
    from pipelines.declarations import load_infrastructure

    scenarios = load_infrastructure(ASSETS_DIR).scenarios
    with open_warehouse().reader() as con:
        rows = con.execute(SUMMARY_SQL, {"start": start, "end": end}).fetchall()
        sites = [s for (s,) in con.execute("SELECT site_id FROM sites ORDER BY 1").fetchall()]
    print(f"\nMargin per MWh, mean of UTC days {start} to {end}, USD")
    print(f"{'':<28}{' gross ':-^24}{'':5}{' net ':-^25}{'':2}{' 1 MW to GPUs ':-^17}")
    print(f"{'scenario':<10}{'site':<16}{'mining':>9}{'ai':>9}{'better':>8}"
          f"{'mining':>13}{'ai':>9}{'better':>8}{'capex':>10}{'payback':>9}")  # fmt: skip
    period_days = (end - start).days + 1
    # sites whose answer lacks days (their inputs were blocked or quarantined)
    answered = {r[1] for r in rows}
    short = {site: 0 for site in sites if site not in answered}
    for scenario, site, mining, ai, mining_net, ai_net, payback, capex, basis, days in rows:
        if days < period_days:
            short[site] = days
        better = "ai" if ai > mining else "mining"
        better_net = "ai" if ai_net > mining_net else "mining"
        payback_text = f"{payback:.1f} y" if payback and payback > 0 else "never"
        note = "" if basis == "own_fleet" else "  *"
        print(
            f"{scenario:<10}{site:<16}{mining:>9.2f}{ai:>9.2f}{better:>8}"
            f"{mining_net:>13.2f}{ai_net:>9.2f}{better_net:>8}"
            f"{f'${capex / 1e6:.1f}M':>10}{payback_text:>9}{note}"
        )
    print("gross: revenue less power; net: less the depreciation of the machines too")
    print("1 MW to GPUs: a MW converted from ASICs to GPUs: GPU capex, years for AI's gross uplift "
          "to repay it")  # fmt: skip
    for scenario in scenarios:
        print(f"{scenario.scenario}: {scenario.description}")
    print("* no GPUs at the site: AI valued at the reference GPU, market price and utilisation")
    for site, days in short.items():
        print(f"! {site}: {days} of {period_days} days (a missing day is not in its means)")
    print(f"\nSQL on the published warehouse: megawatt sql \"...\", or the duckdb CLI: "
          f"duckdb -init {WAREHOUSE_DIR / 'attach.sql'}")  # fmt: skip


TABLE_ROWS = 100  # rows the table view shows unless --max-rows says otherwise
BATCH = 10_000  # rows fetched at a time


def _row_count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"not a number of rows: {text!r}")
    return int(text)


def _read_sql(path: Path) -> str:
    if str(path) == "-":
        return sys.stdin.read()
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise MegawattError(f"cannot read the SQL in {path}: {e.strerror or e}") from None


def query_to(con, query: str, style: str, max_rows: int | None, out) -> None:
    """Run `query` (one statement or several: the last one's rows are shown) and write its rows
    to `out` as `style`: "table", "csv" or "json". At most `max_rows` rows (None: all, but
    TABLE_ROWS for a table); the rows cut are counted and said (on stderr for csv and json)."""
    import duckdb

    try:
        cursor = con.execute(query)
        if cursor.description is None:  # a statement without a result
            return
        names = [d[0] for d in cursor.description]
        types = [str(d[1]) for d in cursor.description]
        limit = TABLE_ROWS if max_rows is None and style == "table" else max_rows

        def rows():
            while True:
                batch = cursor.fetchmany(BATCH)
                if not batch:
                    return
                yield from batch

        every = rows()
        shown = every if limit is None else _first(every, limit)
        if style == "csv":
            _write_csv(names, shown, out)
        elif style == "json":
            _write_json(names, shown, out)
        else:
            shown = list(shown)
        cut = sum(1 for _ in every)  # what --max-rows left out (none when it is not given)
    except duckdb.Error as e:
        raise MegawattError(str(e)) from None
    if style == "table":
        _write_table(names, types, shown, cut, out)
    elif cut:
        print(f"megawatt: {cut} more row(s) not written (--max-rows {limit})", file=sys.stderr)


def _first(rows, n: int):
    for _, row in zip(range(n), rows, strict=False):
        yield row


def _write_csv(names: list[str], rows, out) -> None:
    import csv

    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(names)
    for row in rows:
        writer.writerow([_csv_value(v) for v in row])


def _csv_value(value):
    import json

    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(_json_value(value), ensure_ascii=False)
    return _text(value)


def _write_json(names: list[str], rows, out) -> None:
    """One JSON array of objects, a row per line: valid JSON for any reader, greppable."""
    import json

    out.write("[")
    for number, row in enumerate(rows):
        out.write(",\n" if number else "\n")
        record = {name: _json_value(value) for name, value in zip(names, row, strict=True)}
        out.write(json.dumps(record, ensure_ascii=False, allow_nan=False))
    out.write("\n]\n")


def _json_value(value):
    """A DuckDB value as JSON: dates and times ISO 8601, decimals as numbers, NaN and infinity
    as null (JSON has none), lists and structs as arrays and objects."""
    import datetime as dt
    import math
    from decimal import Decimal

    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (dt.date, dt.time)):  # datetime is a date
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    return str(value)


def _text(value) -> str:
    """A value as text in a table or CSV cell: dates and times ISO 8601."""
    import datetime as dt

    if value is None:
        return "NULL"
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return str(value)


def _terminal_width() -> int:
    """COLUMNS, else the width of the terminal the command runs in (its output may be piped)."""
    if os.environ.get("COLUMNS", "").isdigit():
        return int(os.environ["COLUMNS"])
    for stream in (sys.stdout, sys.stderr, sys.stdin):
        try:
            return os.get_terminal_size(stream.fileno()).columns
        except (AttributeError, ValueError, OSError):
            continue
    return 80


def _is_number(value) -> bool:
    from decimal import Decimal

    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def _write_table(names: list[str], types: list[str], rows: list, cut: int, out) -> None:
    """The rows as a box table, every column shown; when that is wider than the terminal, one
    `column = value` line per column per row instead (as the duckdb CLI's `.mode line`)."""
    cells = [[_text(v).replace("\n", "\\n") for v in row] for row in rows]
    widths = [
        max([len(name), len(type_), *(len(r[i]) for r in cells)])
        for i, (name, type_) in enumerate(zip(names, types, strict=True))
    ]
    numeric = [  # right-aligned
        any(r[i] is not None for r in rows) and all(r[i] is None or _is_number(r[i]) for r in rows)
        for i in range(len(names))
    ]
    width = sum(widths) + 3 * len(widths) + 1
    if width > _terminal_width() and len(names) > 1:
        label = max(len(n) for n in names)
        for number, row in enumerate(cells):
            if number:
                out.write("\n")
            for name, value in zip(names, row, strict=True):
                out.write(f"{name:>{label}} = {value}\n")
    else:

        def line(left, middle, right):
            return left + middle.join("─" * (w + 2) for w in widths) + right + "\n"

        def cells_line(values, right_aligned):
            return (
                "│"
                + "│".join(
                    f" {v:>{w}} " if r else f" {v:<{w}} "
                    for v, w, r in zip(values, widths, right_aligned, strict=True)
                )
                + "│\n"
            )

        out.write(line("┌", "┬", "┐"))
        out.write(cells_line(names, [False] * len(names)))
        out.write(cells_line(types, [False] * len(names)))
        out.write(line("├", "┼", "┤"))
        for row in cells:
            out.write(cells_line(row, numeric))
        out.write(line("└", "┴", "┘"))
    total = len(rows) + cut
    summary = f"{total} row(s), {len(names)} column(s)"
    if cut:
        summary += (
            f"; the first {len(rows)} shown, {cut} cut "
            "(--max-rows N shows more; --csv and --json write every row)"
        )
    out.write(summary + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="megawatt", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="materialise every table for a range of days")
    run_parser.add_argument("--start", type=date.fromisoformat, help="first UTC day (inclusive)")
    run_parser.add_argument("--end", type=date.fromisoformat, help="last UTC day (inclusive)")
    run_parser.add_argument(
        "--select", nargs="+", metavar="TABLE", help="only these tables (e.g. one source)"
    )
    run_parser.add_argument(
        "--rebuild",
        nargs="+",
        metavar="TABLE",
        help="make these tables anew from their contracts, for every declared day (a change of "
        "shape that cannot keep their stored rows)",
    )
    backfill_parser = commands.add_parser(
        "backfill", help="materialise a range of days in chunks, resuming where it stopped"
    )
    backfill_parser.add_argument("--start", type=date.fromisoformat, required=True)
    backfill_parser.add_argument("--end", type=date.fromisoformat, required=True)
    backfill_parser.add_argument("--chunk-days", type=int, default=30, help="days per run")
    backfill_parser.add_argument("--select", nargs="+", metavar="TABLE", help="only these tables")
    sql_parser = commands.add_parser("sql", help="query the published warehouse")
    sql_parser.add_argument("query", nargs="?", help="the SQL (or -f FILE)")
    sql_parser.add_argument(
        "-f", "--file", type=Path, metavar="FILE", help="read the SQL from FILE (- for stdin)"
    )
    output = sql_parser.add_mutually_exclusive_group()
    output.add_argument("--csv", action="store_true", help="CSV with a header, every row")
    output.add_argument(
        "--json", action="store_true", help="one JSON array of objects (dates ISO 8601), every row"
    )
    sql_parser.add_argument(
        "--max-rows",
        type=_row_count,
        metavar="N",
        help=f"at most N rows (default: all for --csv and --json, {TABLE_ROWS} for the table)",
    )
    sql_parser.add_argument(
        "--as-of",
        metavar="RUN_OR_TIME",
        help="the warehouse as published by that run (its id, or the first 8 characters), or "
        "at that UTC time (2024-05-02, 2024-05-02T06:30)",
    )
    commands.add_parser(
        "migrate", help="move the tables of an old warehouse/pipeline.duckdb into the lake"
    )
    ui_parser = commands.add_parser("ui", help="start the Dagster UI (dg dev)")
    ui_parser.add_argument("--port", type=int, default=3000, help="its port (default 3000)")
    args = parser.parse_args(argv)

    if args.command == "run":
        from pipelines.declarations import load_settings

        period = load_settings(ASSETS_DIR).sample_period
        start = args.start or period.start_date
        end = args.end or period.end_date
        if args.rebuild and not (args.start or args.end):
            declared = load_settings(ASSETS_DIR).partitions
            start, end = declared.start_date, declared.end_date or date.today()
        if not run(start, end, args.select, rebuild=args.rebuild):
            return 1
        if args.select:
            print(f"materialised {', '.join(args.select)} for UTC days {start} to {end}")
        else:
            print_summary(start, end)
        return 0
    if args.command == "backfill":
        return 0 if run(args.start, args.end, args.select, chunk_days=args.chunk_days) else 1
    if args.command == "sql":
        if (args.query is None) == (args.file is None):
            sql_parser.error("give the SQL as an argument or in a file (-f FILE), not both")
        query = args.query if args.file is None else _read_sql(args.file)
        style = "csv" if args.csv else "json" if args.json else "table"
        with open_warehouse().reader(args.as_of) as con:
            query_to(con, query, style, args.max_rows, sys.stdout)
        return 0
    if args.command == "migrate":
        moved = open_warehouse().migrate_legacy()
        print(f"moved {len(moved)} table(s) into the lake: {', '.join(moved)}")
        return 0
    if args.command == "ui":
        prepare_dagster_home()  # its dagster.yaml turns telemetry off, for dg too
        os.chdir(PROJECT_DIR)
        # `dg dev`, as Dagster recommends (`dagster dev` warns it is superseded by it), on the
        # workspace file; dg of this environment, beside its Python
        dg = Path(sys.executable).parent / "dg"
        program = str(dg) if dg.exists() else "dg"
        os.execvp(program, [program, "dev", "-w", str(PROJECT_DIR / "workspace.yaml"),
                            "-p", str(args.port)])  # fmt: skip
    return 2


def entry_point() -> int:
    """`megawatt`: our own errors are shown as one line, not a traceback; so is Ctrl-C."""
    try:
        return main()
    except RunCanceled as e:
        print(f"megawatt: {e}", file=sys.stderr)
        return INTERRUPTED_EXIT
    except KeyboardInterrupt:  # outside a run: nothing was being written
        print("megawatt: interrupted", file=sys.stderr)
        return INTERRUPTED_EXIT
    except MegawattError as e:
        print(f"megawatt: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(entry_point())
