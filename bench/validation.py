"""Benchmark: the project's contract validation (Great Expectations deciding, DuckDB explaining
the failures) against the floor, the same rules written by hand as one plain DuckDB SQL query,
on the same generated table, in one run.

    uv run python bench/validation.py [--rows 10000000]

Each variant runs in its own process (so its peak memory is its own), on a table of
`mining_output_daily` rows (date, site_id, btc_mined, hashrate_th_s, uptime_pct, energy_mwh) with a
few bad rows, checked against data_contracts/mining_output_daily.odcs.yaml: 6 not-nulls, 4 ranges,
the site is declared, hashrate needs energy, no future day, within the batch's days, the key is
unique, rows per day.
Prints seconds, peak RSS and the ratio; the target is validation <= 3x the plain query.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb

from pipelines.batch import Window

SITES = 40_000  # keys must be unique per (date, site_id): rows / SITES days


def build(path: Path, rows: int) -> None:
    con = duckdb.connect(str(path))
    days = -(-rows // SITES)
    con.execute(f"""
        CREATE TABLE sites AS SELECT 'site-' || i AS site_id FROM range({SITES}) t(i);
        CREATE TABLE incoming AS
        SELECT DATE '2020-01-01' + CAST(i // {SITES} AS INTEGER) AS date,
               'site-' || (i % {SITES}) AS site_id,
               (i % 97) / 1000.0 AS btc_mined,
               CASE WHEN i % 1000003 = 7 THEN -5.0 ELSE 1000.0 + (i % 500) END AS hashrate_th_s,
               CASE WHEN i % 1000033 = 11 THEN 140.0 ELSE 90.0 + (i % 10) END AS uptime_pct,
               1.5 + (i % 7) AS energy_mwh,
               'bench.csv' AS _source, i + 2 AS _row
        FROM range({rows}) t(i)
    """)
    con.close()
    print(f"table: {rows:,} rows over {days} days and {SITES:,} sites")


PLAIN = """
SELECT count(*) FILTER (WHERE date IS NULL), count(*) FILTER (WHERE site_id IS NULL),
       count(*) FILTER (WHERE btc_mined IS NULL), count(*) FILTER (WHERE hashrate_th_s IS NULL),
       count(*) FILTER (WHERE uptime_pct IS NULL), count(*) FILTER (WHERE energy_mwh IS NULL),
       count(*) FILTER (WHERE NOT (btc_mined BETWEEN 0 AND 1000)),
       count(*) FILTER (WHERE NOT (hashrate_th_s >= 0)),
       count(*) FILTER (WHERE NOT (uptime_pct BETWEEN 0 AND 100)),
       count(*) FILTER (WHERE NOT (energy_mwh >= 0)),
       count(*) FILTER (WHERE NOT (site_id IN (SELECT site_id FROM sites))),
       count(*) FILTER (WHERE NOT (hashrate_th_s = 0 OR energy_mwh > 0)),
       count(*) FILTER (WHERE NOT (date <= CAST(now() AS DATE))),
       count(*) FILTER (WHERE NOT (date >= DATE '2020-01-01' AND date < $end)),
       (SELECT count(*) FROM (SELECT date, site_id FROM incoming GROUP BY ALL HAVING count(*) > 1)),
       (SELECT count(*) FROM (SELECT date FROM incoming GROUP BY ALL
                              HAVING count(*) NOT BETWEEN 1 AND 1000000))
FROM incoming
"""


def measure(variant: str, path: Path) -> dict:
    config = {}
    if variant != "plain_sql":  # the pipeline's writer works within its declared memory limit
        from pipelines.declarations import load_settings
        from pipelines.settings import ASSETS_DIR

        config = {"memory_limit": load_settings(ASSETS_DIR).warehouse.memory_limit}
    con = duckdb.connect(str(path), config=config)
    con.execute("SET TimeZone = 'UTC'")
    imported = time.perf_counter()
    if variant != "plain_sql":  # imported outside the timing: a run pays it once, not per table
        from pipelines.contracts import load_contracts
        from pipelines.expectations import _gx
        from pipelines.validation import validate

        _gx()
    imported = time.perf_counter() - imported
    (days,) = con.execute("SELECT max(date) - DATE '2020-01-01' + 1 FROM incoming").fetchone()
    window = Window(date(2020, 1, 1), date(2020, 1, 1) + timedelta(days=days))
    start = time.perf_counter()
    if variant == "plain_sql":
        failures = sum(con.execute(PLAIN, {"end": window.end}).fetchone())
    else:
        contract = load_contracts()["mining_output_daily"]
        # the rows-per-day bound of the real contract is per site count; widen it for the bench
        contract = type(contract)(
            contract.table, contract.description, contract.columns,
            tuple(r if not r.row_count_between else type(r)(r.name, r.description, r.severity,
                  row_count_between=(1, 1_000_000)) for r in contract.rules),
            contract.path, contract.quarantine,
        )  # fmt: skip
        con.execute("BEGIN TRANSACTION")
        # as a run validates a batch: for its days, rows per day counted per day
        validation = validate(con, contract, "incoming", "bench.csv", window, "date")
        failures = sum(r.rows for r in validation.failures)
        con.execute("ROLLBACK")
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"variant": variant, "seconds": seconds, "peak_mb": peak_mb, "failures": failures,
            "import_s": imported}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--measure", nargs=2, metavar=("VARIANT", "DB"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure[0], Path(args.measure[1]))))
        return
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.duckdb"
        build(path, args.rows)
        results = {}
        for variant in ("plain_sql", "project_validation"):
            out = subprocess.run(
                [sys.executable, __file__, "--measure", variant, str(path)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            results[variant] = json.loads(out.stdout.strip().splitlines()[-1])
            r = results[variant]
            print(
                f"{variant:<20} {r['seconds']:7.2f} s  peak {r['peak_mb']:7.0f} MB  failing "
                f"rows/keys found: {r['failures']}  (imports {r['import_s']:.1f} s)"
            )
    ratio = results["project_validation"]["seconds"] / results["plain_sql"]["seconds"]
    print(f"ratio project/plain: {ratio:.2f} (target <= 3.00) on {date.today()}")


if __name__ == "__main__":
    main()
