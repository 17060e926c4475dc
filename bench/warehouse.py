"""Benchmark: a daily run's cost as the warehouse grows (100 MB, 1 GB, 10 GB of DuckLake data).

    uv run python bench/warehouse.py [--machines 100000] [--sizes-gb 0.1 1 10] [--work DIR]

One warehouse is built through the pipeline's own writer (`Warehouse.write`: stage, Great
Expectations validation against the miner_telemetry_daily contract, replace the window, commit)
from synthetic years of fleet rollups: one row per machine and UTC day, a month per write. Each
time its Parquet data passes the next size, five daily runs are timed there: the next UTC day's
rollup written and published, as the daily run writes it. Printed per size: the fastest seconds,
the bytes a daily run wrote (new Parquet files and the catalog's growth) and the data files.
Target: the daily run at 10 GB takes at most 1.2x the one at 100 MB, and writes as many bytes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time
from datetime import date, timedelta
from pathlib import Path

from pipelines.batch import Window
from pipelines.contracts import load_contracts
from pipelines.warehouse import Warehouse

TABLE = "miner_telemetry_daily"
FIRST_DAY = date(2010, 1, 1)  # synthetic history: as many years as the sizes need
MONTH = 30

ROWS = """
SELECT CAST(day AS DATE) AS date,
       'm' || lpad(CAST(m AS VARCHAR), 7, '0') AS machine_id,
       'site-' || CAST(m % 8 AS VARCHAR) AS site_id,
       ['S19 XP', 'S21', 'M60S'][1 + m % 3] AS model,
       144 AS samples,
       CAST(120 + h % 15 AS BIGINT) AS hashing_samples,
       CAST((h >> 8) % 10 AS BIGINT) AS curtailed_samples,
       CAST(24 - h % 15 - (h >> 8) % 10 AS BIGINT) AS fault_samples,
       -- measured values: full precision, as a fleet's exports carry them
       140 * (0.9 + (h % 1000003) / 1e7) AS hashrate_th_s,
       72 * (0.95 + ((h >> 20) % 1000003) / 1e7) AS energy_kwh,
       70 * (0.95 + ((h >> 20) % 1000003) / 1e7) AS hashing_energy_kwh,
       round(60 + ((h >> 40) % 300) / 10.0, 1) AS max_chip_temp_c,
       CAST((h >> 32) % 3 AS BIGINT) AS over_temp_samples
FROM range($start::TIMESTAMP, $end::TIMESTAMP, INTERVAL 1 DAY) AS days(day),
     range($machines) AS machines(m),
     LATERAL (SELECT hash(m, day) AS h)
"""


def files(warehouse: Warehouse) -> dict[str, int]:
    data = Path(warehouse.lake.data_path)
    return {str(p): p.stat().st_size for p in data.rglob("*.parquet")}


def write(warehouse: Warehouse, contract, window: Window, machines: int, run_id: str) -> None:
    params = {"start": window.start, "end": window.end, "machines": machines}
    warehouse.write(contract, ROWS, origin="bench", window=window, partition_column="date",
                    params=params, run_id=run_id)  # fmt: skip


def daily_runs(warehouse: Warehouse, contract, day: date, machines: int, runs: int = 5):
    """Time `runs` daily runs from `day` on: (fastest seconds, median bytes written). The
    fastest, because another process on the machine only ever slows a run down."""
    seconds, written = [], []
    catalog = warehouse.lake.catalog_file
    for n in range(runs):
        before, catalog_before = files(warehouse), catalog.stat().st_size
        window = Window(day + timedelta(days=n), day + timedelta(days=n + 1))
        started = time.perf_counter()
        write(warehouse, contract, window, machines, f"daily-{day}-{n}")
        warehouse.publish(f"daily-{day}-{n}")
        seconds.append(time.perf_counter() - started)
        after = files(warehouse)
        new = sum(size for path, size in after.items() if path not in before)
        written.append(new + max(0, catalog.stat().st_size - catalog_before))
    return min(seconds), statistics.median(written)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--machines", type=int, default=100_000)
    parser.add_argument("--sizes-gb", type=float, nargs="+", default=[0.1, 1.0, 10.0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/megawatt-bench-warehouse"))
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    warehouse = Warehouse(args.work, memory_limit="1GB")
    contract = load_contracts()[TABLE]
    rows = []
    day, built = FIRST_DAY, 0.0
    started = time.perf_counter()
    for size_gb in sorted(args.sizes_gb):
        while sum(files(warehouse).values()) < size_gb * 1e9:
            window = Window(day, day + timedelta(days=MONTH))
            write(warehouse, contract, window, args.machines, f"build-{day}")
            day = window.end
        warehouse.publish(None)
        data_bytes = sum(files(warehouse).values())
        built = time.perf_counter() - started
        seconds, written = daily_runs(warehouse, contract, day, args.machines)
        day += timedelta(days=5)
        rows.append((size_gb, data_bytes, len(files(warehouse)), seconds, written))
        print(f"{data_bytes / 1e9:7.2f} GB in {len(files(warehouse)):5d} files "
              f"(built in {built:6.0f} s): daily run {seconds:6.2f} s, "
              f"{written / 1e6:6.2f} MB written", flush=True)  # fmt: skip
    first, last = rows[0], rows[-1]
    print(f"\n{args.machines:,} machines; rows per day {args.machines:,}; pid {os.getpid()}")
    print(f"daily run at {last[1] / 1e9:.1f} GB / at {first[1] / 1e9:.2f} GB: "
          f"{last[3] / first[3]:.2f}x time (target <= 1.2), "
          f"{last[4] / first[4]:.2f}x bytes written")  # fmt: skip


if __name__ == "__main__":
    main()
