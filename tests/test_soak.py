"""A month of mornings: the live connectors against a local server whose truth evolves day by day
(tests/sources/soak_server.py), each morning running what the schedules would run.

Every morning at 06:30 UTC the daily schedule is evaluated (its run request: the range of days
and tags it asks for, whatever they are) and its run executed in-process on the daily job, as
Dagster's daemon would launch it; vast.ai's observe schedule runs twice a day. The server plays
late data, an outage of two days (Energy-Charts) and a 404 "no data" ECB on two mornings, two
revised days, a 500 burst, out-of-order block timestamps and the DST days. After the month the
warehouse must equal the truth, with nothing missing and nothing duplicated.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pytest
import yaml
from pytest_httpserver import HTTPServer

from pipelines.declarations import load_infrastructure
from pipelines.definitions import DAILY_JOB
from pipelines.settings import ASSETS_DIR
from pipelines.sources.vastai import VastaiConnector
from pipelines.telemetry import write_files
from tests.conftest import QUIET
from tests.sources.soak_server import (
    ECB_OUTAGE_MORNINGS,
    FIRST_DAY,
    LATE_ECB_DAY,
    MORNINGS,
    OUTAGE_DAYS,
    REVISED_ECB_DAY,
    REVISED_PRICE_DAY,
    ZONES,
    Truth,
    morning,
    serve,
)

FAST = {"retries": 4, "backoff_s": 0.0, "max_backoff_s": 0.0, "min_interval_s": 0.0,
        "timeout_s": 10.0}  # fmt: skip
SITES = ("ca-baie-comeau", "no-narvik", "se-lulea", "us-tx-rockdale")
SITES_SET = set(SITES)
OBSERVE_AT = (timedelta(hours=7), timedelta(hours=19))  # vast.ai observed twice a day
FLEETS = [f.model_dump() for f in load_infrastructure(ASSETS_DIR).asic_fleet]


def _live_project(project, server: HTTPServer, tmp_path) -> dict[str, object]:
    """The project with assets/examples/sources.live.yaml pointed at `server`, its drop folders
    under tmp_path, and partitions from FIRST_DAY up to yesterday (no end_date)."""
    declared = yaml.safe_load((ASSETS_DIR / "examples" / "sources.live.yaml").read_text())
    sources = declared["sources"]
    url = server.url_for("").rstrip("/")
    sources["btc_network_daily"]["connectors"]["mempool"] |= {"base_url": f"{url}/mempool"} | FAST
    energy = sources["energy_prices_hourly"]["connectors"]
    energy["energy_charts"] |= {"base_url": f"{url}/energy-charts"} | FAST
    energy["ercot"] |= {
        "base_url": f"{url}/ercot/api/public-reports",
        "token_url": f"{url}/ercot/token",
        **FAST,
    }
    sources["fx_rates_daily"]["connectors"]["ecb"] |= {"base_url": f"{url}/ecb"} | FAST
    sources["gpu_offers_observed"]["connectors"]["vastai"] = {"base_url": f"{url}/vastai"} | FAST
    folders = {}
    for table, connector in (
        ("mining_output_daily", "file_drop"),
        ("gpu_market_prices_daily", "file_drop"),
        ("gpu_usage_daily", "file_drop"),
        ("miner_telemetry", "telemetry_drop"),
    ):
        folder = tmp_path / "drop" / table
        folder.mkdir(parents=True)
        sources[table]["connectors"][connector]["folder"] = str(folder)
        folders[table] = folder
    (project.assets_dir / "sources.yaml").write_text(yaml.safe_dump(declared, sort_keys=False))

    settings_file = project.assets_dir / "settings.yaml"
    settings = yaml.safe_load(settings_file.read_text())
    settings["partitions"] = {"start_date": FIRST_DAY.isoformat()}
    settings_file.write_text(yaml.safe_dump(settings, sort_keys=False))
    return folders


def _drop_exports(truth: Truth, folders: dict, day: date) -> None:
    """The sites' exports of `day`, landing the next morning (named by their export day)."""
    export = day + timedelta(days=1)
    mining = folders["mining_output_daily"]
    (mining / f"pool_{export}.csv").write_text(
        "date,subaccount,earnings_btc\n" + "\n".join(truth.pool_rows(day)) + "\n"
    )
    (mining / f"fleet_{export}.csv").write_text(
        "date,site_id,hashrate_th_s,uptime_pct,energy_mwh\n"
        + "\n".join(truth.fleet_rows(day))
        + "\n"
    )
    (folders["gpu_market_prices_daily"] / f"contract_quotes_{export}.csv").write_text(
        "date,gpu_model,gpu_variant,lease_type,source,price_usd_per_gpu_hour,offers\n"
        f"{day},H100 SXM5 80GB,,contract,broker-quotes,2.1650,9\n"
    )
    write_files(FLEETS, 8, day, 1, folders["miner_telemetry"])
    (folders["gpu_usage_daily"] / f"billing_{export}.csv").write_text(
        "date,site_id,gpu_model,gpu_hours_sold,revenue_usd\n"
        + "\n".join(truth.billing_rows(day))
        + "\n"
    )


