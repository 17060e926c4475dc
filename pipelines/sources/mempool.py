"""Bitcoin network per UTC day from mempool.space's REST API (key-free), -> btc_network_daily.

Block timestamps are not monotonic: a block must be later than the median of its 11 parents
(median-time-past) and at most 2 h ahead of the nodes' clocks, so a block may carry an earlier
time than its parent, and a day's blocks need not be contiguous heights. A block belongs to the UTC
day of its timestamp wherever it lies in the chain, so the blocks are read past both ends of the
window's heights:
- below: `margin_blocks` under the last block timestamped before the window's start;
- above: up to the last block timestamped `margin_hours` after the window's end, and on (a page
  of 15 at a time) until the median timestamp of the 11 highest blocks read is at or after the
  end. From there no higher block can be timestamped inside the window (median-time-past only
  rises), so the days' blocks are the chain's. At the chain's tip the day is still open: what is
  mined later is read by a later run.

Endpoints (https://mempool.space/docs/api/rest):
- `GET /api/v1/mining/blocks/timestamp/{unix}` -> `{"height", "hash", "timestamp"}`: the block
  with the latest timestamp at or before that time (times past the tip answer the tip; times
  more than a day ahead of the server's clock are refused, so the look-up is capped at
  `AHEAD_S` from now). Called for the window's start and its end + `margin_hours` (2 requests).
- `GET /api/v1/blocks/{height}` -> the 15 blocks from `height` down (fewer, or none, above the
  tip), each with `height`, `timestamp` (unix), `difficulty` and `extras.totalFees` (sat). Paged
  down from the top block to the bottom one: a day's 144 blocks, 15 below and ~18 above (3 h),
  so about 12 requests for one day; a page more, now and then, when timestamps straddle the end.
- `GET /api/v1/historical-price?currency=USD&timestamp={unix}` -> `{"prices": [{"time", "USD",
  ...}]}`: the day's closing price, asked at the day's last second (1 request per day).

So one day costs about 15 requests, a 30-day backfill about 2 + (30 * 144 + 33) / 15 + 30 = 323
(at `min_interval_s` = 0.25 s, under 2 minutes). Per UTC day:
- blocks = the day's blocks; first_height = the lowest height among them;
- fees_btc = sum of `extras.totalFees` / 1e8;
- difficulty = mean difficulty of the day's blocks (a retarget may fall within the day);
- hashrate_eh_s = sum over the day's blocks of difficulty * 2^32 / 86400 / 1e18
  (= difficulty * 2^32 * blocks / 86400 / 1e18 on a day without retarget);
- subsidy_btc = mean over the day's blocks of 50 / 2**(height // 210000): derived, never read;
- price_usd = the USD price at the day's last second.
A day without blocks (in the future) has no row: the contract's one-row-per-day rule says so.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import ClassVar

import polars as pl
from pydantic import BaseModel, Field

from pipelines.batch import Window
from pipelines.sources.common import days, finish, unix
from pipelines.sources.errors import SourceError
from pipelines.sources.http import HttpClient, HttpSettings

HALVING_INTERVAL = 210_000
PAGE = 15  # blocks per /api/v1/blocks/{height}
MEDIAN_SPAN = 11  # a block's timestamp must exceed the median of its 11 parents' timestamps
AHEAD_S = 6 * 3600  # timestamps looked up at most this far past now (the API refuses +1 day)
MAX_PAGES_UP = 20  # pages read above the margin before giving up (300 blocks, ~2 days)


def subsidy_btc(height: int) -> float:
    """Block subsidy at `height`: 50 BTC halved every 210,000 blocks."""
    halvings = height // HALVING_INTERVAL
    return 0.0 if halvings >= 64 else 50.0 / 2**halvings


def closed_after(blocks: dict[int, dict], top: int, end: int) -> bool:
    """Whether no block above `top` can be timestamped before `end`: the median timestamp of
    the 11 blocks up to `top` is at or after `end` (each later block exceeds the median of its
    11 parents, so at least 6 of every later 11 stay at or after `end`)."""
    stamps = [blocks[h]["timestamp"] for h in range(top - MEDIAN_SPAN + 1, top + 1) if h in blocks]
    if len(stamps) < MEDIAN_SPAN:
        return top < MEDIAN_SPAN - 1  # near the genesis block only
    return sorted(stamps)[MEDIAN_SPAN // 2] >= end


class MempoolSettings(HttpSettings):
    base_url: str = "https://mempool.space"
    min_interval_s: float = 0.25
    margin_blocks: int = Field(15, ge=0, le=200, description="blocks read below the window")
    margin_hours: float = Field(
        3.0, ge=0, le=12, description="hours of blocks read past the window's end"
    )


class MempoolConnector:
    Settings: ClassVar[type[BaseModel]] = MempoolSettings
    tables: ClassVar[set[str]] = {"btc_network_daily"}

    def __init__(self, settings: MempoolSettings):
        self.settings = settings
        self.http = HttpClient("mempool (btc_network_daily)", settings)

    def _height_at(self, ts: int) -> int:
        ts = min(ts, int(time.time()) + AHEAD_S)  # a later time answers the tip all the same
        body, shown = self.http.get_json(f"/api/v1/mining/blocks/timestamp/{ts}")
        try:
            return int(body["height"])
        except (KeyError, TypeError, ValueError):
            raise SourceError(
                f"{self.http.source}: {shown}: no 'height' in {body!r:.200}"
            ) from None

    def _page(self, height: int, above_tip_ok: bool = False) -> tuple[list[dict], str]:
        """The blocks from `height` down (15; fewer or none above the tip if `above_tip_ok`)."""
        page, shown = self.http.get_json(f"/api/v1/blocks/{height}")
        if not isinstance(page, list) or not (page or above_tip_ok):
            raise SourceError(f"{self.http.source}: {shown}: expected a list of blocks")
        try:
            return [
                {
                    "height": int(block["height"]),
                    "timestamp": int(block["timestamp"]),
                    "difficulty": float(block["difficulty"]),
                    "fees_sat": int(block["extras"]["totalFees"]),
                }
                for block in page
            ], shown
        except (KeyError, TypeError, ValueError) as e:
            raise SourceError(
                f"{self.http.source}: {shown}: block without {e} (expected height, timestamp,"
                " difficulty, extras.totalFees)"
            ) from None

    def _blocks(self, top: int, bottom: int, end: int) -> tuple[list[dict], str]:
        """Blocks with heights in [bottom, top], paging down 15 at a time, then up past `top`
        until no higher block can be timestamped before `end` (or the tip is reached)."""
        found: dict[int, dict] = {}
        height = top
        while height >= bottom:
            page, shown = self._page(height)
            found.update((b["height"], b) for b in page)
            lowest = min(b["height"] for b in page)
            if lowest >= height and height > 0:
                raise SourceError(f"{self.http.source}: {shown}: paging did not move down")
            height = lowest - 1
        pages_up = 0
        while not closed_after(found, top, end):
            if pages_up == MAX_PAGES_UP:
                raise SourceError(
                    f"{self.http.source}: blocks {top - MEDIAN_SPAN + 1}..{top} are still"
                    f" timestamped around the window's end after {pages_up} pages past it"
                )
            page, shown = self._page(top + PAGE, above_tip_ok=True)
            pages_up += 1
            higher = [b for b in page if b["height"] > top]
            if not higher:
                break  # `top` is the tip: blocks mined later may still fall in the window
            found.update((b["height"], b) for b in higher)
            top = max(b["height"] for b in higher)
        missing = [h for h in range(bottom, top + 1) if h not in found]
        if missing:
            raise SourceError(
                f"{self.http.source}: {self.http.base_url}/api/v1/blocks/: no block at"
                f" height {missing[0]} ({len(missing)} missing between {bottom} and {top})"
            )
        url = f"{self.http.base_url}/api/v1/blocks/{{{bottom}..{top}}}"
        return [found[h] for h in range(bottom, top + 1)], url

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
        end = unix(window.end)
        past_end = self._height_at(end - 1 + round(self.settings.margin_hours * 3600))
        start_height = self._height_at(unix(window.start) - 1)
        bottom = max(0, start_height - self.settings.margin_blocks)
        blocks, blocks_url = self._blocks(max(past_end, start_height), bottom, end)
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
