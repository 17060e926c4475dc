"""A month of live sources played by one local server, from a truth that evolves day by day.

`Truth` holds what each source has published as of a simulated "now" (`Truth.now`, moved by the
soak test each morning): mempool.space's chain (blocks every ~10 minutes, timestamps out of order
at both ends of every UTC day, a difficulty retarget), Energy-Charts' hourly prices of SE1 and NO4
(priced by local hour, so the October DST day has its repeated hour), ERCOT's 15-minute HB_WEST
prices (CPT, with the November fall-back day's DSTFlag), the ECB's reference rates (weekdays),
and vast.ai's offer book. The answers have the recorded shapes (tests/sources/recorded/), the
values are generated. Every event of the soak is data here:

- late data: the ECB publishes LATE_ECB_DAY only two mornings after it (X + 2);
- an outage: Energy-Charts has no prices for OUTAGE_DAYS until the morning after the second one
  has ended (it answers the days it has, as the real API does); the ECB answers 404 "No results
  found" on ECB_OUTAGE_MORNINGS, whatever the window (its stored days must be kept);
- revisions: the ECB's SEK rate of REVISED_ECB_DAY and Energy-Charts' SE1 prices of
  REVISED_PRICE_DAY change two mornings after they were first served;
- a 500 burst: the first BURST requests to mempool's /api/v1/blocks/ on BURST_MORNING fail with
  500 (within the connector's retries);
- DST: 2024-10-27 in Europe, 2024-11-03 in ERCOT's Central time.
"""

from __future__ import annotations

import json
import math
import random
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from pipelines.sources.common import unix

from .conftest import mined_chain, recorded

FIRST_DAY = date(2024, 10, 9)  # the first morning's yesterday (and the partitions' start)
MORNINGS = 30  # mornings FIRST_DAY + 1 .. FIRST_DAY + 30, at 06:30 UTC
LAST_DAY = FIRST_DAY + timedelta(days=MORNINGS - 1)

LATE_ECB_DAY = date(2024, 10, 15)  # published on the morning of 10-17, not 10-16
REVISED_ECB_DAY = date(2024, 10, 21)  # its SEK rate revised from the morning of 10-24
ECB_OUTAGE_MORNINGS = {date(2024, 10, 29), date(2024, 10, 30)}  # 404 for any window
REVISED_PRICE_DAY = date(2024, 10, 19)  # SE1 prices revised from the morning of 10-21
OUTAGE_DAYS = (date(2024, 11, 1), date(2024, 11, 2))  # energy-charts: none until 11-04
BURST_MORNING = date(2024, 10, 20)
BURST = 3
DST_EUROPE, DST_ERCOT = date(2024, 10, 27), date(2024, 11, 3)

ZONES = {"SE1": "Europe/Stockholm", "NO4": "Europe/Oslo"}
CURRENCIES = {"USD": 1.09, "NOK": 11.80, "SEK": 11.45}  # per EUR, around October 2024
DIFFICULTY = 92_049_594_548_485.47
RETARGET = 866_880  # 2016 * 430, mined inside the month
H0 = 863_400  # the chain starts 2024-10-05 00:00 UTC


def morning(day: date) -> datetime:
    """The morning the daily run for `day` is scheduled: the next day, 06:30 UTC."""
    return datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC) + timedelta(
        hours=6, minutes=30
    )


def _chain() -> list[dict]:
    """Blocks every ~600 s from 2024-10-05, lowest first; at every UTC midnight M the first block
    stamped after M is followed by one stamped 4 minutes before M (before its parent): the old
    day has a block above the new day's first, the new day's first lies below it."""
    rng = random.Random(20241009)
    start = unix(date(2024, 10, 5))
    stamps = [start + 600 * i + rng.randint(-150, 150) for i in range(40 * 144)]
    shuffled = set()
    for i in range(1, len(stamps) - 1):
        midnight = stamps[i] // 86400 * 86400
        if stamps[i - 1] < midnight <= stamps[i] and midnight not in shuffled:
            shuffled.add(midnight)
            stamps[i] = midnight + 60
            stamps[i + 1] = midnight - 240
    chain = mined_chain(
        len(stamps), H0, stamps.__getitem__, rng,
        lambda height: DIFFICULTY * (1.0 if height < RETARGET else 1.0387), (1_000_000, 60_000_000),
    )  # fmt: skip
    # a block arrives once it and its parents exist: the chain's tip at t is the highest
    # block whose arrival (the latest stamp up to it) is at or before t
    latest = 0
    for block in chain:
        latest = max(latest, block["timestamp"])
        block["arrival"] = latest
    return chain


