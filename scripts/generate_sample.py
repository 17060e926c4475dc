"""Generate the embedded sample data of the megawatt pipeline into pipelines/sample_data/.

Reads the sample period (assets/settings.yaml) and the sites and fleets
(assets/infrastructure/*.yaml), and writes synthetic but realistically shaped CSV files:
btc_network_daily (difficulty, heights, subsidy, fees, price; halving at block 840,000 on
2024-04-20), energy_prices_hourly (index-linked bidding zones), fx_rates_daily (ECB-style USD
rates of EUR, NOK, SEK), mining_output_daily (per site), gpu_market_prices_daily (vast.ai and a
broker index) and gpu_usage_daily (per GPU fleet).

Run from the project root:  .venv/bin/python scripts/generate_sample.py
Without arguments it writes the sample period into pipelines/sample_data/. Any other period (for
tests and benchmarks that backfill a year or more) goes elsewhere:

    .venv/bin/python scripts/generate_sample.py --start 2024-01-01 --end 2024-12-31 --out DIR

or, from Python, `generate(start, end, out_dir)`. The constants below are tuned to the sample
period; outside it the generators extend them (block heights from the halving anchor, seeded
difficulty retargets, a BTC price level that keeps drifting, seasonal Nordic prices, TARGET
holidays of every year, GPU price trends extrapolated from the sample period with a floor).
Each file has its own fixed-seed generator, so the output is byte-identical across runs for a
given period.
"""

import argparse
import csv
import math
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
# the span the constants below are tuned to (the sample period of assets/settings.yaml)
REFERENCE_START, REFERENCE_END = date(2024, 3, 21), date(2024, 5, 20)

HALVING_DATE, HALVING_HEIGHT = "2024-04-20", 840_000
BLOCKS_PER_HALVING, BLOCKS_PER_RETARGET = 210_000, 2016
START_DIFFICULTY = 83_950_745_733_153  # set at block 834,624 (2024-03-07): epoch 414
START_EPOCH = 834_624 // BLOCKS_PER_RETARGET
DIFFICULTY_CHANGES = [1.029, 1.020, 0.944, 1.015, 0.992]  # factors of the next retargets
# factors of retargets beyond DIFFICULTY_CHANGES (and before START_EPOCH): gauss(mean, sd), clipped
RETARGET_FACTOR = (1.015, 0.025, 0.9, 1.1)
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
# fmt: off
BTC_PRICE_LEVELS = {  # approximate USD closes: the level the walk reverts to outside the anchors
    "2023-01-01": 16_600, "2023-04-01": 28_500, "2023-07-01": 30_500, "2023-10-01": 27_000,
    "2024-01-01": 42_500, "2024-07-01": 62_700, "2024-10-01": 61_000, "2025-01-01": 94_000,
    "2025-04-01": 85_000, "2025-07-01": 106_000, "2025-10-01": 118_000, "2026-01-01": 88_000}
# fmt: on
BTC_PRICE_BAND = (15_000, 130_000)  # outside the anchors; beyond the levels the level drifts
BTC_LEVEL_DRIFT_SD = 0.01  # daily log-change of the level beyond BTC_PRICE_LEVELS
BTC_PRICE_SD, BTC_PRICE_PHI = 0.015, 0.9  # walk outside the anchors: sd relative to the level

ERCOT_SPIKE_EVENTS = [2, 3, 2, 2]  # consecutive local evening hours of each scarcity event
# (per 61 days; a longer period has proportionally more, their lengths repeating this list)
ERCOT_SPIKE_RANGE, ERCOT_OFFER_CAP = (300.0, 2500.0), 5000.0
CURTAIL_ABOVE_USD_PER_MWH = 150.0

# Nordic (SE1) EUR/MWh level by day of the year, any year (NO4 is 15% lower): the sample's spring
# decline from 30 to 16, a summer low, an autumn rise and a winter high
# fmt: off
NORDIC_SEASON = {"01-01": 40, "02-15": 38, "03-21": 30, "05-20": 16, "07-15": 12, "09-01": 20,
                 "10-15": 30, "12-01": 38}
# fmt: on
NORDIC_LEVEL_MAX = (42, 1.4)  # the walk's cap: max(first, second * seasonal level)

