"""Benchmark: `megawatt run` of one day on a warm warehouse against Dagster's floor for its graph.

    uv run python bench/daily.py [--rounds 3] [--sample-rounds 2] [--day YYYY-MM-DD] [--work DIR]
                                 [--no-profile]

The floor is a no-op Dagster graph of the same shape, built from the real Definitions: the same
asset keys, deps (partition mappings included), daily partitions, backfill policies, pool, asset
checks (names, blocking) per asset, job, executor (in-process) and instance storage (the
project's dagster.yaml, ProjectSqliteStorage); every body yields a MaterializeResult with a
passing result for each of its checks and does nothing else. What the real run costs above it is
the pipeline's: its imports (GX, DuckDB, polars), loading the declarations, reading, validating
(the rule plan through GX) and writing, publishing, the summary.

Everything runs in a temporary folder (never ./warehouse nor ./dagster_home). The sample is loaded
once (the warm warehouse), then, alternating real / floor, each in a fresh Python process (a
user's `megawatt run` pays its imports): N rounds of one day (default the sample's last) and M
rounds of the whole sample, all on the warm warehouse. Printed: medians, ratios, the seconds the
target leaves above the floor against those spent there, then what bounds it: a profile of one
run of each (real and floor, one day and the sample), its main thread's stacks sampled and grouped
coarsely (imports, GX validation, DuckDB writes, Dagster, ...).
Targets: one day <= 1.5x its floor; the 61-day sample <= 1.2x its floor.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

ENTERED = time.time()  # this process's first line: what came before is the interpreter's start-up
# Only the standard library at the top: the floor's process must not import the pipeline.
PROJECT = Path(__file__).resolve().parent.parent
JOB = "daily"  # pipelines.definitions.DAILY_JOB
TARGET_DAY, TARGET_SAMPLE = 1.5, 1.2


# -- the shape of the real graph, and a no-op graph of that shape --------------------------------


def real_shape() -> dict:
    """What the floor copies from the real Definitions, as JSON (the floor's process builds its
    graph from this, without importing the pipeline)."""
    import dagster as dg

    from pipelines.definitions import defs

    job = defs.resolve_job_def(JOB)
    days = job.partitions_def
    assets = []
    for asset in defs.resolve_asset_graph().assets_defs:
        if len(asset.specs) > 1:
            sys.exit(f"{asset.keys}: a multi-asset; teach bench/daily.py to copy it as one")
        for spec in asset.specs:
            deps = []
            for dep in spec.deps:
                mapping = dep.partition_mapping
                if mapping is not None and not isinstance(mapping, dg.TimeWindowPartitionMapping):
                    sys.exit(f"{spec.key}: a {type(mapping).__name__} dep; teach bench/daily.py it")
                deps.append({
                    "key": dep.asset_key.path,
                    "offsets": [mapping.start_offset, mapping.end_offset] if mapping else None,
                })  # fmt: skip
            assets.append({
                "key": spec.key.path,
                "executable": asset.is_executable,
                "partitioned": spec.partitions_def is not None,
                "deps": deps,
                "single_run": asset.backfill_policy == dg.BackfillPolicy.single_run(),
                "pool": asset.node_def.pool if asset.is_executable else None,
                "checks": [[c.name, c.blocking] for c in asset.check_specs],
            })  # fmt: skip
    return {
        "partitions": [days.start.date().isoformat(), days.end and days.end.date().isoformat()],
        "executor": job.executor_def.name,
        "assets": assets,
    }


def noop_definitions(shape: dict):
    """Definitions of the same shape as the real ones, whose bodies do nothing."""
    import dagster as dg

    start, end = shape["partitions"]
    days = dg.DailyPartitionsDefinition(start_date=start, end_date=end)
    assets = []
    for a in shape["assets"]:
        key = dg.AssetKey(a["key"])
        deps = [
            dg.AssetDep(dg.AssetKey(d["key"]), partition_mapping=dg.TimeWindowPartitionMapping(
                start_offset=d["offsets"][0], end_offset=d["offsets"][1]) if d["offsets"] else None)
            for d in a["deps"]
        ]  # fmt: skip
        partitions_def = days if a["partitioned"] else None
        if not a["executable"]:  # the quarantine: written beside the raw tables, no step of its own
            assets.append(dg.AssetSpec(key, deps=deps, partitions_def=partitions_def))
            continue
        checks = [dg.AssetCheckSpec(name, asset=key, blocking=b) for name, b in a["checks"]]
        assets.append(noop_asset(key, deps, partitions_def, a["single_run"], a["pool"], checks))
    executor = {"in_process": dg.in_process_executor, "multi_or_in_process_executor":
                dg.multi_or_in_process_executor}[shape["executor"]]  # fmt: skip
    return dg.Definitions(
        assets=assets,
        jobs=[dg.define_asset_job(JOB, selection=dg.AssetSelection.all())],
        executor=executor,
    )


def noop_asset(key, deps, partitions_def, single_run: bool, pool, checks):
    import dagster as dg

    @dg.asset(
        key=key,
        deps=deps,
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run() if single_run else None,
        pool=pool,
        check_specs=checks,
    )
    def _noop():
        # what the real body hands back, minus the work and its metadata: every check passes
        results = [dg.AssetCheckResult(check_name=c.name, passed=True) for c in checks]
        return dg.MaterializeResult(check_results=results)

    return _noop


def shape_of(defs) -> dict:
    """What 'the same shape' means, read back from Definitions: compared real against floor."""
    graph = defs.resolve_asset_graph()
    job = defs.resolve_job_def(JOB)
    nodes = [graph.get(key) for key in graph.get_all_asset_keys()]
    return {
        "assets": sorted(k.to_user_string() for k in graph.materializable_asset_keys),
        "external": sorted(n.key.to_user_string() for n in nodes if not n.is_materializable),
        "checks": sorted(
            (k.asset_key.to_user_string(), k.name, graph.get_check_spec(k).blocking)
            for k in graph.asset_check_keys
        ),
        "deps": sorted(
            (n.key.to_user_string(), p.to_user_string(), str(graph.get_partition_mapping(n.key, p)))
            for n in nodes
            for p in n.parent_keys
        ),
        "partitions": job.partitions_def.get_partition_keys(),
        "partitioned": sorted(n.key.to_user_string() for n in nodes if n.partitions_def),
        "backfill": sorted((n.key.to_user_string(), str(n.backfill_policy)) for n in nodes),
        "pools": sorted({pool for n in nodes if n.is_materializable for pool in n.pools or ()}),
        "executor": job.executor_def.name,
        "steps": len(job.graph.node_defs),
    }


# -- one run, in its own process -----------------------------------------------------------------


def floor_run(shape_file: Path, first: str, last: str) -> None:
    """The floor's run: what `megawatt run` does around Dagster (pipelines/runs.py `execute`:
    its instance without output capture), on the no-op graph."""
    import socket

    from dagster._core.storage.tags import (
        ASSET_PARTITION_RANGE_END_TAG,
        ASSET_PARTITION_RANGE_START_TAG,
    )

    job = noop_definitions(json.loads(shape_file.read_text())).resolve_job_def(JOB)
    tags = {ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last,
            "megawatt/host": socket.gethostname(), "megawatt/pid": str(os.getpid())}  # fmt: skip
    from pipelines.runs import open_instance

    with open_instance() as instance:
        result = job.execute_in_process(
            instance=instance,
            tags=tags,
            run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
            raise_on_error=False,
        )
        failed = [c for c in result.get_asset_check_evaluations() if not c.passed]
    if not result.success or failed:
        sys.exit(f"the floor's run failed: {failed or result.run_id}")


def events_of_last_run(home: str, first: str, last: str) -> Counter:
    """Dagster events by type of the instance's last run of days [first, last]: the real run and
    the floor's must have the same (the same steps, materialisations and check evaluations)."""
    import dagster as dg

    os.environ["DAGSTER_HOME"] = home  # dagster.yaml reads its storage's folder from it
    with dg.DagsterInstance.from_config(home) as instance:
        tags = {"dagster/asset_partition_range_start": first,
                "dagster/asset_partition_range_end": last}  # fmt: skip
        (run,) = instance.get_runs(dg.RunsFilter(tags=tags), limit=1)
        records = instance.get_records_for_run(run.run_id, limit=1_000_000).records
        return Counter(r.event_log_entry.dagster_event_type.value
                       for r in records if r.event_log_entry.is_dagster_event)  # fmt: skip


