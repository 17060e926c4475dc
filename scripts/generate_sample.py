"""Generate the embedded sample data of the megawatt pipeline into pipelines/sample_data/.

Reads the sample period (assets/settings.yaml) and the sites and fleets
(assets/infrastructure/*.yaml), and writes synthetic but realistically shaped CSV files:
btc_network_daily (difficulty, heights, subsidy, fees, price; halving at block 840,000 on
2024-04-20), energy_prices_hourly (index-linked bidding zones), fx_rates_daily (ECB-style USD
rates of EUR, NOK, SEK), mining_output_daily (per site), gpu_market_prices_daily (vast.ai and a
broker index) and gpu_usage_daily (per GPU fleet).

Run from the project root:  .venv/bin/python scripts/generate_sample.py
Each file has its own fixed-seed generator, so the output is byte-identical across runs.
"""

import csv
import random
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from itertools import accumulate
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

ROOT = Path(__file__).resolve().parents[1]
ASSETS, OUT_DIR = ROOT / "assets", ROOT / "pipelines" / "sample_data"
SEED = 20240420

HALVING_DATE, HALVING_HEIGHT = "2024-04-20", 840_000
BLOCKS_PER_HALVING, BLOCKS_PER_RETARGET = 210_000, 2016
START_DIFFICULTY = 83_950_745_733_153  # in effect at the first day's first block
DIFFICULTY_CHANGES = [1.029, 1.020, 0.944, 1.015, 0.992]  # factors of the next retargets
FEE_PER_BLOCK = (0.10, 0.50)  # BTC on normal days: uniform in this range
# BTC per block around the halving (Runes launch)
FEE_SPIKES = {"2024-04-20": 7.5, "2024-04-21": 1.6, "2024-04-22": 0.9, "2024-04-23": 0.6}
# fmt: off
BTC_PRICE_ANCHORS = {  # USD close the random walk follows
    "2024-03-21": 67_500, "2024-03-31": 69_000, "2024-04-08": 69_500, "2024-04-14": 65_500,
    "2024-04-20": 64_200, "2024-04-28": 62_500, "2024-05-02": 58_000, "2024-05-10": 61_000,
    "2024-05-15": 65_000, "2024-05-20": 69_500}
# fmt: on
BTC_PRICE_RANGE = (57_000, 73_000)

ERCOT_SPIKE_EVENTS = [2, 3, 2, 2]  # consecutive local evening hours of each scarcity event
ERCOT_SPIKE_RANGE, ERCOT_OFFER_CAP = (300.0, 2500.0), 5000.0
CURTAIL_ABOVE_USD_PER_MWH = 150.0

TARGET_HOLIDAYS = {"2024-03-29", "2024-04-01", "2024-05-01"}
USD_PER_EUR = (1.080, 1.066, 1.094)  # mean, min, max
EUR_PER_UNIT = {"NOK": (11.65, 11.42, 11.88), "SEK": (11.60, 11.42, 11.78)}

OUTAGES = {("ca-baie-comeau", "2024-05-02")}  # (site_id, day) without any mining

GPU_MARKET = [  # model, variant, source, lease_type, median at start and end, typical offers
    ("H100", "SXM", "vast.ai", "on-demand", 2.75, 2.35, 220),
    ("H100", "PCIe", "vast.ai", "on-demand", 2.34, 2.00, 140),
    ("A100", "SXM", "vast.ai", "on-demand", 1.42, 1.22, 260),
    ("A100", "PCIe", "vast.ai", "on-demand", 1.12, 0.98, 180),
    ("H100", "SXM", "broker-index", "contract", 2.23, 2.13, 8),
]
SPOT_DISCOUNT = (0.60, 0.70)  # vast.ai spot = on-demand * uniform(range)
GPU_UTILISATION = {"H100": (0.82, 0.93), "A100": (0.70, 0.84)}
GPU_REALISED_PRICE = {"H100": (2.40, 2.20), "A100": (1.25, 1.10)}  # USD/GPU-hour, start, end


def load(name, key):
    return yaml.safe_load((ASSETS / name).read_text())[key]


