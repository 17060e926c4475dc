"""GPU rental prices from vast.ai's public offer search (key-free), -> gpu_market_prices_daily.

`GET {base_url}/api/v0/bundles/?q=<JSON query>` answers `{"offers": [{"id", "gpu_name",
"num_gpus", "dph_total", "min_bid", "rentable", ...}]}`. Two requests per run: `type` on-demand
(price `dph_total`, USD per offer-hour) and `type` bid (interruptible: the offer's `min_bid`).
A multi-GPU offer's price is per offer: divided by `num_gpus`. Summarised per (gpu_model,
gpu_variant, lease_type) into the median, p25, p75 per GPU-hour and the offer count; source is
"vast.ai"; lease_type "on-demand" or "spot" (interruptible).

A live listing is a snapshot of now: this connector fills today's UTC partition only and refuses
any other window (backfill history from files with `file_drop`, or from a daily schedule).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import polars as pl
from pydantic import BaseModel, Field

from pipelines.batch import Window
from pipelines.sources.common import empty, finish
from pipelines.sources.errors import SourceError
from pipelines.sources.http import HttpClient, HttpSettings

MODELS = ("B200", "H200", "H100", "GH200", "A100", "L40S", "L40", "A6000", "RTX 4090", "RTX 5090")


def normalise_gpu(name: str) -> tuple[str, str] | None:
    """(model, variant) of a GPU name as marketplaces spell it, or None if it is not one we track.

    "H100 SXM5 80GB", "H100_SXM", "NVIDIA H100 80GB HBM3" -> ("H100", "SXM");
    "H100 PCIE" -> ("H100", "PCIe"); "H100 NVL" -> ("H100", "NVL"); "A100 SXM4" -> ("A100", "SXM").
    """
    text = re.sub(r"[_\-]+", " ", name.upper()).replace("NVIDIA", "").strip()
    text = re.sub(r"\s+", " ", text)
    model = next(
        (m for m in MODELS if re.search(rf"(^|\s){re.escape(m)}(\s|$|[A-Z0-9])", text + " ")),
        None,
    )
    if model is None:
        return None
    rest = text.replace(model, " ", 1)
    if re.search(r"\bNVL\b", rest):
        variant = "NVL"
    elif re.search(r"\bPCI ?E\b|\bPCIE\d?\b", rest):
        variant = "PCIe"
    elif re.search(r"\bSXM\d?\b|\bHBM\d?E?\b", rest) or model in ("B200", "H200", "GH200"):
        variant = "SXM"  # the HBM3 datacentre parts are SXM boards unless said otherwise
    else:
        variant = "PCIe"  # workstation and consumer cards, and a bare "A100"
    return model, variant


class VastaiSettings(HttpSettings):
    base_url: str = "https://console.vast.ai"
    min_interval_s: float = 1.0
    limit: int = Field(5000, ge=1, description="offers asked per search")


class VastaiConnector:
    Settings: ClassVar[type[BaseModel]] = VastaiSettings
    tables: ClassVar[set[str]] = {"gpu_market_prices_daily"}
    name = "vastai (gpu_market_prices_daily)"
    SEARCHES = (("on-demand", "on-demand", "dph_total"), ("bid", "spot", "min_bid"))

    def __init__(self, settings: VastaiSettings):
        self.settings = settings
        self.http = HttpClient(self.name, settings)

    @staticmethod
    def today() -> datetime:
        return datetime.now(UTC)

    def fetch(self, table: str, window: Window, partition_column: str) -> pl.DataFrame:
        today = self.today().date()
        if (window.start, window.end) != (today, today + timedelta(days=1)):
            raise SourceError(
                f"{self.name}: vast.ai lists today's offers only, so it fills today's partition "
                f"({today}) and cannot load [{window.start}, {window.end}): load past days from "
                "files (file_drop)"
            )
        offers = []
        for search, lease_type, price in self.SEARCHES:
            query = {"rentable": {"eq": True}, "type": search, "limit": self.settings.limit}
            body, shown = self.http.get_json("/api/v0/bundles/", {"q": json.dumps(query)})
            if not isinstance(body, dict) or not isinstance(body.get("offers"), list):
                raise SourceError(f"{self.name}: {shown}: expected {{'offers': [...]}}")
            for position, offer in enumerate(body["offers"], start=1):
                gpu = normalise_gpu(str(offer.get("gpu_name", "")))
                gpus, value = offer.get("num_gpus"), offer.get(price)
                if gpu is None or not gpus or value is None:
                    continue
                offers.append(
                    {"gpu_model": gpu[0], "gpu_variant": gpu[1], "lease_type": lease_type,
                     "per_gpu": float(value) / int(gpus), "_source": shown, "_row": position}
                )  # fmt: skip
        if not offers:
            return empty(table)
        summary = (
            pl.DataFrame(offers)
            .filter(pl.col("per_gpu") > 0)
            .group_by("gpu_model", "gpu_variant", "lease_type")
            .agg(
                pl.col("per_gpu").median().alias("price_usd_per_gpu_hour"),
                pl.col("per_gpu").quantile(0.25, "linear").alias("p25_usd_per_gpu_hour"),
                pl.col("per_gpu").quantile(0.75, "linear").alias("p75_usd_per_gpu_hour"),
                pl.len().cast(pl.Int64).alias("offers"),
                pl.col("_source").first(),
                pl.col("_row").min().cast(pl.Int64),
            )
            .sort("gpu_model", "gpu_variant", "lease_type")
            .with_columns(
                pl.lit(today.isoformat()).alias("date"), pl.lit("vast.ai").alias("source")
            )
        )
        return finish(table, summary)