def compare_events(label: str, envs: dict, first: str, last: str) -> None:
    real, floor = (events_of_last_run(envs[s]["DAGSTER_HOME"], first, last) for s in envs)
    if real == floor:
        print(f"same events per run, {label}: {real.total()} ({real['ASSET_MATERIALIZATION']} "
              f"materialisations, {real['ASSET_CHECK_EVALUATION']} check evaluations, "
              f"{real['STEP_START']} steps)")  # fmt: skip
    else:
        differ = {t: (real[t], floor[t]) for t in real | floor if real[t] != floor[t]}
        print(f"warning: the runs' events differ, {label}, (real, floor): {differ}")


def timed(command: list[str], env: dict) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=PROJECT)
    seconds = time.perf_counter() - started
    if done.returncode:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return seconds


# -- the profile: sampled stacks of the main thread, grouped ------------------------------------

# Sampled, not cProfile: cProfile's per-call cost inflates the Python-heavy parts (Dagster, GX)
# several-fold against DuckDB's C code, which would skew exactly the split we want to see.
SAMPLE_EVERY_S = 0.01

# inner-most first: the first frame of the stack (from the inside out) in one of these is its
# group; third-party frames without a group (sqlalchemy, duckdb, polars) count for their caller
GROUPS = [
    ("great_expectations/", "GX validation"),
    ("pipelines/expectations.py", "GX validation"),
    ("pipelines/rule_plan.py", "rule plan, failing rows (DuckDB)"),
    ("pipelines/validation.py", "rule plan, failing rows (DuckDB)"),
    ("pipelines/warehouse.py", "DuckDB writes (stage, cast, replace, commit)"),
    ("pipelines/lake.py", "DuckDB writes (stage, cast, replace, commit)"),
    ("pipelines/sources/", "reading sources"),
    ("pipelines/plots.py", "asset metadata (plots, lineage, previews)"),
    ("pipelines/lineage.py", "asset metadata (plots, lineage, previews)"),
    ("pipelines/assets.py", "asset metadata (plots, lineage, previews)"),
    ("pipelines/dagster_storage.py", "Dagster (plan, events, instance storage)"),
    ("dagster/", "Dagster (plan, events, instance storage)"),
    ("pipelines/cli.py", "megawatt cli (publish, summary)"),
    ("pipelines/", "loading the declarations"),
]