def _evaluate(defs, name: str, instance, at: datetime) -> list[dg.RunRequest]:
    """The run requests of schedule `name`'s tick at `at`, as the daemon evaluates it."""
    with dg.build_schedule_context(
        instance=instance, scheduled_execution_time=at, repository_def=defs.get_repository_def()
    ) as context:
        data = defs.resolve_schedule_def(name).evaluate_tick(context)
    return list(data.run_requests or [])


def _launch(project, job, instance, request: dg.RunRequest):
    result = job.execute_in_process(
        instance=instance,
        tags=request.tags,
        partition_key=request.partition_key,
        run_config=QUIET,
        raise_on_error=False,
    )
    project.warehouse.publish(result.run_id)  # as the run sensors do
    return result


@pytest.fixture
def soak(project, httpserver: HTTPServer, tmp_path, monkeypatch):
    monkeypatch.setenv("SOAK_ERCOT_USER", "ops.bot@miner.example")
    monkeypatch.setenv("SOAK_ERCOT_PASSWORD", "hunter2-password")
    monkeypatch.setenv("SOAK_ERCOT_KEY", "sub-key-0123456789")
    truth = Truth()
    serve(httpserver, truth)
    folders = _live_project(project, httpserver, tmp_path)
    declared = yaml.safe_load((project.assets_dir / "sources.yaml").read_text())
    ercot = declared["sources"]["energy_prices_hourly"]["connectors"]["ercot"]
    ercot |= {"username_env": "SOAK_ERCOT_USER", "password_env": "SOAK_ERCOT_PASSWORD",
              "subscription_key_env": "SOAK_ERCOT_KEY"}  # fmt: skip
    (project.assets_dir / "sources.yaml").write_text(yaml.safe_dump(declared, sort_keys=False))
    monkeypatch.setattr(VastaiConnector, "now", staticmethod(lambda: truth.now))
    return project, truth, folders