def btc_price(ts: int) -> float:
    day = ts // 86400
    return round(60_000.0 + 1500 * math.sin(day / 5) + day % 97, 2)


def _noise(*key) -> float:
    return random.Random(repr(key)).uniform(-1, 1)


@dataclass
class Truth:
    """What every source has published as of `now`."""

    now: datetime = field(default_factory=lambda: morning(FIRST_DAY))
    chain: list[dict] = field(default_factory=_chain)
    requests: list[tuple[datetime, str, int]] = field(default_factory=list)

    # --- mempool.space ----------------------------------------------------------------------
    def blocks(self) -> list[dict]:
        now = self.now.timestamp()
        return [b for b in self.chain if b["arrival"] <= now]

    def chain_days(self, first: date, last: date) -> dict[date, tuple[int, int, float]]:
        """(blocks, first height, fees BTC) per UTC day of [first, last], by timestamp."""
        out: dict[date, list[dict]] = {}
        for b in self.chain:
            day = datetime.fromtimestamp(b["timestamp"], UTC).date()
            if first <= day <= last:
                out.setdefault(day, []).append(b)
        return {
            d: (len(bs), min(b["height"] for b in bs), sum(b["extras"]["totalFees"] for b in bs))
            for d, bs in sorted(out.items())
        }

    # --- energy prices --------------------------------------------------------------------
    def price_published(self, day: date) -> bool:
        """Day-ahead prices of `day` (UTC) are published by the morning after it, except the
        outage's days, published on the morning after the outage."""
        if day in OUTAGE_DAYS:
            return self.now >= morning(OUTAGE_DAYS[-1])
        return self.now >= morning(day) - timedelta(days=1)  # day-ahead: the day before

    def eur_price(self, zone: str, hour: datetime) -> float:
        """The zone's price of the UTC hour starting at `hour`, from its local hour (so the
        fall-back day has the repeated hour priced twice, as two UTC hours)."""
        local = hour.astimezone(ZoneInfo(ZONES[zone]))
        base = 40 + 25 * math.sin((local.hour - 7) / 24 * 2 * math.pi)
        price = round(base + 15 * _noise(zone, hour.isoformat()), 2)
        if zone == "NO4" and local.hour == 3:
            price = -5.17 - local.day  # a negative hour every night
        if (
            zone == "SE1"
            and hour.date() == REVISED_PRICE_DAY
            and self.now >= morning(REVISED_PRICE_DAY) + timedelta(days=2)
        ):
            price = round(price + 3.25, 2)
        return price

    def ercot_price(self, ts: datetime) -> float:
        """HB_WEST's price of the 15-minute interval starting at `ts` (UTC)."""
        return round(28 + 9 * math.sin(ts.hour / 24 * 2 * math.pi) + 4 * _noise("W", ts), 2)

    # --- ECB ------------------------------------------------------------------------------
    def ecb_days(self) -> list[date]:
        """Publication days published as of now: weekdays, by the next morning (LATE_ECB_DAY
        two mornings after)."""
        out, day = [], FIRST_DAY - timedelta(days=10)
        while morning(day) <= self.now:
            late = day == LATE_ECB_DAY and self.now < morning(day) + timedelta(days=1)
            if day.weekday() < 5 and not late:
                out.append(day)
            day += timedelta(days=1)
        return out

    def per_eur(self, currency: str, day: date) -> float:
        rate = round(CURRENCIES[currency] * (1 + 0.01 * _noise(currency, day)), 4)
        if (
            currency == "SEK"
            and day == REVISED_ECB_DAY
            and self.now >= morning(day) + timedelta(days=2)
        ):
            rate = round(rate + 0.0731, 4)
        return rate

    def usd_per_unit(self) -> dict[tuple[date, str], float]:
        """fx_rates_daily as the pipeline stores it, from what is published now."""
        out = {}
        for day in self.ecb_days():
            usd = self.per_eur("USD", day)
            out[(day, "EUR")] = usd
            out[(day, "NOK")] = usd / self.per_eur("NOK", day)
            out[(day, "SEK")] = usd / self.per_eur("SEK", day)
        return out

    # --- the drop exports of the sites (file_drop) ----------------------------------------
    def pool_rows(self, day: date) -> list[str]:
        subs = ["mw-lulea-a", "mw-lulea-b", "mw-narvik", "mw-rockdale-s21", "mw-rockdale-m50s",
                "mw-baiecomeau"]  # fmt: skip
        return [f"{day},{s},{0.4 + 0.05 * _noise(s, day):.8f}" for s in subs]

    def fleet_rows(self, day: date) -> list[str]:
        sites = {"ca-baie-comeau": 1_450_000, "no-narvik": 510_000, "se-lulea": 800_000,
                 "us-tx-rockdale": 4_420_000}  # fmt: skip
        return [
            f"{day},{site},{th * (1 + 0.01 * _noise(site, day)):.1f},"
            f"{97 + 2 * _noise('up', site, day):.2f},{th / 1800 * (1 + 0.01 * _noise(day)):.4f}"
            for site, th in sites.items()
        ]

    def billing_rows(self, day: date) -> list[str]:
        return [
            f"{day},se-lulea,NVIDIA H100 80GB HBM3,{41000 + 500 * _noise(1, day):.1f},"
            f"{97000 + 900 * _noise(2, day):.2f}",
            f"{day},us-tx-rockdale,A100-SXM4-80GB,{9900 + 100 * _noise(3, day):.1f},"
            f"{10800 + 90 * _noise(4, day):.2f}",
            f"{day},us-tx-rockdale,H100 SXM5 80GB,{20800 + 200 * _noise(5, day):.1f},"
            f"{47800 + 300 * _noise(6, day):.2f}",
        ]