# TARGET closing days (no ECB reference rates) besides weekends: these fixed days of every year,
# plus Good Friday and Easter Monday
TARGET_FIXED_HOLIDAYS = ("01-01", "05-01", "12-25", "12-26")
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
# GPU price trends run from "start" on REFERENCE_START to "end" on REFERENCE_END and extrapolate
# linearly outside, kept within these fractions of the start price
GPU_TREND_FLOOR, GPU_TREND_CAP = 0.4, 1.4


def load(name, key):
    return yaml.safe_load((ASSETS / name).read_text())[key]


def fmt(x, decimals):
    return f"{round(x, decimals) + 0.0:.{decimals}f}"  # + 0.0 turns -0.0 into 0.0


def steps(x, n):
    return list(x) if isinstance(x, list | tuple) else [x] * n


def walk(rng, trend, sd, lo, hi, phi=0.8):
    """Mean-reverting random walk around `trend` (one value per step), clipped to lo..hi.

    sd, lo, hi and phi are numbers or lists with one value per step."""
    n, dev, out = len(trend), 0.0, []
    params = zip(trend, steps(sd, n), steps(lo, n), steps(hi, n), steps(phi, n), strict=True)
    for t, sd_, lo_, hi_, phi_ in params:
        dev = phi_ * dev + rng.gauss(0, sd_)
        out.append(min(hi_, max(lo_, t + dev)))
    return out


def interpolate(days, anchors):
    """Piecewise-linear values on `days` (ascending) through the {"YYYY-MM-DD": value} anchors."""
    points = sorted((date.fromisoformat(d), v) for d, v in anchors.items())
    spans = list(zip(points, points[1:], strict=False))
    out, k = [], 0
    for d in days:
        while k < len(spans) - 1 and d > spans[k][1][0]:
            k += 1
        (d0, v0), (d1, v1) = spans[k]
        out.append(v0 + (v1 - v0) * (d - d0).days / (d1 - d0).days)
    return out


def reference_trend(days, start, end):
    """`start` on REFERENCE_START to `end` on REFERENCE_END, linear, extrapolated and kept within
    GPU_TREND_FLOOR..GPU_TREND_CAP of `start` (on the reference span: linear from start to end)."""
    n = (REFERENCE_END - REFERENCE_START).days
    lo, hi = GPU_TREND_FLOOR * start, GPU_TREND_CAP * start
    return [min(hi, max(lo, start + (end - start) * (d - REFERENCE_START).days / n)) for d in days]


def easter(year):
    """Easter Sunday of the Gregorian calendar (anonymous algorithm: Meeus, Jones, Butcher)."""
    a, (b, c) = year % 19, divmod(year, 100)
    (d, e), f = divmod(b, 4), (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    weekday = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * weekday) // 451
    month, day = divmod(h + weekday - 7 * m + 114, 31)
    return date(year, month, day + 1)


def target_holidays(years):
    """ISO dates on which TARGET is closed (besides weekends) in `years`."""
    out = set()
    for year in years:
        out |= {f"{year}-{md}" for md in TARGET_FIXED_HOLIDAYS}
        out |= {(easter(year) + timedelta(n)).isoformat() for n in (-2, 1)}
    return out


def block_heights(days, blocks):
    """First height of each day: 2024-04-20 starts at HALVING_HEIGHT. A period without that day
    meets the expected height (144 blocks a day from the halving) at its edge nearer to it."""
    halving = date.fromisoformat(HALVING_DATE)
    if halving in days:
        first = HALVING_HEIGHT - sum(blocks[: days.index(halving)])
    elif days[-1] < halving:  # the day after the period starts at the expected height
        first = HALVING_HEIGHT - 144 * (halving - days[-1] - timedelta(1)).days - sum(blocks)
    else:
        first = HALVING_HEIGHT + 144 * (days[0] - halving).days
    return list(accumulate(blocks[:-1], initial=first))


def retarget_factor(rng):
    mean, sd, lo, hi = RETARGET_FACTOR
    return min(hi, max(lo, rng.gauss(mean, sd)))


def epoch_difficulties(first_epoch, last_epoch):
    """{epoch: difficulty} from START_DIFFICULTY (START_EPOCH) through DIFFICULTY_CHANGES, then
    seeded factors forwards and backwards; the same for every period."""
    out = {START_EPOCH: START_DIFFICULTY}
    forward, changes = random.Random(f"{SEED}:difficulty:forward"), iter(DIFFICULTY_CHANGES)
    for epoch in range(START_EPOCH, last_epoch):
        factor = next(changes, None) or retarget_factor(forward)
        out[epoch + 1] = round(out[epoch] * factor)
    backward = random.Random(f"{SEED}:difficulty:backward")
    for epoch in range(START_EPOCH, first_epoch, -1):
        out[epoch - 1] = round(out[epoch] / retarget_factor(backward))
    return out