def test_a_month_of_mornings(soak):
    project, truth, folders = soak
    started = time.monotonic()
    defs = project.definitions()
    daily = defs.resolve_job_def(DAILY_JOB)
    observe = defs.resolve_job_def("observe_gpu_offers_observed")
    instance = dg.DagsterInstance.ephemeral()

    def observe_day(day: date) -> None:
        for offset in OBSERVE_AT:
            truth.now = datetime.combine(day, datetime.min.time(), UTC) + offset
            for request in _evaluate(
                defs, "observe_gpu_offers_observed_schedule", instance, truth.now
            ):
                result = _launch(project, observe, instance, request)
                assert result.success, f"observation at {truth.now} failed"

    fx = "SELECT date, currency, usd_per_unit FROM fx_rates_daily ORDER BY ALL"
    runs: dict[date, tuple[str, bool, dict]] = {}
    kept: dict[date, list] = {}
    took: dict[date, float] = {}
    errors: dict[date, list[str]] = {}
    answered_then: dict[date, set[str]] = {}  # the sites of each morning's answer for its day
    observe_day(FIRST_DAY)
    mornings = int(os.environ.get("MEGAWATT_SOAK_MORNINGS", MORNINGS))  # fewer: a quick look
    last = FIRST_DAY + timedelta(days=mornings - 1)
    for i in range(mornings):
        day = FIRST_DAY + timedelta(days=i)
        truth.now = morning(day)
        _drop_exports(truth, folders, day)
        before = project.query(fx) if truth.now.date() in ECB_OUTAGE_MORNINGS else None
        (request,) = _evaluate(defs, f"{DAILY_JOB}_schedule", instance, truth.now)
        t0 = time.monotonic()
        result = _launch(project, daily, instance, request)
        runs[day] = (result.run_id, result.success, dict(request.tags))
        took[day] = time.monotonic() - t0
        if not result.success:
            errors[day] = [
                f"{e.step_key}: {str(e.event_specific_data.error.message)[:300]}"
                for e in result.all_events
                if e.is_step_failure
            ]
        if before is not None:
            kept[truth.now.date()] = (before, project.query(fx))
        answered_then[day] = {
            site for (site,) in project.query(
                "SELECT DISTINCT site_id FROM site_economics_daily WHERE date = ?", [day]
            )
        }  # fmt: skip
        observe_day(day + timedelta(days=1))
    # the time of each morning, for a reader (speed is measured by bench/, not asserted here)
    print(f"{time.monotonic() - started:.0f} s:", {str(d): round(t, 1) for d, t in took.items()})
    assert not errors, f"mornings whose run failed: {errors}"
    for _, (_, _, tags) in runs.items():
        assert tags.get("megawatt/daily_for")

    # the ECB's outage: the stored days of the window were kept, not deleted
    for when, (before, after) in kept.items():
        assert after == before, f"the ECB's 404 on {when} changed the stored rates"

    # bitcoin: blocks and fees per day are the chain's
    chain = truth.chain_days(FIRST_DAY, last)
    stored = {
        d: (b, h, f)
        for d, b, h, f in project.query(
            "SELECT date, blocks, first_height, fees_btc FROM btc_network_daily ORDER BY date"
        )
    }
    assert sorted(stored) == sorted(chain)
    for d, (blocks, first, fees_sat) in chain.items():
        assert stored[d][:2] == (blocks, first), d
        assert stored[d][2] == pytest.approx(fees_sat / 1e8, abs=1e-9), d

    # FX: every publication day, with its final (revised) value; the late day is there
    want_fx = truth.usd_per_unit()
    got_fx = {(d, c): v for d, c, v in project.query(fx) if FIRST_DAY <= d <= last}
    want_fx = {k: v for k, v in want_fx.items() if FIRST_DAY <= k[0] <= last}
    assert sorted(got_fx) == sorted(want_fx)
    for key, value in want_fx.items():
        assert got_fx[key] == pytest.approx(value, rel=1e-12), key
    if last > REVISED_ECB_DAY:
        assert (LATE_ECB_DAY, "EUR") in got_fx and (REVISED_ECB_DAY, "SEK") in got_fx

    # energy prices: every UTC hour of every zone, final values, the outage's days filled
    prices = project.query(
        "SELECT ts, bidding_zone, price_per_mwh FROM energy_prices_hourly "
        "WHERE ts >= ? AND ts < ? ORDER BY ALL",
        [datetime.combine(FIRST_DAY, datetime.min.time(), UTC),
         datetime.combine(last + timedelta(days=1), datetime.min.time(), UTC)],
    )  # fmt: skip
    hours = mornings * 24
    by_zone = {}
    for ts, zone, value in prices:
        by_zone.setdefault(zone, {})[ts] = value
    assert {z: len(v) for z, v in by_zone.items()} == {
        "SE1": hours, "NO4": hours, "ERCOT_HB_WEST": hours,
    }  # fmt: skip
    for zone in ZONES:
        for ts, value in by_zone[zone].items():
            assert value == pytest.approx(truth.eur_price(zone, ts.astimezone(UTC))), (zone, ts)
    for d in [d for d in (*OUTAGE_DAYS, REVISED_PRICE_DAY) if d <= last]:
        assert sum(1 for ts in by_zone["SE1"] if ts.astimezone(UTC).date() == d) == 24

    # no duplicates anywhere
    for table, key in (
        ("btc_network_daily", "date"),
        ("fx_rates_daily", "date, currency"),
        ("energy_prices_hourly", "ts, bidding_zone"),
        ("mining_output_daily", "date, site_id"),
        ("site_economics_daily", "date, site_id, scenario"),
    ):
        (dupes,) = project.query(
            f"SELECT count(*) FROM (SELECT {key} FROM {table} GROUP BY ALL HAVING count(*) > 1)"
        )[0]
        assert dupes == 0, table

    # each morning's answer: every site, but on the outage's first day the sites priced in its
    # zones (left out, so the answer names them): the prices of both days came on the morning of
    # the second's run, which rebuilt the first day too
    nordic = {"no-narvik", "se-lulea"}
    assert {d: SITES_SET - s for d, s in answered_then.items() if s != SITES_SET} == {
        d: nordic for d in OUTAGE_DAYS[:-1] if d <= last
    }
    # the morning answer: a row per site for every day of the month
    answered = project.query(
        "SELECT date, count(DISTINCT site_id) FROM site_economics_daily "
        "WHERE scenario = 'base' GROUP BY date ORDER BY date"
    )
    assert answered == [(FIRST_DAY + timedelta(days=i), len(SITES)) for i in range(mornings)]
