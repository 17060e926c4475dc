"""The economics, checked against numbers worked out here from first principles: the sample's raw
CSV rows, the YAML declarations and the field's formulas, never the pipeline's own output."""

from __future__ import annotations

import shutil
from datetime import date, datetime, timedelta

import polars as pl
import pytest
import yaml

from pipelines.settings import ASSETS_DIR, CONTRACTS_DIR, SAMPLE_DATA_DIR
from tests.conftest import Project

TOL = 1e-9  # relative


def close(a: float, b: float, tol: float = TOL) -> bool:
    return abs(a - b) <= tol * max(1.0, abs(a), abs(b))


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Project:
    """The sample from 2024-03-22 (a price-cap hour follows, then the EU DST change) to
    2024-05-02 (an outage)."""
    root = tmp_path_factory.mktemp("economics")
    shutil.copytree(ASSETS_DIR, root / "assets")
    shutil.copytree(CONTRACTS_DIR, root / "data_contracts")
    project = Project(root / "assets", root / "data_contracts", root / "warehouse")
    assert project.run("2024-03-22", "2024-05-02").success
    return project


def csv(table: str) -> pl.DataFrame:
    return pl.read_csv(SAMPLE_DATA_DIR / f"{table}.csv", try_parse_dates=True)


def declared(name: str) -> list[dict]:
    return yaml.safe_load((ASSETS_DIR / "infrastructure" / f"{name}.yaml").read_text())[name]


def site(site_id: str) -> dict:
    return next(s for s in declared("sites") if s["site_id"] == site_id)


def settings() -> dict:
    return yaml.safe_load((ASSETS_DIR / "settings.yaml").read_text())


def hashvalue(day: date) -> float:
    row = csv("btc_network_daily").filter(pl.col("date") == day).row(0, named=True)
    reward_btc = row["subsidy_btc"] + row["fees_btc"] / row["blocks"]
    return 1e15 * 86400 * reward_btc / (row["difficulty"] * 2**32)


def btc_price(day: date) -> float:
    return csv("btc_network_daily").filter(pl.col("date") == day)["price_usd"][0]


def fleet_j_per_th(site_id: str) -> float:
    fleets = [f for f in declared("asic_fleet") if f["site_id"] == site_id]
    watts = sum(f["units"] * f["watts_per_unit"] for f in fleets)
    return watts / sum(f["units"] * f["th_per_unit"] for f in fleets)


def usd_per_eur(day: date) -> float:
    """ECB-style: the latest rate published on or before the day."""
    rates = csv("fx_rates_daily").filter((pl.col("currency") == "EUR") & (pl.col("date") <= day))
    return rates.sort("date")["usd_per_unit"][-1]


def power_prices_usd(site_id: str, day: date) -> list[float]:
    """The site's 24 all-in hourly prices of a UTC day."""
    s = site(site_id)
    if s["power_contract"]["type"] == "fixed":
        return [s["power_contract"]["fixed_price_usd_per_mwh"]] * 24
    hours = csv("energy_prices_hourly").filter(
        (pl.col("bidding_zone") == s["bidding_zone"]) & (pl.col("ts").dt.date() == day)
    )
    fx = 1.0 if hours["currency"][0] == "USD" else usd_per_eur(day)
    return [p * fx + s["power_contract"]["adder_usd_per_mwh"] for p in hours["price_per_mwh"]]


def output(site_id: str, day: date) -> dict:
    rows = csv("mining_output_daily").filter(
        (pl.col("site_id") == site_id) & (pl.col("date") == day)
    )
    return rows.row(0, named=True)


def one(project: Project, sql: str, *params) -> tuple:
    rows = project.query(sql, list(params))
    assert len(rows) == 1, rows
    return rows[0]


