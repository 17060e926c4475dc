"""Day-ahead prices from the ENTSO-E Transparency Platform (document A44), -> energy_prices_hourly.

`GET {base_url}?documentType=A44&in_Domain=<EIC>&out_Domain=<EIC>&periodStart=yyyyMMddHHmm&
periodEnd=yyyyMMddHHmm&securityToken=<token>` answers a `Publication_MarketDocument` (XML):
`TimeSeries` with `currency_Unit.name` (EUR) and `price_Measure_Unit.name` (MWH), each with
`Period`s of `timeInterval` (UTC start/end), `resolution` (PT15M, PT30M, PT60M) and `Point`s
(`position`, `price.amount`). With curve type A03 a missing position repeats the previous
price; with A01 it is an interval without a price, counted in its hour's `missing_intervals`
(common.hourly_means), which the contract quarantines. No data is an
`Acknowledgement_MarketDocument` whose `Reason` says so.

The token is read from the environment variable named by `token_env` (never from the YAML) and
never appears in an error or `_source`. One request per zone per window (the API allows a year).

Why not entsoe-py: 0.8.1 takes its endpoint from the ENTSOE_ENDPOINT_URL environment variable once,
at import (a module global), not per client, so it cannot be pointed at a test server per
connector; it logs the request parameters, token included, at DEBUG, and its HTTP errors carry
the full URL with the token; and it brings pandas, pytz and BeautifulSoup for what is one GET and
a small XML parse here.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import polars as pl
from pydantic import BaseModel, Field, model_validator

from pipelines.batch import Window
from pipelines.sources.common import empty, finish, hourly_means, utc_midnight
from pipelines.sources.errors import SourceError
from pipelines.sources.http import HttpClient, HttpSettings

# EIC codes of bidding zones (ENTSO-E's area codes; extend with `eic` in the settings).
EIC = {
    "SE1": "10Y1001A1001A44P", "SE2": "10Y1001A1001A45N", "SE3": "10Y1001A1001A46L",
    "SE4": "10Y1001A1001A47J", "NO1": "10YNO-1--------2", "NO2": "10YNO-2--------T",
    "NO3": "10YNO-3--------J", "NO4": "10YNO-4--------9", "NO5": "10Y1001A1001A48H",
    "FI": "10YFI-1--------U", "DK1": "10YDK-1--------W", "DK2": "10YDK-2--------M",
    "DE-LU": "10Y1001A1001A82H", "FR": "10YFR-RTE------C", "NL": "10YNL----------L",
    "BE": "10YBE----------2", "AT": "10YAT-APG------L", "PL": "10YPL-AREA-----S",
    "EE": "10Y1001A1001A39I", "LV": "10YLV-1001A00074", "LT": "10YLT-1001A0008Q",
    "ES": "10YES-REE------0", "PT": "10YPT-REN------W",
}  # fmt: skip
RESOLUTION = re.compile(r"^PT(\d+)M$")


class EntsoeSettings(HttpSettings):
    base_url: str = "https://web-api.tp.entsoe.eu/api"
    token_env: str = Field("ENTSOE_API_TOKEN", description="environment variable with the token")
    zones: list[str] = Field(min_length=1, description="bidding zones, e.g. SE1, NO4")
    eic: dict[str, str] = Field(default_factory=dict, description="zone -> EIC code, extra")
    min_interval_s: float = 0.5  # the platform allows 400 requests a minute per user

    @model_validator(mode="after")
    def _zones_known(self) -> EntsoeSettings:
        unknown = [z for z in self.zones if z not in EIC | self.eic]
        if unknown:
            raise ValueError(f"no EIC code for zone(s) {unknown}: add them under `eic`")
        return self


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _find(element: ET.Element, name: str) -> ET.Element | None:
    return next((e for e in element if _local(e.tag) == name), None)


def _text(element: ET.Element, path: str) -> str | None:
    for name in path.split("/"):
        found = _find(element, name)
        if found is None:
            return None
        element = found
    return (element.text or "").strip()


def parse_a44(xml: bytes | str, zone: str, where: str) -> list[dict]:
    """Points of an A44 document: ts (UTC interval start), price, currency, resolution, row."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as e:
        raise SourceError(f"{where}: not a valid XML document (truncated?): {e}") from None
    kind = _local(root.tag)
    if kind == "Acknowledgement_MarketDocument":
        reason = _text(root, "Reason/text") or _text(root, "Reason/code") or "no reason given"
        raise SourceError(f"{where}: no prices for zone {zone}: {reason}")
    if kind != "Publication_MarketDocument":
        raise SourceError(f"{where}: expected a Publication_MarketDocument, got {kind}")
    points, row = [], 0
    for series in (e for e in root if _local(e.tag) == "TimeSeries"):
        currency = _text(series, "currency_Unit.name") or "EUR"
        unit = (_text(series, "price_Measure_Unit.name") or "MWH").upper()
        if unit != "MWH":
            raise SourceError(f"{where}: zone {zone}: prices per {unit}, expected per MWH")
        curve = _text(series, "curveType") or "A01"
        for period in (e for e in series if _local(e.tag) == "Period"):
            start_text = _text(period, "timeInterval/start")
            end_text = _text(period, "timeInterval/end")
            match = RESOLUTION.match(_text(period, "resolution") or "")
            if not (start_text and end_text and match):
                raise SourceError(f"{where}: zone {zone}: Period without timeInterval/resolution")
            start = datetime.fromisoformat(start_text.replace("Z", "+00:00")).astimezone(UTC)
            end = datetime.fromisoformat(end_text.replace("Z", "+00:00")).astimezone(UTC)
            minutes = int(match.group(1))
            slots = int((end - start) / timedelta(minutes=minutes))
            given: dict[int, tuple[float, int]] = {}
            for point in (e for e in period if _local(e.tag) == "Point"):
                row += 1
                try:
                    position = int(_text(point, "position") or "")
                    price = float(_text(point, "price.amount") or "")
                except ValueError:
                    raise SourceError(
                        f"{where}: zone {zone}: Point {row} without position/price.amount"
                    ) from None
                given[position] = (price, row)
            last = None
            for position in range(1, slots + 1):
                if position in given:
                    last = given[position]
                elif curve != "A03" or last is None:
                    continue  # A01: a missing point is missing (missing_intervals)
                price, at = last  # A03: the previous price holds until the next point
                points.append(
                    {
                        "ts": start + timedelta(minutes=minutes * (position - 1)),
                        "price_per_mwh": price,
                        "currency": currency,
                        "resolution_min": minutes,
                        "_row": at,
                    }
                )
    return points


