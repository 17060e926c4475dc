"""Bitcoin network per UTC day from mempool.space's REST API (key-free), -> btc_network_daily.

Endpoints (https://mempool.space/docs/api/rest):
- `GET /api/v1/mining/blocks/timestamp/{unix}` -> `{"height", "hash", "timestamp"}`: the last
  block mined at or before that time. Called for the window's start and end (2 requests).
- `GET /api/v1/blocks/{height}` -> the 15 blocks from `height` down, each with `height`,
  `timestamp` (unix), `difficulty` and `extras.totalFees` (sat). Paged down from the end block to
  `margin_blocks` below the start block (block timestamps are not monotonic: a block may carry a
  timestamp up to ~2 h off its neighbours), so about 10 requests per day.
- `GET /api/v1/historical-price?currency=USD&timestamp={unix}` -> `{"prices": [{"time", "USD",
  ...}]}`: the day's closing price, asked at the day's last second (1 request per day).

So a day costs about 12 requests, a 30-day backfill about 340 (at `min_interval_s` = 0.25 s,
under 2 minutes). Per UTC day (a block belongs to the day of its timestamp):
- blocks = the day's blocks; first_height = the lowest height;
- fees_btc = sum of `extras.totalFees` / 1e8;
- difficulty = mean difficulty of the day's blocks (a retarget may fall within the day);
- hashrate_eh_s = sum over the day's blocks of difficulty * 2^32 / 86400 / 1e18
  (= difficulty * 2^32 * blocks / 86400 / 1e18 on a day without retarget);
- subsidy_btc = mean over the day's blocks of 50 / 2**(height // 210000): derived, never read;
- price_usd = the USD price at the day's last second.
A day without blocks (in the future) has no row: the contract's one-row-per-day rule says so.
"""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar

import polars as pl
from pydantic import BaseModel, Field

from pipelines.batch import Window
from pipelines.sources.common import days, finish, unix
from pipelines.sources.errors import SourceError
from pipelines.sources.http import HttpClient, HttpSettings

HALVING_INTERVAL = 210_000


def subsidy_btc(height: int) -> float:
    """Block subsidy at `height`: 50 BTC halved every 210,000 blocks."""
    halvings = height // HALVING_INTERVAL
    return 0.0 if halvings >= 64 else 50.0 / 2**halvings


class MempoolSettings(HttpSettings):
    base_url: str = "https://mempool.space"
    min_interval_s: float = 0.25
    margin_blocks: int = Field(15, ge=0, le=200, description="blocks read below the window")


class MempoolConnector:
    Settings: ClassVar[type[BaseModel]] = MempoolSettings
    tables: ClassVar[set[str]] = {"btc_network_daily"}

    def __init__(self, settings: MempoolSettings):
        self.settings = settings
        self.http = HttpClient("mempool (btc_network_daily)", settings)

    def _height_at(self, ts: int) -> int:
        body, shown = self.http.get_json(f"/api/v1/mining/blocks/timestamp/{ts}")
        try:
            return int(body["height"])
        except (KeyError, TypeError, ValueError):
            raise SourceError(
                f"{self.http.source}: {shown}: no 'height' in {body!r:.200}"
            ) from None

    def _blocks(self, top: int, bottom: int) -> tuple[list[dict], str]:
        """Blocks with heights in [bottom, top], paging down 15 at a time."""
        found: dict[int, dict] = {}
        height = top
        while height >= bottom:
            page, shown = self.http.get_json(f"/api/v1/blocks/{height}")
            if not isinstance(page, list) or not page:
                raise SourceError(f"{self.http.source}: {shown}: expected a list of blocks")
            try:
                for block in page:
                    found[int(block["height"])] = {
                        "height": int(block["height"]),
                        "timestamp": int(block["timestamp"]),
                        "difficulty": float(block["difficulty"]),
                        "fees_sat": int(block["extras"]["totalFees"]),
                    }
            except (KeyError, TypeError, ValueError) as e:
                raise SourceError(
                    f"{self.http.source}: {shown}: block without {e} (expected height, timestamp,"
                    " difficulty, extras.totalFees)"
                ) from None
            lowest = min(int(b["height"]) for b in page)
            if lowest >= height and height > 0:
                raise SourceError(f"{self.http.source}: {shown}: paging did not move down")
            height = lowest - 1
        url = f"{self.http.base_url}/api/v1/blocks/{{{bottom}..{top}}}"
        return [b for h, b in sorted(found.items()) if bottom <= h <= top], url

    def _price(self, ts: int) -> tuple[float, str]:
        body, shown = self.http.get_json(
            "/api/v1/historical-price", {"currency": "USD", "timestamp": ts}
        )
        try:
            return float(body["prices"][0]["USD"]), shown
        except (KeyError, IndexError, TypeError, ValueError):
            raise SourceError(
                f"{self.http.source}: {shown}: no USD price in {body!r:.200}"
            ) from None

    def fetch(self, table: str, window: Window, partition_column: str) -> pl.DataFrame:
        end_height = self._height_at(unix(window.end) - 1)
        start_height = self._height_at(unix(window.start) - 1)
        bottom = max(0, start_height - self.settings.margin_blocks)
        blocks, blocks_url = self._blocks(end_height, bottom)
        frame = pl.DataFrame(
            blocks,
            schema={"height": pl.Int64, "timestamp": pl.Int64, "difficulty": pl.Float64,
                    "fees_sat": pl.Int64},
        )  # fmt: skip
        frame = frame.with_columns(
            pl.from_epoch("timestamp", time_unit="s").dt.date().alias("date"),
            # 50 / 2**(height // 210000), as an expression (no Python loop over rows)
            (50.0 / pl.lit(2.0).pow(pl.col("height") // HALVING_INTERVAL)).alias("subsidy_btc"),
        ).filter(pl.col("date").is_between(window.start, window.end, closed="left"))
        daily = (
            frame.group_by("date")
            .agg(
                pl.col("difficulty").mean().alias("difficulty"),
                (pl.col("difficulty").sum() * 2**32 / 86400 / 1e18).alias("hashrate_eh_s"),
                pl.len().cast(pl.Int64).alias("blocks"),
                pl.col("height").min().alias("first_height"),
                pl.col("subsidy_btc").mean().alias("subsidy_btc"),
                (pl.col("fees_sat").sum() / 1e8).alias("fees_btc"),
            )
            .sort("date")
        )
        prices, sources = [], []
        for day in days(window):
            if day not in daily["date"]:
                continue
            price, price_url = self._price(unix(day + timedelta(days=1)) - 1)
            prices.append({"date": day, "price_usd": price})
            sources.append(f"{blocks_url} + {price_url}")
        if not prices:
            return finish(table, pl.DataFrame())
        priced = pl.DataFrame(prices, schema={"date": pl.Date, "price_usd": pl.Float64})
        out = daily.join(priced, on="date", how="inner").sort("date")
        return finish(
            table,
            out.with_columns(
                pl.Series("_source", sources, dtype=pl.Utf8),
                pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("_row"),
            ),
        )