@pytest.mark.parametrize("day", [date(2024, 4, 19), date(2024, 4, 21)], ids=["before", "after"])
def test_expected_btc_and_hashprice_either_side_of_the_halving(built, day):
    subsidy = 6.25 if day < date(2024, 4, 20) else 3.125
    hv = hashvalue(day)
    stored = one(
        built,
        "SELECT subsidy_btc, hashvalue_btc_per_ph_day, hashprice_usd_per_ph_day "
        "FROM hashprice_daily WHERE date = ? AND scenario = 'base'",
        day,
    )
    assert stored[0] == subsidy
    assert close(stored[1], hv) and close(stored[2], hv * btc_price(day))
    raw = output("se-lulea", day)
    expected_btc = raw["hashrate_th_s"] / 1000 * hv
    stored = one(
        built,
        "SELECT expected_btc, luck, revenue_usd FROM mining_profitability_daily "
        "WHERE date = ? AND site_id = 'se-lulea' AND scenario = 'base'",
        day,
    )
    assert close(stored[0], expected_btc)
    assert close(stored[1], raw["btc_mined"] / expected_btc)
    assert close(stored[2], raw["btc_mined"] * btc_price(day))


def test_dst_day_is_24_utc_hours_priced_with_the_last_published_fx(built):
    """2024-03-31: Sweden's local day has 23 hours; the UTC day still has 24. Good Friday and the
    weekend have no ECB rate, so the rate of Thursday 2024-03-28 applies."""
    day = date(2024, 3, 31)
    prices = power_prices_usd("se-lulea", day)
    assert len(prices) == 24
    assert (
        usd_per_eur(day)
        == csv("fx_rates_daily").filter(
            (pl.col("currency") == "EUR") & (pl.col("date") == date(2024, 3, 28))
        )["usd_per_unit"][0]
    )
    raw = output("se-lulea", day)
    stored = one(
        built,
        "SELECT avg_power_price_usd_per_mwh, energy_cost_usd "
        "FROM mining_profitability_daily "
        "WHERE date = ? AND site_id = 'se-lulea' AND scenario = 'base'",
        day,
    )
    assert close(stored[0], sum(prices) / 24)
    # energy drawn evenly over the day: each hour's MWh at that hour's price
    assert close(stored[1], sum(raw["energy_mwh"] / 24 * p for p in prices))


def test_negative_price_hour_runs_the_miners_and_earns_more_than_breakeven(built):
    s = site("us-tx-rockdale")
    prices = csv("energy_prices_hourly").filter(
        (pl.col("bidding_zone") == s["bidding_zone"])
        & (pl.col("ts").dt.date().is_between(date(2024, 3, 22), date(2024, 5, 2)))
        & (pl.col("price_per_mwh") < -5)
    )
    hour = prices.row(0, named=True)
    day = hour["ts"].date()
    power_usd = hour["price_per_mwh"] + s["power_contract"]["adder_usd_per_mwh"]
    efficiency = fleet_j_per_th("us-tx-rockdale") * s["pue"]
    breakeven = 1000 * hashvalue(day) * btc_price(day) / (24 * efficiency)
    energy = output("us-tx-rockdale", day)["energy_mwh"] / 24
    stored = one(
        built,
        "SELECT power_price_usd_per_mwh, breakeven_usd_per_mwh, run_miners, "
        "margin_usd, curtailment_saving_usd FROM curtailment_hourly "
        "WHERE ts = ? AND site_id = 'us-tx-rockdale' AND scenario = 'base'",
        hour["ts"],
    )
    assert power_usd < 0 and close(stored[0], power_usd)
    assert close(stored[1], breakeven)
    assert stored[2] is True
    assert close(stored[3], (breakeven - power_usd) * energy) and stored[3] > breakeven * energy
    assert stored[4] == 0


def test_price_cap_hour_is_curtailed_and_saves_its_loss(built):
    s = site("us-tx-rockdale")
    cap = (
        csv("energy_prices_hourly")
        .filter((pl.col("bidding_zone") == s["bidding_zone"]) & (pl.col("price_per_mwh") == 5000))
        .row(0, named=True)
    )
    day = cap["ts"].date()
    power_usd = 5000 + s["power_contract"]["adder_usd_per_mwh"]
    breakeven = (
        1000 * hashvalue(day) * btc_price(day) / (24 * fleet_j_per_th("us-tx-rockdale") * s["pue"])
    )
    energy = output("us-tx-rockdale", day)["energy_mwh"] / 24
    stored = one(
        built,
        "SELECT run_miners, margin_usd, curtailment_saving_usd "
        "FROM curtailment_hourly WHERE ts = ? AND site_id = 'us-tx-rockdale' "
        "AND scenario = 'base'",
        cap["ts"],
    )
    assert stored == (False, 0.0, pytest.approx((power_usd - breakeven) * energy, rel=TOL))


