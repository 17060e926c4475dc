"""Benchmark: one day of fleet telemetry in the cluster profile, with 1 and with 2 workers.

    uv run python bench/scale.py [--machines 1000000]

Generates one UTC day of telemetry for --machines ASICs (144 rows each: 144 M rows for a
million; pipelines/telemetry.py, once into bench/data/scale-<machines>/, reused), starts
PostgreSQL 15 and moto's S3 server on 127.0.0.1 (tests/services.py), and materialises
miner_telemetry_daily of that day with `megawatt run` (its reference tables with it) in the
cluster profile with `max_concurrent` 1 and 2 (each site's files a step of their own: 2 workers
write 2 sites at once), then in the local profile, each in a new lake and instance. Prints
seconds, rows per second, the peak RSS of the largest process (a step's worker, or the run's
own) and its largest private memory (RSS less the pages shared with the forkserver, whose
imports every worker maps) against DuckDB's memory limit, the cores kept busy on average, and
the speed-up of 2 workers over 1; first, the rollup alone in plain DuckDB on 1 and 2 threads
(what one worker already draws from the cores). Target: 2 workers at least 1.7x faster than 1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from tests.services import (  # noqa: E402  (the project's root on the path first)
    S3_KEY_ID,
    S3_SECRET,
    running_postgres,
    running_s3,
)

DAY = date(2024, 4, 1)
TABLES = ["sites", "asic_fleet", "miner_telemetry_daily"]


def generate(data: Path, machines: int) -> None:
    """The day's files, made once per machine count."""
    from pipelines.declarations import load_infrastructure
    from pipelines.telemetry import write_files

    stamp = data / ".generated"
    if stamp.exists():
        return
    shutil.rmtree(data, ignore_errors=True)
    started = time.perf_counter()
    fleets = [f.model_dump() for f in load_infrastructure(PROJECT / "assets").asic_fleet]
    files = write_files(fleets, machines, DAY, 1, data)
    stamp.touch()
    size = sum(f.stat().st_size for f in files) / 1e6
    print(f"generated {len(files)} files, {size:,.0f} MB, in {time.perf_counter() - started:.0f} s")