class EntsoeConnector:
    Settings: ClassVar[type[BaseModel]] = EntsoeSettings
    tables: ClassVar[set[str]] = {"energy_prices_hourly"}
    name = "entsoe (energy_prices_hourly)"

    def __init__(self, settings: EntsoeSettings):
        self.settings = settings
        self.eic = EIC | settings.eic

    def _token(self) -> str:
        token = os.environ.get(self.settings.token_env, "")
        if not token:
            raise SourceError(
                f"{self.name}: environment variable {self.settings.token_env} (the ENTSO-E "
                "security token) is not set"
            )
        return token

    def zones_served(self) -> set[str]:
        """The bidding zones this connector loads: its `zones`."""
        return set(self.settings.zones)

    def fetch(self, table: str, window: Window, partition_column: str) -> pl.DataFrame:
        token = self._token()
        http = HttpClient(self.name, self.settings, secrets=(token,))
        frames = []
        for zone in self.settings.zones:
            code = self.eic[zone]
            params = {
                "documentType": "A44",
                "in_Domain": code,
                "out_Domain": code,
                "periodStart": utc_midnight(window.start).strftime("%Y%m%d%H%M"),
                "periodEnd": utc_midnight(window.end).strftime("%Y%m%d%H%M"),
                "securityToken": token,
            }
            # The platform answers "no data" as 200 (or 400) with an Acknowledgement document.
            response, shown = http.request("GET", "", params=params, ok_statuses=frozenset({400}))
            points = parse_a44(response.content, zone, f"{self.name}: {shown}")
            if not points:
                raise SourceError(f"{self.name}: {shown}: no prices for zone {zone}")
            frames.append(
                pl.DataFrame(points).with_columns(
                    pl.col("ts").dt.convert_time_zone("UTC"),
                    pl.lit(zone).alias("bidding_zone"),
                    pl.lit(shown).alias("_source"),
                )
            )
        hourly = hourly_means(pl.concat(frames), window, self.name, finest_only=True)
        return finish(table, hourly) if not hourly.is_empty() else empty(table)