def test_fixed_contract_site_without_gpus(built):
    """ca-baie-comeau: fixed price, no GPUs, so AI is valued at the reference market."""
    day = date(2024, 4, 10)
    s, ref = site("ca-baie-comeau"), settings()["economics"]
    fixed = s["power_contract"]["fixed_price_usd_per_mwh"]
    raw = output("ca-baie-comeau", day)
    revenue = raw["btc_mined"] * btc_price(day)
    mining_per_mwh = (revenue - raw["energy_mwh"] * fixed) / raw["energy_mwh"]
    market = csv("gpu_market_prices_daily").filter(
        (pl.col("date") == day)
        & (pl.col("gpu_model") == ref["reference_gpu"]["gpu_model"])
        & (pl.col("gpu_variant") == ref["reference_gpu"]["gpu_variant"])
        & (pl.col("source") == ref["reference_gpu_market"]["source"])
        & (pl.col("lease_type") == ref["reference_gpu_market"]["lease_type"])
    )["price_usd_per_gpu_hour"][0]
    gpus_per_mw = 1000 / (ref["reference_gpu"]["kw_per_gpu"] * s["pue"])
    ai_per_mwh = gpus_per_mw * market * ref["reference_gpu"]["utilisation"] - fixed
    stored = one(
        built,
        "SELECT mining_margin_usd_per_mwh, ai_basis, ai_margin_usd_per_mwh, "
        "better_use, ai_uplift_usd_per_mw_day FROM site_economics_daily "
        "WHERE date = ? AND site_id = 'ca-baie-comeau' AND scenario = 'base'",
        day,
    )
    assert close(stored[0], mining_per_mwh)
    assert stored[1] == "market_reference" and close(stored[2], ai_per_mwh)
    assert stored[3] == ("ai" if ai_per_mwh > mining_per_mwh else "mining")
    assert close(stored[4], (ai_per_mwh - mining_per_mwh) * 24)


def test_zero_uptime_day(built):
    """2024-05-02: ca-baie-comeau's outage. Nothing mined, no cost per BTC or breakeven; the
    day's MWh is valued at its expected revenue at hashprice."""
    day = date(2024, 5, 2)
    assert output("ca-baie-comeau", day)["uptime_pct"] == 0
    stored = one(
        built,
        "SELECT btc_mined, luck, energy_cost_usd, cost_per_btc_usd, "
        "breakeven_usd_per_mwh FROM mining_profitability_daily "
        "WHERE date = ? AND site_id = 'ca-baie-comeau' AND scenario = 'base'",
        day,
    )
    assert stored == (0.0, None, 0.0, None, None)
    s = site("ca-baie-comeau")
    expected_per_mwh = (
        1000 * hashvalue(day) * btc_price(day) / (24 * fleet_j_per_th("ca-baie-comeau") * s["pue"])
        - s["power_contract"]["fixed_price_usd_per_mwh"]
    )
    stored = one(
        built,
        "SELECT mining_basis, mining_margin_usd_per_mwh FROM site_economics_daily "
        "WHERE date = ? AND site_id = 'ca-baie-comeau' AND scenario = 'base'",
        day,
    )
    assert stored[0] == "expected" and close(stored[1], expected_per_mwh)