def declarations(work: Path, data: Path, max_concurrent: int) -> Path:
    """A copy of assets/ whose telemetry source reads `data`, with the cluster profile's
    `max_concurrent` set: the project's own declarations, nothing else changed."""
    assets = work / "assets"
    shutil.copytree(PROJECT / "assets", assets)
    sources = yaml.safe_load((assets / "sources.yaml").read_text())
    telemetry = sources["sources"]["miner_telemetry"]
    telemetry["connectors"] = {"telemetry_drop": {"folder": str(data)}}
    telemetry["days_per_write"] = 1
    (assets / "sources.yaml").write_text(yaml.safe_dump(sources, sort_keys=False))
    settings = yaml.safe_load((assets / "settings.yaml").read_text())
    settings["profiles"]["cluster"]["max_concurrent"] = max_concurrent
    (assets / "settings.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    return assets


def materialise(env: dict) -> tuple[float, float, float, float]:
    """`megawatt run` of the day's telemetry: (seconds, peak GB of its largest process, the run's
    own or a step's worker, and the cores it kept busy on average: CPU seconds over wall seconds).
    Each process's high-water mark and CPU time are sampled from /proc as it runs: the workers
    fork from a forkserver, whose children no wait() reports to us."""
    command = [sys.executable, "-m", "pipelines.cli", "run", "--start", str(DAY),
               "--end", str(DAY), "--select", *TABLES]  # fmt: skip
    started = time.perf_counter()
    run = subprocess.Popen(command, env=env, cwd=PROJECT, text=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    peak, private, cpu = 0, 0, {}  # cpu: {pid: CPU seconds when last seen}
    while run.poll() is None:
        for pid, (mark, seconds, own) in _processes_below(run.pid).items():
            peak, private = max(peak, mark), max(private, own)
            cpu[pid] = seconds
        time.sleep(0.2)
    seconds = time.perf_counter() - started
    if run.returncode:
        sys.exit(f"the run failed:\n{run.stderr.read()[-4000:]}")
    return seconds, peak / 1e6, private / 1e6, sum(cpu.values()) / seconds


def _processes_below(root: int) -> dict[int, tuple[int, float]]:
    """{pid: (VmHWM, the peak RSS in KiB; CPU seconds, user and system; private memory now,
    KiB)} of `root` and every process below it."""
    parents, seen = {}, {}
    tick = os.sysconf("SC_CLK_TCK")
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(
                line.split(":", 1) for line in status.read_text().splitlines() if ":" in line
            )
            # after the command's closing parenthesis: state, ppid, ..., utime (14th), stime
            stat = (status.parent / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        pid = int(status.parent.name)
        parents[pid] = int(fields["PPid"])
        mark = int(fields["VmHWM"].split()[0]) if "VmHWM" in fields else 0
        seen[pid] = (mark, (int(stat[11]) + int(stat[12])) / tick, status.parent)

    def below(pid: int) -> bool:
        while pid > 1:
            if pid == root:
                return True
            pid = parents.get(pid, 0)
        return False

    return {pid: (mark, cpu, _private_kib(folder))
            for pid, (mark, cpu, folder) in seen.items() if below(pid)}  # fmt: skip


def _private_kib(folder: Path) -> int:
    """The process's memory that is its own (no page shared with the forkserver it forked from,
    whose imports every worker maps): its Private_Clean and Private_Dirty, KiB."""
    try:
        lines = (folder / "smaps_rollup").read_text().splitlines()
    except OSError:
        return 0
    return sum(int(line.split()[1]) for line in lines if line.startswith("Private_"))


def duckdb_threads(data: Path) -> dict[int, float]:
    """Seconds of the rollup alone, as plain DuckDB over the day's files, on 1 and 2 threads:
    how much of the machine one worker's DuckDB already uses."""
    import duckdb

    rollup = (PROJECT / "assets" / "rollups" / "miner_telemetry_daily.sql").read_text()
    files = sorted(str(f) for f in data.glob("*.parquet"))
    seconds = {}
    for threads in (1, 2):
        con = duckdb.connect()
        con.execute(f"SET threads = {threads}; SET memory_limit = '1GB'")
        con.execute(f"CREATE VIEW new AS SELECT * FROM read_parquet({files})")
        started = time.perf_counter()
        con.execute(f"CREATE TABLE rolled AS {rollup}")
        seconds[threads] = time.perf_counter() - started
        con.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", type=int, default=1_000_000)
    args = parser.parse_args()
    data = PROJECT / "bench" / "data" / f"scale-{args.machines}"
    generate(data, args.machines)
    rows = args.machines * 144
    limit = yaml.safe_load((PROJECT / "assets" / "settings.yaml").read_text())
    memory_limit = limit["warehouse"]["memory_limit"]
    print(f"{args.machines:,} machines, {rows:,} rows in one day; DuckDB memory limit "
          f"{memory_limit} per process; {os.cpu_count()} cores")  # fmt: skip
    alone = duckdb_threads(data)
    print(f"the rollup alone in DuckDB: {alone[1]:.1f} s on 1 thread, {alone[2]:.1f} s on 2: "
          f"{alone[1] / alone[2]:.2f}x from one worker's own threads", flush=True)  # fmt: skip
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as root:
        root = Path(root)
        with running_postgres() as postgres, running_s3(root / "moto.log") as s3:
            for name, profile, workers in (("cluster, 1 worker", "cluster", 1),
                                           ("cluster, 2 workers", "cluster", 2),
                                           ("local", "local", 1)):  # fmt: skip
                work = root / f"{profile}-{workers}"
                env = os.environ | {
                    "MEGAWATT_PROFILE": profile,
                    "MEGAWATT_ASSETS_DIR": str(declarations(work, data, workers)),
                    "MEGAWATT_WAREHOUSE_DIR": str(work / "warehouse"),
                    "DAGSTER_HOME": str(work / "dagster_home"),
                }
                if profile == "cluster":
                    env |= {
                        "MEGAWATT_LAKE_DB": postgres.create_database("lake"),
                        "PGHOST": "127.0.0.1", "PGPORT": str(postgres.port),
                        "PGUSER": "postgres", "MEGAWATT_S3_BUCKET": s3.bucket,
                        "MEGAWATT_S3_ENDPOINT": f"http://{s3.endpoint}",
                        "MEGAWATT_S3_KEY_ID": S3_KEY_ID, "MEGAWATT_S3_SECRET": S3_SECRET,
                        "DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": str(postgres.port),
                        "DAGSTER_PG_USER": "postgres", "DAGSTER_PG_PASSWORD": "unused",
                        "DAGSTER_PG_DB": postgres.create_database("dagster"),
                    }  # fmt: skip
                seconds, peak, private, cores = materialise(env)
                results[name] = seconds
                print(f"{name:<20} {seconds:7.1f} s  {rows / seconds / 1e6:6.2f} M rows/s  "
                      f"peak RSS {peak:.2f} GB, private {private:.2f} GB (largest process)  "
                      f"{cores:.2f} of {os.cpu_count()} cores busy", flush=True)  # fmt: skip
    speedup = results["cluster, 1 worker"] / results["cluster, 2 workers"]
    print(f"speed-up of 2 workers over 1: {speedup:.2f}x (target >= 1.7)")


if __name__ == "__main__":
    main()
