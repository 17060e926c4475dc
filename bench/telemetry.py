"""Benchmark: machine telemetry at fleet scale, and the main job against Dagster's own floor.

    uv run python bench/telemetry.py [--machines 100000] [--days 7] [--backfill-days 30]

On the same generated telemetry (pipelines/telemetry.py: --machines over the declared fleets,
one Parquet file per site and day, made once into --data and reused), in one run, each variant in
its own process (so its peak memory is its own):
  (a) the pipeline materialising miner_telemetry_daily for one day (scan, Great Expectations over
      both contracts, quarantine, rollup, write, publish), in a Dagster run;
  (b) the floor: the same rule checks and the same rollup as hand-written DuckDB SQL over the
      same files, written to a table;
  (c) a straightforward pandas version (read the day, check with masks, group by);
then (a) over --days days in one run (peak memory should grow less than linearly), and a
backfill of --backfill-days days in one run (time per day against a single day's);
and the README's main job (`megawatt run` on the sample) against `dagster asset materialize` of
one trivial asset. Prints seconds, rows per second, peak RSS and the ratios.
Targets: (a)/(b) <= 1.5, (a) < 2 GB, main job <= 2.5x the trivial asset.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
FIRST_DAY = date(2024, 4, 1)
DAY_SQL = "TIMESTAMPTZ '{start}' AND TIMESTAMPTZ '{end}'"

# -- the variants, each run as `python bench/telemetry.py --variant NAME ...` ------------------


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # KiB on Linux


def _day_files(data: Path, days: int) -> list[str]:
    wanted = {(FIRST_DAY + timedelta(days=i)).isoformat() for i in range(days)}
    return sorted(str(p) for p in data.glob("*.parquet") if p.stem[-10:] in wanted)


def variant_pipeline(data: Path, days: int, work: Path) -> dict:
    """(a): the project's Dagster asset, in a Dagster run on a copy of the declarations whose
    miner_telemetry source reads the generated files."""
    import yaml

    assets, contracts = work / "assets", work / "data_contracts"
    shutil.copytree(PROJECT / "assets", assets)
    shutil.copytree(PROJECT / "data_contracts", contracts)
    sources = yaml.safe_load((assets / "sources.yaml").read_text())
    telemetry = sources["sources"]["miner_telemetry"]
    telemetry["connectors"] = {"telemetry_drop": {"folder": str(data)}}
    telemetry["days_per_write"] = 1  # as for a fleet's exports (the sample writes all at once)
    (assets / "sources.yaml").write_text(yaml.safe_dump(sources))
    settings = yaml.safe_load((assets / "settings.yaml").read_text())
    settings["partitions"]["end_date"] = "2024-12-31"
    (assets / "settings.yaml").write_text(yaml.safe_dump(settings))

    import dagster as dg
    import great_expectations  # noqa: F401  (imported before the clock starts, as in a run)
    from dagster._core.storage.tags import (
        ASSET_PARTITION_RANGE_END_TAG,
        ASSET_PARTITION_RANGE_START_TAG,
    )

    from pipelines.definitions import DAILY_JOB, build_definitions

    defs = build_definitions(assets, contracts, work / "warehouse")
    job = defs.resolve_job_def(DAILY_JOB)
    quiet = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
    with dg.DagsterInstance.ephemeral() as instance:
        reference = [dg.AssetKey(k) for k in ("sites", "asic_fleet")]
        job.execute_in_process(instance=instance, asset_selection=reference, run_config=quiet)
        last = FIRST_DAY + timedelta(days=days - 1)
        started = time.perf_counter()
        result = job.execute_in_process(
            instance=instance,
            asset_selection=[dg.AssetKey("miner_telemetry_daily")],
            tags={ASSET_PARTITION_RANGE_START_TAG: FIRST_DAY.isoformat(),
                  ASSET_PARTITION_RANGE_END_TAG: last.isoformat()},
            run_config=quiet,
            raise_on_error=True,
        )  # fmt: skip
        seconds = time.perf_counter() - started
    assert result.success
    from pipelines.warehouse import Warehouse

    with Warehouse(work / "warehouse").latest() as con:
        (stored,) = con.execute("SELECT count(*) FROM miner_telemetry_daily").fetchone()
    return {"seconds": seconds, "peak_gb": _peak_gb(), "stored_rows": stored}


FLOOR_CHECKS = """
SELECT count(*) AS rows,
  count(*) FILTER (WHERE machine_id IS NULL OR ts IS NULL OR site_id IS NULL OR model IS NULL
                   OR hashrate_th_s IS NULL OR power_w IS NULL OR chip_temp_c IS NULL
                   OR fan_rpm IS NULL OR status IS NULL) AS nulls,
  count(*) FILTER (WHERE NOT hashrate_th_s BETWEEN 0 AND 2000) AS hashrate_range,
  count(*) FILTER (WHERE NOT power_w BETWEEN 0 AND 20000) AS power_range,
  count(*) FILTER (WHERE NOT chip_temp_c BETWEEN -40 AND 150) AS temp_range,
  count(*) FILTER (WHERE NOT fan_rpm BETWEEN 0 AND 20000) AS fan_range,
  count(*) FILTER (WHERE status NOT IN ('hashing', 'curtailed', 'fault')) AS status_values,
  count(*) FILTER (WHERE fleet.site_id IS NULL) AS fleet_declared,
  count(*) FILTER (WHERE epoch(ts) % 600 <> 0) AS on_slots,
  count(*) FILTER (WHERE NOT (status <> 'hashing' OR (hashrate_th_s > 0 AND power_w > 0)))
    AS hashing_has_hashrate,
  count(*) FILTER (WHERE NOT ts >= $start AND ts < $end) AS within_partition