def test_own_gpu_fleet_margin_depreciation_and_payback(built):
    day = date(2024, 4, 15)
    s = site("se-lulea")
    (fleet,) = [f for f in declared("gpu_fleet") if f["site_id"] == "se-lulea"]
    usage = (
        csv("gpu_usage_daily")
        .filter((pl.col("date") == day) & (pl.col("site_id") == "se-lulea"))
        .row(0, named=True)
    )
    energy_mwh = fleet["gpus"] * fleet["kw_per_gpu"] * 24 * s["pue"] / 1000
    power = sum(power_prices_usd("se-lulea", day)) / 24
    ai_per_mwh = (usage["revenue_usd"] - energy_mwh * power) / energy_mwh
    capex_per_mw = fleet["capex_usd_per_gpu"] * 1000 / (fleet["kw_per_gpu"] * s["pue"])
    ai_depreciation = capex_per_mw / fleet["depreciation_years"] / 8760
    stored = one(
        built,
        "SELECT ai_basis, ai_margin_usd_per_mwh, ai_depreciation_usd_per_mwh, "
        "ai_capex_usd_per_mw, mining_margin_usd_per_mwh, conversion_payback_years "
        "FROM site_economics_daily "
        "WHERE date = ? AND site_id = 'se-lulea' AND scenario = 'base'",
        day,
    )
    assert stored[0] == "own_fleet" and close(stored[1], ai_per_mwh)
    assert close(stored[2], ai_depreciation) and close(stored[3], capex_per_mw)
    uplift_per_year = (ai_per_mwh - stored[4]) * 24 * 365
    assert close(stored[5], capex_per_mw / uplift_per_year)


def test_bear_scenario_scales_price_difficulty_and_gpu_prices(built):
    day = date(2024, 5, 1)
    bear = next(
        s
        for s in yaml.safe_load((built.assets_dir / "scenarios.yaml").read_text())["scenarios"]
        if s["scenario"] == "bear"
    )
    months = (day - date.fromisoformat(settings()["partitions"]["start_date"])).days / 30.4375
    difficulty_factor = (1 + bear["difficulty_growth_pct_per_month"] / 100) ** months
    price = btc_price(day) * (1 + bear["btc_price_change_pct"] / 100)
    stored = one(
        built,
        "SELECT hashvalue_btc_per_ph_day, hashprice_usd_per_ph_day "
        "FROM hashprice_daily WHERE date = ? AND scenario = 'bear'",
        day,
    )
    assert close(stored[0], hashvalue(day) / difficulty_factor)
    assert close(stored[1], hashvalue(day) / difficulty_factor * price)
    # the same hashrate mines less under the harder difficulty; luck is kept
    raw = output("no-narvik", day)
    stored = one(
        built,
        "SELECT btc_mined, revenue_usd FROM mining_profitability_daily "
        "WHERE date = ? AND site_id = 'no-narvik' AND scenario = 'bear'",
        day,
    )
    assert close(stored[0], raw["btc_mined"] / difficulty_factor)
    assert close(stored[1], raw["btc_mined"] / difficulty_factor * price)
    # GPUs sold at the scenario's utilisation and the price trend
    gpu_factor = (1 + bear["gpu_price_change_pct_per_month"] / 100) ** months
    usage = (
        csv("gpu_usage_daily")
        .filter((pl.col("date") == day) & (pl.col("site_id") == "se-lulea"))
        .row(0, named=True)
    )
    (fleet,) = [f for f in declared("gpu_fleet") if f["site_id"] == "se-lulea"]
    sold = fleet["gpus"] * 24 * bear["ai_utilisation"]
    revenue = sold * usage["revenue_usd"] / usage["gpu_hours_sold"] * gpu_factor
    stored = one(
        built,
        "SELECT gpu_hours_sold, revenue_usd FROM ai_capacity_daily "
        "WHERE date = ? AND site_id = 'se-lulea' AND scenario = 'bear'",
        day,
    )
    assert close(stored[0], sold) and close(stored[1], revenue)


def test_curtailment_saving_rolls_up_per_day(built):
    day = date(2024, 4, 10)
    start = datetime(day.year, day.month, day.day)
    (hourly,) = built.query(
        "SELECT sum(curtailment_saving_usd) FROM curtailment_hourly "
        "WHERE site_id = 'us-tx-rockdale' AND scenario = 'base' AND ts >= ? AND ts < ?",
        [start, start + timedelta(days=1)],
    )
    daily = one(
        built,
        "SELECT curtailment_saving_usd FROM site_economics_daily WHERE date = ? "
        "AND site_id = 'us-tx-rockdale' AND scenario = 'base'",
        day,
    )
    assert close(daily[0], hourly[0])
