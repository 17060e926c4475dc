"""GPU rental offers from vast.ai's public offer search (key-free), -> gpu_offers_observed.

`GET {base_url}/api/v0/bundles/?q=<JSON query>` answers `{"offers": [{"id", "gpu_name",
"num_gpus", "dph_total", "min_bid", "rentable", ...}]}`. Two requests per observation: `type`
on-demand (price `dph_total`, USD per offer-hour) and `type` bid (interruptible: the offer's
`min_bid`). One row per offer and lease type ("on-demand", or "spot" for interruptible), its price
divided by its GPUs; GPU names normalised ("H100 SXM5 80GB" and "H100_SXM" are H100 / SXM);
source "vast.ai".

A listing is the offer book as it is now: each call is an observation, stamped with the time it
was made, and it fills today's UTC partition only (it refuses any other window). The source is
observed on its own schedule (`observe_cron` in sources.yaml, hourly), and a day's prices in
gpu_market_prices_daily summarise the observations made during that day.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
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
    tables: ClassVar[set[str]] = {"gpu_offers_observed"}
    name = "vastai (gpu_offers_observed)"
    SEARCHES = (("on-demand", "on-demand", "dph_total"), ("bid", "spot", "min_bid"))

    def __init__(self, settings: VastaiSettings):
        self.settings = settings
        self.http = HttpClient(self.name, settings)

    @staticmethod
    def now() -> datetime:
        return datetime.now(UTC)

    def fetch(self, table: str, window: Window, partition_column: str) -> pl.DataFrame:
        observed_at = self.now().replace(microsecond=0)
        if not window.start <= observed_at.date() < window.end:
            now = observed_at.strftime("%Y-%m-%d %H:%M")
            raise SourceError(
                f"{self.name}: vast.ai lists its offers as they are now ({now}Z), so it observes "
                f"into today's partition only, not [{window.start}, {window.end}): a past day's "
                "prices are summarised from the observations made during it"
            )
        rows = []
        for search, lease_type, price in self.SEARCHES:
            query = {"rentable": {"eq": True}, "type": search, "limit": self.settings.limit}
            body, shown = self.http.get_json("/api/v0/bundles/", {"q": json.dumps(query)})
            if not isinstance(body, dict) or not isinstance(body.get("offers"), list):
                raise SourceError(f"{self.name}: {shown}: expected {{'offers': [...]}}")
            for position, offer in enumerate(body["offers"], start=1):
                gpu = normalise_gpu(str(offer.get("gpu_name", "")))
                gpus, value, offer_id = offer.get("num_gpus"), offer.get(price), offer.get("id")
                if gpu is None or not gpus or value is None or offer_id is None:
                    continue  # not a GPU we track, or not an offer of this lease type
                rows.append(
                    {"observed_at": observed_at, "source": "vast.ai", "offer_id": str(offer_id),
                     "lease_type": lease_type, "gpu_model": gpu[0], "gpu_variant": gpu[1],
                     "gpus": int(gpus), "price_usd_per_gpu_hour": float(value) / int(gpus),
                     "_source": shown, "_row": position}
                )  # fmt: skip
        if not rows:
            return empty(table)
        return finish(table, pl.DataFrame(rows))