FROM telemetry LEFT JOIN (SELECT DISTINCT site_id, model FROM asic_fleet) AS fleet
  USING (site_id, model)
"""
FLOOR_UNIQUE = (
    "SELECT count(*) FROM (SELECT machine_id, ts FROM telemetry GROUP BY ALL HAVING count(*) > 1)"
)


def variant_floor(data: Path, days: int, work: Path) -> dict:
    """(b): the same checks and rollup as plain DuckDB SQL over the same files."""
    import duckdb

    rollup = (PROJECT / "assets" / "rollups" / "miner_telemetry_daily.sql").read_text()
    rollup = rollup.replace("FROM new", "FROM telemetry")
    con = duckdb.connect(str(work / "floor.duckdb"))
    con.execute("SET TimeZone = 'UTC'")
    con.execute(
        "CREATE TABLE asic_fleet AS SELECT * FROM read_json($path)",
        {"path": str(work / "asic_fleet.json")},
    )
    files = _day_files(data, days)
    con.execute(f"CREATE VIEW telemetry AS SELECT * FROM read_parquet({files})")
    started = time.perf_counter()
    window = {"start": f"{FIRST_DAY} 00:00:00+00",
              "end": f"{FIRST_DAY + timedelta(days=days)} 00:00:00+00"}  # fmt: skip
    checks = con.execute(FLOOR_CHECKS, window).fetchone()
    (duplicated,) = con.execute(FLOOR_UNIQUE).fetchone()
    con.execute(f"CREATE TABLE miner_telemetry_daily AS {rollup}")
    seconds = time.perf_counter() - started
    (stored,) = con.execute("SELECT count(*) FROM miner_telemetry_daily").fetchone()
    assert not any(checks[1:]) and not duplicated, (checks, duplicated)
    return {"seconds": seconds, "peak_gb": _peak_gb(), "stored_rows": stored, "rows": checks[0]}


def variant_pandas(data: Path, days: int, work: Path) -> dict:
    """(c): what one writes first in pandas: read the day, check with masks, group by."""
    import pandas as pd

    fleet = pd.read_json(work / "asic_fleet.json")
    started = time.perf_counter()
    frame = pd.concat(pd.read_parquet(f) for f in _day_files(data, days))
    declared = frame.set_index(["site_id", "model"]).index.isin(
        fleet.set_index(["site_id", "model"]).index
    )
    failures = {
        "nulls": int(frame.isna().any(axis=1).sum()),
        "hashrate_range": int((~frame.hashrate_th_s.between(0, 2000)).sum()),
        "power_range": int((~frame.power_w.between(0, 20000)).sum()),
        "temp_range": int((~frame.chip_temp_c.between(-40, 150)).sum()),
        "fan_range": int((~frame.fan_rpm.between(0, 20000)).sum()),
        "status_values": int((~frame.status.isin(["hashing", "curtailed", "fault"])).sum()),
        "fleet_declared": int((~declared).sum()),
        "on_slots": int(((frame.ts.dt.minute % 10 != 0) | (frame.ts.dt.second != 0)).sum()),
        "hashing_has_hashrate": int(
            ((frame.status == "hashing") & ~((frame.hashrate_th_s > 0) & (frame.power_w > 0))).sum()
        ),
        "duplicated": int(frame.duplicated(["machine_id", "ts"]).sum()),
    }
    frame["date"] = frame.ts.dt.date
    hashing = frame.status == "hashing"
    frame = frame.assign(
        hashing=hashing, curtailed=frame.status == "curtailed", fault=frame.status == "fault",
        hashing_power_w=frame.power_w.where(hashing, 0), over_temp=frame.chip_temp_c > 85,
    )  # fmt: skip
    rollup = frame.groupby(["date", "machine_id"]).agg(
        site_id=("site_id", "first"), model=("model", "first"), samples=("ts", "size"),
        hashing_samples=("hashing", "sum"), curtailed_samples=("curtailed", "sum"),
        fault_samples=("fault", "sum"), hashrate=("hashrate_th_s", "sum"),
        power=("power_w", "sum"), hashing_power=("hashing_power_w", "sum"),
        max_chip_temp_c=("chip_temp_c", "max"), over_temp_samples=("over_temp", "sum"),
    )  # fmt: skip
    rollup["hashrate_th_s"] = rollup.pop("hashrate") / 144
    rollup["energy_kwh"] = rollup.pop("power") / 6 / 1000
    rollup["hashing_energy_kwh"] = rollup.pop("hashing_power") / 6 / 1000
    seconds = time.perf_counter() - started
    assert not any(failures.values()), failures
    return {"seconds": seconds, "peak_gb": _peak_gb(), "stored_rows": len(rollup)}


VARIANTS = {"pipeline": variant_pipeline, "floor": variant_floor, "pandas": variant_pandas}


def measure(name: str, data: Path, days: int) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as work:
        (Path(work) / "asic_fleet.json").write_text(json.dumps(_fleets()))
        done = subprocess.run(
            [sys.executable, __file__, "--variant", name, "--data", str(data),
             "--days", str(days), "--work", work],
            capture_output=True, text=True, cwd=PROJECT,
        )  # fmt: skip
    if done.returncode:
        sys.exit(f"variant {name} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _fleets() -> list[dict]:
    from pipelines.declarations import load_infrastructure

    return [f.model_dump() for f in load_infrastructure(PROJECT / "assets").asic_fleet]


def generate(data: Path, machines: int, days: int) -> None:
    """The generated telemetry, made once per (machines, days) and reused."""
    from pipelines.telemetry import write_files

    stamp = data / f".generated-{machines}-machines"
    have = len(_day_files(data, days)) if stamp.exists() else 0
    sites = len({f["site_id"] for f in _fleets()})
    if have == sites * days:
        return
    shutil.rmtree(data, ignore_errors=True)
    started = time.perf_counter()
    files = write_files(_fleets(), machines, FIRST_DAY, days, data)
    stamp.touch()
    size = sum(f.stat().st_size for f in files) / 1e6
    print(f"generated {len(files)} files, {size:,.0f} MB, in {time.perf_counter() - started:.0f} s")


# -- the main job against Dagster's floor --------------------------------------------------------

TRIVIAL = """
import dagster as dg