def drifting_level(days, edge, value, direction):
    """Level on `days` beyond `edge` (in `direction`, +1 or -1): a seeded log random walk from
    `value` on `edge`, within BTC_PRICE_BAND; the same for every period."""
    far = max(((d - edge).days * direction for d in days), default=0)
    rng = random.Random(f"{SEED}:btc_level:{direction}")
    lo, hi = BTC_PRICE_BAND
    levels = [value]
    for _ in range(far):
        levels.append(min(hi, max(lo, levels[-1] * math.exp(rng.gauss(0, BTC_LEVEL_DRIFT_SD)))))
    return [levels[(d - edge).days * direction] for d in days]


def btc_prices(rng, days):
    """USD closes: the walk around BTC_PRICE_ANCHORS within their dates, elsewhere a wider walk
    around BTC_PRICE_LEVELS and, beyond them, a level that keeps drifting."""
    anchors = {**BTC_PRICE_LEVELS, **BTC_PRICE_ANCHORS}
    first, last = (date.fromisoformat(d) for d in (min(anchors), max(anchors)))
    inside = [d for d in days if first <= d <= last]
    levels = dict(zip(inside, interpolate(inside, anchors), strict=True))
    for edge, direction in ((first, -1), (last, 1)):
        beyond = [d for d in days if (d - edge).days * direction > 0]
        drifted = drifting_level(beyond, edge, anchors[edge.isoformat()], direction)
        levels.update(zip(beyond, drifted, strict=True))
    trend = [levels[d] for d in days]
    fine = [min(BTC_PRICE_ANCHORS) <= d.isoformat() <= max(BTC_PRICE_ANCHORS) for d in days]
    sd = [600 if f else BTC_PRICE_SD * t for f, t in zip(fine, trend, strict=True)]
    lo = [BTC_PRICE_RANGE[0] if f else BTC_PRICE_BAND[0] for f in fine]
    hi = [BTC_PRICE_RANGE[1] if f else BTC_PRICE_BAND[1] for f in fine]
    phi = [0.8 if f else BTC_PRICE_PHI for f in fine]
    return walk(rng, trend, sd, lo, hi, phi)