def serve(server: HTTPServer, truth: Truth) -> None:
    """Answers at `server` as mempool.space, Energy-Charts, ERCOT (sign-in and report), the ECB
    Data Portal and vast.ai would, from `truth` as of `truth.now`."""
    burst = {"left": BURST}

    def log(request: Request, status: int) -> None:
        truth.requests.append((truth.now, request.path, status))

    def as_json(body, status: int = 200) -> Response:
        return Response(json.dumps(body), status=status, content_type="application/json")

    # mempool.space
    def at_timestamp(request: Request) -> Response:
        ts = int(request.path.rsplit("/", 1)[1])
        blocks = truth.blocks()
        if ts > truth.now.timestamp() + 86400:
            log(request, 500)
            return Response("Failed to get height from timestamp", status=500)
        block = max((b for b in blocks if b["timestamp"] <= ts), key=lambda b: b["timestamp"])
        log(request, 200)
        return as_json({"height": block["height"], "hash": block["id"],
                        "timestamp": block["timestamp"]})  # fmt: skip

    def page(request: Request) -> Response:
        if truth.now.date() == BURST_MORNING + timedelta(days=1) and burst["left"] > 0:
            burst["left"] -= 1
            log(request, 500)
            return Response("Internal Server Error", status=500)
        blocks = truth.blocks()
        by_height = {b["height"]: b for b in blocks}
        tip = max(by_height)
        height, limit = int(request.path.rsplit("/", 1)[1]), 15
        if height > tip:
            height, limit = tip, limit - (height - tip)
        found = [
            {k: v for k, v in by_height[h].items() if k != "arrival"}
            for h in range(height, height - limit, -1)
            if h in by_height
        ]
        log(request, 200)
        return as_json(found)

    def price(request: Request) -> Response:
        ts = int(request.args["timestamp"])
        log(request, 200)
        return as_json({"prices": [{"time": ts, "USD": btc_price(ts)}], "exchangeRates": {}})

    # Energy-Charts
    def energy_charts(request: Request) -> Response:
        zone = request.args["bzn"]
        start = datetime.fromisoformat(request.args["start"])
        end = datetime.fromisoformat(request.args["end"])
        seconds, prices = [], []
        hour = start
        while hour < end:
            if truth.price_published(hour.date()):
                seconds.append(int(hour.timestamp()))
                prices.append(truth.eur_price(zone, hour))
            hour += timedelta(hours=1)
        if not seconds:  # the API's answer for a window it has nothing of
            log(request, 404)
            return as_json({"detail": "Not Found"}, status=404)
        log(request, 200)
        return as_json({"license_info": "CC BY 4.0 (creativecommons.org/licenses/by/4.0) from "
                        "Bundesnetzagentur | SMARD.de", "unix_seconds": seconds, "price": prices,
                        "unit": "EUR / MWh", "deprecated": False})  # fmt: skip

    # ERCOT
    def token(request: Request) -> Response:
        log(request, 200)
        return Response(recorded("ercot/token.json"), content_type="application/json")

    fields = json.loads(recorded("ercot/spp_node_zone_hub_HB_WEST_page1.json"))["fields"]
    central = ZoneInfo("America/Chicago")

    def ercot(request: Request) -> Response:
        first = date.fromisoformat(request.args["deliveryDateFrom"])
        last = date.fromisoformat(request.args["deliveryDateTo"])
        rows, ts = [], datetime.combine(first, datetime.min.time(), central).astimezone(UTC)
        while True:
            local = ts.astimezone(central)
            if local.date() > last or ts + timedelta(minutes=15) > truth.now:
                break
            # hour ending 1-24 of the local day; the fall-back day's repeated hour is flagged
            repeated, hour_ending = local.fold == 1, local.hour + 1
            rows.append([local.date().isoformat(), hour_ending, local.minute // 15 + 1,
                         "HB_WEST", "HU", truth.ercot_price(ts), bool(repeated)])  # fmt: skip
            ts += timedelta(minutes=15)
        size = int(request.args.get("size", "10000"))
        number = int(request.args.get("page", "1"))
        pages = max(1, math.ceil(len(rows) / size))
        log(request, 200)
        return as_json({
            "_meta": {"totalRecords": len(rows), "pageSize": size, "totalPages": pages,
                      "currentPage": number},
            "report": {"reportEMIL": "NP6-905-CD", "reportName": "spp_node_zone_hub"},
            "fields": fields,
            "data": rows[(number - 1) * size : number * size],
        })  # fmt: skip

    # ECB Data Portal
    header = recorded("ecb/EXR_D.NOK+SEK+USD.EUR.SP00.A_2024-04-19_2024-04-23.csv").splitlines()
    template = header[1].split(",")

    def ecb(request: Request) -> Response:
        if truth.now.date() in ECB_OUTAGE_MORNINGS:
            log(request, 404)
            return Response("No results found.", status=404, content_type="text/plain")
        first = date.fromisoformat(request.args["startPeriod"])
        last = date.fromisoformat(request.args["endPeriod"])
        asked = request.path.rsplit("/", 1)[1].split(".")[1].split("+")
        lines = [header[0]]
        for currency in sorted(asked):
            for day in truth.ecb_days():
                if first <= day <= last:
                    row = list(template)
                    row[0] = f"EXR.D.{currency}.EUR.SP00.A"
                    row[2], row[6], row[7] = (
                        currency,
                        day.isoformat(),
                        str(truth.per_eur(currency, day)),
                    )
                    lines.append(",".join(row))
        if len(lines) == 1:
            log(request, 404)
            return Response("No results found.", status=404, content_type="text/plain")
        log(request, 200)
        return Response("\n".join(lines) + "\n", content_type="text/csv")

    # vast.ai
    def bundles(request: Request) -> Response:
        kind = json.loads(request.args["q"])["type"]
        body = json.loads(recorded(f"vastai/bundles_{kind}.json"))
        for offer in body["offers"]:  # the book moves a little every observation
            factor = 1 + 0.02 * _noise(offer["id"], truth.now)
            for key in ("dph_total", "min_bid"):
                if isinstance(offer.get(key), int | float):
                    offer[key] = round(offer[key] * factor, 4)
        log(request, 200)
        return as_json(body)

    handlers = [
        (re.compile(r"^/mempool/api/v1/mining/blocks/timestamp/\d+$"), at_timestamp),
        (re.compile(r"^/mempool/api/v1/blocks/\d+$"), page),
        ("/mempool/api/v1/historical-price", price),
        ("/energy-charts/price", energy_charts),
        ("/ercot/token", token),
        ("/ercot/api/public-reports/np6-905-cd/spp_node_zone_hub", ercot),
        (re.compile(r"^/ecb/service/data/EXR/D\.[A-Z+]+\.EUR\.SP00\.A$"), ecb),
        ("/vastai/api/v0/bundles/", bundles),
    ]
    for path, handler in handlers:
        server.expect_request(path).respond_with_handler(handler)
