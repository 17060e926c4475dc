"""scripts/generate_sample.py: the embedded sample stays byte-identical, and any other period
(here a year around the halving) is complete, anchored, plausible and deterministic."""

from __future__ import annotations

import csv
import importlib.util
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import date, timedelta
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "generate_sample.py"
SAMPLE_DIR = ROOT / "pipelines" / "sample_data"
FILES = [
    "btc_network_daily.csv",
    "energy_prices_hourly.csv",
    "fx_rates_daily.csv",
    "gpu_market_prices_daily.csv",
    "gpu_usage_daily.csv",
    "mining_output_daily.csv",
]
YEAR = (date(2024, 1, 1), date(2024, 12, 31))


def load_script():
    spec = importlib.util.spec_from_file_location("generate_sample", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen = load_script()


def read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def all_days(start: date, end: date) -> list[str]:
    return [(start + timedelta(n)).isoformat() for n in range((end - start).days + 1)]


@pytest.fixture(scope="module")
def year_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("year")
    gen.generate(*YEAR, out)
    return out


def test_default_period_is_byte_identical_to_the_embedded_sample(tmp_path):
    gen.generate(*gen.sample_period(), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == FILES
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (SAMPLE_DIR / name).read_bytes(), name


def test_command_line(tmp_path):
    out = tmp_path / "out"
    args = [sys.executable, str(SCRIPT), "--start", "2024-06-01", "--end", "2024-06-03"]
    subprocess.run([*args, "--out", str(out)], check=True, capture_output=True, cwd=tmp_path)
    assert [r["date"] for r in read(out / "btc_network_daily.csv")] == all_days(
        date(2024, 6, 1), date(2024, 6, 3)
    )
    with pytest.raises(SystemExit):
        gen.main(["--start", "2024-06-01", "--out", str(out)])  # --end missing
    with pytest.raises(SystemExit):
        gen.main(["--start", "2024-06-03", "--end", "2024-06-01", "--out", str(out)])


def test_a_year_covers_every_day(year_dir):
    days = all_days(*YEAR)
    network = read(year_dir / "btc_network_daily.csv")
    assert [r["date"] for r in network] == days

    energy = read(year_dir / "energy_prices_hourly.csv")
    zones = {r["bidding_zone"] for r in energy}
    assert zones == {"SE1", "NO4", "ERCOT_HB_WEST"}
    hours = defaultdict(set)
    for r in energy:
        hours[r["ts"][:10], r["bidding_zone"]].add(r["ts"][11:])
    expected = {f"{h:02d}:00:00Z" for h in range(24)}
    assert set(hours) == {(d, z) for d in days for z in zones}
    assert all(v == expected for v in hours.values())
    assert len(energy) == 24 * len(zones) * len(days)  # no duplicates, DST days included
    for dst_day in ("2024-03-31", "2024-10-27"):
        assert all(hours[dst_day, z] == expected for z in zones)

    mining = Counter(r["date"] for r in read(year_dir / "mining_output_daily.csv"))
    assert set(mining) == set(days) and set(mining.values()) == {4}
    market = Counter(r["date"] for r in read(year_dir / "gpu_market_prices_daily.csv"))
    assert set(market) == set(days) and set(market.values()) == {9}
    usage = Counter(r["date"] for r in read(year_dir / "gpu_usage_daily.csv"))
    assert set(usage) == set(days) and len(set(usage.values())) == 1

    fx = read(year_dir / "fx_rates_daily.csv")
    holidays = {"2024-01-01", "2024-03-29", "2024-04-01", "2024-05-01", "2024-12-25", "2024-12-26"}
    business = {d for d in days if date.fromisoformat(d).weekday() < 5} - holidays
    rates = Counter(r["date"] for r in fx)
    assert set(rates) == business and set(rates.values()) == {3}


def test_holidays_and_easter():
    assert gen.target_holidays([2024]) == {
        "2024-01-01",
        "2024-03-29",
        "2024-04-01",
        "2024-05-01",
        "2024-12-25",
        "2024-12-26",
    }
    easter = {2000: "04-23", 2019: "04-21", 2023: "04-09", 2024: "03-31", 2025: "04-20"}
    for year, day in easter.items():
        assert gen.easter(year).isoformat() == f"{year}-{day}"
    assert gen.easter(2038) == date(2038, 4, 25) and gen.easter(2285) == date(2285, 3, 22)


def test_a_year_is_anchored_at_the_halving(year_dir):
    network = read(year_dir / "btc_network_daily.csv")
    by_day = {r["date"]: r for r in network}
    assert by_day["2024-04-20"]["first_height"] == "840000"
    for a, b in zip(network, network[1:], strict=False):
        assert int(b["first_height"]) == int(a["first_height"]) + int(a["blocks"])
        if int(a["first_height"]) // 2016 == int(b["first_height"]) // 2016:
            assert a["difficulty"] == b["difficulty"]
        else:
            assert 0.9 <= int(b["difficulty"]) / int(a["difficulty"]) <= 1.1
    for r in network:
        assert r["subsidy_btc"] == ("6.25000000" if r["date"] < "2024-04-20" else "3.12500000")
    # the retargets of the embedded sample stay where they were
    sample = {r["date"]: r for r in read(SAMPLE_DIR / "btc_network_daily.csv")}
    assert by_day["2024-03-21"]["difficulty"] == sample["2024-03-21"]["difficulty"]


@pytest.mark.parametrize(
    ("start", "end"),
    [("2023-01-01", "2024-04-19"), ("2024-04-21", "2024-06-30"), ("2025-01-01", "2025-12-31")],
)
def test_periods_without_the_halving_day_meet_the_expected_height(tmp_path, start, end):
    gen.generate(date.fromisoformat(start), date.fromisoformat(end), tmp_path)
    network = read(tmp_path / "btc_network_daily.csv")
    first, last = network[0], network[-1]
    halving = date(2024, 4, 20)
    if date.fromisoformat(end) < halving:
        assert (
            int(last["first_height"]) + int(last["blocks"])
            == 840_000 - 144 * (halving - date.fromisoformat(end) - timedelta(1)).days
        )
        assert all(r["subsidy_btc"] == "6.25000000" for r in network)
    else:
        assert (
            int(first["first_height"]) == 840_000 + 144 * (date.fromisoformat(start) - halving).days
        )
        assert all(r["subsidy_btc"] == "3.12500000" for r in network)
    prices = [float(r["price_usd"]) for r in network]
    assert 15_000 <= min(prices) and max(prices) <= 130_000


def test_a_year_has_plausible_values(year_dir):
    network = read(year_dir / "btc_network_daily.csv")
    prices = [float(r["price_usd"]) for r in network]
    assert 30_000 <= min(prices) and max(prices) <= 120_000
    hashrates = [float(r["hashrate_eh_s"]) for r in network]
    assert 350 <= min(hashrates) and max(hashrates) <= 1_000
    assert all(120 <= int(r["blocks"]) <= 170 for r in network)
    assert all(0 < float(r["fees_btc"]) < 1_200 for r in network)

    for r in read(year_dir / "energy_prices_hourly.csv"):
        price = float(r["price_per_mwh"])
        if r["bidding_zone"].startswith("ERCOT"):
            assert r["currency"] == "USD" and -25 <= price <= 5_000
        else:
            assert r["currency"] == "EUR" and -5 <= price <= 200

    bands = {"EUR": (1.06, 1.10), "NOK": (0.085, 0.1), "SEK": (0.085, 0.1)}
    for r in read(year_dir / "fx_rates_daily.csv"):
        lo, hi = bands[r["currency"]]
        assert lo <= float(r["usd_per_unit"]) <= hi

    for r in read(year_dir / "gpu_market_prices_daily.csv"):
        p25, price, p75 = (float(r[f"{k}_usd_per_gpu_hour"]) for k in ("p25", "price", "p75"))
        assert 0.15 <= p25 <= price <= p75 <= 6.0 and int(r["offers"]) > 0
    for r in read(year_dir / "gpu_usage_daily.csv"):
        assert 0.5 <= float(r["revenue_usd"]) / float(r["gpu_hours_sold"]) <= 4.0

    mining = read(year_dir / "mining_output_daily.csv")
    outage = [(r["site_id"], r["date"]) for r in mining if r["uptime_pct"] == "0.00"]
    assert outage == [("ca-baie-comeau", "2024-05-02")]
    assert all(0 <= float(r["btc_mined"]) < 20 for r in mining)


def test_a_year_is_deterministic(year_dir, tmp_path):
    gen.generate(*YEAR, tmp_path)
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (year_dir / name).read_bytes(), name