def _package(filename: str) -> str:
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    return "pipelines" if f"{PROJECT}/pipelines/" in filename else Path(filename).stem


def classify(stack: list) -> str:
    """The group of one sampled stack (outer-most frame first)."""
    importing = False
    for frame in stack:  # an import: credited to the outer-most third-party module it loads
        name = frame.f_code.co_filename
        if name.startswith("<frozen importlib"):
            importing = True
        elif importing and frame.f_code.co_name == "<module>":
            package = _package(name)
            if package not in ("pipelines", "daily"):
                return f"import {package}"
    if importing:  # pipelines.definitions' body builds the Definitions: not an import as such
        inside = [f for f in stack if f"{PROJECT}/pipelines/" in f.f_code.co_filename]
        if any(f.f_code.co_name != "<module>" for f in inside):
            return "loading the declarations"
        return "import pipelines"
    for frame in reversed(stack):
        name = frame.f_code.co_filename
        for marker, group in GROUPS:
            if marker in name:
                return group
    return f"other ({_package(stack[-1].f_code.co_filename)})" if stack else "other"


def _where(stack: list) -> str:
    """The inner-most frame of the project or of the group's package: where the time went."""
    for frame in reversed(stack):
        name = frame.f_code.co_filename
        if "/pipelines/" in name or "great_expectations/" in name or "dagster/" in name:
            return f"{_package(name)}:{Path(name).name}:{frame.f_code.co_name}"
    return stack[-1].f_code.co_name if stack else "?"


def profile_run(side: str, first: str, last: str, shape_file: Path, out: Path) -> None:
    """One run of `side` (real: `megawatt run`, floor: the no-op graph) in this process, its main
    thread sampled from another thread."""
    main_id = threading.get_ident()
    seconds: Counter = Counter()
    where: dict[str, Counter] = defaultdict(Counter)
    done = threading.Event()

    def sample() -> None:
        last = time.perf_counter()
        while not done.wait(SAMPLE_EVERY_S):
            frame = sys._current_frames().get(main_id)
            now = time.perf_counter()
            stack = []
            while frame is not None:
                stack.append(frame)
                frame = frame.f_back
            stack.reverse()
            group = classify(stack)
            seconds[group] += now - last  # a stretch the GIL held us off counts for what follows
            where[group][_where(stack)] += now - last
            last = now

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    if side == "real":
        from pipelines.cli import main

        if main(["run", "--start", first, "--end", last]):
            sys.exit("megawatt run failed")
    else:
        floor_run(shape_file, first, last)
    done.set()
    sampler.join()
    out.write_text(json.dumps({
        "entered": ENTERED,
        "left": time.time(),
        "gx_imported": "great_expectations" in sys.modules,
        "groups": dict(seconds),
        "where": {g: c.most_common(3) for g, c in where.items()},
    }))  # fmt: skip


