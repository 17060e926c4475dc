"""Machine-level ASIC telemetry: a deterministic generator, and the scan of drop files.

Fleet-management software and miner firmware report every machine every 10 minutes: hashrate,
power at the wall, chip temperature, fan speed and status. 100,000 machines make 14.4 million rows
a day, so both the generator and the scan are DuckDB queries: the rows stream from `range()` or
from the files into DuckDB and never become Python objects.

The generator spreads `machines` over the declared ASIC fleets (in proportion to their units) and
draws every value from a hash of (seed, machine, slot): the same arguments give the same rows, in
any process and on any number of threads. What it models:
- faults: on a machine-day with probability `fault_share`, the machine stops (status `fault`,
  no hashrate, a few watts) from a random slot for 1 to 24 hours;
- curtailment: each site-hour is curtailed with probability `curtail_share` (status `curtailed`,
  every machine of the site idles at 12 W);
- hot machines: 1 % run 20 degrees hotter than the rest (over the 85 C limit);
- ageing: 10 % draw more power as the days pass, 0.1 % more per day (efficiency drift).
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from pipelines.batch import Scan, Window
from pipelines.sqltext import literal

SLOTS_PER_DAY = 144  # one row per machine every 10 minutes
AGEING_FROM = date(2024, 1, 1)  # the day the ageing machines start drifting


def generate_sql(
    machines: int,
    window: Window,
    *,
    site_id: str | None = None,
    seed: int = 7,
    fault_share: float = 0.02,
    curtail_share: float = 0.01,
) -> str:
    """A query whose rows are the telemetry of `machines` machines (of `site_id`'s only, if
    given) for the UTC days of `window`. It reads the fleets from table `asic_fleet`."""
    # u(k): the k-th 16 bits of a hash as a uniform draw in [0, 1)
    u = "((({h} >> {shift}) & 65535) / 65536.0)"
    where_site = "" if site_id is None else f"WHERE site_id = {literal(site_id)}"
    per_slot, per_day, per_machine = "h_slot", "h_day", "h_machine"
    return f"""
