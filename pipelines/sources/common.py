"""Helpers shared by the connectors: contract column lists, UTC days, empty frames."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta

import polars as pl

from pipelines.batch import Window

# The contract's columns of each raw table (data_contracts/<table>.odcs.yaml), in order.
COLUMNS: dict[str, list[str]] = {
    "btc_network_daily": [
        "date", "difficulty", "hashrate_eh_s", "blocks", "first_height", "subsidy_btc",
        "fees_btc", "price_usd",
    ],
    "mining_output_daily": [
        "date", "site_id", "btc_mined", "hashrate_th_s", "uptime_pct", "energy_mwh",
    ],
    "energy_prices_hourly": ["ts", "bidding_zone", "price_per_mwh", "currency"],
    "fx_rates_daily": ["date", "currency", "usd_per_unit"],
    "miner_telemetry": [
        "machine_id", "ts", "site_id", "model", "hashrate_th_s", "power_w", "chip_temp_c",
        "fan_rpm", "status",
    ],
    "gpu_market_prices_daily": [
        "date", "gpu_model", "gpu_variant", "lease_type", "source", "price_usd_per_gpu_hour",
        "p25_usd_per_gpu_hour", "p75_usd_per_gpu_hour", "offers",
    ],
    "gpu_usage_daily": ["date", "site_id", "gpu_model", "gpu_hours_sold", "revenue_usd"],
}  # fmt: skip
LINEAGE = ["_source", "_row"]


def days(window: Window) -> Iterator[date]:
    day = window.start
    while day < window.end:
        yield day
        day += timedelta(days=1)


def utc_midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def unix(day: date) -> int:
    return int(utc_midnight(day).timestamp())


def empty(table: str) -> pl.DataFrame:
    """No rows, the table's columns (as text) and the lineage columns."""
    schema = {c: pl.Utf8 for c in COLUMNS[table]} | {"_source": pl.Utf8, "_row": pl.Int64}
    return pl.DataFrame(schema=schema)


def finish(table: str, frame: pl.DataFrame) -> pl.DataFrame:
    """The contract's columns in order, then `_source` and `_row`."""
    if frame.is_empty() and not set(COLUMNS[table]) <= set(frame.columns):
        return empty(table)
    return frame.select([*COLUMNS[table], *LINEAGE])


def hourly_means(
    points: pl.DataFrame, window: Window, what: str, *, resolution: bool = False
) -> pl.DataFrame:
    """Hourly mean prices in UTC from sub-hourly or hourly points.

    `points` has ts (UTC datetime, start of the interval), bidding_zone, price_per_mwh, currency,
    _source, _row (and `resolution_min` when `resolution`: then only each hour's finest
    resolution counts, as when a market publishes the same hours at 15 and 60 minutes). Keeps
    the window's hours; every zone must have all 24 hours of every day it has a price on (a UTC
    day always has 24 hours: DST days only have 23 or 25 local hours), or SourceError (`what`
    names the connector).
    """
    from pipelines.sources.errors import SourceError

    frame = points.filter(
        (pl.col("ts") >= utc_midnight(window.start)) & (pl.col("ts") < utc_midnight(window.end))
    ).with_columns(pl.col("ts").dt.truncate("1h").alias("hour"))
    if resolution:
        frame = frame.filter(
            pl.col("resolution_min") == pl.col("resolution_min").min().over("bidding_zone", "hour")
        )
    hourly = (
        frame.sort("ts")
        .group_by("bidding_zone", "hour", maintain_order=True)
        .agg(
            pl.col("price_per_mwh").mean(),
            pl.col("currency").first(),
            pl.col("_source").first(),
            pl.col("_row").first(),
        )
        .rename({"hour": "ts"})
        .sort("bidding_zone", "ts")
    )
    counts = hourly.group_by("bidding_zone", pl.col("ts").dt.date().alias("day")).len()
    short = counts.filter(pl.col("len") != 24).sort("bidding_zone", "day")
    if not short.is_empty():
        zone, day, n = short.row(0)
        source = hourly.filter(pl.col("bidding_zone") == zone)["_source"][0]
        raise SourceError(f"{what}: {source}: zone {zone} has {n} of 24 UTC hours on {day}")
    return hourly.select(
        pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "bidding_zone",
        "price_per_mwh",
        "currency",
        "_source",
        pl.col("_row").cast(pl.Int64),
    )