def btc_network_daily(days):
    rng = random.Random(f"{SEED}:btc_network")
    blocks = [min(170, max(120, round(rng.gauss(144, 9)))) for _ in days]
    heights = block_heights(days, blocks)
    difficulties = epoch_difficulties(
        heights[0] // BLOCKS_PER_RETARGET, heights[-1] // BLOCKS_PER_RETARGET
    )
    prices = btc_prices(rng, days)
    rows = []
    for d, n, h, price in zip(days, blocks, heights, prices, strict=True):
        # a day's difficulty is the one in effect at its first block
        difficulty = difficulties[h // BLOCKS_PER_RETARGET]
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


def nordic_season(days):
    """NORDIC_SEASON on `days`, piecewise-linear across years."""
    years = range(days[0].year - 1, days[-1].year + 2)
    return interpolate(days, {f"{y}-{md}": v for y in years for md, v in NORDIC_SEASON.items()})


def energy_prices_hourly(days, sites):
    rng = random.Random(f"{SEED}:energy_prices")
    index_linked = [s for s in sites if s["power_contract"]["type"] == "index_linked"]
    zones = {s["bidding_zone"]: s["timezone"] for s in reversed(index_linked)}
    hours = [datetime.combine(d, time(h), UTC) for d in days for h in range(24)]
    season = nordic_season(days)
    cap, factor = NORDIC_LEVEL_MAX
    nordic_level = walk(rng, season, 6, 2, [max(cap, factor * v) for v in season], phi=0.7)
    spikes = {}  # (local date, local hour) -> ERCOT price of an evening scarcity event
    reference_days = (REFERENCE_END - REFERENCE_START).days + 1
    events = max(1, round(len(days) * len(ERCOT_SPIKE_EVENTS) / reference_days))
    events = min(events, len(days) - 1)
    lengths = [ERCOT_SPIKE_EVENTS[k % len(ERCOT_SPIKE_EVENTS)] for k in range(events)]
    spike_days = sorted(rng.sample(days[:-1], events))
    for day, length in zip(spike_days, lengths, strict=True):
        start = rng.randint(17, 19)
        for hour in range(start, start + length):
            spikes[day, hour] = round(rng.uniform(*ERCOT_SPIKE_RANGE), 2)
    if spikes:
        spikes[max(spikes, key=spikes.get)] = ERCOT_OFFER_CAP
    rows = []
    for zone, tz in sorted(zones.items()):
        ercot, smooth = zone.startswith("ERCOT"), zone != "SE1"  # NO4: lower and smoother
        if ercot:
            level = walk(rng, [28] * len(days), 5, 15, 40)
        else:
            level = [v * (0.85 if smooth else 1.0) for v in nordic_level]
        amplitude, noise = (0.5, 1.5) if smooth else (1.0, 3.5)
        zone_info = ZoneInfo(tz)
        for i, ts in enumerate(hours):
            local = ts.astimezone(zone_info)  # the daily shape follows local hours
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
    holidays = target_holidays(range(days[0].year, days[-1].year + 1))
    business = [d for d in days if d.weekday() < 5 and d.isoformat() not in holidays]
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
        trend = reference_trend(days, start, end)
        lo = [min(0.5 * end, 0.9 * t) for t in trend]  # 0.5 * end on the reference span
        hi = [max(1.5 * start, 1.1 * t) for t in trend]  # 1.5 * start on the reference span
        median = walk(rng, trend, sd, lo, hi)
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
        prices = walk(rng, reference_trend(days, *GPU_REALISED_PRICE[model]), 0.02, 0.0, 10.0)
        for d, price in zip(days, prices, strict=True):
            hours = min(capacity, round(capacity * rng.uniform(*GPU_UTILISATION[model]), 1))
            rows.append([d.isoformat(), f["site_id"], model, fmt(hours, 1), fmt(hours * price, 2)])
    return "date,site_id,gpu_model,gpu_hours_sold,revenue_usd", rows


def write_csv(out_dir, name, header, rows, keys):
    """Write `rows` sorted by their first `keys` columns."""
    with open(out_dir / name, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header.split(","))
        writer.writerows(sorted(rows, key=lambda r: r[:keys]))
    print(f"{name}: {len(rows)} rows")


def sample_period():
    period = load("settings.yaml", "sample_period")
    return tuple(date.fromisoformat(period[k]) for k in ("start_date", "end_date"))


def generate(start: date, end: date, out_dir: Path) -> None:
    """Write the six sample CSV files for UTC days start..end (inclusive) into `out_dir`."""
    if end < start:
        raise ValueError(f"the period {start}..{end} is empty")
    days = [start + timedelta(n) for n in range((end - start).days + 1)]
    sites = load("infrastructure/sites.yaml", "sites")
    asic_fleet = load("infrastructure/asic_fleet.yaml", "asic_fleet")
    gpu_fleet = load("infrastructure/gpu_fleet.yaml", "gpu_fleet")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    network = btc_network_daily(days)
    energy = energy_prices_hourly(days, sites)
    mining = mining_output_daily(days, sites, asic_fleet, network[1], energy[1])
    write_csv(out_dir, "btc_network_daily.csv", *network, keys=1)
    write_csv(out_dir, "energy_prices_hourly.csv", *energy, keys=2)
    write_csv(out_dir, "fx_rates_daily.csv", *fx_rates_daily(days), keys=2)
    write_csv(out_dir, "mining_output_daily.csv", *mining, keys=2)
    write_csv(out_dir, "gpu_market_prices_daily.csv", *gpu_market_prices_daily(days), keys=5)
    write_csv(out_dir, "gpu_usage_daily.csv", *gpu_usage_daily(days, gpu_fleet), keys=3)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Generate the embedded sample data (default: the sample period of "
        "assets/settings.yaml into pipelines/sample_data/)."
    )
    day = date.fromisoformat
    parser.add_argument("--start", type=day, metavar="YYYY-MM-DD", help="first UTC day")
    parser.add_argument("--end", type=day, metavar="YYYY-MM-DD", help="last UTC day (inclusive)")
    parser.add_argument("--out", type=Path, default=OUT_DIR, metavar="DIR", help="output folder")
    args = parser.parse_args(argv)
    if (args.start is None) != (args.end is None):
        parser.error("give both --start and --end, or neither")
    start, end = (args.start, args.end) if args.start else sample_period()
    if end < start:
        parser.error(f"--end ({end}) is before --start ({start})")
    generate(start, end, args.out)


if __name__ == "__main__":
    main()
