"""Day-ahead prices from Energy-Charts (Fraunhofer ISE), key-free, -> energy_prices_hourly.

`GET https://api.energy-charts.info/price?bzn=SE1&start=<ISO>&end=<ISO>` answers
`{"license_info", "unix_seconds": [...], "price": [...], "unit": "EUR / MWh", "deprecated"}`:
one price per interval start, hourly before the SDAC's move to 15-minute products (2025-10-01),
quarter-hourly since. One request per zone per window; the window is asked in UTC, the points are
averaged into UTC hours (DST days have 23 or 25 local hours, but every UTC day has 24). Negative
prices and cap values are kept as they are. A null price is an interval without one: the answer
does not state its resolution, so each point's is the step to its nearest neighbour (15 minutes
on both sides of a null quarter-hour), and an hour lacking an interval is counted in
`missing_intervals` (common.hourly_means), which the contract quarantines.
"""

from __future__ import annotations

from typing import ClassVar

import polars as pl
from pydantic import BaseModel, Field

from pipelines.batch import Window
from pipelines.sources.common import empty, finish, hourly_means, utc_midnight
from pipelines.sources.errors import SourceError
from pipelines.sources.http import HttpClient, HttpSettings


def _resolution_min(seconds: pl.Expr) -> pl.Expr:
    """Each point's interval in minutes, from the answer's timestamps (unix seconds, ascending):
    the shorter step to the point before or after it (a point is an interval start, and a
    missing interval still has its timestamp, with a null price); 60 for a lone point. At the
    switch from hourly to 15-minute products the last hourly point keeps 60 (60 on both sides)
    and the first quarter-hour has 15."""
    step = seconds.diff()
    before = pl.when(step > 0).then(step)
    after = before.shift(-1)
    return (pl.min_horizontal(before, after).fill_null(3600) // 60).cast(pl.Int64)


class EnergyChartsSettings(HttpSettings):
    base_url: str = "https://api.energy-charts.info"
    zones: list[str] = Field(min_length=1, description="bidding zones, e.g. SE1, NO4, DE-LU")


class EnergyChartsConnector:
    Settings: ClassVar[type[BaseModel]] = EnergyChartsSettings
    tables: ClassVar[set[str]] = {"energy_prices_hourly"}
    name = "energy_charts (energy_prices_hourly)"

    def __init__(self, settings: EnergyChartsSettings):
        self.settings = settings
        self.http = HttpClient(self.name, settings)

    def _zone(self, zone: str, window: Window) -> pl.DataFrame:
        params = {
            "bzn": zone,
            "start": utc_midnight(window.start).strftime("%Y-%m-%dT%H:%M+00:00"),
            "end": utc_midnight(window.end).strftime("%Y-%m-%dT%H:%M+00:00"),
        }
        body, shown = self.http.get_json("/price", params)
        try:
            seconds, prices = body["unix_seconds"], body["price"]
            unit = str(body.get("unit", "EUR / MWh"))
        except (KeyError, TypeError):
            raise SourceError(
                f"{self.name}: {shown}: expected 'unix_seconds' and 'price' arrays, got "
                f"{str(body)[:200]!r}"
            ) from None
        if len(seconds) != len(prices):
            raise SourceError(
                f"{self.name}: {shown}: {len(seconds)} timestamps but {len(prices)} prices"
            )
        if unit.replace(" ", "").upper() != "EUR/MWH":
            raise SourceError(f"{self.name}: {shown}: unit is {unit!r}, expected 'EUR / MWh'")
        if not seconds:
            raise SourceError(f"{self.name}: {shown}: no prices for zone {zone} in the window")
        return (
            pl.DataFrame(
                {
                    "ts": pl.Series(seconds, dtype=pl.Int64),
                    "price_per_mwh": pl.Series(prices, dtype=pl.Float64, strict=False),
                }
            )
            .with_columns(pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("_row"))
            .sort("ts")
            .select(
                pl.from_epoch("ts", time_unit="s").dt.replace_time_zone("UTC"),
                pl.lit(zone).alias("bidding_zone"),
                "price_per_mwh",
                pl.lit("EUR").alias("currency"),
                _resolution_min(pl.col("ts")).alias("resolution_min"),
                pl.lit(shown).alias("_source"),
                "_row",
            )
        )

    def zones_served(self) -> set[str]:
        """The bidding zones this connector loads: its `zones`."""
        return set(self.settings.zones)

    def fetch(self, table: str, window: Window, partition_column: str) -> pl.DataFrame:
        points = pl.concat([self._zone(zone, window) for zone in self.settings.zones])
        hourly = hourly_means(points, window, self.name)
        return finish(table, hourly) if not hourly.is_empty() else empty(table)