def profiled(side: str, first: str, last: str, shape_file: Path, env: dict, work: Path) -> dict:
    """The profile of one run in its own process, with the interpreter's start-up (to the first
    line of this file) and shut-down (after the run) measured from here."""
    out = work / f"profile-{side}-{first}-{last}.json"
    started = time.time()
    timed([sys.executable, __file__, "--profile-run", side, first, last, "--shape",
           str(shape_file), "--out", str(out)], env)  # fmt: skip
    ended = time.time()
    profile = json.loads(out.read_text())
    profile["groups"]["Python start-up"] = profile["entered"] - started
    profile["groups"]["Python shut-down (module teardown)"] = ended - profile["left"]
    profile["wall"] = ended - started
    return profile


def print_profiles(label: str, real: dict, floor: dict) -> None:
    """Seconds per group, real against floor; the imports first, then the rest by real's cost."""
    print(f"\nprofile, {label} (main thread sampled every {SAMPLE_EVERY_S * 1e3:.0f} ms; "
          f"GX validated: {'yes' if real['gx_imported'] else 'NO'}):")  # fmt: skip
    print(f"  {'':<50}{'megawatt run':>13}{'floor':>8}")
    groups = sorted(set(real["groups"]) | set(floor["groups"]))
    imports = [g for g in groups if g.startswith("import ")]
    rest = [g for g in groups if not g.startswith("import ")]

    def line(name: str, r: float, f: float, indent: str = "  ") -> None:
        print(f"{indent}{name:<{52 - len(indent)}}{r:9.2f} s{f:6.2f} s")

    line("total (the process, wall)", real["wall"], floor["wall"])
    line("imports", *(sum(p["groups"].get(g, 0) for g in imports) for p in (real, floor)))
    for g in sorted(imports, key=lambda g: -real["groups"].get(g, 0))[:5]:
        line(g, real["groups"].get(g, 0), floor["groups"].get(g, 0), "    ")
    for g in sorted(rest, key=lambda g: -real["groups"].get(g, 0)):
        r, f = real["groups"].get(g, 0), floor["groups"].get(g, 0)
        if max(r, f) < 0.05:
            continue
        line(g, r, f)
        for place, t in real["where"].get(g, [])[:2] if r >= 0.3 else []:
            print(f"        {place:<44.44}{t:9.2f} s")


# -- the benchmark -------------------------------------------------------------------------------


def alternate(rounds: int, real: list[str], floor: list[str], envs: dict, label: str) -> tuple:
    """`rounds` of real then floor, each in a fresh process: ([real seconds], [floor seconds])."""
    times = {"real": [], "floor": []}
    for n in range(rounds):
        for side, command in (("real", real), ("floor", floor)):
            times[side].append(timed(command, envs[side]))
        print(f"  {label} round {n + 1}: megawatt run {times['real'][-1]:6.2f} s, "
              f"floor {times['floor'][-1]:6.2f} s", flush=True)  # fmt: skip
    return times["real"], times["floor"]