@dg.asset
def trivial() -> None:
    pass

defs = dg.Definitions(assets=[trivial])
"""


def time_command(command: list[str], env: dict) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=env, cwd=PROJECT)
    return time.perf_counter() - started


def main_job_against_floor() -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="bench-main-") as work:
        env = os.environ | {"DAGSTER_HOME": f"{work}/home", "MEGAWATT_WAREHOUSE_DIR": f"{work}/wh"}
        Path(f"{work}/home").mkdir()
        Path(f"{work}/trivial.py").write_text(TRIVIAL)
        bin_dir = Path(sys.executable).parent  # this environment's commands
        trivial = time_command(
            [
                str(bin_dir / "dagster"),
                "asset",
                "materialize",
                "-f",
                f"{work}/trivial.py",
                "--select",
                "trivial",
            ],
            env,
        )
        main = time_command([str(bin_dir / "megawatt"), "run"], env)
    return main, trivial


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=7, help="days in one run, for memory growth")
    parser.add_argument("--backfill-days", type=int, default=30)
    parser.add_argument("--data", type=Path, default=PROJECT / "bench" / "data" / "telemetry")
    parser.add_argument("--skip", nargs="*", default=[], choices=["backfill", "main-job"])
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:  # one measurement, in this process
        print(json.dumps(VARIANTS[args.variant](args.data, args.days, args.work)))
        return

    longest = max(args.days, 1 if "backfill" in args.skip else args.backfill_days)
    generate(args.data, args.machines, longest)
    rows_per_day = args.machines * 144
    print(f"{args.machines:,} machines, {rows_per_day:,} rows a day; each variant in its process")
    one = {name: measure(name, args.data, 1) for name in ("floor", "pipeline", "pandas")}
    for name, label in (("pipeline", "(a) pipeline"), ("floor", "(b) DuckDB floor"),
                        ("pandas", "(c) pandas")):  # fmt: skip
        m = one[name]
        speed = rows_per_day / m["seconds"] / 1e6
        print(f"{label:<18} {m['seconds']:7.2f} s  {speed:6.2f} M rows/s  "
              f"peak {m['peak_gb']:.2f} GB  ({m['stored_rows']:,} machine-days)")  # fmt: skip
    a, b, c = (one[n]["seconds"] for n in ("pipeline", "floor", "pandas"))
    print(f"(a)/(b) = {a / b:.2f}  (target <= 1.5)    (c)/(a) = {c / a:.2f}")
    print(f"peak memory of (a), one day: {one['pipeline']['peak_gb']:.2f} GB (target < 2 GB)")

    week = measure("pipeline", args.data, args.days)
    growth = week["peak_gb"] / one["pipeline"]["peak_gb"]
    print(f"(a) over {args.days} days in one run: {week['seconds']:.1f} s, peak "
          f"{week['peak_gb']:.2f} GB ({growth:.2f}x one day's, {args.days}x the rows)")  # fmt: skip
    if "backfill" not in args.skip:
        n = args.backfill_days
        backfill = measure("pipeline", args.data, n)
        per_day = backfill["seconds"] / n
        print(f"backfill of {n} days in one run: {backfill['seconds']:.0f} s, {per_day:.2f} s "
              f"a day = {per_day / a:.2f}x one day's (target <= 1.2), "
              f"peak {backfill['peak_gb']:.2f} GB")  # fmt: skip
    if "main-job" not in args.skip:
        main_s, trivial_s = main_job_against_floor()
        print(f"main job `megawatt run` {main_s:.1f} s; `dagster asset materialize` of one "
              f"trivial asset {trivial_s:.1f} s: {main_s / trivial_s:.2f}x "
              "(target <= 2.5)")  # fmt: skip


if __name__ == "__main__":
    main()