def fmt(x, decimals):
    return f"{round(x, decimals) + 0.0:.{decimals}f}"  # + 0.0 turns -0.0 into 0.0


def walk(rng, trend, sd, lo, hi, phi=0.8):
    """Mean-reverting random walk around `trend` (one value per step), clipped to lo..hi."""
    dev, out = 0.0, []
    for t in trend:
        dev = phi * dev + rng.gauss(0, sd)
        out.append(min(hi, max(lo, t + dev)))
    return out


def linear(n, start, end):
    return [start + (end - start) * i / max(n - 1, 1) for i in range(n)]


def interpolate(days, anchors):
    """Piecewise-linear values on `days` through the {"YYYY-MM-DD": value} anchors."""
    points = sorted((date.fromisoformat(d), v) for d, v in anchors.items())
    spans = list(zip(points, points[1:], strict=False))
    out = []
    for d in days:
        (d0, v0), (d1, v1) = next(span for span in spans if d <= span[1][0])
        out.append(v0 + (v1 - v0) * (d - d0).days / (d1 - d0).days)
    return out


def btc_network_daily(days):
    rng = random.Random(f"{SEED}:btc_network")
    blocks = [min(170, max(120, round(rng.gauss(144, 9)))) for _ in days]
    halving_day = days.index(date.fromisoformat(HALVING_DATE))
    first = HALVING_HEIGHT - sum(blocks[:halving_day])  # so that the halving day starts there
    heights = list(accumulate(blocks[:-1], initial=first))
    difficulties = [START_DIFFICULTY]  # one per retarget epoch
    for factor in DIFFICULTY_CHANGES:
        difficulties.append(round(difficulties[-1] * factor))
    prices = walk(rng, interpolate(days, BTC_PRICE_ANCHORS), 600, *BTC_PRICE_RANGE)
    rows = []
    for d, n, h, price in zip(days, blocks, heights, prices, strict=True):
        # a day's difficulty is the one in effect at its first block
        difficulty = difficulties[h // BLOCKS_PER_RETARGET - heights[0] // BLOCKS_PER_RETARGET]
        subsidy = sum(50 / 2 ** (k // BLOCKS_PER_HALVING) for k in range(h, h + n)) / n
        spike = FEE_SPIKES.get(d.isoformat())
        fee = spike * rng.uniform(0.97, 1.03) if spike else rng.uniform(*FEE_PER_BLOCK)
        hashrate = difficulty * 2**32 * n / 86400 / 1e18
        row = [d.isoformat(), str(difficulty), fmt(hashrate, 3), str(n), str(h)]
        rows.append(row + [fmt(subsidy, 8), fmt(n * fee, 8), fmt(price, 2)])
    header = "date,difficulty,hashrate_eh_s,blocks,first_height,subsidy_btc,fees_btc,price_usd"
    return header, rows


def nordic_price(rng, level, local, amplitude, noise):
    shape = [-0.55] * 6 + [-0.1, 0.35, 0.35, 0.35] + [-0.05] * 7 + [0.3] * 4 + [-0.1, -0.2, -0.3]
    weekend = 0.45 if local.weekday() >= 5 else 1.0
    price = level * weekend * (1 + amplitude * shape[local.hour])
    return max(-5.0, price + rng.gauss(0, noise))


def ercot_price(rng, level, local):
    hour = local.hour
    shape = [0.8] * 6 + [1.0] * 3 + [0.85] + [0.55] * 6 + [0.9, 1.25] + [1.6] * 4 + [1.15, 0.95]
    if (hour < 6 or 10 <= hour <= 15) and rng.random() < 0.18:  # wind at night, solar at noon
        return -(1 + 24 * rng.random() ** 2)
    return max(2.0, level * shape[hour] + rng.gauss(0, 4))


def energy_prices_hourly(days, sites):
    rng = random.Random(f"{SEED}:energy_prices")
    index_linked = [s for s in sites if s["power_contract"]["type"] == "index_linked"]
    zones = {s["bidding_zone"]: s["timezone"] for s in reversed(index_linked)}
    hours = [datetime.combine(d, time(h), UTC) for d in days for h in range(24)]
    nordic_level = walk(rng, linear(len(days), 30, 16), 6, 2, 42, phi=0.7)
    spikes = {}  # (local date, local hour) -> ERCOT price of an evening scarcity event
    spike_days = sorted(rng.sample(days[:-1], len(ERCOT_SPIKE_EVENTS)))
    for day, length in zip(spike_days, ERCOT_SPIKE_EVENTS, strict=True):
        start = rng.randint(17, 19)
        for hour in range(start, start + length):
            spikes[day, hour] = round(rng.uniform(*ERCOT_SPIKE_RANGE), 2)
    spikes[max(spikes, key=spikes.get)] = ERCOT_OFFER_CAP
    rows = []
    for zone, tz in sorted(zones.items()):
        ercot, smooth = zone.startswith("ERCOT"), zone != "SE1"  # NO4: lower and smoother
        if ercot:
            level = walk(rng, [28] * len(days), 5, 15, 40)
        else:
            level = [v * (0.85 if smooth else 1.0) for v in nordic_level]
        amplitude, noise = (0.5, 1.5) if smooth else (1.0, 3.5)
        for i, ts in enumerate(hours):
            local = ts.astimezone(ZoneInfo(tz))  # the daily shape follows local hours
            if ercot:
                price = spikes.get((local.date(), local.hour))
                price = price or ercot_price(rng, level[i // 24], local)
            else:
                price = nordic_price(rng, level[i // 24], local, amplitude, noise)
            currency = "USD" if ercot else "EUR"
            rows.append([ts.strftime("%Y-%m-%dT%H:00:00Z"), zone, fmt(price, 2), currency])
    return "ts,bidding_zone,price_per_mwh,currency", rows


def fx_rates_daily(days):
    rng = random.Random(f"{SEED}:fx_rates")
    business = [d for d in days if d.weekday() < 5 and d.isoformat() not in TARGET_HOLIDAYS]
    mean, lo, hi = USD_PER_EUR
    usd_per_eur = walk(rng, [mean] * len(business), 0.003, lo, hi)
    eur_per = {c: walk(rng, [m] * len(business), 0.04, *r) for c, (m, *r) in EUR_PER_UNIT.items()}
    rows = []
    for i, d in enumerate(business):
        rows.append([d.isoformat(), "EUR", fmt(usd_per_eur[i], 6)])
        for c, rates in eur_per.items():
            rows.append([d.isoformat(), c, fmt(usd_per_eur[i] / rates[i], 6)])
    return "date,currency,usd_per_unit", rows


def mining_output_daily(days, sites, asic_fleet, network, energy):
    rng = random.Random(f"{SEED}:mining_output")
    net = {row[0]: row for row in network}
    curtailed = Counter(  # (bidding_zone, date) -> hours above the curtailment price
        (zone, ts[:10])
        for ts, zone, price, _ in energy
        if zone.startswith("ERCOT") and float(price) > CURTAIL_ABOVE_USD_PER_MWH
    )
    rows = []
    for d in days:
        day = d.isoformat()
        _, difficulty, _, blocks, _, subsidy, fees, _ = net[day]
        reward_per_block = float(subsidy) + float(fees) / int(blocks)
        hashvalue = 1e15 * 86400 * reward_per_block / (int(difficulty) * 2**32)  # BTC/PH/day
        for site in sorted(sites, key=lambda s: s["site_id"]):
            fleet = [f for f in asic_fleet if f["site_id"] == site["site_id"]]
            assert fleet, f"site {site['site_id']} has no ASIC fleet"
            installed_th = sum(f["units"] * f["th_per_unit"] for f in fleet)
            installed_w = sum(f["units"] * f["watts_per_unit"] for f in fleet)
            availability, performance = rng.uniform(95, 99.5), rng.uniform(0.97, 1.0)
            luck = rng.gauss(0.985, 0.012)  # FPPS payout net of the pool fee
            up_hours = 24 - curtailed[site["bidding_zone"], day]
            uptime = round(up_hours / 24 * availability, 2)
            if (site["site_id"], day) in OUTAGES:
                uptime = 0.0
            hashrate = round(installed_th * uptime / 100 * performance, 1)
            energy_mwh = installed_w * hashrate / installed_th * 24 / 1e6 * site["pue"]
            btc = hashrate / 1000 * hashvalue * luck
            row = [day, site["site_id"], fmt(btc, 8), fmt(hashrate, 1)]
            rows.append(row + [fmt(uptime, 2), fmt(energy_mwh, 4)])
    return "date,site_id,btc_mined,hashrate_th_s,uptime_pct,energy_mwh", rows


def gpu_market_prices_daily(days):
    rng = random.Random(f"{SEED}:gpu_market")
    rows = []
    for model, variant, source, lease, start, end, offers in GPU_MARKET:
        sd = 0.004 if source == "broker-index" else 0.025 * start
        median = walk(rng, linear(len(days), start, end), sd, 0.5 * end, 1.5 * start)
        leases = [(lease, 1.0)] + ([("spot", None)] if lease == "on-demand" else [])
        for lease_type, factor in leases:
            for d, m in zip(days, median, strict=True):
                price = m * (factor or rng.uniform(*SPOT_DISCOUNT))
                p25 = price * (1 - rng.uniform(0.08, 0.15))
                p75 = price * (1 + rng.uniform(0.08, 0.15))
                if source == "broker-index":
                    n = rng.randint(3, 12)
                else:
                    n = round(offers * (factor or 0.6) * rng.uniform(0.7, 1.3))
                row = [d.isoformat(), model, variant, lease_type, source, fmt(price, 4)]
                rows.append(row + [fmt(p25, 4), fmt(p75, 4), str(n)])
    header = "date,gpu_model,gpu_variant,lease_type,source,price_usd_per_gpu_hour,"
    return header + "p25_usd_per_gpu_hour,p75_usd_per_gpu_hour,offers", rows


def gpu_usage_daily(days, gpu_fleet):
    rng = random.Random(f"{SEED}:gpu_usage")
    rows = []
    for f in gpu_fleet:
        model, capacity = f["gpu_model"], f["gpus"] * 24
        prices = walk(rng, linear(len(days), *GPU_REALISED_PRICE[model]), 0.02, 0.0, 10.0)
        for d, price in zip(days, prices, strict=True):
            hours = min(capacity, round(capacity * rng.uniform(*GPU_UTILISATION[model]), 1))
            rows.append([d.isoformat(), f["site_id"], model, fmt(hours, 1), fmt(hours * price, 2)])
    return "date,site_id,gpu_model,gpu_hours_sold,revenue_usd", rows


def write_csv(name, header, rows, keys):
    """Write `rows` sorted by their first `keys` columns."""
    with open(OUT_DIR / name, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header.split(","))
        writer.writerows(sorted(rows, key=lambda r: r[:keys]))
    print(f"{name}: {len(rows)} rows")


def main():
    period = load("settings.yaml", "sample_period")
    first, last = (date.fromisoformat(period[k]) for k in ("start_date", "end_date"))
    days = [first + timedelta(n) for n in range((last - first).days + 1)]
    sites = load("infrastructure/sites.yaml", "sites")
    asic_fleet = load("infrastructure/asic_fleet.yaml", "asic_fleet")
    gpu_fleet = load("infrastructure/gpu_fleet.yaml", "gpu_fleet")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    network = btc_network_daily(days)
    energy = energy_prices_hourly(days, sites)
    mining = mining_output_daily(days, sites, asic_fleet, network[1], energy[1])
    write_csv("btc_network_daily.csv", *network, keys=1)
    write_csv("energy_prices_hourly.csv", *energy, keys=2)
    write_csv("fx_rates_daily.csv", *fx_rates_daily(days), keys=2)
    write_csv("mining_output_daily.csv", *mining, keys=2)
    write_csv("gpu_market_prices_daily.csv", *gpu_market_prices_daily(days), keys=5)
    write_csv("gpu_usage_daily.csv", *gpu_usage_daily(days, gpu_fleet), keys=3)


if __name__ == "__main__":
    main()