def report(label: str, real: list[float], floor: list[float], target: float) -> None:
    real_s, floor_s = statistics.median(real), statistics.median(floor)
    ratio = real_s / floor_s
    print(f"{label}: megawatt run median {real_s:.2f} s ({', '.join(f'{s:.2f}' for s in real)}), "
          f"floor median {floor_s:.2f} s ({', '.join(f'{s:.2f}' for s in floor)}): {ratio:.2f}x "
          f"(target <= {target}: {'within' if ratio <= target else 'OVER'}); the target leaves "
          f"{(target - 1) * floor_s:.2f} s above the floor, the run spends "
          f"{real_s - floor_s:.2f} s there")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of one day (default 3)")
    parser.add_argument("--sample-rounds", type=int, default=2,
                        help="rounds of the whole sample (default 2; ~40 s each)")  # fmt: skip
    parser.add_argument("--day", help="the day to run again (default: the sample's last)")
    parser.add_argument("--work", type=Path, help="keep the state here (default: a temp folder)")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--floor-run", nargs=2, metavar=("FIRST", "LAST"), help=argparse.SUPPRESS)
    parser.add_argument("--profile-run", nargs=3, metavar=("SIDE", "FIRST", "LAST"),
                        help=argparse.SUPPRESS)  # fmt: skip
    parser.add_argument("--shape", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_run:  # one measurement, in this process
        return floor_run(args.shape, *args.floor_run)
    if args.profile_run:
        return profile_run(*args.profile_run, args.shape, args.out)

    work = Path(args.work or tempfile.mkdtemp(prefix="megawatt-bench-daily-"))
    if args.work and work.exists() and not (work / "shape.json").exists():
        if not work.is_dir() or any(work.iterdir()):  # never delete what is not ours
            sys.exit(f"{work} is not empty and not an earlier --work of this benchmark")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    envs = {
        "real": os.environ | {"DAGSTER_HOME": str(work / "real-home"),
                              "MEGAWATT_WAREHOUSE_DIR": str(work / "warehouse")},
        "floor": os.environ | {"DAGSTER_HOME": str(work / "floor-home")},
    }  # fmt: skip
    for env in envs.values():  # the same instance storage: the project's dagster.yaml
        Path(env["DAGSTER_HOME"]).mkdir()
        shutil.copyfile(PROJECT / "dagster_home" / "dagster.yaml",
                        Path(env["DAGSTER_HOME"]) / "dagster.yaml")  # fmt: skip
    # the real definitions are read here, after pointing them at the temporary warehouse
    os.environ.update(envs["real"])
    from pipelines.declarations import load_settings
    from pipelines.definitions import defs
    from pipelines.settings import ASSETS_DIR

    period = load_settings(ASSETS_DIR).sample_period
    first, last = period.start_date.isoformat(), period.end_date.isoformat()
    day = args.day or last
    days = (period.end_date - period.start_date).days + 1
    shape_file = work / "shape.json"
    shape_file.write_text(json.dumps(real_shape()))
    real, floor = shape_of(defs), shape_of(noop_definitions(json.loads(shape_file.read_text())))
    differ = [k for k in real if real[k] != floor[k]]
    if differ:
        sys.exit(f"the floor's graph differs from the real one in: {', '.join(differ)}")
    print(f"same shape: {len(real['assets'])} assets (+{len(real['external'])} external), "
          f"{len(real['checks'])} checks ({sum(c[2] for c in real['checks'])} blocking), "
          f"{len(real['deps'])} deps, {len(real['partitions'])} daily partitions "
          f"({len(real['partitioned'])} partitioned assets, single-run backfills), pools "
          f"{', '.join(real['pools'])}, executor {real['executor']}, instance storage "
          f"ProjectSqliteStorage; state in {work}")  # fmt: skip

    megawatt = str(Path(sys.executable).parent / "megawatt")
    floor_cmd = [sys.executable, __file__, "--shape", str(shape_file), "--floor-run"]
    # warm both: the sample loaded into the warehouse, one run of it in each instance
    warm_real = timed([megawatt, "run"], envs["real"])
    warm_floor = timed([*floor_cmd, first, last], envs["floor"])
    print(f"warm-up, sample {first} to {last} into an empty warehouse: megawatt run "
          f"{warm_real:.2f} s, floor {warm_floor:.2f} s", flush=True)  # fmt: skip

    one = alternate(args.rounds, [megawatt, "run", "--start", day, "--end", day],
                    [*floor_cmd, day, day], envs, f"one day ({day})")  # fmt: skip
    sample = alternate(args.sample_rounds, [megawatt, "run"], [*floor_cmd, first, last], envs,
                       f"sample ({days} days)")  # fmt: skip
    print()
    compare_events("one day", envs, day, day)
    compare_events("the sample", envs, first, last)
    report(f"one day ({day}), warm", *one, TARGET_DAY)
    report(f"the {days}-day sample, warm", *sample, TARGET_SAMPLE)

    if not args.no_profile:  # what bounds it
        for label, (start, end) in ((f"one day ({day})", (day, day)),
                                    (f"the {days}-day sample", (first, last))):  # fmt: skip
            sides = [profiled(side, start, end, shape_file, envs[side], work)
                     for side in ("real", "floor")]  # fmt: skip
            print_profiles(label, *sides)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