WITH cumulative AS (
    SELECT *, sum(units) OVER (ORDER BY site_id, model) AS units_to_here,
           sum(units) OVER () AS all_units
    FROM asic_fleet
), fleet AS (  -- machines [first_machine, end_machine) belong to this fleet
    SELECT site_id, model, th_per_unit, watts_per_unit,
           CAST(round({machines} * (units_to_here - units) / all_units) AS BIGINT) AS first_machine,
           CAST(round({machines} * units_to_here / all_units) AS BIGINT) AS end_machine
    FROM cumulative
), machines AS (
    SELECT fleet.*, n, site_id || '-' || lpad(CAST(n AS VARCHAR), 6, '0') AS machine_id,
           hash({seed}, n) AS h_machine
    FROM fleet, LATERAL range(first_machine, end_machine) AS machine(n)
    {where_site}
), slots AS (
    SELECT ts, CAST(ts AS DATE) AS day, CAST(epoch(ts) AS BIGINT) // 600 AS slot,
           hour(ts) AS hour_of_day,
           (CAST(epoch(ts) AS BIGINT) // 600) % {SLOTS_PER_DAY} AS slot_of_day
    FROM range(TIMESTAMPTZ '{window.start} 00:00:00+00', TIMESTAMPTZ '{window.end} 00:00:00+00',
               INTERVAL 10 MINUTE) AS t(ts)
), draws AS (
    SELECT machines.*, slots.*,
           hash({seed}, n, slot) AS h_slot,
           hash({seed}, n, day) AS h_day,
           {u.format(h=f"hash({seed}, site_id, day, hour_of_day)", shift=0)} AS u_site_hour
    FROM machines, slots
), states AS (
    SELECT *,
        CASE
            WHEN {u.format(h=per_day, shift=0)} < {fault_share}
                 AND slot_of_day >= floor({u.format(h=per_day, shift=16)} * {SLOTS_PER_DAY})
                 AND slot_of_day < floor({u.format(h=per_day, shift=16)} * {SLOTS_PER_DAY})
                                   + 6 + floor({u.format(h=per_day, shift=32)} * 138)
                THEN 'fault'
            WHEN u_site_hour < {curtail_share} THEN 'curtailed'
            ELSE 'hashing'
        END AS status,
        {u.format(h=per_machine, shift=0)} >= 0.99 AS runs_hot,
        CASE WHEN {u.format(h=per_machine, shift=16)} >= 0.90
             THEN 0.001 * (day - DATE '{AGEING_FROM}') ELSE 0 END AS ageing
    FROM draws
)
SELECT
    machine_id, site_id, model, ts,
    CASE WHEN status = 'hashing'
         THEN round(th_per_unit * (0.97 + 0.06 * {u.format(h=per_slot, shift=0)}), 2)
         ELSE 0 END AS hashrate_th_s,
    round(CASE status
        WHEN 'hashing' THEN watts_per_unit * (0.98 + 0.04 * {u.format(h=per_slot, shift=16)})
                            * (1 + ageing)
        WHEN 'curtailed' THEN 12
        ELSE 5 * {u.format(h=per_slot, shift=16)}
    END, 1) AS power_w,
    round(CASE WHEN status = 'hashing'
               THEN 64 + 10 * {u.format(h=per_slot, shift=32)} + 20 * CAST(runs_hot AS INTEGER)
               ELSE 22 + 6 * {u.format(h=per_slot, shift=32)} END, 1) AS chip_temp_c,
    CAST(CASE status WHEN 'hashing' THEN 4200 + 2400 * {u.format(h=per_slot, shift=48)}
                     WHEN 'curtailed' THEN 900 ELSE 0 END AS INTEGER) AS fan_rpm,
    status
FROM states
"""


def write_files(
    fleets: list[dict],
    machines: int,
    start: date,
    days: int,
    out: Path,
    *,
    file_format: str = "parquet",
    **options,
) -> list[Path]:
    """Telemetry of `machines` spread over `fleets` (asic_fleet rows), one file per site and UTC
    day: `<out>/telemetry_<site>_<day>.<parquet|csv>`."""
    import duckdb
    import polars as pl

    out.mkdir(parents=True, exist_ok=True)
    written = []
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    con.register("declared", pl.DataFrame(fleets))
    con.execute("CREATE TABLE asic_fleet AS SELECT * FROM declared")
    copy_options = {"parquet": "FORMAT parquet, COMPRESSION zstd", "csv": "FORMAT csv, HEADER"}
    for site in sorted({f["site_id"] for f in fleets}):
        for offset in range(days):
            day = start + timedelta(days=offset)
            path = out / f"telemetry_{site}_{day}.{file_format}"
            query = generate_sql(
                machines, Window(day, day + timedelta(days=1)), site_id=site, **options
            )
            con.execute(
                f"COPY ({query} ORDER BY ts, machine_id) TO {literal(str(path))} "
                f"({copy_options[file_format]})"
            )
            written.append(path)
    con.close()
    return written


def scan_sql(files: list[Path]) -> Scan:
    """A query over telemetry drop files with `_source` (the file) and `_row` (its row, or line
    for CSV), for the warehouse to validate where they lie. Parquet keeps its types (and is
    validated without a copy); CSV arrives as text and is typed by the contract's casts."""
    listing = ", ".join(literal(str(f)) for f in files)
    parquet = [f for f in files if f.suffix == ".parquet"]
    if len(parquet) == len(files):
        return Scan(
            "SELECT * EXCLUDE (filename, file_row_number), filename AS _source, "
            "file_row_number + 1 AS _row FROM read_parquet("
            f"[{listing}], filename = true, file_row_number = true, union_by_name = true)"
        )
    if parquet:
        raise ValueError("telemetry files of one window must all be Parquet or all CSV")
    # a CSV line number: the header is line 1; DuckDB keeps each file's rows in order
    return Scan(
        "SELECT * EXCLUDE (filename), filename AS _source, "
        "row_number() OVER (PARTITION BY filename) + 1 AS _row FROM read_csv("
        f"[{listing}], filename = true, union_by_name = true, all_varchar = true, header = true)"
    )
